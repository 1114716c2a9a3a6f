//! The EndpointSlice controller (Kubernetes' `pkg/controller/endpointslice`):
//! for every Service with a selector, EndpointSlices labelled
//! `kubernetes.io/service-name` and managed by
//! `endpointslice-controller.k8s.io`, owned by the Service (so the garbage
//! collector deletes them with it), holding one endpoint per selected pod
//! with its ready / serving / terminating conditions, at most 100 per slice.
//!
//! Endpoints are grouped by the ports they offer: a pod that has none of a
//! named targetPort still gets an endpoint, in a slice whose port list
//! leaves that port out (with no ports at all if it offers none), as
//! Kubernetes' `getEndpointPorts` does.
//!
//! Pod watch events requeue the Services selecting the pod at once, so a
//! readiness change reaches the slices within one watch round trip.

mod reconciler;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{stream, FutureExt, Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::{self, applier, Action};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use parking_lot::Mutex;

use super::endpoints::trigger::{self, TriggerTimeTracker};
use super::endpoints::{self, pods, Requests};
use super::events::{self, EventType, Recorder};
use super::Context;
use reconciler::{CONTROLLER_NAME, MANAGED_BY_LABEL, SERVICE_NAME_LABEL};

/// Kubernetes' default `--max-endpoints-per-slice`.
const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// The node label whose value becomes an endpoint's zone.
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Errors of one sync.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing a slice failed.
    #[error("writing endpointslices of {namespace}/{name}: {source}")]
    Write {
        /// Namespace of the Service.
        namespace: String,
        /// Name of the Service.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The slice cache has not yet seen this controller's last writes.
    #[error("endpointslice cache of {0} is stale")]
    Stale(String),
    /// A pod names a node that does not exist; it was left out.
    #[error("{0}")]
    NodeNotFound(String),
    /// A cache was dropped, so the controller is stopping.
    #[error("cache stopped: {0}")]
    CacheStopped(#[source] reflector::store::WriterDropped),
}

/// Slice name → resourceVersion written, or `None` for a deleted slice.
type WrittenSlices = HashMap<String, Option<String>>;

/// Kubernetes' `EndpointSliceTracker`: the slice writes of this controller
/// that the cache has yet to show, so a sync never plans from a cache
/// missing its own last writes (which would create duplicate slices).
#[derive(Default)]
struct SliceTracker {
    /// By Service: slice name → resourceVersion written, or `None` for a
    /// deleted slice.
    pending: Mutex<HashMap<(String, String), WrittenSlices>>,
}

impl SliceTracker {
    fn record(&self, svc: &(String, String), slice: &str, rv: Option<String>) {
        self.pending
            .lock()
            .entry(svc.clone())
            .or_default()
            .insert(slice.to_string(), rv);
    }

    /// Whether the cache shows every tracked write; forgets those it does.
    fn caught_up(&self, svc: &(String, String), cached: &[EndpointSlice]) -> bool {
        let mut pending = self.pending.lock();
        let Some(writes) = pending.get_mut(svc) else {
            return true;
        };
        writes.retain(|name, rv| {
            let seen = cached
                .iter()
                .find(|s| s.metadata.name.as_deref() == Some(name));
            match (rv, seen) {
                (None, None) => false,
                (None, Some(_)) => true,
                (Some(_), None) => true,
                (Some(want), Some(s)) => !rv_at_least(s.metadata.resource_version.as_deref(), want),
            }
        });
        let done = writes.is_empty();
        if done {
            pending.remove(svc);
        }
        done
    }

    /// Kubernetes' `HandleDeletion`: a slice seen deleted is no longer
    /// awaited, whoever deleted it. Without this a slice deleted before the
    /// cache showed this controller's write to it would be awaited forever,
    /// and every sync of its Service would fail as stale.
    fn deleted(&self, svc: &(String, String), slice: &str) {
        let mut pending = self.pending.lock();
        if let Some(writes) = pending.get_mut(svc) {
            writes.remove(slice);
            if writes.is_empty() {
                pending.remove(svc);
            }
        }
    }

    fn forget(&self, svc: &(String, String)) {
        self.pending.lock().remove(svc);
    }
}

fn rv_at_least(have: Option<&str>, want: &str) -> bool {
    match (
        have.and_then(|h| h.parse::<u64>().ok()),
        want.parse::<u64>().ok(),
    ) {
        (Some(h), Some(w)) => h >= w,
        _ => have == Some(want),
    }
}

/// What each reconcile reads.
struct State {
    client: Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
    slices: Store<EndpointSlice>,
    triggers: TriggerTimeTracker,
    tracker: SliceTracker,
    recorder: Recorder,
}

/// Run the controller until the future is dropped.
pub async fn run(ctx: Arc<Context>) {
    let client = ctx.client.clone();
    let (services, services_writer) = reflector::store::<Service>();
    let pod_informer = ctx.informers.get::<Pod>();
    let pods = pod_informer.store();
    let node_informer = ctx.informers.get::<Node>();
    let nodes = node_informer.store();
    let (slices, slices_writer) = reflector::store::<EndpointSlice>();
    let state = Arc::new(State {
        client: client.clone(),
        pods,
        nodes,
        slices,
        triggers: TriggerTimeTracker::default(),
        tracker: SliceTracker::default(),
        recorder: ctx.recorder("endpointslice-controller"),
    });

    let service_events = reflector::reflector(
        services_writer,
        watcher(
            Api::<Service>::all(ctx.watch_client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff();
    let pod_events = pod_informer.subscribe_events();
    let node_events = node_informer.subscribe_events();
    let managed =
        watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={CONTROLLER_NAME}"));
    let slice_events = reflector::reflector(
        slices_writer,
        watcher(Api::<EndpointSlice>::all(ctx.watch_client.clone()), managed),
    )
    .default_backoff();

    let queue = stream::select_all([
        service_requests(service_events, state.clone()).boxed(),
        endpoints::pod_requests(pod_events, services.clone()).boxed(),
        node_requests(node_events, services.clone()).boxed(),
        slice_requests(slice_events, state.clone()).boxed(),
    ]);

    applier(
        |svc, state| Box::pin(reconcile(svc, state)),
        error_policy,
        state,
        services,
        queue,
        controller::Config::default(),
    )
    .for_each(|res| async move {
        if let Err(e) = res {
            tracing::debug!(error = %e, "endpointslice reconcile");
        }
    })
    .await;
}

/// Every Service change queues the Service. A deleted Service's slices are
/// the garbage collector's: they carry its ownerReference.
fn service_requests(
    events: impl Stream<Item = Result<watcher::Event<Service>, watcher::Error>> + Send + 'static,
    state: Arc<State>,
) -> impl Stream<Item = Requests> + Send {
    events.flat_map(move |event| {
        let refs = match event {
            Ok(watcher::Event::Apply(svc) | watcher::Event::InitApply(svc)) => {
                vec![ObjectRef::from_obj(&svc)]
            }
            Ok(watcher::Event::Delete(svc)) => {
                let key = (svc.namespace().unwrap_or_default(), svc.name_any());
                state.triggers.forget(&key.0, &key.1);
                state.tracker.forget(&key);
                Vec::new()
            }
            Ok(_) => Vec::new(),
            Err(e) => {
                tracing::debug!(error = %e, "service watch");
                Vec::new()
            }
        };
        stream::iter(refs.into_iter().map(Ok))
    })
}

/// A node appearing (pods naming it could not be placed before) or
/// changing zone requeues the Services with pods on it.
fn node_requests(
    events: impl Stream<Item = Result<watcher::Event<Node>, watcher::Error>> + Send + 'static,
    services: Store<Service>,
) -> impl Stream<Item = Requests> + Send {
    let mut zones: HashMap<String, Option<String>> = HashMap::new();
    events.flat_map(move |event| {
        let mut refs = Vec::new();
        match event {
            Ok(watcher::Event::Apply(node) | watcher::Event::InitApply(node)) => {
                let zone = node.labels().get(ZONE_LABEL).cloned();
                let before = zones.insert(node.name_any(), zone.clone());
                // The initial list is covered by the initial sync of every Service.
                if before != Some(zone) && services.wait_until_ready().now_or_never().is_some() {
                    refs = services
                        .state()
                        .iter()
                        .filter(|s| pods::managed_selector(s).is_some())
                        .map(|s| ObjectRef::from_obj(s.as_ref()))
                        .collect();
                }
            }
            Ok(watcher::Event::Delete(node)) => {
                zones.remove(&node.name_any());
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "node watch"),
        }
        stream::iter(refs.into_iter().map(Ok))
    })
}

/// A managed slice changed or deleted by someone requeues its Service; a
/// deletion also ends the wait for any write of this controller to it.
fn slice_requests(
    events: impl Stream<Item = Result<watcher::Event<EndpointSlice>, watcher::Error>> + Send + 'static,
    state: Arc<State>,
) -> impl Stream<Item = Requests> + Send {
    events.flat_map(move |event| {
        let refs = match event {
            Ok(watcher::Event::Apply(s)) => service_of(&s).into_iter().collect(),
            Ok(watcher::Event::Delete(s)) => {
                let svc = service_of(&s);
                if let Some(svc) = &svc {
                    let key = (svc.namespace.clone().unwrap_or_default(), svc.name.clone());
                    state.tracker.deleted(&key, &s.name_any());
                }
                svc.into_iter().collect()
            }
            _ => Vec::new(),
        };
        stream::iter(refs.into_iter().map(Ok))
    })
}

/// The Service a slice's `kubernetes.io/service-name` label names.
fn service_of(slice: &EndpointSlice) -> Option<ObjectRef<Service>> {
    slice
        .labels()
        .get(SERVICE_NAME_LABEL)
        .map(|svc| ObjectRef::new(svc).within(&slice.namespace().unwrap_or_default()))
}

/// Kubernetes' `podToEndpoint` plus `getEndpointPorts`.
fn pod_endpoint(
    svc: &Service,
    pod: &Pod,
    address: String,
    zone: Option<String>,
) -> (Vec<EndpointPort>, Endpoint) {
    let serving = pods::is_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    // Never ready while terminating, unless not-ready addresses are published.
    let ready = pods::publish_not_ready(svc) || (serving && !terminating);
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|p| {
            pods::find_port(pod, p).map(|number| EndpointPort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(number),
                protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: p.app_protocol.clone(),
            })
        })
        .collect();
    let endpoint = Endpoint {
        addresses: vec![address],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: pods::hostname_for(pod, svc),
        node_name: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        }),
        zone,
        ..Default::default()
    };
    (ports, endpoint)
}

/// The address types of a Service's slices: one per IP family.
fn address_types(svc: &Service) -> Vec<&'static str> {
    let families = svc.spec.as_ref().and_then(|s| s.ip_families.as_ref());
    let mut types: Vec<&'static str> = families
        .into_iter()
        .flatten()
        .filter_map(|f| match f.as_str() {
            "IPv4" => Some("IPv4"),
            "IPv6" => Some("IPv6"),
            _ => None,
        })
        .collect();
    if types.is_empty() {
        types.push(pods::service_family(svc));
    }
    types
}

/// Kubernetes' `syncService` + `reconciler.Reconcile`.
async fn reconcile(svc: Arc<Service>, state: Arc<State>) -> Result<Action, Error> {
    for ready in [
        state.pods.wait_until_ready().await,
        state.nodes.wait_until_ready().await,
        state.slices.wait_until_ready().await,
    ] {
        ready.map_err(Error::CacheStopped)?;
    }
    if pods::managed_selector(&svc).is_none() {
        return Ok(Action::await_change());
    }
    let namespace = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let key = (namespace.clone(), name.clone());

    let existing: Vec<EndpointSlice> = state
        .slices
        .state()
        .iter()
        .filter(|s| {
            s.namespace().as_deref() == Some(namespace.as_str())
                && s.labels().get(SERVICE_NAME_LABEL) == Some(&name)
        })
        .map(|s| (**s).clone())
        .collect();
    if !state.tracker.caught_up(&key, &existing) {
        return Err(Error::Stale(format!("{namespace}/{name}")));
    }

    let selected: Vec<Arc<Pod>> = state
        .pods
        .state()
        .into_iter()
        .filter(|p| pods::selects(&svc, p))
        .collect();
    let selected: Vec<&Pod> = selected.iter().map(Arc::as_ref).collect();
    let trigger_time = state.triggers.compute(&svc, &selected);

    let types = address_types(&svc);
    let uid = svc.uid();
    let mut plan = reconciler::Plan::default();
    let mut missing_nodes = Vec::new();
    // Slices of another Service by that name, or of a family it no longer has.
    let (mine, stray): (Vec<EndpointSlice>, Vec<EndpointSlice>) =
        existing.into_iter().partition(|s| {
            let owned = s
                .owner_references()
                .iter()
                .any(|o| o.kind == "Service" && Some(&o.uid) == uid.as_ref());
            owned && types.contains(&s.address_type.as_str())
        });
    plan.delete.extend(stray);
    for address_type in &types {
        let mut desired = Vec::new();
        for pod in &selected {
            if !pods::should_be_in_endpoints(pod, true) {
                continue;
            }
            let Some(address) = pods::pod_ip_for_family(pod, address_type) else {
                continue;
            };
            let node_name = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            let node = state.nodes.get(&ObjectRef::new(&node_name));
            if node.is_none() && !pods::publish_not_ready(&svc) {
                missing_nodes.push(format!(
                    "skipping Pod {} for Service {namespace}/{name}: Node {node_name} Not Found",
                    pod.name_any()
                ));
                continue;
            }
            let zone = node.and_then(|n| n.labels().get(ZONE_LABEL).cloned());
            desired.push(pod_endpoint(&svc, pod, address, zone));
        }
        let existing_of_type: Vec<EndpointSlice> = mine
            .iter()
            .filter(|s| s.address_type == *address_type)
            .cloned()
            .collect();
        let p = reconciler::plan(
            &svc,
            address_type,
            desired,
            &existing_of_type,
            MAX_ENDPOINTS_PER_SLICE,
        );
        plan.create.extend(p.create);
        plan.update.extend(p.update);
        plan.delete.extend(p.delete);
    }

    if let Err(source) = write(&state, &key, plan, trigger_time).await {
        let reference = events::reference("v1", "Service", &svc.metadata);
        if !matches!(&source, kube::Error::Api(s) if s.code == 409) {
            state
                .recorder
                .record(
                    &reference,
                    EventType::Warning,
                    "FailedToUpdateEndpointSlices",
                    &format!(
                        "Error updating Endpoint Slices for Service {namespace}/{name}: {source}"
                    ),
                )
                .await;
        }
        return Err(Error::Write {
            namespace,
            name,
            source,
        });
    }
    if !missing_nodes.is_empty() {
        return Err(Error::NodeNotFound(missing_nodes.join("; ")));
    }
    Ok(Action::await_change())
}

/// Apply a plan: deletes, then updates, then creates, as Kubernetes'
/// `finalize` orders them (so a slice's endpoints are never listed twice).
async fn write(
    state: &State,
    key: &(String, String),
    plan: reconciler::Plan,
    trigger_time: Option<jiff::Timestamp>,
) -> Result<(), kube::Error> {
    if plan.is_empty() {
        return Ok(());
    }
    let api: Api<EndpointSlice> = Api::namespaced(state.client.clone(), &key.0);
    let stamp = |slice: &mut EndpointSlice| {
        let annotations = slice
            .metadata
            .annotations
            .get_or_insert_with(Default::default);
        match trigger_time {
            Some(t) => {
                annotations.insert(pods::LAST_CHANGE_TRIGGER_TIME.into(), trigger::format(t));
            }
            None => {
                annotations.remove(pods::LAST_CHANGE_TRIGGER_TIME);
            }
        }
    };
    let mut seen = HashSet::new();
    for slice in plan.delete {
        let name = slice.name_any();
        if !seen.insert(name.clone()) {
            continue;
        }
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => state.tracker.record(key, &name, None),
            Err(e) if endpoints::is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
    }
    for mut slice in plan.update {
        stamp(&mut slice);
        let written = api
            .replace(&slice.name_any(), &PostParams::default(), &slice)
            .await?;
        state.tracker.record(
            key,
            &written.name_any(),
            written.metadata.resource_version.clone(),
        );
    }
    for mut slice in plan.create {
        stamp(&mut slice);
        match api.create(&PostParams::default(), &slice).await {
            Ok(written) => state.tracker.record(
                key,
                &written.name_any(),
                written.metadata.resource_version.clone(),
            ),
            // The namespace is going away, and the Service with it.
            Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("terminat") => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn error_policy(_svc: Arc<Service>, error: &Error, _state: Arc<State>) -> Action {
    match error {
        Error::Stale(_) => Action::requeue(Duration::from_millis(100)),
        Error::Write {
            source: kube::Error::Api(s),
            ..
        } if s.code == 409 => Action::requeue(Duration::from_millis(100)),
        Error::NodeNotFound(_) => Action::requeue(Duration::from_secs(5)),
        _ => Action::requeue(Duration::from_secs(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec, ServicePort, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn slice(name: &str, rv: &str) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some(name.into()),
                resource_version: Some(rv.into()),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: Vec::new(),
            ports: None,
        }
    }

    fn key() -> (String, String) {
        ("default".into(), "web".into())
    }

    #[test]
    fn tracker_waits_for_the_cache_to_show_writes() {
        let tracker = SliceTracker::default();
        tracker.record(&key(), "web-a", Some("7".into()));
        assert!(!tracker.caught_up(&key(), &[]));
        assert!(!tracker.caught_up(&key(), &[slice("web-a", "6")]));
        assert!(tracker.caught_up(&key(), &[slice("web-a", "7")]));
        tracker.record(&key(), "web-a", None);
        assert!(!tracker.caught_up(&key(), &[slice("web-a", "7")]));
        assert!(tracker.caught_up(&key(), &[]));
    }

    #[test]
    fn tracker_stops_waiting_for_a_slice_seen_deleted() {
        let tracker = SliceTracker::default();
        // Written, then deleted by someone else before the cache showed the
        // write: the cache will never show it.
        tracker.record(&key(), "web-a", Some("7".into()));
        tracker.deleted(&key(), "web-a");
        assert!(tracker.caught_up(&key(), &[]));
    }

    fn pod(port_name: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(format!("pod-{port_name}")),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "web".into(),
                    ports: Some(vec![ContainerPort {
                        name: Some(port_name.into()),
                        container_port: 8080,
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn pod_without_the_named_port_gets_an_endpoint_without_ports() {
        let svc = Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    target_port: Some(IntOrString::String("web-port".into())),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (ports, _) = pod_endpoint(&svc, &pod("web-port"), "10.244.0.1".into(), None);
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].port, Some(8080));
        let (ports, endpoint) = pod_endpoint(&svc, &pod("other"), "10.244.0.2".into(), None);
        assert!(ports.is_empty());
        assert_eq!(endpoint.addresses, vec!["10.244.0.2".to_string()]);
    }
}
