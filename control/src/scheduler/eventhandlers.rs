//! What feeds the scheduler, from the process's shared informers (one pod
//! and one node watch for the scheduler and every controller): nodes into
//! the cache, bound pods into the cache (their requests and host ports),
//! unscheduled pods of this scheduler into the queue. A change that may let
//! a parked pod fit (a node added or relabelled, a bound pod gone) retries
//! the parked pods. Objects deleted while a watch was down arrive as
//! deletions after the relist.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::watcher::Event;

use crate::controllers::informers::Informer;

use super::types::PodInfo;
use super::{Scheduler, State};

/// Follow nodes (from the process's shared node informer) until the future
/// is dropped.
pub async fn watch_nodes(sched: Arc<Scheduler>, informer: Arc<Informer<Node>>) {
    let mut events = informer.subscribe_with_lists().boxed();
    let mut synced = false;
    while let Some(event) = events.next().await {
        let moved = match event {
            Event::Apply(node) | Event::InitApply(node) => {
                sched.state.lock().cache.add_or_update_node(node)
            }
            Event::Delete(node) => {
                let name = node.metadata.name.unwrap_or_default();
                sched.state.lock().cache.remove_node(&name);
                false
            }
            Event::Init => false,
            // Every listed node is in: scheduling may start.
            Event::InitDone => {
                if !synced {
                    synced = true;
                    sched.synced.send_modify(|n| *n += 1);
                }
                false
            }
        };
        if moved {
            move_parked(&sched);
        }
    }
}

/// Follow pods (from the process's shared pod informer) until the future
/// is dropped.
pub async fn watch_pods(sched: Arc<Scheduler>, informer: Arc<Informer<Pod>>) {
    let mut events = informer.subscribe_with_lists().boxed();
    let mut synced = false;
    while let Some(event) = events.next().await {
        let (moved, woke) = match event {
            Event::Apply(pod) | Event::InitApply(pod) => {
                let mut st = sched.state.lock();
                on_pod(&sched, &mut st, pod)
            }
            Event::Delete(pod) => {
                let uid = pod.metadata.uid.unwrap_or_default();
                let mut st = sched.state.lock();
                st.queue.delete(&uid);
                (st.cache.remove_pod(&uid), false)
            }
            Event::Init => (false, false),
            Event::InitDone => {
                if !synced {
                    synced = true;
                    sched.synced.send_modify(|n| *n += 1);
                }
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
