//! The scheduler and the controllers of one process share one watch per
//! resource: the API server's `registered_watchers` gauge counts the
//! watches they open.

use std::time::Duration;

use kedge_control::controllers::{self, Context};
use kedge_control::testing;

/// Open watches of core `kind`, from the API server's metrics.
async fn watchers(client: &kube::Client, kind: &str) -> u64 {
    let req = hyper::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(req).await.unwrap();
    let wanted =
        format!(r#"kedge_apiserver_registered_watchers{{group="",version="v1",kind="{kind}"}} "#);
    text.lines()
        .find_map(|l| l.strip_prefix(&wanted))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scheduler_and_every_controller_read_pods_and_nodes_through_one_watch() {
    let t = testing::start().await;
    let client = t.client.clone();
    let ctx = Context::new(client.clone());
    tokio::spawn(kedge_control::scheduler::run_with_informers(
        client.clone(),
        ctx.informers.clone(),
    ));
    tokio::spawn(controllers::run_all(ctx));
    // Until every controller has started: the same counts twice in a row.
    let mut last = (0, 0);
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = (
            watchers(&client, "Pod").await,
            watchers(&client, "Node").await,
        );
        if now.0 > 0 && now == last {
            break;
        }
        last = now;
    }
    // The shared informer (the scheduler's and every controller's), and the
    // garbage collector's watch of every resource (it reads metadata only,
    // of all kinds alike). Each workload, endpoints and node controller used
    // to open its own (13 pod watches), and the scheduler one more.
    assert_eq!(last, (2, 2), "(pod watches, node watches)");
}
