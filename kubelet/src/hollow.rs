//! Hollow nodes: node agents whose containers "run" in a fake runtime.

/// Options of a group of hollow nodes.
#[derive(Debug, Clone, Default)]
pub struct HollowOptions {
    /// How many nodes to run.
    pub count: usize,
    /// Node names are `<prefix><index>`.
    pub name_prefix: String,
    /// Labels every node gets.
    pub labels: Vec<(String, String)>,
}

/// Run the hollow nodes until the future is dropped.
pub async fn run(client: kube::Client, opts: HollowOptions) {
    let _ = (client, opts);
    std::future::pending::<()>().await
}
