//! The resource metrics API (`metrics.k8s.io/v1beta1`, metrics-server's
//! contract) served by the API server itself, so `kubectl top` and the
//! HorizontalPodAutoscaler work with nothing to install.
//!
//! Every [`RESOLUTION`] the server scrapes each node's kubelet
//! (`/metrics/resource`, see `kedge_kubelet::stats`), keeps the last two
//! samples of the node and of each container, and answers NodeMetrics and
//! PodMetrics with the CPU rate between them and the latest working set;
//! the window is the time between the two samples, as metrics-server
//! reports it. A container whose counter went back (it restarted) starts
//! its window again.

mod scrape;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use kedge_config::selector::LabelSelector;

use super::registry::{builtin, Resource};
use super::request::{Query, ResourceRequest};
use super::status::{ApiError, ApiResult};
use super::ApiState;

pub use scrape::{parse, Scraped};

/// How often kubelets are scraped (metrics-server's `--metric-resolution`).
pub const RESOLUTION: Duration = Duration::from_secs(15);

/// The API group and version.
pub const GROUP: &str = "metrics.k8s.io";

/// One sample: when, cumulative CPU core-seconds, working set bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Point {
    at_ms: i64,
    cpu_seconds: f64,
    memory_bytes: f64,
}

/// The last two samples of one node or container.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Series {
    previous: Option<Point>,
    last: Point,
}

impl Series {
    fn push(old: Option<Series>, point: Point) -> Series {
        match old {
            // The same sample again (nothing new since): keep the window.
            Some(s) if point.at_ms <= s.last.at_ms => s,
            // The counter went back: the container restarted.
            Some(s) if point.cpu_seconds < s.last.cpu_seconds => Series {
                previous: None,
                last: point,
            },
            Some(s) => Series {
                previous: Some(s.last),
                last: point,
            },
            None => Series {
                previous: None,
                last: point,
            },
        }
    }

    /// CPU cores used over the window, the working set, the window's end
    /// (ms) and length: once there are two samples.
    fn usage(&self) -> Option<Usage> {
        let previous = self.previous?;
        let window_ms = self.last.at_ms - previous.at_ms;
        (window_ms > 0).then(|| Usage {
            cores: (self.last.cpu_seconds - previous.cpu_seconds) / (window_ms as f64 / 1000.0),
            memory_bytes: self.last.memory_bytes,
            at_ms: self.last.at_ms,
            window_ms,
        })
    }
}

/// What one node or container used over its last window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// CPU, in cores.
    pub cores: f64,
    /// Working set, in bytes.
    pub memory_bytes: f64,
    /// When the window ended (Unix ms).
    pub at_ms: i64,
    /// How long it was (ms).
    pub window_ms: i64,
}

/// A container of a pod: (namespace, pod, container).
type ContainerKey = (String, String, String);

#[derive(Default)]
struct Points {
    nodes: HashMap<String, Series>,
    /// Each container's series and the node it was scraped from.
    containers: HashMap<ContainerKey, (String, Series)>,
}

/// The samples the server holds.
#[derive(Default)]
pub struct ResourceMetrics {
    points: Mutex<Points>,
}

impl ResourceMetrics {
    /// Take in one scrape of `node`: its containers not in it are gone.
    pub fn record(&self, node: &str, scraped: &Scraped) {
        let mut points = self.points.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = scraped.node {
            let old = points.nodes.get(node).copied();
            points.nodes.insert(
                node.to_string(),
                Series::push(
                    old,
                    Point {
                        at_ms: n.at_ms,
                        cpu_seconds: n.cpu_seconds,
                        memory_bytes: n.memory_bytes,
                    },
                ),
            );
        }
        points
            .containers
            .retain(|k, (on, _)| on != node || scraped.containers.contains_key(k));
        for (key, c) in &scraped.containers {
            let old = points.containers.get(key).map(|(_, s)| *s);
            let series = Series::push(
                old,
                Point {
                    at_ms: c.at_ms,
                    cpu_seconds: c.cpu_seconds,
                    memory_bytes: c.memory_bytes,
                },
            );
            points
                .containers
                .insert(key.clone(), (node.to_string(), series));
        }
    }

    /// Forget nodes (and their containers) not in `nodes`.
    fn retain_nodes(&self, nodes: &[String]) {
        let mut points = self.points.lock().unwrap_or_else(|e| e.into_inner());
        points.nodes.retain(|n, _| nodes.contains(n));
        points.containers.retain(|_, (n, _)| nodes.contains(n));
    }

    /// The node's usage over its last window.
    pub fn node(&self, name: &str) -> Option<Usage> {
        let points = self.points.lock().unwrap_or_else(|e| e.into_inner());
        points.nodes.get(name)?.usage()
    }

    /// The usage of each container of the pod, by container name.
    pub fn pod(&self, namespace: &str, name: &str) -> BTreeMap<String, Usage> {
        let points = self.points.lock().unwrap_or_else(|e| e.into_inner());
        points
            .containers
            .iter()
            .filter(|((ns, pod, _), _)| ns == namespace && pod == name)
            .filter_map(|((_, _, c), (_, s))| Some((c.clone(), s.usage()?)))
            .collect()
    }
}

/// Scrape every node's kubelet each [`RESOLUTION`] until the server
/// drains.
pub async fn run(state: Arc<ApiState>) {
    let Some(client) = state.kubelet_client.clone() else {
        return;
    };
    let nodes = builtin::find("", "v1", "nodes").expect("nodes are served");
    let drained = state.drained();
    tokio::pin!(drained);
    let mut tick = tokio::time::interval(RESOLUTION);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut drained => return,
        }
        let (_, listed) = state.cache.list(&nodes.prefix());
        let names: Vec<String> = listed
            .iter()
            .filter_map(|(_, n)| n.pointer("/metadata/name")?.as_str().map(String::from))
            .collect();
        state.resource_metrics.retain_nodes(&names);
        // Every node at once, each bounded by the client's timeouts.
        let scrapes = listed.into_iter().map(|(_, node)| {
            let client = client.clone();
            let state = state.clone();
            async move {
                let name = node.pointer("/metadata/name")?.as_str()?.to_string();
                match client.get_text(&node, "/metrics/resource").await {
                    Ok(text) => {
                        state.resource_metrics.record(&name, &parse(&text));
                        state.metrics.resource_scrape(true);
                    }
                    Err(e) => {
                        tracing::debug!(node = %name, error = %e, "scraping the kubelet's resource metrics");
                        state.metrics.resource_scrape(false);
                    }
                }
                Some(())
            }
        });
        futures::future::join_all(scrapes).await;
    }
}

/// CPU cores as a quantity in nanocores, as metrics-server writes it.
fn cpu_quantity(cores: f64) -> String {
    format!("{}n", (cores.max(0.0) * 1e9).round() as u64)
}

/// Bytes as a binary-SI quantity (`1234Ki`), as metrics-server writes it.
fn memory_quantity(bytes: f64) -> String {
    let bytes = bytes.max(0.0).round() as u64;
    if bytes == 0 {
        return "0".into();
    }
    let mut value = bytes;
    for suffix in ["", "Ki", "Mi", "Gi", "Ti", "Pi"] {
        if !value.is_multiple_of(1024) || suffix == "Pi" {
            return format!("{value}{suffix}");
        }
        value /= 1024;
    }
    format!("{value}Ei")
}

/// A window's length as Go prints a duration (`15.004s`, `1m0.5s`).
fn go_duration(ms: i64) -> String {
    let minutes = ms / 60_000;
    let rest = ms % 60_000;
    let seconds = format!("{}.{:03}", rest / 1000, rest % 1000);
    let seconds = seconds.trim_end_matches('0').trim_end_matches('.');
    if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// The metadata of a metrics object: the name, namespace and labels of
/// the node or pod it measures, made now.
fn metadata(object: &Value) -> Value {
    let mut meta = json!({
        "name": object.pointer("/metadata/name"),
        "creationTimestamp": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    });
    if let Some(ns) = object.pointer("/metadata/namespace") {
        meta["namespace"] = ns.clone();
    }
    if let Some(labels) = object.pointer("/metadata/labels") {
        meta["labels"] = labels.clone();
    }
    meta
}

fn node_metrics(state: &ApiState, node: &Value) -> Option<Value> {
    let usage = state
        .resource_metrics
        .node(node.pointer("/metadata/name")?.as_str()?)?;
    Some(json!({
        "kind": "NodeMetrics",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": metadata(node),
        "timestamp": rfc3339(usage.at_ms),
        "window": go_duration(usage.window_ms),
        "usage": {
            "cpu": cpu_quantity(usage.cores),
            "memory": memory_quantity(usage.memory_bytes),
        },
    }))
}

fn pod_metrics(state: &ApiState, pod: &Value) -> Option<Value> {
    let namespace = pod.pointer("/metadata/namespace")?.as_str()?;
    let name = pod.pointer("/metadata/name")?.as_str()?;
    let containers = state.resource_metrics.pod(namespace, name);
    // The window of the pod: its latest container sample's.
    let last = containers.values().max_by_key(|u| u.at_ms)?;
    Some(json!({
        "kind": "PodMetrics",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": metadata(pod),
        "timestamp": rfc3339(last.at_ms),
        "window": go_duration(last.window_ms),
        "containers": containers.iter().map(|(c, u)| json!({
            "name": c,
            "usage": {"cpu": cpu_quantity(u.cores), "memory": memory_quantity(u.memory_bytes)},
        })).collect::<Vec<_>>(),
    }))
}

/// Whether `r` is one of this API's resources.
pub fn serves(r: &Resource) -> bool {
    r.group == GROUP
}

/// `GET` of a NodeMetrics or PodMetrics, or of a list of them
/// (`labelSelector` matches the node's or pod's labels).
pub fn get(state: &ApiState, rr: &ResourceRequest, q: &Query) -> ApiResult<Value> {
    let pods = rr.resource.plural == "pods";
    let source = if pods {
        builtin::find("", "v1", "pods")
    } else {
        builtin::find("", "v1", "nodes")
    }
    .expect("pods and nodes are served");
    let (kind, one) = if pods {
        (
            "PodMetrics",
            pod_metrics as fn(&ApiState, &Value) -> Option<Value>,
        )
    } else {
        (
            "NodeMetrics",
            node_metrics as fn(&ApiState, &Value) -> Option<Value>,
        )
    };
    let namespace = rr.namespace.as_deref();
    if let Some(name) = &rr.name {
        let not_found =
            || ApiError::not_found(&format!("{}.{GROUP}", kind.to_ascii_lowercase()), name);
        let object = state
            .cache
            .get(&source.key(namespace, name))
            .ok_or_else(not_found)?;
        return one(state, &object).ok_or_else(not_found);
    }
    let selector = match q.non_empty("labelSelector") {
        Some(s) => LabelSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?,
        None => LabelSelector::everything(),
    };
    let (_, objects) = state.cache.list(&source.namespace_prefix(namespace));
    let items: Vec<Value> = objects
        .iter()
        .filter(|(_, o)| {
            let labels: BTreeMap<String, String> = o
                .pointer("/metadata/labels")
                .and_then(|l| serde_json::from_value(l.clone()).ok())
                .unwrap_or_default();
            selector.matches(&labels)
        })
        .filter_map(|(_, o)| one(state, o))
        .collect();
    Ok(json!({
        "kind": format!("{kind}List"),
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {},
        "items": items,
    }))
}

#[cfg(test)]
mod tests;
