use std::future::Future;
use std::time::Duration;

use crate::server::RunningServer;

/// An API server started by [`start`]. It serves until
/// [`RunningServer::shutdown`] or the end of the test's runtime; dropping
/// this removes the data directory.
pub struct TestServer {
    pub server: RunningServer,
    /// A client with the admin credentials.
    pub client: kube::Client,
    /// The data directory (store, `ca.crt`, kubeconfig).
    pub dir: tempfile::TempDir,
}

/// Set to `etcd` to run every test server on an etcd of its own instead
/// of the embedded store: the same API tests, against the other store.
pub const STORE_ENV: &str = "KEDGE_TEST_STORE";

/// A real etcd (Debian's `etcd-server`) on loopback ports the kernel
/// picked, its data in a temporary directory; killed (by PID) on drop.
pub struct Etcd {
    child: std::process::Child,
    /// Its client URL.
    pub url: String,
    /// With TLS: the directory of `ca.crt` (its CA) and `client.crt` /
    /// `client.key` (a client certificate it accepts).
    pub tls: Option<std::path::PathBuf>,
    dir: tempfile::TempDir,
}

impl Etcd {
    /// Start one and wait until it answers.
    pub fn start() -> Self {
        Self::start_with(false, false)
    }

    /// Start one serving TLS only, that asks every client for a
    /// certificate of its CA (`--client-cert-auth`), as kubeadm runs etcd.
    pub fn start_tls() -> Self {
        Self::start_with(false, true)
    }

    /// An etcd that lives as long as the test process (its tests' servers
    /// outlive the handles they are given): killed by the kernel when the
    /// process ends, however it ends.
    fn for_the_process() -> crate::store::EtcdConfig {
        static KEPT: std::sync::Mutex<Vec<Etcd>> = std::sync::Mutex::new(Vec::new());
        let etcd = Self::start_with(true, false);
        let config = etcd.config();
        KEPT.lock().unwrap().push(etcd);
        config
    }

    fn start_with(for_the_process: bool, tls: bool) -> Self {
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (client, peer) = (free(), free());
        let dir = tempfile::tempdir().expect("a directory for etcd");
        let scheme = if tls { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        // The kernel kills an etcd for the whole process when the thread
        // that started it ends (util-linux's setpriv sets that signal).
        let mut command = if for_the_process {
            let mut c = std::process::Command::new("setpriv");
            c.args(["--pdeathsig", "KILL", "--", "etcd"]);
            c
        } else {
            std::process::Command::new("etcd")
        };
        command
            .arg("--name=test")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={url}"))
            .arg(format!("--advertise-client-urls={url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=test={peer_url}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let tls = tls.then(|| {
            let certs = dir.path().join("pki");
            write_etcd_certificates(&certs);
            command
                .arg(format!(
                    "--cert-file={}",
                    certs.join("server.crt").display()
                ))
                .arg(format!("--key-file={}", certs.join("server.key").display()))
                .arg(format!(
                    "--trusted-ca-file={}",
                    certs.join("ca.crt").display()
                ))
                .arg("--client-cert-auth");
            certs
        });
        let child = if for_the_process {
            spawn_for_the_process(command)
        } else {
            command.spawn()
        }
        .expect("starting etcd (apt-get install etcd-server)");
        let etcd = Self {
            child,
            url,
            tls,
            dir,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", client)).is_err() {
            assert!(std::time::Instant::now() < deadline, "etcd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        etcd
    }

    /// How a server reaches it.
    pub fn config(&self) -> crate::store::EtcdConfig {
        let file = |name: &str| self.tls.as_ref().map(|d| d.join(name));
        crate::store::EtcdConfig {
            endpoints: vec![self.url.clone()],
            ca_file: file("ca.crt"),
            cert_file: file("client.crt"),
            key_file: file("client.key"),
            prefix: crate::store::etcd::DEFAULT_PREFIX.to_string(),
        }
    }

    /// Where its files are.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

/// An etcd CA of its own (as kubeadm's `etcd/ca.crt`), etcd's serving
/// certificate for loopback and a client certificate for the API server,
/// written into `dir`.
fn write_etcd_certificates(dir: &std::path::Path) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, SanType,
    };
    std::fs::create_dir_all(dir).unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "etcd-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    write("ca.crt", &ca_params.self_signed(&ca_key).unwrap().pem());
    let issuer = Issuer::new(ca_params, &ca_key);
    let leaf = |cn: &str, usage: ExtendedKeyUsagePurpose| {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (cert, key) = leaf("etcd", ExtendedKeyUsagePurpose::ServerAuth);
    write("server.crt", &cert);
    write("server.key", &key);
    let (cert, key) = leaf(
        "kube-apiserver-etcd-client",
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    write("client.crt", &cert);
    write("client.key", &key);
}

/// Spawn `command` (which sets its parent-death signal) from a thread that
/// lives as long as the process: the signal fires when the thread that
/// spawned it ends, so only when the process does.
fn spawn_for_the_process(command: std::process::Command) -> std::io::Result<std::process::Child> {
    use std::sync::mpsc;
    type Request = (
        std::process::Command,
        mpsc::Sender<std::io::Result<std::process::Child>>,
    );
    static SPAWNER: std::sync::OnceLock<std::sync::Mutex<mpsc::Sender<Request>>> =
        std::sync::OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::spawn(move || {
            for (mut command, reply) in rx {
                let _ = reply.send(command.spawn());
            }
            // Never reached while the process lives: the sender is static.
            std::thread::park();
        });
        std::sync::Mutex::new(tx)
    });
    let (tx, rx) = mpsc::channel();
    spawner
        .lock()
        .unwrap()
        .send((command, tx))
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start an API server on `127.0.0.1:0` with default options and its data in
/// a new temporary directory. Panics on failure.
pub async fn start() -> TestServer {
    let etcd = (std::env::var(STORE_ENV).as_deref() == Ok("etcd")).then(Etcd::for_the_process);
    start_in(
        tempfile::tempdir().expect("a temporary data directory"),
        etcd,
    )
    .await
}

/// Start an API server on `127.0.0.1:0` over `dir` (whose CA and keys it
/// keeps, or makes), with its state in `etcd` if given. Panics on failure.
pub async fn start_in(
    dir: tempfile::TempDir,
    etcd: Option<crate::store::EtcdConfig>,
) -> TestServer {
    let cfg = kedge_config::cluster::ClusterConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    // A superuser's static token, for tests that speak raw HTTP.
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        format!(
            "{:032x},test-admin,test-admin,\"system:masters\"\n",
            rand::random::<u128>()
        ),
    )
    .expect("writing the token file");
    let opts = crate::server::ServerOptions {
        token_auth_file: Some(tokens),
        etcd,
        ..Default::default()
    };
    let server = crate::server::start(cfg, opts)
        .await
        .expect("the API server starts");
    let client = server.client().await.expect("an API client");
    TestServer {
        server,
        client,
        dir,
    }
}

/// Poll `check` every 50 ms until it holds; panic after 30 s (a generous
/// bound, for a loaded 2-core machine).
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually_within(30, what, check).await
}

/// Poll `check` every 50 ms until it holds; panic after `secs` seconds.
pub async fn eventually_within<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let check = || {
        let answer = check();
        async move { answer.await.then_some(()) }
    };
    poll(secs, Duration::from_millis(50), what, check).await
}

/// Poll `check` every 25 ms until it returns a value, and return it; panic
/// after 30 s.
pub async fn eventually_some<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll(30, Duration::from_millis(25), what, check).await
}

/// Call `check` every `every` until it returns a value; panic after `secs`.
async fn poll<T, F, Fut>(secs: u64, every: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(every).await;
    }
}
