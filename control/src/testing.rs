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

/// Start an API server on `127.0.0.1:0` with default options and its data in
/// a new temporary directory. Panics on failure.
pub async fn start() -> TestServer {
    let dir = tempfile::tempdir().expect("a temporary data directory");
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
