//! The endpoints controller (Kubernetes' `pkg/controller/endpoint`): for
//! every Service with a selector, an Endpoints object of the same name whose
//! subsets list the selected pods — ready ones under `addresses`, the rest
//! under `notReadyAddresses` — with the ports the Service's targetPorts
//! resolve to in each pod. Services without a selector keep Endpoints that
//! someone else writes; the Endpoints of a deleted Service are deleted by
//! name (they have no ownerReference).
//!
//! Services, pods and Endpoints are each kept in a reflector; a pod event
//! requeues every Service selecting the pod before or after the change, and
//! kube-runtime's applier runs one reconcile per Service at a time.

pub(crate) mod pods;
mod subsets;
pub(crate) mod trigger;

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures::{stream, Stream, StreamExt};
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::{self, applier, Action};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};

use super::events::{self, EventType, Recorder};
use super::Context;
use trigger::TriggerTimeTracker;

/// Annotation Kubernetes sets when it truncates an Endpoints object; this
/// controller never truncates, so it removes a stale one.
const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";

/// Annotation of the Endpoints objects old leader election used; never
/// deleted as leftovers.
const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";

/// Errors of one sync.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing the Endpoints failed.
    #[error("writing endpoints {namespace}/{name}: {source}")]
    Write {
        /// Namespace of the Service.
        namespace: String,
        /// Name of the Service.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// A cache was dropped, so the controller is stopping.
    #[error("cache stopped: {0}")]
    CacheStopped(#[source] reflector::store::WriterDropped),
}

/// What each reconcile reads.
struct State {
    client: Client,
    pods: Store<Pod>,
    endpoints: Store<Endpoints>,
    tracker: TriggerTimeTracker,
    recorder: Recorder,
}

/// Run the controller until the future is dropped.
pub async fn run(ctx: Arc<Context>) {
    let client = ctx.client.clone();
    let (services, services_writer) = reflector::store::<Service>();
    let pod_informer = ctx.informers.get::<Pod>();
    let pods = pod_informer.store();
    let (endpoints, endpoints_writer) = reflector::store::<Endpoints>();
    let state = Arc::new(State {
        client: client.clone(),
        pods,
        endpoints,
        tracker: TriggerTimeTracker::default(),
        recorder: ctx.recorder("endpoint-controller"),
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
    let endpoints_events = reflector::reflector(
        endpoints_writer,
        watcher(
            Api::<Endpoints>::all(ctx.watch_client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff();

    let queue = stream::select_all([
        service_requests(service_events, state.clone()).boxed(),
        pod_requests(pod_events, services.clone()).boxed(),
        endpoints_requests(endpoints_events).boxed(),
    ]);

    tokio::spawn(delete_leftovers(state.clone(), services.clone()));

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
            tracing::debug!(error = %e, "endpoints reconcile");
        }
    })
    .await;
}

/// Reconcile requests for the applier, which never fail.
pub(crate) type Requests = Result<ObjectRef<Service>, Infallible>;

/// Every Service change queues the Service; a deleted Service's Endpoints
/// go with it.
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
                let state = state.clone();
                tokio::spawn(async move { delete_endpoints(&state, &svc).await });
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

/// A pod change queues every Service that selected the pod before the
/// change or selects it after.
pub(crate) fn pod_requests(
    events: impl Stream<Item = Result<watcher::Event<Pod>, watcher::Error>> + Send + 'static,
    services: Store<Service>,
) -> impl Stream<Item = Requests> + Send {
    // Services that selected each pod at its last event, by pod uid.
    let mut memberships: HashMap<String, HashSet<ObjectRef<Service>>> = HashMap::new();
    events.flat_map(move |event| {
        let mut refs = HashSet::new();
        match event {
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                let now = selecting(&services, &pod);
                let before = memberships
                    .insert(pod.uid().unwrap_or_default(), now.clone())
                    .unwrap_or_default();
                refs.extend(before);
                refs.extend(now);
            }
            Ok(watcher::Event::Delete(pod)) => {
                refs.extend(selecting(&services, &pod));
                if let Some(before) = memberships.remove(&pod.uid().unwrap_or_default()) {
                    refs.extend(before);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "pod watch"),
        }
        stream::iter(refs.into_iter().map(Ok))
    })
}

fn selecting(services: &Store<Service>, pod: &Pod) -> HashSet<ObjectRef<Service>> {
    services
        .state()
        .iter()
        .filter(|svc| pods::selects(svc, pod))
        .map(|svc| ObjectRef::from_obj(svc.as_ref()))
        .collect()
}

/// Deleted Endpoints are written again by syncing their Service.
fn endpoints_requests(
    events: impl Stream<Item = Result<watcher::Event<Endpoints>, watcher::Error>> + Send + 'static,
) -> impl Stream<Item = Requests> + Send {
    events.flat_map(|event| {
        let refs = match event {
            Ok(watcher::Event::Delete(ep)) => {
                vec![ObjectRef::new(&ep.name_any()).within(&ep.namespace().unwrap_or_default())]
            }
            _ => Vec::new(),
        };
        stream::iter(refs.into_iter().map(Ok))
    })
}

/// Kubernetes' `checkLeftoverEndpoints`: Endpoints whose Service went away
/// while the controller was not running are deleted once at start.
async fn delete_leftovers(state: Arc<State>, services: Store<Service>) {
    if services.wait_until_ready().await.is_err()
        || state.endpoints.wait_until_ready().await.is_err()
    {
        return;
    }
    for ep in state.endpoints.state() {
        if ep.annotations().contains_key(LEADER_ANNOTATION) {
            continue;
        }
        let key =
            ObjectRef::<Service>::new(&ep.name_any()).within(&ep.namespace().unwrap_or_default());
        if services.get(&key).is_none() {
            let api: Api<Endpoints> =
                Api::namespaced(state.client.clone(), &ep.namespace().unwrap_or_default());
            if let Err(e) = api.delete(&ep.name_any(), &DeleteParams::default()).await {
                if !is_not_found(&e) {
                    tracing::warn!(error = %e, endpoints = %ep.name_any(), "deleting leftover endpoints");
                }
            }
        }
    }
}

async fn delete_endpoints(state: &State, svc: &Service) {
    let namespace = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    state.tracker.forget(&namespace, &name);
    let api: Api<Endpoints> = Api::namespaced(state.client.clone(), &namespace);
    if let Err(e) = api.delete(&name, &DeleteParams::default()).await {
        if !is_not_found(&e) {
            tracing::warn!(error = %e, %namespace, %name, "deleting endpoints");
        }
    }
}

pub(crate) fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Kubernetes' `syncService`.
async fn reconcile(svc: Arc<Service>, state: Arc<State>) -> Result<Action, Error> {
    state
        .pods
        .wait_until_ready()
        .await
        .map_err(Error::CacheStopped)?;
    state
        .endpoints
        .wait_until_ready()
        .await
        .map_err(Error::CacheStopped)?;
    if pods::managed_selector(&svc).is_none() {
        return Ok(Action::await_change());
    }
    let namespace = svc.namespace().unwrap_or_default();
    let name = svc.name_any();

    let selected: Vec<Arc<Pod>> = state
        .pods
        .state()
        .into_iter()
        .filter(|p| pods::selects(&svc, p))
        .collect();
    let selected: Vec<&Pod> = selected.iter().map(Arc::as_ref).collect();
    let trigger_time = state.tracker.compute(&svc, &selected);
    let subsets = subsets::desired(&svc, &selected);

    let current = state
        .endpoints
        .get(&ObjectRef::new(&name).within(&namespace));
    let service_labels = svc.metadata.labels.clone().unwrap_or_default();
    match current.as_deref() {
        Some(current) => {
            let mut compare = current.metadata.labels.clone().unwrap_or_default();
            compare.remove(pods::HEADLESS_LABEL);
            let over_capacity = current.annotations().contains_key(OVER_CAPACITY);
            if current.subsets.clone().unwrap_or_default() == subsets
                && compare == service_labels
                && !over_capacity
            {
                return Ok(Action::await_change());
            }
        }
        // A Service on its way out gets no new Endpoints.
        None if svc.metadata.deletion_timestamp.is_some() => return Ok(Action::await_change()),
        None => {}
    }

    let mut new = current.as_deref().cloned().unwrap_or_else(|| Endpoints {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            ..Default::default()
        },
        ..Default::default()
    });
    new.subsets = (!subsets.is_empty()).then_some(subsets);
    let mut labels = service_labels;
    if pods::is_headless(&svc) {
        labels.insert(pods::HEADLESS_LABEL.into(), String::new());
    } else {
        labels.remove(pods::HEADLESS_LABEL);
    }
    new.metadata.labels = Some(labels);
    let annotations = new
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
    annotations.remove(OVER_CAPACITY);

    let api: Api<Endpoints> = Api::namespaced(state.client.clone(), &namespace);
    let creating = current.is_none();
    let result = if creating {
        api.create(&PostParams::default(), &new).await.map(drop)
    } else {
        api.replace(&name, &PostParams::default(), &new)
            .await
            .map(drop)
    };
    match result {
        Ok(()) => Ok(Action::await_change()),
        // The namespace is going away; so are the Service and its Endpoints.
        Err(kube::Error::Api(s)) if creating && s.code == 403 && s.message.contains("terminat") => {
            Ok(Action::await_change())
        }
        Err(source) => {
            let (reason, verb) = if creating {
                ("FailedToCreateEndpoint", "create")
            } else {
                ("FailedToUpdateEndpoint", "update")
            };
            // Conflicts come from a cache that has not caught up yet: no
            // event, the retry settles it.
            if !matches!(&source, kube::Error::Api(s) if s.code == 409) {
                let reference = events::reference("v1", "Service", &svc.metadata);
                state
                    .recorder
                    .record(
                        &reference,
                        EventType::Warning,
                        reason,
                        &format!(
                            "Failed to {verb} endpoint for service {namespace}/{name}: {source}"
                        ),
                    )
                    .await;
            }
            Err(Error::Write {
                namespace,
                name,
                source,
            })
        }
    }
}

fn error_policy(_svc: Arc<Service>, error: &Error, _state: Arc<State>) -> Action {
    match error {
        Error::Write {
            source: kube::Error::Api(s),
            ..
        } if s.code == 409 => Action::requeue(Duration::from_millis(100)),
        _ => Action::requeue(Duration::from_secs(1)),
    }
}
