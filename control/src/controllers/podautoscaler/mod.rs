//! The HorizontalPodAutoscaler controller (kube-controller-manager's
//! `horizontal-pod-autoscaler`): every 15 s each HPA reads its target's
//! `scale` subresource, the pods its selector picks and their PodMetrics
//! (`metrics.k8s.io`), proposes a count per resource metric
//! ([`replicas::propose`]), takes the highest, applies `behavior`
//! ([`replicas::with_behavior`]), rescales, and writes its status with the
//! conditions and events `kubectl describe hpa` shows.

pub mod replicas;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::autoscaling::v2::{
    HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerStatus,
    MetricStatus, MetricValueStatus, ResourceMetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::runtime::{watcher, Controller};
use kube::Client;
use parking_lot::Mutex;

use kedge_config::events::{self, EventType, Recorder};
use kedge_config::selector::LabelSelector;

use super::replicaset::backoff::Backoff;
use super::replicaset::cache::key_of;
use super::Context;
use replicas::{AtTime, Limited, PodSample, Target};

/// How often each HPA is looked at (kube-controller-manager's
/// `--horizontal-pod-autoscaler-sync-period`).
pub const SYNC_PERIOD: Duration = Duration::from_secs(15);

/// Errors of one sync.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("API: {0}")]
    Api(#[from] kube::Error),
}

/// What an HPA's syncs remember between them.
#[derive(Default)]
struct History {
    last_sync: Option<(i64, i64)>,
    recommendations: Vec<AtTime>,
    scale_events: Vec<AtTime>,
}

struct State {
    client: Client,
    recorder: Recorder,
    pods: Store<Pod>,
    history: Mutex<HashMap<String, History>>,
    backoff: Backoff,
}

/// Run the controller until the future is dropped.
pub async fn run(ctx: Arc<Context>) {
    let pods = ctx.informers.get::<Pod>();
    let state = Arc::new(State {
        client: ctx.client.clone(),
        recorder: ctx.recorder("horizontal-pod-autoscaler"),
        pods: pods.store(),
        history: Mutex::new(HashMap::new()),
        backoff: Backoff::default(),
    });
    Controller::new(
        Api::<HorizontalPodAutoscaler>::all(ctx.watch_client.clone()),
        watcher::Config::default(),
    )
    .run(reconcile, error_policy, state)
    .for_each(|_| async {})
    .await;
}

fn now_seconds() -> i64 {
    jiff::Timestamp::now().as_second()
}

async fn reconcile(hpa: Arc<HorizontalPodAutoscaler>, state: Arc<State>) -> Result<Action, Error> {
    let key = key_of(&hpa.metadata);
    let generation = hpa.metadata.generation.unwrap_or(0);
    let now = now_seconds();
    // Its own status writes wake it too: between periods, only a changed
    // spec is looked at early.
    if let Some((at, seen)) = state
        .history
        .lock()
        .entry(key.clone())
        .or_default()
        .last_sync
    {
        let due = at + SYNC_PERIOD.as_secs() as i64;
        if now < due && seen == generation {
            return Ok(Action::requeue(Duration::from_secs((due - now) as u64)));
        }
    }
    state
        .history
        .lock()
        .entry(key.clone())
        .or_default()
        .last_sync = Some((now, generation));
    sync(&hpa, &state, &key).await?;
    state.backoff.forget(&key);
    Ok(Action::requeue(SYNC_PERIOD))
}

fn error_policy(hpa: Arc<HorizontalPodAutoscaler>, err: &Error, state: Arc<State>) -> Action {
    state
        .backoff
        .failed("horizontal-pod-autoscaler", &key_of(&hpa.metadata), err)
}

/// One condition, as kube-controller-manager words them.
fn condition(
    kind: &str,
    status: bool,
    reason: &str,
    message: String,
) -> HorizontalPodAutoscalerCondition {
    HorizontalPodAutoscalerCondition {
        type_: kind.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message),
        last_transition_time: Some(Time(jiff::Timestamp::now())),
    }
}

/// The resource of `kind` in `api_version`, through discovery.
async fn target_resource(
    client: &Client,
    api_version: &str,
    kind: &str,
) -> Result<ApiResource, String> {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let gvk = GroupVersionKind::gvk(group, version, kind);
    kube::discovery::pinned_kind(client, &gvk)
        .await
        .map(|(ar, _)| ar)
        .map_err(|e| {
            format!("the server could not find the requested resource {kind}.{group}: {e}")
        })
}

async fn sync(hpa: &HorizontalPodAutoscaler, state: &State, key: &str) -> Result<(), Error> {
    let Some(spec) = &hpa.spec else {
        return Ok(());
    };
    let namespace = hpa.metadata.namespace.clone().unwrap_or_default();
    let name = hpa.metadata.name.clone().unwrap_or_default();
    let reference = events::reference("autoscaling/v2", "HorizontalPodAutoscaler", &hpa.metadata);
    let target = &spec.scale_target_ref;
    let target_text = format!("{}/{}", target.kind, target.name);
    let min = spec.min_replicas.unwrap_or(1);
    let max = spec.max_replicas;
    let mut conditions = Vec::new();
    let previous = hpa.status.clone().unwrap_or_default();

    // The target's scale.
    let scale = async {
        let ar = target_resource(
            &state.client,
            target.api_version.as_deref().unwrap_or(""),
            &target.kind,
        )
        .await?;
        let api: Api<DynamicObject> = Api::namespaced_with(state.client.clone(), &namespace, &ar);
        let scale = api
            .get_scale(&target.name)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((api, scale))
    }
    .await;
    let (api, scale) = match scale {
        Ok(found) => found,
        Err(e) => {
            let message =
                format!("the HPA controller was unable to get the target's current scale: {e}");
            state
                .recorder
                .record(&reference, EventType::Warning, "FailedGetScale", &e)
                .await;
            conditions.push(condition("AbleToScale", false, "FailedGetScale", message));
            let status = HorizontalPodAutoscalerStatus {
                conditions: Some(conditions),
                ..previous.clone()
            };
            return write_status(state, hpa, &previous, status).await;
        }
    };
    let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let selector = scale
        .status
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    conditions.push(condition(
        "AbleToScale",
        true,
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale".into(),
    ));

    let now = now_seconds();
    let mut current_metrics = previous.current_metrics.clone();
    let (desired, reason, limited) = if current == 0 && min != 0 {
        conditions.push(condition(
            "ScalingActive",
            false,
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero".into(),
        ));
        (0, String::new(), Limited::No)
    } else if current > max {
        (
            max,
            "Current number of replicas above Spec.MaxReplicas".to_string(),
            Limited::TooMany,
        )
    } else if current < min {
        (
            min,
            "Current number of replicas below Spec.MinReplicas".to_string(),
            Limited::TooFew,
        )
    } else {
        let mut proposals: Vec<(i32, String)> = Vec::new();
        let mut statuses = Vec::new();
        let mut failure = None;
        for metric in spec.metrics.iter().flatten() {
            match measure(state, &namespace, &selector, metric, current).await {
                Ok((replicas, status, label)) => {
                    proposals.push((replicas, label));
                    statuses.push(status);
                }
                Err(e) => failure = Some(e),
            }
        }
        if let Some((reason, e)) = &failure {
            state
                .recorder
                .record(&reference, EventType::Warning, reason, e)
                .await;
            state
                .recorder
                .record(
                    &reference,
                    EventType::Warning,
                    "FailedComputeMetricsReplicas",
                    &format!(
                        "invalid metrics ({} invalid out of {}), first error is: {e}",
                        1,
                        spec.metrics.as_ref().map_or(0, Vec::len)
                    ),
                )
                .await;
        }
        if proposals.is_empty() {
            let (reason, e) = failure.unwrap_or_else(|| {
                (
                    "InvalidMetricSourceType".into(),
                    "no metrics to scale on".into(),
                )
            });
            conditions.push(condition(
                "ScalingActive",
                false,
                &reason,
                format!("the HPA was unable to compute the replica count: {e}"),
            ));
            let status = HorizontalPodAutoscalerStatus {
                current_replicas: Some(current),
                desired_replicas: previous.desired_replicas,
                conditions: Some(conditions),
                observed_generation: hpa.metadata.generation,
                ..previous.clone()
            };
            return write_status(state, hpa, &previous, status).await;
        }
        current_metrics = Some(statuses);
        let (proposed, label) = proposals
            .iter()
            .max_by_key(|(r, _)| *r)
            .cloned()
            .unwrap_or((current, String::new()));
        conditions.push(condition(
            "ScalingActive",
            true,
            "ValidMetricFound",
            format!("the HPA was able to successfully calculate a replica count from {label}"),
        ));
        let reason = if proposed > current {
            format!("{label} above target")
        } else {
            "All metrics below target".to_string()
        };
        let (up, down) = replicas::Rules::both(spec.behavior.as_ref());
        let mut history = state.history.lock();
        let h = history.entry(key.to_string()).or_default();
        h.scale_events.retain(|e| e.at > now - 1800);
        let (desired, limited, held) = replicas::with_behavior(
            current,
            proposed,
            min,
            max,
            &up,
            &down,
            &mut h.recommendations,
            &h.scale_events,
            now,
        );
        if held && desired == current {
            conditions[0] = condition(
                "AbleToScale",
                true,
                "ScaleDownStabilized",
                "recent recommendations were higher than current one, applying the highest recent recommendation".into(),
            );
        }
        (desired, reason, limited)
    };

    let mut last_scale_time = previous.last_scale_time.clone();
    if desired != current {
        let mut scale = scale.clone();
        if let Some(s) = scale.spec.as_mut() {
            s.replicas = Some(desired);
        }
        match api
            .replace_scale(&target.name, &PostParams::default(), &scale)
            .await
        {
            Ok(_) => {
                state
                    .recorder
                    .record(
                        &reference,
                        EventType::Normal,
                        "SuccessfulRescale",
                        &format!("New size: {desired}; reason: {reason}"),
                    )
                    .await;
                conditions[0] = condition(
                    "AbleToScale",
                    true,
                    "SucceededRescale",
                    format!("the HPA controller was able to update the target scale to {desired}"),
                );
                last_scale_time = Some(Time(jiff::Timestamp::now()));
                state
                    .history
                    .lock()
                    .entry(key.to_string())
                    .or_default()
                    .scale_events
                    .push(AtTime {
                        replicas: desired - current,
                        at: now,
                    });
                tracing::info!(hpa = %key, target = %target_text, from = current, to = desired, %reason, "rescaled");
            }
            Err(e) => {
                let message =
                    format!("the HPA controller was unable to update the target scale: {e}");
                state
                    .recorder
                    .record(
                        &reference,
                        EventType::Warning,
                        "FailedRescale",
                        &format!("New size: {desired}; reason: {reason}; error: {e}"),
                    )
                    .await;
                conditions[0] = condition("AbleToScale", false, "FailedUpdateScale", message);
            }
        }
    } else if conditions[0].reason.as_deref() == Some("SucceededGetScale") {
        conditions[0] = condition(
            "AbleToScale",
            true,
            "ReadyForNewScale",
            "recommended size matches current size".into(),
        );
    }
    let limited_condition = match limited {
        Limited::No => condition(
            "ScalingLimited",
            false,
            "DesiredWithinRange",
            "the desired count is within the acceptable range".into(),
        ),
        Limited::TooFew => condition(
            "ScalingLimited",
            true,
            "TooFewReplicas",
            "the desired replica count is less than the minimum replica count".into(),
        ),
        Limited::TooMany => condition(
            "ScalingLimited",
            true,
            "TooManyReplicas",
            "the desired replica count is more than the maximum replica count".into(),
        ),
        Limited::ScaleUpLimit => condition(
            "ScalingLimited",
            true,
            "ScaleUpLimit",
            "the desired replica count is increasing faster than the maximum scale rate".into(),
        ),
        Limited::ScaleDownLimit => condition(
            "ScalingLimited",
            true,
            "ScaleDownLimit",
            "the desired replica count is decreasing faster than the maximum scale rate".into(),
        ),
    };
    if !conditions.iter().any(|c| c.type_ == "ScalingActive") {
        conditions.push(condition(
            "ScalingActive",
            true,
            "ValidMetricFound",
            "the HPA was able to successfully calculate a replica count".into(),
        ));
    }
    conditions.push(limited_condition);
    let status = HorizontalPodAutoscalerStatus {
        current_replicas: Some(current),
        desired_replicas: desired,
        current_metrics,
        conditions: Some(conditions),
        last_scale_time,
        observed_generation: hpa.metadata.generation,
    };
    let _ = name;
    write_status(state, hpa, &previous, status).await
}

/// Write the status, keeping each condition's transition time while its
/// status stays the same.
async fn write_status(
    state: &State,
    hpa: &HorizontalPodAutoscaler,
    previous: &HorizontalPodAutoscalerStatus,
    mut status: HorizontalPodAutoscalerStatus,
) -> Result<(), Error> {
    for c in status.conditions.iter_mut().flatten() {
        if let Some(old) = previous
            .conditions
            .iter()
            .flatten()
            .find(|o| o.type_ == c.type_ && o.status == c.status)
        {
            c.last_transition_time = old.last_transition_time.clone();
        }
    }
    if &status == previous {
        return Ok(());
    }
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(
        state.client.clone(),
        hpa.metadata.namespace.as_deref().unwrap_or_default(),
    );
    super::replace_status_retrying(&api, hpa, |h| h.status = Some(status.clone())).await?;
    Ok(())
}

/// A metric's proposal: (replicas, its status, how it is named in
/// messages), or (reason, message) when it cannot be measured.
async fn measure(
    state: &State,
    namespace: &str,
    selector: &str,
    metric: &k8s_openapi::api::autoscaling::v2::MetricSpec,
    current: i32,
) -> Result<(i32, MetricStatus, String), (String, String)> {
    let (resource, container, target) = match metric.type_.as_str() {
        "Resource" => {
            let r = metric.resource.as_ref().ok_or_else(|| {
                (
                    "InvalidMetricSourceType".to_string(),
                    "no resource".to_string(),
                )
            })?;
            (r.name.clone(), None, r.target.clone())
        }
        "ContainerResource" => {
            let r = metric.container_resource.as_ref().ok_or_else(|| {
                (
                    "InvalidMetricSourceType".to_string(),
                    "no container resource".to_string(),
                )
            })?;
            (r.name.clone(), Some(r.container.clone()), r.target.clone())
        }
        other => {
            return Err((
                "InvalidMetricSourceType".into(),
                format!(
                    "the metric source type {other:?} is not served: only resource metrics are"
                ),
            ))
        }
    };
    let failed = |e: String| ("FailedGetResourceMetric".to_string(), e);
    let goal = match (
        target.type_.as_str(),
        target.average_utilization,
        &target.average_value,
    ) {
        ("Utilization", Some(u), _) => Target::Utilization(u),
        ("AverageValue", _, Some(q)) => Target::AverageValue(quantity(&resource, q)),
        _ => return Err(failed(format!("invalid target for {resource}"))),
    };
    let selector =
        LabelSelector::parse(selector).map_err(|e| failed(format!("invalid selector: {e}")))?;
    let usage = pod_usage(&state.client, namespace, &resource, container.as_deref())
        .await
        .map_err(|e| failed(format!("failed to get {resource} utilization: unable to get metrics for resource {resource}: {e}")))?;
    let now = jiff::Timestamp::now();
    let mut samples = BTreeMap::new();
    for pod in state.pods.state() {
        if pod.metadata.namespace.as_deref() != Some(namespace) {
            continue;
        }
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        if !selector.matches(&labels) {
            continue;
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        let sample = usage.get(&name).copied();
        samples.insert(
            name,
            pod_sample(&pod, &resource, container.as_deref(), sample, now),
        );
    }
    if samples.is_empty() {
        return Err(failed(format!(
            "failed to get {resource} utilization: no pods returned by selector while calculating replica count"
        )));
    }
    let proposal = replicas::propose(current, &samples, goal, &resource)
        .map_err(|e| failed(format!("failed to get {resource} utilization: {}", e.0)))?;
    let current_value = MetricValueStatus {
        average_utilization: proposal.utilization,
        average_value: Some(format_quantity(&resource, proposal.average)),
        value: None,
    };
    let status = match &container {
        None => MetricStatus {
            type_: "Resource".into(),
            resource: Some(ResourceMetricStatus {
                name: resource.clone(),
                current: current_value,
            }),
            ..Default::default()
        },
        Some(c) => MetricStatus {
            type_: "ContainerResource".into(),
            container_resource: Some(
                k8s_openapi::api::autoscaling::v2::ContainerResourceMetricStatus {
                    name: resource.clone(),
                    container: c.clone(),
                    current: current_value,
                },
            ),
            ..Default::default()
        },
    };
    let label = match goal {
        Target::Utilization(_) => {
            format!("{resource} resource utilization (percentage of request)")
        }
        Target::AverageValue(_) => format!("{resource} resource"),
    };
    Ok((proposal.replicas, status, label))
}

/// A Quantity in the resource's unit: cores for CPU, bytes otherwise.
fn quantity(resource: &str, q: &Quantity) -> f64 {
    match kedge_config::quantity::parse_quantity(&q.0) {
        Ok(v) if resource == "cpu" => v.as_milli() as f64 / 1000.0,
        Ok(v) => v.as_bytes() as f64,
        Err(_) => 0.0,
    }
}

fn format_quantity(resource: &str, value: f64) -> Quantity {
    if resource == "cpu" {
        Quantity(format!("{}m", (value * 1000.0).round() as i64))
    } else {
        Quantity(format!("{}", value.round() as i64))
    }
}

/// Each pod's usage of `resource` (one container's, or all of them), from
/// the resource metrics API, with the window's end and length.
async fn pod_usage(
    client: &Client,
    namespace: &str,
    resource: &str,
    container: Option<&str>,
) -> Result<HashMap<String, (f64, i64, i64)>, String> {
    let ar = ApiResource {
        group: "metrics.k8s.io".into(),
        version: "v1beta1".into(),
        api_version: "metrics.k8s.io/v1beta1".into(),
        kind: "PodMetrics".into(),
        plural: "pods".into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut out = HashMap::new();
    for item in list.items {
        let name = item.metadata.name.clone().unwrap_or_default();
        let at = item.data["timestamp"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map_or(0, |t| t.as_second());
        let window = item.data["window"]
            .as_str()
            .and_then(|w| w.strip_suffix('s'))
            .and_then(|w| w.parse::<f64>().ok())
            .map_or(0, |w| w as i64);
        let mut total = 0.0;
        for c in item.data["containers"].as_array().into_iter().flatten() {
            if container.is_some_and(|want| c["name"] != want) {
                continue;
            }
            if let Some(q) = c["usage"][resource].as_str() {
                total += quantity(resource, &Quantity(q.to_string()));
            }
        }
        out.insert(name, (total, at, window));
    }
    Ok(out)
}

/// How the calculator sees a pod: ignored when deleted or failed, unready
/// when pending or (for CPU) not yet steady after starting, as
/// Kubernetes' `groupPods` judges it.
fn pod_sample(
    pod: &Pod,
    resource: &str,
    container: Option<&str>,
    usage: Option<(f64, i64, i64)>,
    now: jiff::Timestamp,
) -> PodSample {
    let status = pod.status.clone().unwrap_or_default();
    let phase = status.phase.as_deref().unwrap_or("");
    let ignored = pod.metadata.deletion_timestamp.is_some() || phase == "Failed";
    let mut unready = phase == "Pending";
    if !unready && resource == "cpu" {
        let ready = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready");
        let started = status.start_time.as_ref().map(|t| t.0.as_second());
        unready = match (ready, started) {
            (None, _) | (_, None) => true,
            (Some(c), Some(start)) => {
                let changed = c
                    .last_transition_time
                    .as_ref()
                    .map_or(0, |t| t.0.as_second());
                if start + replicas::CPU_INITIALIZATION_SECONDS > now.as_second() {
                    // Starting up: its sample must come after readiness
                    // plus a window.
                    c.status == "False"
                        || usage.is_some_and(|(_, at, window)| at < changed + window)
                } else {
                    c.status == "False"
                        && start + replicas::INITIAL_READINESS_DELAY_SECONDS > changed
                }
            }
        };
    }
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let mut request = Some(0.0);
    for c in containers {
        if container.is_some_and(|want| c.name != want) {
            continue;
        }
        match c
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get(resource))
        {
            Some(q) => request = request.map(|r| r + quantity(resource, q)),
            None => request = None,
        }
    }
    PodSample {
        ignored,
        unready,
        request,
        usage: usage.map(|(u, _, _)| u),
    }
}
