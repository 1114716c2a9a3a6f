//! The watches that feed the scheduler: nodes into the cache, bound pods
//! into the cache (their requests and host ports), unscheduled pods of this
//! scheduler into the queue. A change that may let a parked pod fit (a node
//! added or relabelled, a bound pod gone) retries the parked pods.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;

use super::types::PodInfo;
use super::{Scheduler, State};

/// Watch nodes until the future is dropped.
pub async fn watch_nodes(sched: Arc<Scheduler>) {
    let api: Api<Node> = Api::all(sched.client.clone());
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut listing: Vec<Node> = Vec::new();
    let mut synced = false;
    while let Some(event) = stream.next().await {
        let moved = match event {
            Ok(Event::Apply(node)) => sched.state.lock().cache.add_or_update_node(node),
            Ok(Event::Delete(node)) => {
                let name = node.metadata.name.unwrap_or_default();
                sched.state.lock().cache.remove_node(&name);
                false
            }
            Ok(Event::Init) => {
                listing.clear();
                false
            }
            Ok(Event::InitApply(node)) => {
                listing.push(node);
                false
            }
            Ok(Event::InitDone) => {
                let nodes = std::mem::take(&mut listing);
                let keep: HashSet<String> = nodes
                    .iter()
                    .filter_map(|n| n.metadata.name.clone())
                    .collect();
                let mut st = sched.state.lock();
                st.cache.retain_nodes(&keep);
                let mut moved = false;
                for n in nodes {
                    moved |= st.cache.add_or_update_node(n);
                }
                drop(st);
                if !synced {
                    synced = true;
                    sched.synced.send_modify(|n| *n += 1);
                }
                moved
            }
            Err(e) => {
                tracing::warn!(error = %e, "scheduler: watching nodes failed");
                false
            }
        };
        if moved {
            move_parked(&sched);
        }
    }
}

/// Watch pods until the future is dropped.
pub async fn watch_pods(sched: Arc<Scheduler>) {
    let api: Api<Pod> = Api::all(sched.client.clone());
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut listing: Vec<Pod> = Vec::new();
    let mut synced = false;
    while let Some(event) = stream.next().await {
        let (moved, woke) = match event {
            Ok(Event::Apply(pod)) => {
                let mut st = sched.state.lock();
                on_pod(&sched, &mut st, pod)
            }
            Ok(Event::Delete(pod)) => {
                let uid = pod.metadata.uid.unwrap_or_default();
                let mut st = sched.state.lock();
                st.queue.delete(&uid);
                (st.cache.remove_pod(&uid), false)
            }
            Ok(Event::Init) => {
                listing.clear();
                (false, false)
            }
            Ok(Event::InitApply(pod)) => {
                listing.push(pod);
                (false, false)
            }
            Ok(Event::InitDone) => {
                let pods = std::mem::take(&mut listing);
                let keep: HashSet<String> =
                    pods.iter().filter_map(|p| p.metadata.uid.clone()).collect();
                let mut st = sched.state.lock();
                let mut moved = st.cache.retain_pods(&keep);
                for uid in st.queue.uids() {
                    if !keep.contains(&uid) {
                        st.queue.delete(&uid);
                    }
                }
                let mut woke = false;
                for p in pods {
                    let (m, w) = on_pod(&sched, &mut st, p);
                    moved |= m;
                    woke |= w;
                }
                drop(st);
                if !synced {
                    synced = true;
                    sched.synced.send_modify(|n| *n += 1);
                }
                (moved, woke)
            }
            Err(e) => {
                tracing::warn!(error = %e, "scheduler: watching pods failed");
                (false, false)
            }
        };
        if moved {
            move_parked(&sched);
        } else if woke {
            sched.wake.notify_one();
        }
    }
}

fn move_parked(sched: &Scheduler) {
    sched
        .state
        .lock()
        .queue
        .move_all_to_active_or_backoff(Instant::now());
    sched.wake.notify_one();
}

/// Apply a pod add/update. Returns (resources were freed, a pod was queued).
fn on_pod(sched: &Scheduler, st: &mut State, pod: Pod) -> (bool, bool) {
    let terminal = matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    );
    let deleting = pod.metadata.deletion_timestamp.is_some();
    let responsible = sched.responsible_for(&pod);
    let info = Arc::new(PodInfo::new(Arc::new(pod)));
    if !info.node_name().is_empty() {
        st.queue.delete(&info.uid);
        if terminal {
            // A finished pod no longer holds its requests or ports.
            return (st.cache.remove_pod(&info.uid), false);
        }
        st.cache.add_or_update_pod(info);
        return (false, false);
    }
    if st.cache.is_assumed(&info.uid) {
        // Bound by us; the watch has not caught up with the binding yet.
        return (false, false);
    }
    if terminal || deleting || !responsible {
        st.queue.delete(&info.uid);
        return (false, false);
    }
    st.queue.add_or_update(info, Instant::now());
    (false, true)
}
