//! A watcher that stops reading while thousands of writes go by falls
//! behind the server's live feed; it must then be caught up from the
//! history, every event once and in order, with no error and no relist.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use serde_json::json;

/// More than the live feed holds (8,192 events), less than the history
/// (10,000).
const WRITES: usize = 9_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_falls_behind_catches_up_from_the_history() {
    let api_server = kedge_control::testing::start().await;
    let api: Api<ConfigMap> = Api::namespaced(api_server.client.clone(), "default");
    let from = api.list_metadata(&Default::default()).await.unwrap();
    let rv = from.metadata.resource_version.unwrap();

    // The watch is open, but nothing reads it until every write is done.
    let stream = api
        .watch(&WatchParams::default().timeout(290), &rv)
        .await
        .unwrap();

    futures::stream::iter(0..WRITES)
        .map(|i| {
            let api = api.clone();
            // Large enough that the socket buffers between server and
            // client cannot hold the whole backlog.
            let padding = "x".repeat(10_000);
            async move {
                let cm: ConfigMap = serde_json::from_value(json!({
                    "metadata": {"name": format!("cm-{i}")},
                    "data": {"i": i.to_string(), "padding": padding},
                }))
                .unwrap();
                api.create(&PostParams::default(), &cm).await.map(|_| ())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();

    let mut stream = Box::pin(stream);
    let mut seen = std::collections::HashSet::new();
    let mut last = 0u64;
    while seen.len() < WRITES {
        let event = tokio::time::timeout(std::time::Duration::from_secs(60), stream.next())
            .await
            .expect("the watch keeps delivering")
            .expect("the watch stays open")
            .unwrap();
        match event {
            WatchEvent::Added(cm) => {
                let revision: u64 = cm.metadata.resource_version.unwrap().parse().unwrap();
                assert!(revision > last, "events in revision order");
                last = revision;
                assert!(
                    seen.insert(cm.metadata.name.unwrap()),
                    "each event delivered once"
                );
            }
            WatchEvent::Bookmark(_) => {}
            other => panic!("unexpected watch event {other:?}"),
        }
    }
}
