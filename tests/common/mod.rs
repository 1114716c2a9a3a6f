//! Helpers of the end-to-end tests: start the real `kedge` binary on a free
//! port in a temporary data dir, and drive it with the real `kubectl`.
#![allow(dead_code)]

pub mod browser;
pub mod etcd;
pub mod images;
pub mod machines;
pub mod web;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running `kedge server` started by a test; stopped (by PID) on drop.
pub struct Cluster {
    child: Option<Child>,
    /// The data dir (store, credentials, kubeconfig).
    pub data_dir: PathBuf,
    /// A private HOME so kubectl's discovery cache is the test's own.
    pub home: PathBuf,
    /// The API server URL.
    pub url: String,
    _tmp: Option<tempfile::TempDir>,
    extra_args: Vec<String>,
    extra_env: Vec<(String, String)>,
    /// `server`, or `up` with a real node.
    command: &'static str,
    /// Started as a user would: no `--data-dir`/`--listen`, HOME is the
    /// test's own (so the data dir is `$HOME/.kedge`).
    as_a_user: bool,
    /// The real node of `up`, whose containers are removed on drop.
    pub node: Option<RealNode>,
}

/// A real node's identity, unique on this machine while its test runs: its
/// name carries the test process's PID, so a run that crashed can be swept.
#[derive(Debug, Clone)]
pub struct RealNode {
    /// The Node's name.
    pub name: String,
    /// Its pod CIDR (the subnet of its Docker network).
    pub pod_cidr: String,
    /// The port of its kubelet endpoint.
    pub kubelet_port: u16,
    /// Where its pod volumes live.
    pub root_dir: PathBuf,
    /// The Service range of its cluster (its own, so ClusterIPs of
    /// clusters of parallel tests never meet).
    pub service_cidr: String,
    /// The bridge holding its ClusterIPs.
    pub proxy_interface: String,
    /// Its service proxy's nftables table (the userspace mode's redirects,
    /// or the kernel mode's table).
    pub nftables_table: String,
}

impl RealNode {
    /// A fresh node identity under `dir`.
    pub fn new(dir: &Path) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        sweep_crashed_nodes();
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pid = std::process::id();
        RealNode {
            name: format!("t{pid}-{n}"),
            // 10.200–10.239: never the default 10.244.0.0/24.
            pod_cidr: format!("10.{}.{}.0/24", 200 + pid % 40, n % 250),
            kubelet_port: free_fixed_port(),
            root_dir: dir.join(format!("kubelet-{n}")),
            service_cidr: format!("10.{}.{}.0/24", 100 + pid % 50, n % 250),
            proxy_interface: format!("kh{}x{n}", pid % 100_000),
            nftables_table: format!("kt{pid}x{n}"),
        }
    }

    /// The cluster DNS address: the 10th of the Service range.
    pub fn dns_ip(&self) -> String {
        dns_ip(&self.service_cidr)
    }

    /// The node's address: the first of its pod CIDR.
    pub fn address(&self) -> String {
        let prefix = self.pod_cidr.rsplit_once('.').unwrap().0;
        format!("{prefix}.1")
    }

    /// The `kedge up` / `kedge agent` flags of this node.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--node-name".into(),
            self.name.clone(),
            "--pod-cidr".into(),
            self.pod_cidr.clone(),
            "--kubelet-port".into(),
            self.kubelet_port.to_string(),
            "--root-dir".into(),
            self.root_dir.display().to_string(),
        ]
    }

    /// The Docker network of its pods.
    pub fn network(&self) -> String {
        format!("kedge-{}", self.name)
    }

    /// Remove the node's containers and network from Docker, and its
    /// proxy's holder interface and nftables table (a killed proxy leaves
    /// them).
    pub fn remove_from_docker(&self) {
        remove_docker_node(&self.name);
        let _ = Command::new("ip")
            .args(["link", "del", &self.proxy_interface])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        remove_nftables_table(&self.nftables_table);
        remove_pod_network_table(&self.name);
    }
}

/// The pod network's masquerading table of node `node` (the proxy names it
/// `kedge_podnet_<node>` with `_` for what is not alphanumeric).
fn remove_pod_network_table(node: &str) {
    let name: String = node
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let _ = Command::new("nft")
        .args(["delete", "table", "ip", &format!("kedge_podnet_{name}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The cluster DNS address of a Service range (a /24 or longer): its 10th.
pub fn dns_ip(service_cidr: &str) -> String {
    let base = service_cidr.split('/').next().unwrap();
    let prefix = base.rsplit_once('.').unwrap().0;
    format!("{prefix}.10")
}

fn docker_lines(args: &[&str]) -> Vec<String> {
    Command::new("docker")
        .args(args)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_string)
                .filter(|l| !l.trim().is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn remove_docker_node(node: &str) {
    let filter = format!("label=io.kedge.node={node}");
    let ids = docker_lines(&["ps", "-aq", "--filter", &filter]);
    if !ids.is_empty() {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v"])
            .args(&ids)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let _ = Command::new("docker")
        .args(["network", "rm", &format!("kedge-{node}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn remove_nftables_table(table: &str) {
    let _ = Command::new("nft")
        .args(["delete", "table", "ip", table])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    // The node's NetworkPolicy table.
    let _ = Command::new("nft")
        .args(["delete", "table", "inet", &format!("{table}-netpol")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Remove what test nodes of processes that are gone left in Docker and
/// in nftables.
fn sweep_crashed_nodes() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let tables = Command::new("nft")
            .args(["list", "tables"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        // Pod network tables of test nodes (`t<pid>-<n>`) whose process is
        // gone.
        for table in tables
            .lines()
            .filter_map(|l| l.strip_prefix("table ip kedge_podnet_t"))
        {
            let pid = table
                .split_once('_')
                .and_then(|(p, _)| p.parse::<u32>().ok());
            if let Some(pid) = pid {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = Command::new("nft")
                        .args([
                            "delete",
                            "table",
                            "ip",
                            &format!("kedge_podnet_t{}", table.trim()),
                        ])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                }
            }
        }
        for table in tables.lines().filter_map(|l| {
            l.strip_prefix("table ip ")
                .or_else(|| l.strip_prefix("table inet ")?.strip_suffix("-netpol"))
        }) {
            let pid = table
                .strip_prefix("kt")
                .and_then(|r| r.split_once('x'))
                .and_then(|(p, _)| p.parse::<u32>().ok());
            if let Some(pid) = pid {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    remove_nftables_table(table.trim());
                }
            }
        }
        let nodes = docker_lines(&[
            "network",
            "ls",
            "--filter",
            "label=io.kedge.managed=true",
            "--format",
            "{{.Label \"io.kedge.node\"}}",
        ]);
        for node in nodes {
            let pid = node
                .strip_prefix('t')
                .and_then(|r| r.split_once('-'))
                .and_then(|(p, _)| p.parse::<u32>().ok());
            if let Some(pid) = pid {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    remove_docker_node(&node);
                }
            }
        }
    });
}

/// A free port below the ephemeral range (and the NodePort range), for a
/// listener bound well after it is picked: an ephemeral port could be handed
/// in the meantime to some outgoing connection, or to a service proxy's
/// listener (the userspace proxy listens on kernel-chosen wildcard ports).
/// Never the same one twice in a process.
pub fn free_fixed_port() -> u16 {
    static TAKEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut taken = TAKEN.lock().unwrap();
    let seed = u64::from(std::process::id()) * 7919
        + u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos(),
        );
    for i in 0..1000u64 {
        let port = 20000 + ((seed + i * 131) % 10000) as u16;
        if !taken.contains(&port) && std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            taken.push(port);
            return port;
        }
    }
    panic!("no free port in 20000-29999");
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    /// Start a server in a fresh temporary data dir.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Start with extra `kedge server` flags.
    pub fn start_with(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    /// Start with extra flags and environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut c = Cluster {
            child: None,
            data_dir,
            home,
            url: String::new(),
            _tmp: Some(tmp),
            extra_args: args.iter().map(|s| s.to_string()).collect(),
            extra_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            command: "server",
            as_a_user: false,
            node: None,
        };
        c.spawn(free_fixed_port());
        c
    }

    /// Another control plane of the same cluster: a `kedge server` with
    /// `args` whose data dir starts with `first`'s CA and keys (what
    /// kubeadm copies to a second control-plane machine) and nothing else.
    pub fn start_beside(first: &Cluster, args: &[&str], env: &[(&str, &str)]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        std::fs::create_dir_all(&data_dir).unwrap();
        for entry in std::fs::read_dir(&first.data_dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let key_material = [
                "ca.crt",
                "ca.key",
                "sa.key",
                "encryption-config.yaml",
                "mesh-ca.crt",
                "mesh-ca.key",
            ]
            .contains(&name.as_str());
            if entry.path().is_file() && key_material {
                std::fs::copy(entry.path(), data_dir.join(&name)).unwrap();
            }
        }
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut c = Cluster {
            child: None,
            data_dir,
            home,
            url: String::new(),
            _tmp: Some(tmp),
            extra_args: args.iter().map(|s| s.to_string()).collect(),
            extra_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            command: "server",
            as_a_user: false,
            node: None,
        };
        c.spawn(free_fixed_port());
        c
    }

    /// `kedge up`: the control plane and one real node, pods in Docker.
    pub fn up() -> Self {
        Self::up_with(&[])
    }

    /// `kedge up` with extra flags and environment variables.
    pub fn up_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut c = Self::up_with_env_unstarted(args);
        c.extra_env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        c.spawn(free_fixed_port());
        c
    }

    /// `kedge up` with extra flags.
    pub fn up_with(args: &[&str]) -> Self {
        let mut c = Self::up_with_env_unstarted(args);
        c.spawn(free_fixed_port());
        c
    }

    fn up_with_env_unstarted(args: &[&str]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let node = RealNode::new(tmp.path());
        let mut extra_args = node.args();
        // DNS forwarding goes to a loopback stub the test starts (or to
        // nothing), never to the machine's resolver.
        extra_args.extend([
            "--service-cidr".to_string(),
            node.service_cidr.clone(),
            "--proxy-interface".to_string(),
            node.proxy_interface.clone(),
        ]);
        if !args.contains(&"--proxy-nftables-table") {
            extra_args.extend([
                "--proxy-nftables-table".to_string(),
                node.nftables_table.clone(),
            ]);
        }
        extra_args.extend([
            "--metrics-addr".to_string(),
            format!("127.0.0.1:{}", free_fixed_port()),
        ]);
        // The ingress controller's image and DaemonSet only where a test
        // asks for them.
        if !args.contains(&"--ingress-http-port") {
            extra_args.push("--no-ingress".to_string());
        }
        // The demo images only where a test runs them.
        if !args.contains(&"--demo-images") {
            extra_args.push("--no-demo-images".to_string());
        }
        if !args.contains(&"--dns-upstream") {
            extra_args.extend([
                "--dns-upstream".to_string(),
                format!("127.0.0.1:{}", free_port()),
            ]);
        }
        extra_args.extend(
            args.iter()
                .filter(|a| **a != "--demo-images")
                .map(|s| s.to_string()),
        );
        Cluster {
            child: None,
            data_dir,
            home,
            url: String::new(),
            _tmp: Some(tmp),
            extra_args,
            extra_env: Vec::new(),
            command: "up",
            as_a_user: false,
            node: Some(node),
        }
    }

    /// `kedge up` exactly as the README tells a user, with `extra` flags
    /// only (none for the defaults): the API server on 127.0.0.1:6443, the
    /// node named after the machine on 10.244.0.0/24, its kubelet on 10250,
    /// the ClusterIPs of 10.96.0.0/12 on `kedge0`, the ingress on ports 80
    /// and 443. It takes machine-wide names and ports, so at most one runs
    /// on a machine: it panics, saying which, when one is taken.
    pub fn up_as_a_user(extra: &[&str]) -> Self {
        for port in [6443, 10250, 80, 443, 10249, 10254] {
            assert!(
                std::net::TcpListener::bind(("0.0.0.0", port)).is_ok(),
                "port {port} is taken: the default-flags walkthrough needs the ports of a real installation"
            );
        }
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_lowercase())
            .unwrap_or_default();
        let node = RealNode {
            name,
            pod_cidr: "10.244.0.0/24".into(),
            kubelet_port: 10250,
            root_dir: home.join(".kedge/kubelet"),
            service_cidr: "10.96.0.0/12".into(),
            proxy_interface: "kedge0".into(),
            nftables_table: "kedge".into(),
        };
        // What a crashed run of this test left.
        node.remove_from_docker();
        let mut c = Cluster {
            child: None,
            data_dir: home.join(".kedge"),
            home,
            url: String::new(),
            _tmp: Some(tmp),
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            extra_env: Vec::new(),
            command: "up",
            as_a_user: true,
            node: Some(node),
        };
        c.spawn(6443);
        c
    }

    fn spawn(&mut self, port: u16) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kedge"));
        cmd.arg(self.command);
        if self.as_a_user {
            cmd.env("HOME", &self.home);
        } else {
            cmd.arg("--data-dir")
                .arg(&self.data_dir)
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"));
        }
        let mut child = cmd
            .args(&self.extra_args)
            .env("RUST_LOG", "warn")
            .envs(self.extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting kedge");
        // Its log goes to the test's output and to a file `log` reads.
        let stderr = child.stderr.take().unwrap();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .ok();
        std::thread::spawn(move || {
            use std::io::Write;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                if let Some(file) = &mut file {
                    let _ = writeln!(file, "{line}");
                }
            }
        });
        // The binary prints the kubeconfig line once it serves.
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut url = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(u) = line.strip_prefix("kedge is serving on ") {
                url = Some(u.to_string());
            }
            if line.starts_with("export KUBECONFIG=") {
                break;
            }
            assert!(Instant::now() < deadline, "kedge did not start");
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.url = url.expect("kedge printed its URL");
        self.child = Some(child);
    }

    fn log_path(&self) -> PathBuf {
        self.home.join("kedge.log")
    }

    /// What kedge has logged so far, colours taken out (`RUST_LOG` is
    /// `warn` unless the test set it).
    pub fn log(&self) -> String {
        without_colours(&std::fs::read_to_string(self.log_path()).unwrap_or_default())
    }

    /// The value given to a flag of the command, if any.
    pub fn arg_after(&self, flag: &str) -> Option<String> {
        let i = self.extra_args.iter().position(|a| a == flag)?;
        self.extra_args.get(i + 1).cloned()
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir.join("kubeconfig")
    }

    /// Kill the server with SIGKILL (no chance to clean up).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stop with SIGTERM, as an operator would, and wait up to `grace` for
    /// the graceful shutdown; SIGKILL after that. Whether it ended in time.
    pub fn terminate(&mut self, grace: Duration) -> bool {
        match self.child.take() {
            Some(mut c) => terminate(&mut c, grace),
            None => true,
        }
    }

    /// Send SIGTERM, as an operator would, and return at once.
    pub fn sigterm(&self) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
    }

    /// Wait up to `timeout` for the server to end by itself: its exit
    /// status, or `None` while it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Start the server again on the same port and data dir.
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port();
        self.spawn(port);
    }

    /// A kubectl command with this cluster's kubeconfig and HOME.
    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", &self.home)
            .stdin(Stdio::null());
        cmd
    }

    /// Run kubectl and return its output, whatever the exit code.
    pub fn kubectl_output(&self, args: &[&str]) -> Output {
        self.kubectl_cmd(args).output().expect("running kubectl")
    }

    /// Run kubectl, expect success, return stdout.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = self.kubectl_output(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Run kubectl, expect failure, return stderr.
    pub fn kubectl_fails(&self, args: &[&str]) -> String {
        let out = self.kubectl_output(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should have failed:\nstdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// A kube-rs client for this cluster.
    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(self.kubeconfig()).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(cfg).unwrap()
    }

    /// The README's `kubectl create configmap` and `create secret generic`
    /// of the walkthrough, in `luffy`.
    pub fn create_readme_config_and_secret(&self) {
        self.kubectl(&[
            "-n",
            "luffy",
            "create",
            "configmap",
            "myblog",
            "--from-literal=MYSQL_HOST=mysql",
            "--from-literal=MYSQL_PORT=3306",
        ]);
        self.kubectl(&[
            "-n",
            "luffy",
            "create",
            "secret",
            "generic",
            "myblog",
            "--from-literal=MYSQL_USER=root",
            "--from-literal=MYSQL_PASSWD=123456",
        ]);
    }

    /// The path of a fixture file.
    pub fn fixture(name: &str) -> String {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
            .display()
            .to_string()
    }
}

/// A `kedge agent` process started by a test; stopped (by PID) on drop.
pub struct Agent {
    child: Child,
    /// Where a real agent's service proxy and cluster DNS serve metrics.
    pub metrics_addr: Option<String>,
}

impl Agent {
    /// Stop the agent with SIGTERM (a graceful shutdown), SIGKILL after
    /// `grace`; whether it ended in time.
    pub fn terminate(&mut self, grace: Duration) -> bool {
        terminate(&mut self.child, grace)
    }

    /// Kill the agent (its nodes stop heartbeating).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Cluster {
    /// Start `kedge agent --hollow` with `count` nodes named `<prefix>N`.
    pub fn hollow_nodes(&self, count: usize, prefix: &str, extra: &[&str]) -> Agent {
        let child = Command::new(env!("CARGO_BIN_EXE_kedge"))
            .args([
                "agent",
                "--hollow",
                "--count",
                &count.to_string(),
                "--name-prefix",
                prefix,
            ])
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting kedge agent");
        Agent {
            child,
            metrics_addr: None,
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill();
        if let Some(node) = &self.node {
            node.remove_from_docker();
        }
    }
}

impl Cluster {
    /// Start `kedge agent` with a real node (pods in Docker) joining this
    /// cluster; stopped by PID on drop (its containers stay, as a
    /// kubelet's do; the node's `remove_from_docker` removes them).
    ///
    /// The agent runs the node's service proxy and cluster DNS on the
    /// node's own holder interface and a metrics port of its own, with DNS
    /// forwarded to loopback; on a cluster with no Service range of the
    /// test's own it runs neither, so that the default range's ClusterIPs
    /// never land on this machine.
    pub fn real_agent(&self, node: &RealNode) -> Agent {
        self.real_agent_with(node, &[])
    }

    /// [`real_agent`](Self::real_agent) with extra `kedge agent` flags.
    pub fn real_agent_with(&self, node: &RealNode, extra: &[&str]) -> Agent {
        let services: Vec<String> = match self.arg_after("--service-cidr") {
            Some(cidr) => {
                let mut args: Vec<String> = vec![
                    "--cluster-dns".into(),
                    dns_ip(&cidr),
                    "--proxy-interface".into(),
                    node.proxy_interface.clone(),
                    "--metrics-addr".into(),
                    format!("127.0.0.1:{}", free_fixed_port()),
                    "--dns-upstream".into(),
                    format!("127.0.0.1:{}", free_port()),
                ];
                if !extra.contains(&"--proxy-nftables-table") {
                    args.extend(["--proxy-nftables-table".into(), node.nftables_table.clone()]);
                }
                args
            }
            None => vec!["--no-service-network".into()],
        };
        let child = Command::new(env!("CARGO_BIN_EXE_kedge"))
            .arg("agent")
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(node.args())
            .args(&services)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting kedge agent");
        let metrics_addr = services
            .iter()
            .position(|a| a == "--metrics-addr")
            .map(|i| services[i + 1].clone());
        Agent {
            child,
            metrics_addr,
        }
    }

    /// Wait until every pod matching `selector` (or the pod `name`) is in
    /// `phase` and, for Running, Ready; panics with `kubectl get` after
    /// `timeout`.
    pub fn wait_ready(&self, what: &[&str], timeout: Duration) {
        let mut args = vec!["wait", "--for=condition=Ready", "--timeout"];
        let t = format!("{}s", timeout.as_secs());
        args.push(&t);
        args.extend_from_slice(what);
        let out = self.kubectl_output(&args);
        if !out.status.success() {
            let pods = self.kubectl_output(&["get", "pods", "-A", "-o", "wide"]);
            let describe = self.kubectl_output(&["describe", "pods"]);
            panic!(
                "pods not ready: {}\n{}\n{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&pods.stdout),
                String::from_utf8_lossy(&describe.stdout)
            );
        }
    }

    /// `kubectl apply` a manifest given as text.
    pub fn apply(&self, manifest: &str) -> String {
        let out = self.apply_output(manifest);
        assert!(
            out.status.success(),
            "kubectl apply failed: {}\n{manifest}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `kubectl apply` a manifest given as text, whatever its outcome.
    pub fn apply_output(&self, manifest: &str) -> std::process::Output {
        self.kubectl_stdin(&self.kubeconfig(), &["apply", "-f", "-"], manifest)
    }

    /// `kubectl <args>` as the user of `kubeconfig`, `input` on its
    /// standard input, whatever its outcome.
    pub fn kubectl_stdin(&self, kubeconfig: &Path, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .kubectl_cmd(args)
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running kubectl");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// A kubeconfig `<home>/<name>.kubeconfig` for this cluster (its
    /// server and CA, as the admin's has them) with `user` as the body of
    /// its user entry (YAML, indented four spaces, or `{}`).
    pub fn kubeconfig_for(&self, name: &str, user: &str) -> PathBuf {
        let admin = std::fs::read_to_string(self.kubeconfig()).unwrap();
        let field = |key: &str| {
            admin
                .lines()
                .find_map(|l| l.trim().strip_prefix(key))
                .unwrap()
                .to_string()
        };
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: u\n  user: {user}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n",
            field("server: "),
            field("certificate-authority-data: "),
        );
        let path = self.home.join(format!("{name}.kubeconfig"));
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// SIGTERM `child`, wait up to `grace` for it to end, SIGKILL after that;
/// whether it ended in time.
pub fn terminate(child: &mut Child, grace: Duration) -> bool {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// The holder of the Lease `name` in `kube-system` (a leader election's),
/// read with `kubectl` as `kubectl_output` runs it; `None` until held.
#[allow(dead_code)]
pub fn lease_holder(kubectl_output: impl Fn(&[&str]) -> Output, name: &str) -> Option<String> {
    let out = kubectl_output(&[
        "-n",
        "kube-system",
        "get",
        "lease",
        name,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    let holder = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !holder.is_empty()).then_some(holder)
}

/// `text` with its terminal colour sequences taken out.
pub fn without_colours(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(ch) = chars.next() {
        if ch == '\u{1b}' {
            // An escape sequence: ESC [ parameters, then a letter.
            for ch in chars.by_ref() {
                if ch.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(ch);
        }
    }
    plain
}

/// Poll `f` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// A loopback DNS stub: names under `example.` have the address
/// 192.0.2.7, every other name does not exist. It runs until the test
/// process ends.
pub fn dns_stub() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                return;
            };
            if n < 12 {
                continue;
            }
            // The question ends after the name's zero label, then type and
            // class.
            let Some(end) = buf[12..n].iter().position(|b| *b == 0).map(|p| 12 + p + 5) else {
                continue;
            };
            if end > n {
                continue;
            }
            let mut reply = buf[..end].to_vec();
            reply[2] = 0x81; // response, recursion desired
            reply[6..12].copy_from_slice(&[0, 0, 0, 0, 0, 0]);
            let known = buf[12..end].windows(8).any(|w| w == b"\x07example");
            let type_a = buf[end - 4..end - 2] == [0, 1];
            if !known {
                reply[3] = 0x83; // recursion available, NXDOMAIN
            } else {
                reply[3] = 0x80; // recursion available, NOERROR
                if type_a {
                    reply[7] = 1; // one answer
                    reply.extend_from_slice(&[
                        0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 192, 0, 2, 7,
                    ]);
                }
            }
            let _ = socket.send_to(&reply, peer);
        }
    });
    port
}

/// `kubectl` against `c` as the user of another kubeconfig.
pub fn kubectl_with(c: &Cluster, kubeconfig: &Path, args: &[&str]) -> Output {
    c.kubectl_cmd(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .unwrap()
}

/// The standard output of a command that must have succeeded.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "expected success:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
