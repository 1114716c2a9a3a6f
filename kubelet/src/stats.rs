//! What a node and its pods use, as the kubelet reports it on its endpoint:
//! `/metrics/resource` (Prometheus text with the kubelet's metric names and
//! sample timestamps: what the API server's resource metrics scrape) and
//! `/stats/summary` (the Summary API, with rates from the previous sample).
//!
//! Containers are sampled from the runtime (its cgroups); the node from the
//! machine's `/proc` (the root cgroup's view: every process, not only pods).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::Mutex;

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::runtime::{ContainerStats, Runtime};

/// The node's own sample.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeStats {
    /// When it was taken.
    pub timestamp: Timestamp,
    /// When the machine booted.
    pub start_time: Option<Timestamp>,
    /// CPU time of every process since boot, in core-seconds.
    pub cpu_seconds: f64,
    /// Memory capacity.
    pub memory_total_bytes: u64,
    /// Memory in use, page cache included.
    pub memory_usage_bytes: u64,
    /// Usage less the inactive file pages.
    pub memory_working_set_bytes: u64,
}

impl NodeStats {
    /// Read `/proc/stat` and `/proc/meminfo`.
    pub fn read() -> Option<NodeStats> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
        Self::parse(&stat, &meminfo, Timestamp::now())
    }

    /// The sample in `/proc/stat` and `/proc/meminfo` texts.
    pub fn parse(stat: &str, meminfo: &str, timestamp: Timestamp) -> Option<NodeStats> {
        // cpu user nice system idle iowait irq softirq steal …, in
        // USER_HZ (100 on every Linux the kernel builds for today).
        let ticks: Vec<u64> = stat
            .lines()
            .find(|l| l.starts_with("cpu "))?
            .split_whitespace()
            .skip(1)
            .filter_map(|t| t.parse().ok())
            .collect();
        let busy: u64 = [0, 1, 2, 5, 6, 7]
            .iter()
            .filter_map(|i| ticks.get(*i))
            .sum();
        let start_time = stat
            .lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|s| s.trim().parse::<i64>().ok())
            .and_then(|s| Timestamp::from_second(s).ok());
        let field = |name: &str| {
            meminfo.lines().find_map(|l| {
                let rest = l.strip_prefix(name)?.strip_prefix(':')?;
                let kib: u64 = rest.split_whitespace().next()?.parse().ok()?;
                Some(kib * 1024)
            })
        };
        let total = field("MemTotal")?;
        let usage = total.saturating_sub(field("MemFree")?);
        let inactive_file = field("Inactive(file)").unwrap_or(0);
        Some(NodeStats {
            timestamp,
            start_time,
            cpu_seconds: busy as f64 / 100.0,
            memory_total_bytes: total,
            memory_usage_bytes: usage,
            memory_working_set_bytes: usage.saturating_sub(inactive_file),
        })
    }
}

/// One sample of the node and its running containers.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// The node, when `/proc` could be read.
    pub node: Option<NodeStats>,
    /// Every running container.
    pub containers: Vec<ContainerStats>,
}

impl Sample {
    /// Sample the node and `runtime`'s containers now.
    pub async fn take(runtime: &dyn Runtime) -> Sample {
        let containers = match runtime.list_container_stats().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "sampling the containers' usage");
                Vec::new()
            }
        };
        Sample {
            node: runtime.node_stats(),
            containers,
        }
    }

    /// The Prometheus text of `/metrics/resource`, with the metric names
    /// and labels the kubelet uses and each sample's own timestamp (which
    /// is why it is written here: the client library has no per-sample
    /// timestamps).
    pub fn resource_metrics(&self) -> String {
        let mut out = String::new();
        let ms = |t: &Timestamp| t.as_millisecond();
        let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, f64, i64)>| {
            let _ = writeln!(out, "# HELP {name} [STABLE] {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value, at) in rows {
                let _ = writeln!(out, "{name}{labels} {value} {at}");
            }
        };
        let container_labels = |c: &ContainerStats| {
            format!(
                "{{container=\"{}\",namespace=\"{}\",pod=\"{}\"}}",
                escape(&c.name),
                escape(&c.pod_namespace),
                escape(&c.pod_name)
            )
        };
        family(
            "container_cpu_usage_seconds_total",
            "counter",
            "Cumulative cpu time consumed by the container in core-seconds",
            self.containers
                .iter()
                .map(|c| (container_labels(c), c.cpu_seconds, ms(&c.timestamp)))
                .collect(),
        );
        family(
            "container_memory_working_set_bytes",
            "gauge",
            "Current working set of the container in bytes",
            self.containers
                .iter()
                .map(|c| {
                    let v = c.memory_working_set_bytes as f64;
                    (container_labels(c), v, ms(&c.timestamp))
                })
                .collect(),
        );
        family(
            "container_start_time_seconds",
            "gauge",
            "Start time of the container since unix epoch in seconds",
            self.containers
                .iter()
                .filter_map(|c| {
                    let started = c.started_at?;
                    Some((
                        container_labels(c),
                        started.as_second() as f64,
                        ms(&c.timestamp),
                    ))
                })
                .collect(),
        );
        if let Some(node) = &self.node {
            let at = ms(&node.timestamp);
            family(
                "node_cpu_usage_seconds_total",
                "counter",
                "Cumulative cpu time consumed by the node in core-seconds",
                vec![(String::new(), node.cpu_seconds, at)],
            );
            family(
                "node_memory_working_set_bytes",
                "gauge",
                "Current working set of the node in bytes",
                vec![(String::new(), node.memory_working_set_bytes as f64, at)],
            );
        }
        let pods = self.pods();
        family(
            "pod_cpu_usage_seconds_total",
            "counter",
            "Cumulative cpu time consumed by the pod in core-seconds",
            pods.iter()
                .map(|((ns, name), p)| {
                    let labels =
                        format!("{{namespace=\"{}\",pod=\"{}\"}}", escape(ns), escape(name));
                    (labels, p.cpu_seconds, ms(&p.timestamp))
                })
                .collect(),
        );
        family(
            "pod_memory_working_set_bytes",
            "gauge",
            "Current working set of the pod in bytes",
            pods.iter()
                .map(|((ns, name), p)| {
                    let labels =
                        format!("{{namespace=\"{}\",pod=\"{}\"}}", escape(ns), escape(name));
                    (labels, p.memory_working_set_bytes as f64, ms(&p.timestamp))
                })
                .collect(),
        );
        family(
            "resource_scrape_error",
            "gauge",
            "1 if there was an error while getting container metrics, 0 otherwise",
            vec![(String::new(), 0.0, ms(&Timestamp::now()))],
        );
        out
    }

    /// Each pod's containers summed, by (namespace, name).
    fn pods(&self) -> BTreeMap<(String, String), PodTotals> {
        let mut pods: BTreeMap<(String, String), PodTotals> = BTreeMap::new();
        for c in &self.containers {
            let p = pods
                .entry((c.pod_namespace.clone(), c.pod_name.clone()))
                .or_insert_with(|| PodTotals {
                    uid: c.pod_uid.clone(),
                    timestamp: c.timestamp,
                    start_time: c.started_at,
                    ..PodTotals::default()
                });
            p.cpu_seconds += c.cpu_seconds;
            p.memory_usage_bytes += c.memory_usage_bytes;
            p.memory_working_set_bytes += c.memory_working_set_bytes;
            p.timestamp = p.timestamp.max(c.timestamp);
            p.start_time = match (p.start_time, c.started_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        pods
    }
}

#[derive(Debug, Default)]
struct PodTotals {
    uid: String,
    timestamp: Timestamp,
    start_time: Option<Timestamp>,
    cpu_seconds: f64,
    memory_usage_bytes: u64,
    memory_working_set_bytes: u64,
}

/// A Prometheus label value, escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The Summary API's rates: the previous CPU sample of each container and
/// of the node, so a summary carries `usageNanoCores`.
#[derive(Default)]
pub struct Summaries {
    previous: Mutex<HashMap<String, (Timestamp, f64)>>,
}

/// The key of the node's own CPU sample among the containers'.
const NODE_KEY: &str = "";

impl Summaries {
    /// The `/stats/summary` document of `node_name` for `sample`.
    pub fn summary(&self, node_name: &str, sample: &Sample) -> Value {
        let mut previous = self.previous.lock().unwrap_or_else(|e| e.into_inner());
        let mut rate = |key: &str, at: Timestamp, seconds: f64| -> Option<u64> {
            let before = previous.insert(key.to_string(), (at, seconds));
            let (then, was) = before?;
            let elapsed = (at - then).total(jiff::Unit::Second).ok()?;
            (elapsed > 0.0 && seconds >= was).then(|| ((seconds - was) / elapsed * 1e9) as u64)
        };
        let time = |t: &Timestamp| t.to_string();
        let node = sample.node.as_ref().map(|n| {
            let mut cpu = json!({
                "time": time(&n.timestamp),
                "usageCoreNanoSeconds": (n.cpu_seconds * 1e9) as u64,
            });
            if let Some(r) = rate(NODE_KEY, n.timestamp, n.cpu_seconds) {
                cpu["usageNanoCores"] = json!(r);
            }
            json!({
                "nodeName": node_name,
                "startTime": n.start_time.as_ref().map(time),
                "cpu": cpu,
                "memory": {
                    "time": time(&n.timestamp),
                    "availableBytes": n.memory_total_bytes.saturating_sub(n.memory_working_set_bytes),
                    "usageBytes": n.memory_usage_bytes,
                    "workingSetBytes": n.memory_working_set_bytes,
                },
            })
        });
        let mut pods: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
        for c in &sample.containers {
            let mut cpu = json!({
                "time": time(&c.timestamp),
                "usageCoreNanoSeconds": (c.cpu_seconds * 1e9) as u64,
            });
            if let Some(r) = rate(&c.id, c.timestamp, c.cpu_seconds) {
                cpu["usageNanoCores"] = json!(r);
            }
            let mut memory = json!({
                "time": time(&c.timestamp),
                "usageBytes": c.memory_usage_bytes,
                "workingSetBytes": c.memory_working_set_bytes,
            });
            if let Some(rss) = c.memory_rss_bytes {
                memory["rssBytes"] = json!(rss);
            }
            pods.entry((c.pod_namespace.clone(), c.pod_name.clone()))
                .or_default()
                .push(json!({
                    "name": c.name,
                    "startTime": c.started_at.as_ref().map(time),
                    "cpu": cpu,
                    "memory": memory,
                }));
        }
        // Samples of containers gone since are forgotten.
        let live: std::collections::HashSet<&str> =
            sample.containers.iter().map(|c| c.id.as_str()).collect();
        previous.retain(|k, _| k == NODE_KEY || live.contains(k.as_str()));
        let totals = sample.pods();
        let pods: Vec<Value> = pods
            .into_iter()
            .map(|(key, containers)| {
                let t = &totals[&key];
                let nano_cores: Option<u64> = containers
                    .iter()
                    .map(|c| c.pointer("/cpu/usageNanoCores").and_then(Value::as_u64))
                    .sum();
                let mut cpu = json!({
                    "time": time(&t.timestamp),
                    "usageCoreNanoSeconds": (t.cpu_seconds * 1e9) as u64,
                });
                if let Some(r) = nano_cores {
                    cpu["usageNanoCores"] = json!(r);
                }
                json!({
                    "podRef": {"name": key.1, "namespace": key.0, "uid": t.uid},
                    "startTime": t.start_time.as_ref().map(time),
                    "containers": containers,
                    "cpu": cpu,
                    "memory": {
                        "time": time(&t.timestamp),
                        "usageBytes": t.memory_usage_bytes,
                        "workingSetBytes": t.memory_working_set_bytes,
                    },
                })
            })
            .collect();
        json!({"node": node, "pods": pods})
    }
}

#[cfg(test)]
mod tests;
