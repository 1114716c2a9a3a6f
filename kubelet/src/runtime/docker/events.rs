//! Container starts and deaths from Docker's event stream, turned into pod
//! lifecycle events so pod workers react at once instead of polling.

use std::collections::HashMap;
use std::sync::Weak;
use std::time::Duration;

use bollard::query_parameters::EventsOptionsBuilder;
use bollard::Docker;
use futures::StreamExt;
use tokio::sync::broadcast;

use super::{LABEL_NODE, LABEL_POD_UID};
use crate::runtime::{PodLifecycleEvent, PodLifecycleEventType};

/// Follow the engine's container events of `node` for as long as anyone
/// listens; reconnect when the stream ends, until the runtime is dropped.
pub(super) async fn follow(
    docker: Docker,
    node: String,
    tx: broadcast::Sender<PodLifecycleEvent>,
    alive: Weak<()>,
) {
    let filters = HashMap::from([
        ("type".to_string(), vec!["container".to_string()]),
        (
            "event".to_string(),
            vec!["start".to_string(), "die".to_string()],
        ),
        ("label".to_string(), vec![format!("{LABEL_NODE}={node}")]),
    ]);
    let mut retry = Duration::from_millis(200);
    loop {
        let options = EventsOptionsBuilder::default().filters(&filters).build();
        let mut stream = docker.events(Some(options));
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "docker events");
                    break;
                }
            };
            retry = Duration::from_millis(200);
            let kind = match event.action.as_deref() {
                Some("start") => PodLifecycleEventType::ContainerStarted,
                Some("die") => PodLifecycleEventType::ContainerDied,
                _ => continue,
            };
            let Some(actor) = event.actor else { continue };
            let uid = actor
                .attributes
                .as_ref()
                .and_then(|a| a.get(LABEL_POD_UID))
                .cloned();
            if let (Some(pod_uid), Some(container_id)) = (uid, actor.id) {
                let _ = tx.send(PodLifecycleEvent {
                    pod_uid,
                    container_id,
                    kind,
                });
            }
        }
        if alive.upgrade().is_none() {
            return;
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(Duration::from_secs(5));
    }
}
