//! Recording core/v1 Events, the ones `kubectl describe` and `kubectl get
//! events` show, for every component that writes them (controllers, the
//! scheduler, kubelets). Repeats of the same event on the same object bump `count`
//! and `lastTimestamp` instead of making a new object, as Kubernetes'
//! recorder does.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use parking_lot::Mutex;

/// Normal or Warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Something expected happened.
    Normal,
    /// Something the user may need to act on.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// (object uid, reason, message): repeats of one event are aggregated.
type AggregateKey = (String, String, String);

/// Records events for one component (`deployment-controller`,
/// `default-scheduler`, a kubelet, …).
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: String,
    host: Option<String>,
    /// Event name and count of recent events by (object uid, reason, message).
    seen: Arc<Mutex<HashMap<AggregateKey, (String, i32)>>>,
}

impl Recorder {
    /// A recorder for `component` (and the node it runs on, for kubelets).
    pub fn new(client: Client, component: &str, host: Option<&str>) -> Self {
        Self {
            client,
            component: component.to_string(),
            host: host.map(str::to_string),
            seen: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Record an event about `object`. Failures are logged, never returned:
    /// an event that cannot be written must not stop the work it describes.
    pub async fn record(
        &self,
        object: &ObjectReference,
        event_type: EventType,
        reason: &str,
        message: &str,
    ) {
        let namespace = object
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let uid = object.uid.clone().unwrap_or_default();
        let key = (uid.clone(), reason.to_string(), message.to_string());
        let now = Time(jiff::Timestamp::now());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let existing = self.seen.lock().get(&key).cloned();
        if let Some((name, count)) = existing {
            let patch = serde_json::json!({"count": count + 1, "lastTimestamp": now});
            if api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .is_ok()
            {
                self.seen.lock().insert(key, (name, count + 1));
                return;
            }
        }
        let base = object.name.clone().unwrap_or_default();
        let name = format!("{base}.{}", unique_suffix());
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace),
                ..Default::default()
            },
            involved_object: object.clone(),
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            type_: Some(event_type.as_str().to_string()),
            count: Some(1),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: self.host.clone(),
            }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.host.clone().unwrap_or_else(|| self.component.clone())),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => {
                let mut seen = self.seen.lock();
                // Bounded memory: forget old aggregation keys wholesale.
                if seen.len() > 4096 {
                    seen.clear();
                }
                seen.insert(key, (name, 1));
            }
            Err(e) => tracing::debug!(error = %e, reason, "recording an event failed"),
        }
    }
}

/// Event names are `<object>.<hex>`, as Kubernetes makes them from the
/// time; a process-wide counter keeps two events of one instant apart.
fn unique_suffix() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = jiff::Timestamp::now().as_nanosecond() as u64;
    format!("{:x}", nanos.wrapping_add(n))
}

/// A reference to an object for events, from its kind and metadata.
pub fn reference(api_version: &str, kind: &str, meta: &ObjectMeta) -> ObjectReference {
    ObjectReference {
        api_version: Some(api_version.to_string()),
        kind: Some(kind.to_string()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..Default::default()
    }
}
