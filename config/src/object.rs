//! The typed write path of the built-in kinds: each kind's [`Typed`] decodes an object
//! into its k8s-openapi struct, defaults and validates it and re-encodes it
//! ([`Typed::admit`]), checks updates for immutable fields ([`Typed::validate_update`]),
//! and finds unknown fields for `fieldValidation=Strict` ([`Typed::unknown_fields`]).

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::autoscaling::v1 as autoscaling;
use k8s_openapi::api::batch::v1 as batch;
use k8s_openapi::api::certificates::v1 as certificates;
use k8s_openapi::api::coordination::v1 as coordination;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::api::networking::v1 as networking;
use k8s_openapi::api::rbac::v1 as rbac;

use crate::defaults;
use crate::validation::{self, render_label_selector, render_string_slice, FieldError};

/// Why an object was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    /// The object does not decode into its typed form (a wrong type somewhere).
    #[error("{message}")]
    Decode {
        /// Where (dotted path, arrays as `[i]`), e.g. `spec.replicas`.
        path: String,
        /// Go-style message, e.g. `json: cannot unmarshal string into Go struct field
        /// Deployment.spec.replicas of type int32`.
        message: String,
    },
    /// The object decodes but breaks validation rules.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    Invalid(Vec<FieldError>),
}

/// How one built-in kind is decoded into its typed struct, defaulted, validated and
/// re-encoded, and which changes an update may not make. The API server's registry
/// names one for each kind it serves.
#[derive(Clone, Copy)]
pub struct Typed {
    admit: fn(Value) -> Result<Value, AdmitError>,
    roundtrip: fn(&Value) -> Option<Value>,
    update: fn(&Value, &Value) -> Vec<FieldError>,
}

impl Typed {
    /// Decodes `obj` as the typed struct, applies defaults, validates, and re-encodes it
    /// (dropping unknown fields; `apiVersion` and `kind` always present).
    pub fn admit(&self, obj: Value) -> Result<Value, AdmitError> {
        (self.admit)(obj)
    }

    /// Paths of the fields of `obj` that the typed struct does not know, e.g.
    /// `spec.template.spec.containers[0].imagee`. Empty for objects that do not decode.
    pub fn unknown_fields(&self, obj: &Value) -> Vec<String> {
        let Some(typed) = (self.roundtrip)(obj) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        diff_unknown(obj, &typed, "", &mut out);
        out
    }

    /// Errors for changes an update may not make (immutable fields). `old` is the stored
    /// object, `new` the incoming one; both are defaulted before comparing.
    pub fn validate_update(&self, old: &Value, new: &Value) -> Vec<FieldError> {
        (self.update)(old, new)
    }
}

fn no_update(_: &Value, _: &Value) -> Vec<FieldError> {
    Vec::new()
}

fn nothing<T>(_: &mut T) {}

/// The [`Typed`] of one k8s-openapi type: its defaulting, validation and update rules.
macro_rules! typed {
    ($ty:ty, $default:expr, $validate:expr, $update:expr) => {
        Typed {
            admit: |v| admit_typed::<$ty>(v, $default, $validate),
            roundtrip: |v| roundtrip_typed::<$ty>(v),
            update: $update,
        }
    };
}

/// Pod (v1) through `core::Pod`.
pub const POD: Typed = typed!(
    core::Pod,
    defaults::default_pod,
    validation::validate_pod,
    update_pod
);

/// Service (v1) through `core::Service`.
pub const SERVICE: Typed = typed!(
    core::Service,
    defaults::default_service,
    validation::validate_service,
    update_service
);

/// Endpoints (v1) through `core::Endpoints`.
pub const ENDPOINTS: Typed = typed!(
    core::Endpoints,
    defaults::default_endpoints,
    validation::validate_endpoints,
    no_update
);

/// ConfigMap (v1) through `core::ConfigMap`.
pub const CONFIG_MAP: Typed = typed!(
    core::ConfigMap,
    nothing,
    validation::validate_config_map,
    update_config_map
);

/// Secret (v1) through `core::Secret`.
pub const SECRET: Typed = typed!(
    core::Secret,
    defaults::default_secret,
    validation::validate_secret,
    update_secret
);

/// Namespace (v1) through `core::Namespace`.
pub const NAMESPACE: Typed = typed!(
    core::Namespace,
    defaults::default_namespace,
    validation::validate_namespace,
    no_update
);

/// Node (v1) through `core::Node`.
pub const NODE: Typed = typed!(
    core::Node,
    defaults::default_node,
    validation::validate_node,
    no_update
);

/// Event (v1) through `core::Event`.
pub const EVENT: Typed = typed!(core::Event, nothing, validation::validate_event, no_update);

/// ServiceAccount (v1) through `core::ServiceAccount`.
pub const SERVICE_ACCOUNT: Typed = typed!(
    core::ServiceAccount,
    nothing,
    validation::validate_service_account,
    no_update
);

/// Binding (v1) through `core::Binding`.
pub const BINDING: Typed = typed!(
    core::Binding,
    nothing,
    validation::validate_binding,
    no_update
);

/// Deployment (apps/v1) through `apps::Deployment`.
pub const DEPLOYMENT: Typed = typed!(
    apps::Deployment,
    defaults::default_deployment,
    validation::validate_deployment,
    update_deployment
);

/// ReplicaSet (apps/v1) through `apps::ReplicaSet`.
pub const REPLICA_SET: Typed = typed!(
    apps::ReplicaSet,
    defaults::default_replica_set,
    validation::validate_replica_set,
    update_replica_set
);

/// ReplicationController (v1) through `core::ReplicationController`. Its
/// selector, unlike a ReplicaSet's, may change.
pub const REPLICATION_CONTROLLER: Typed = typed!(
    core::ReplicationController,
    defaults::default_replication_controller,
    validation::validate_replication_controller,
    no_update
);

/// ControllerRevision (apps/v1): a workload's recorded template; its data
/// never changes.
pub const CONTROLLER_REVISION: Typed = typed!(
    apps::ControllerRevision,
    nothing,
    validation::validate_controller_revision,
    update_controller_revision
);

/// PersistentVolume (v1): cluster-wide storage a claim binds to.
pub const PERSISTENT_VOLUME: Typed = typed!(
    core::PersistentVolume,
    defaults::default_persistent_volume,
    validation::validate_persistent_volume,
    no_update
);

/// PersistentVolumeClaim (v1): after creation only its requested size
/// (and the volume it binds to) may change.
pub const PERSISTENT_VOLUME_CLAIM: Typed = typed!(
    core::PersistentVolumeClaim,
    defaults::default_persistent_volume_claim,
    validation::validate_persistent_volume_claim,
    update_persistent_volume_claim
);

/// StorageClass (storage.k8s.io/v1): how claims of the class are provisioned.
pub const STORAGE_CLASS: Typed = typed!(
    k8s_openapi::api::storage::v1::StorageClass,
    defaults::default_storage_class,
    validation::validate_storage_class,
    update_storage_class
);

/// NetworkPolicy (networking.k8s.io/v1): which traffic selected pods
/// take.
pub const NETWORK_POLICY: Typed = typed!(
    networking::NetworkPolicy,
    nothing,
    validation::validate_network_policy,
    no_update
);

/// DaemonSet (apps/v1) through `apps::DaemonSet`.
pub const DAEMON_SET: Typed = typed!(
    apps::DaemonSet,
    defaults::default_daemon_set,
    validation::validate_daemon_set,
    update_daemon_set
);

/// StatefulSet (apps/v1) through `apps::StatefulSet`.
pub const STATEFUL_SET: Typed = typed!(
    apps::StatefulSet,
    defaults::default_stateful_set,
    validation::validate_stateful_set,
    update_stateful_set
);

/// Job (batch/v1) through `batch::Job`.
pub const JOB: Typed = typed!(
    batch::Job,
    default_job_and_selector,
    validation::validate_job,
    update_job
);

/// ResourceQuota (v1).
pub const RESOURCE_QUOTA: Typed = typed!(
    core::ResourceQuota,
    nothing,
    validation::validate_resource_quota,
    no_update
);

/// LimitRange (v1).
pub const LIMIT_RANGE: Typed = typed!(
    core::LimitRange,
    nothing,
    validation::validate_limit_range,
    no_update
);

/// PodDisruptionBudget (policy/v1).
pub const POD_DISRUPTION_BUDGET: Typed = typed!(
    k8s_openapi::api::policy::v1::PodDisruptionBudget,
    nothing,
    validation::validate_pod_disruption_budget,
    no_update
);

/// HorizontalPodAutoscaler (autoscaling/v2, its storage version).
pub const HORIZONTAL_POD_AUTOSCALER: Typed = typed!(
    k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler,
    defaults::default_horizontal_pod_autoscaler,
    validation::validate_horizontal_pod_autoscaler,
    no_update
);

/// CronJob (batch/v1) through `batch::CronJob`.
pub const CRON_JOB: Typed = typed!(
    batch::CronJob,
    defaults::default_cron_job,
    validation::validate_cron_job,
    no_update
);

/// Ingress (networking.k8s.io/v1) through `networking::Ingress`.
pub const INGRESS: Typed = typed!(
    networking::Ingress,
    defaults::default_ingress,
    validation::validate_ingress,
    no_update
);

/// IngressClass (networking.k8s.io/v1) through `networking::IngressClass`.
pub const INGRESS_CLASS: Typed = typed!(
    networking::IngressClass,
    nothing,
    validation::validate_ingress_class,
    no_update
);

/// EndpointSlice (discovery.k8s.io/v1) through `discovery::EndpointSlice`.
pub const ENDPOINT_SLICE: Typed = typed!(
    discovery::EndpointSlice,
    defaults::default_endpoint_slice,
    validation::validate_endpoint_slice,
    update_endpoint_slice
);

/// Lease (coordination.k8s.io/v1) through `coordination::Lease`.
pub const LEASE: Typed = typed!(
    coordination::Lease,
    nothing,
    validation::validate_lease,
    no_update
);

/// Role (rbac.authorization.k8s.io/v1) through `rbac::Role`.
pub const ROLE: Typed = typed!(rbac::Role, nothing, validation::validate_role, no_update);

/// ClusterRole (rbac.authorization.k8s.io/v1) through `rbac::ClusterRole`.
pub const CLUSTER_ROLE: Typed = typed!(
    rbac::ClusterRole,
    nothing,
    validation::validate_cluster_role,
    no_update
);

/// RoleBinding (rbac.authorization.k8s.io/v1) through `rbac::RoleBinding`.
pub const ROLE_BINDING: Typed = typed!(
    rbac::RoleBinding,
    |b: &mut rbac::RoleBinding| validation::default_subjects(
        b.subjects.as_deref_mut().unwrap_or_default()
    ),
    validation::validate_role_binding,
    validation::validate_binding_update
);

/// ClusterRoleBinding (rbac.authorization.k8s.io/v1) through
/// `rbac::ClusterRoleBinding`.
pub const CLUSTER_ROLE_BINDING: Typed = typed!(
    rbac::ClusterRoleBinding,
    |b: &mut rbac::ClusterRoleBinding| validation::default_subjects(
        b.subjects.as_deref_mut().unwrap_or_default()
    ),
    validation::validate_cluster_role_binding,
    validation::validate_binding_update
);

/// CertificateSigningRequest (certificates.k8s.io/v1) through
/// `certificates::CertificateSigningRequest`; its spec cannot change.
pub const CERTIFICATE_SIGNING_REQUEST: Typed = typed!(
    certificates::CertificateSigningRequest,
    nothing,
    validation::validate_certificate_signing_request,
    |old: &Value, new: &Value| {
        if old.get("spec") != new.get("spec") {
            vec![FieldError::invalid("spec", "{...}", "field is immutable")]
        } else {
            Vec::new()
        }
    }
);

/// Scale (autoscaling/v1) through `autoscaling::Scale`.
pub const SCALE: Typed = typed!(
    autoscaling::Scale,
    nothing,
    validation::validate_scale,
    no_update
);

fn default_job_and_selector(job: &mut batch::Job) {
    defaults::default_job(job);
    if job.spec.as_ref().is_some_and(|s| s.selector.is_none()) {
        defaults::generate_job_selector(job);
    }
}

fn prepare<T: k8s_openapi::Resource>(mut obj: Value) -> Value {
    if let Value::Object(m) = &mut obj {
        m.insert("apiVersion".into(), Value::String(T::API_VERSION.into()));
        m.insert("kind".into(), Value::String(T::KIND.into()));
    }
    normalize_quantities(&mut obj);
    obj
}

fn decode<T>(obj: Value) -> Result<T, AdmitError>
where
    T: DeserializeOwned + k8s_openapi::Resource,
{
    let obj = prepare::<T>(obj);
    serde_path_to_error::deserialize::<_, T>(obj).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let message = go_message(T::KIND, &path, &e.inner().to_string());
        AdmitError::Decode { path, message }
    })
}

fn admit_typed<T>(
    obj: Value,
    default: fn(&mut T),
    validate: fn(&T) -> Vec<FieldError>,
) -> Result<Value, AdmitError>
where
    T: DeserializeOwned + Serialize + k8s_openapi::Resource,
{
    let mut typed: T = decode(obj)?;
    default(&mut typed);
    let errs = validate(&typed);
    if !errs.is_empty() {
        return Err(AdmitError::Invalid(errs));
    }
    let mut out = serde_json::to_value(&typed).map_err(|e| AdmitError::Decode {
        path: String::new(),
        message: e.to_string(),
    })?;
    if let Value::Object(m) = &mut out {
        m.entry("apiVersion")
            .or_insert_with(|| Value::String(T::API_VERSION.into()));
        m.entry("kind")
            .or_insert_with(|| Value::String(T::KIND.into()));
    }
    Ok(out)
}

fn roundtrip_typed<T>(obj: &Value) -> Option<Value>
where
    T: DeserializeOwned + Serialize + k8s_openapi::Resource,
{
    let typed: T = serde_json::from_value(prepare::<T>(obj.clone())).ok()?;
    serde_json::to_value(&typed).ok()
}

fn decode_defaulted<T>(v: &Value, default: fn(&mut T)) -> Option<T>
where
    T: DeserializeOwned + k8s_openapi::Resource,
{
    let mut t: T = serde_json::from_value(prepare::<T>(v.clone())).ok()?;
    default(&mut t);
    Some(t)
}

/// Renders serde's "invalid type: string \"3\", expected i32" as Go's
/// "json: cannot unmarshal string into Go struct field Deployment.spec.replicas of type int32".
fn go_message(kind: &str, path: &str, serde_msg: &str) -> String {
    let Some(rest) = serde_msg.strip_prefix("invalid type: ") else {
        return if path.is_empty() {
            serde_msg.to_string()
        } else {
            format!("{path}: {serde_msg}")
        };
    };
    let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
    let go_found = if found.starts_with("string") {
        "string"
    } else if found.starts_with("integer") || found.starts_with("floating point") {
        "number"
    } else if found.starts_with("boolean") {
        "bool"
    } else if found.starts_with("map") {
        "object"
    } else if found.starts_with("sequence") {
        "array"
    } else if found.starts_with("null") || found.starts_with("unit") {
        "null"
    } else {
        found
    };
    let go_expected = match expected {
        "i32" => "int32".to_string(),
        "i64" => "int64".to_string(),
        "u32" => "uint32".to_string(),
        "f64" => "float64".to_string(),
        "a boolean" => "bool".to_string(),
        "a string" => "string".to_string(),
        "a sequence" => "[]".to_string(),
        "a map" => "map[string]string".to_string(),
        other => other.trim_start_matches("struct ").to_string(),
    };
    // The last path component names the field; Go names the enclosing struct type, for
    // which the kind is a fair stand-in.
    let field = if path.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{path}")
    };
    format!("json: cannot unmarshal {go_found} into Go struct field {field} of type {go_expected}")
}

/// Keys whose values are maps of resource name to quantity.
const QUANTITY_MAPS: &[&str] = &[
    "limits",
    "requests",
    "capacity",
    "allocatable",
    "overhead",
    "hard",
    "used",
];
/// Keys whose values are single quantities.
const QUANTITY_FIELDS: &[&str] = &["sizeLimit", "divisor"];

/// Quantities may be written as JSON numbers (`cpu: 1`); the typed structs hold strings.
fn normalize_quantities(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                if QUANTITY_MAPS.contains(&k.as_str()) {
                    if let Value::Object(q) = child {
                        for qv in q.values_mut() {
                            if let Value::Number(n) = qv {
                                *qv = Value::String(n.to_string());
                            }
                        }
                        continue;
                    }
                }
                if QUANTITY_FIELDS.contains(&k.as_str()) {
                    if let Value::Number(n) = child {
                        *child = Value::String(n.to_string());
                        continue;
                    }
                }
                normalize_quantities(child);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(normalize_quantities),
        _ => {}
    }
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

fn diff_unknown(input: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                if v.is_null() {
                    continue;
                }
                match b.get(k) {
                    None => out.push(join(path, k)),
                    Some(tv) if tv == v => {}
                    Some(tv) => diff_unknown(v, tv, &join(path, k), out),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                if x != y {
                    diff_unknown(x, y, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

fn changed_paths(old: &Value, new: &Value, path: &str, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let (x, y) = (
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                );
                if x != y {
                    changed_paths(x, y, &join(path, k), out);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                if x != y {
                    changed_paths(x, y, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {
            if old != new {
                out.push(path.to_string());
            }
        }
    }
}

const FIELD_IS_IMMUTABLE: &str = "field is immutable";

fn selector_immutable(
    old: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    new: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> Vec<FieldError> {
    if old == new {
        Vec::new()
    } else {
        vec![FieldError::invalid(
            "spec.selector",
            render_label_selector(new),
            FIELD_IS_IMMUTABLE,
        )]
    }
}

fn update_persistent_volume_claim(old: &Value, new: &Value) -> Vec<FieldError> {
    let storage = |v: &Value| {
        v.pointer("/spec/resources/requests/storage")
            .and_then(Value::as_str)
            .and_then(|q| crate::quantity::parse_quantity(q).ok())
            .map(|q| q.as_bytes())
    };
    let bound = old
        .pointer("/spec/volumeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    if storage(old) != storage(new) {
        if !bound {
            return vec![FieldError::forbidden(
                "spec",
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
            )];
        }
        if storage(new) < storage(old) {
            return vec![FieldError::forbidden(
                "spec.resources.requests.storage",
                "field can not be less than previous value",
            )];
        }
    }
    let strip = |v: &Value| {
        let mut spec = v.get("spec").cloned().unwrap_or_default();
        if let Some(s) = spec.as_object_mut() {
            s.remove("resources");
            s.remove("volumeAttributesClassName");
            // Binding fills in an empty volumeName once.
            if v.pointer("/spec/volumeName").is_some()
                && old.pointer("/spec/volumeName").is_none_or(|n| n == "")
            {
                s.remove("volumeName");
            }
        }
        spec
    };
    if strip(old) == strip(new) {
        return Vec::new();
    }
    vec![FieldError::forbidden(
        "spec",
        "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
    )]
}

fn update_storage_class(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (field, what) in [
        ("parameters", "parameters"),
        ("provisioner", "provisioner"),
        ("reclaimPolicy", "reclaimPolicy"),
        ("volumeBindingMode", "volumeBindingMode"),
    ] {
        if old.get(field) != new.get(field) {
            errs.push(FieldError::forbidden(
                field,
                format!("updates to {what} are forbidden."),
            ));
        }
    }
    errs
}

fn update_controller_revision(old: &Value, new: &Value) -> Vec<FieldError> {
    if old.get("data") == new.get("data") {
        return Vec::new();
    }
    let rendered = new.get("data").map(Value::to_string).unwrap_or_default();
    vec![FieldError::invalid("data", rendered, FIELD_IS_IMMUTABLE)]
}

fn update_deployment(old: &Value, new: &Value) -> Vec<FieldError> {
    let (Some(o), Some(n)) = (
        decode_defaulted(old, defaults::default_deployment),
        decode_defaulted(new, defaults::default_deployment),
    ) else {
        return Vec::new();
    };
    let (o, n): (apps::Deployment, apps::Deployment) = (o, n);
    selector_immutable(
        &o.spec.unwrap_or_default().selector,
        &n.spec.unwrap_or_default().selector,
    )
}

fn update_replica_set(old: &Value, new: &Value) -> Vec<FieldError> {
    let (Some(o), Some(n)) = (
        decode_defaulted::<apps::ReplicaSet>(old, defaults::default_replica_set),
        decode_defaulted::<apps::ReplicaSet>(new, defaults::default_replica_set),
    ) else {
        return Vec::new();
    };
    selector_immutable(
        &o.spec.unwrap_or_default().selector,
        &n.spec.unwrap_or_default().selector,
    )
}

fn update_daemon_set(old: &Value, new: &Value) -> Vec<FieldError> {
    let (Some(o), Some(n)) = (
        decode_defaulted::<apps::DaemonSet>(old, defaults::default_daemon_set),
        decode_defaulted::<apps::DaemonSet>(new, defaults::default_daemon_set),
    ) else {
        return Vec::new();
    };
    selector_immutable(
        &o.spec.unwrap_or_default().selector,
        &n.spec.unwrap_or_default().selector,
    )
}

fn update_stateful_set(old: &Value, new: &Value) -> Vec<FieldError> {
    let (Some(o), Some(n)) = (
        decode_defaulted::<apps::StatefulSet>(old, defaults::default_stateful_set),
        decode_defaulted::<apps::StatefulSet>(new, defaults::default_stateful_set),
    ) else {
        return Vec::new();
    };
    let strip = |s: Option<apps::StatefulSetSpec>| {
        let mut s = s.unwrap_or_default();
        s.replicas = None;
        s.ordinals = None;
        s.template = Default::default();
        s.update_strategy = None;
        s.revision_history_limit = None;
        s.persistent_volume_claim_retention_policy = None;
        s.min_ready_seconds = None;
        s
    };
    if strip(o.spec) != strip(n.spec) {
        return vec![FieldError::forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        )];
    }
    Vec::new()
}

fn update_job(old: &Value, new: &Value) -> Vec<FieldError> {
    let (Some(o), Some(n)) = (
        decode_defaulted::<batch::Job>(old, defaults::default_job),
        decode_defaulted::<batch::Job>(new, defaults::default_job),
    ) else {
        return Vec::new();
    };
    let (os, ns) = (o.spec.unwrap_or_default(), n.spec.unwrap_or_default());
    let mut errs = Vec::new();
    // A selector still to be generated (absent in the new object) is not a change.
    if let Some(new_sel) = &ns.selector {
        if os.selector.as_ref() != Some(new_sel) {
            errs.push(FieldError::invalid(
                "spec.selector",
                render_label_selector(new_sel),
                FIELD_IS_IMMUTABLE,
            ));
        }
    }
    let mut old_t = os.template.clone();
    let mut new_t = ns.template.clone();
    // Labels the server generates are not the user's to compare.
    if ns.selector.is_none() {
        for t in [&mut old_t, &mut new_t] {
            if let Some(l) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
                for k in [
                    "job-name",
                    "controller-uid",
                    "batch.kubernetes.io/job-name",
                    "batch.kubernetes.io/controller-uid",
                ] {
                    l.remove(k);
                }
            }
        }
    }
    if old_t != new_t {
        let rendered = serde_json::to_string(&ns.template).unwrap_or_default();
        errs.push(FieldError::invalid(
            "spec.template",
            format!("core.PodTemplateSpec{rendered}"),
            FIELD_IS_IMMUTABLE,
        ));
    }
    if os.completion_mode != ns.completion_mode {
        errs.push(FieldError::invalid_str(
            "spec.completionMode",
            ns.completion_mode.as_deref().unwrap_or(""),
            FIELD_IS_IMMUTABLE,
        ));
    }
    if ns.completion_mode.as_deref() != Some("Indexed") && os.completions != ns.completions {
        errs.push(FieldError::invalid(
            "spec.completions",
            ns.completions.map_or("null".to_string(), |c| c.to_string()),
            FIELD_IS_IMMUTABLE,
        ));
    }
    errs
}

fn update_service(old: &Value, new: &Value) -> Vec<FieldError> {
    let (Some(o), Some(n)) = (
        decode_defaulted::<core::Service>(old, defaults::default_service),
        decode_defaulted::<core::Service>(new, defaults::default_service),
    ) else {
        return Vec::new();
    };
    let (os, ns) = (o.spec.unwrap_or_default(), n.spec.unwrap_or_default());
    if os.type_.as_deref() == Some("ExternalName") || ns.type_.as_deref() == Some("ExternalName") {
        return Vec::new();
    }
    let primary = |s: &core::ServiceSpec| -> String {
        s.cluster_ips
            .as_ref()
            .and_then(|v| v.first().cloned())
            .or_else(|| s.cluster_ip.clone())
            .unwrap_or_default()
    };
    let (op, np) = (primary(&os), primary(&ns));
    if !op.is_empty() && !np.is_empty() && op != np {
        let ips = ns.cluster_ips.clone().unwrap_or_else(|| vec![np.clone()]);
        return vec![FieldError::invalid(
            "spec.clusterIPs[0]",
            render_string_slice(Some(&ips)),
            "may not change once set",
        )];
    }
    Vec::new()
}

fn update_endpoint_slice(old: &Value, new: &Value) -> Vec<FieldError> {
    let (Some(o), Some(n)) = (
        decode_defaulted::<discovery::EndpointSlice>(old, defaults::default_endpoint_slice),
        decode_defaulted::<discovery::EndpointSlice>(new, defaults::default_endpoint_slice),
    ) else {
        return Vec::new();
    };
    if o.address_type != n.address_type {
        return vec![FieldError::invalid_str(
            "addressType",
            &n.address_type,
            FIELD_IS_IMMUTABLE,
        )];
    }
    Vec::new()
}

fn immutable_data_errors(
    old_immutable: bool,
    new_immutable: bool,
    data_same: bool,
    binary_same: bool,
    binary_name: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if old_immutable {
        if !new_immutable {
            errs.push(FieldError::forbidden(
                "immutable",
                "field is immutable when `immutable` is set",
            ));
        }
        if !data_same {
            errs.push(FieldError::forbidden(
                "data",
                "field is immutable when `immutable` is set",
            ));
        }
        if !binary_same {
            errs.push(FieldError::forbidden(
                binary_name,
                "field is immutable when `immutable` is set",
            ));
        }
    }
    errs
}

fn update_config_map(old: &Value, new: &Value) -> Vec<FieldError> {
    fn nothing(_: &mut core::ConfigMap) {}
    let (Some(o), Some(n)) = (
        decode_defaulted::<core::ConfigMap>(old, nothing),
        decode_defaulted::<core::ConfigMap>(new, nothing),
    ) else {
        return Vec::new();
    };
    let norm =
        |m: &Option<std::collections::BTreeMap<String, String>>| m.clone().unwrap_or_default();
    let normb = |m: &Option<std::collections::BTreeMap<String, k8s_openapi::ByteString>>| {
        m.clone().unwrap_or_default()
    };
    immutable_data_errors(
        o.immutable == Some(true),
        n.immutable == Some(true),
        norm(&o.data) == norm(&n.data),
        normb(&o.binary_data) == normb(&n.binary_data),
        "binaryData",
    )
}

fn update_secret(old: &Value, new: &Value) -> Vec<FieldError> {
    let (Some(o), Some(n)) = (
        decode_defaulted::<core::Secret>(old, defaults::default_secret),
        decode_defaulted::<core::Secret>(new, defaults::default_secret),
    ) else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    if o.type_ != n.type_ {
        errs.push(FieldError::invalid_str(
            "type",
            n.type_.as_deref().unwrap_or(""),
            FIELD_IS_IMMUTABLE,
        ));
    }
    let normb = |m: &Option<std::collections::BTreeMap<String, k8s_openapi::ByteString>>| {
        m.clone().unwrap_or_default()
    };
    errs.extend(immutable_data_errors(
        o.immutable == Some(true),
        n.immutable == Some(true),
        normb(&o.data) == normb(&n.data),
        true,
        "stringData",
    ));
    errs
}

/// The message Kubernetes gives when a pod update changes more than it may.
pub const POD_UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

fn update_pod(old: &Value, new: &Value) -> Vec<FieldError> {
    let (Some(o), Some(n)) = (
        decode_defaulted::<core::Pod>(old, defaults::default_pod),
        decode_defaulted::<core::Pod>(new, defaults::default_pod),
    ) else {
        return Vec::new();
    };
    let (os, mut ns) = (o.spec.unwrap_or_default(), n.spec.unwrap_or_default());
    let mut errs = Vec::new();
    // activeDeadlineSeconds may be set, or lowered, never raised or removed.
    match (os.active_deadline_seconds, ns.active_deadline_seconds) {
        (Some(_), None) => errs.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            "null",
            "must not update from a positive integer to nil value",
        )),
        (Some(a), Some(b)) if b > a => errs.push(FieldError::invalid_int(
            "spec.activeDeadlineSeconds",
            b,
            "must be less than or equal to previous value",
        )),
        _ => {}
    }
    // Munge the allowed changes back to the old values, then compare.
    for (i, c) in ns.containers.iter_mut().enumerate() {
        if let Some(oc) = os.containers.get(i) {
            c.image = oc.image.clone();
        }
    }
    if let (Some(nic), Some(oic)) = (ns.init_containers.as_mut(), os.init_containers.as_ref()) {
        for (i, c) in nic.iter_mut().enumerate() {
            if let Some(oc) = oic.get(i) {
                c.image = oc.image.clone();
            }
        }
    }
    ns.active_deadline_seconds = os.active_deadline_seconds;
    if os.termination_grace_period_seconds.is_some_and(|t| t < 0)
        && ns.termination_grace_period_seconds == Some(1)
    {
        ns.termination_grace_period_seconds = os.termination_grace_period_seconds;
    }
    // Tolerations: every old one must remain (tolerationSeconds may shrink); new ones may be
    // added.
    let old_tol = os.tolerations.clone().unwrap_or_default();
    let new_tol = ns.tolerations.clone().unwrap_or_default();
    let same = |a: &core::Toleration, b: &core::Toleration| {
        a.key == b.key && a.operator == b.operator && a.value == b.value && a.effect == b.effect
    };
    let all_kept = old_tol.iter().all(|ot| {
        new_tol.iter().any(|nt| {
            same(ot, nt)
                && match (ot.toleration_seconds, nt.toleration_seconds) {
                    (None, None) => true,
                    (Some(a), Some(b)) => b <= a,
                    _ => false,
                }
        })
    });
    if all_kept {
        ns.tolerations = os.tolerations.clone();
    }
    // Scheduling gates may only be removed.
    if let Some(ng) = &ns.scheduling_gates {
        let og = os.scheduling_gates.clone().unwrap_or_default();
        if ng.iter().all(|g| og.contains(g)) {
            ns.scheduling_gates = os.scheduling_gates.clone();
        }
    } else if os.scheduling_gates.is_some() {
        ns.scheduling_gates = os.scheduling_gates.clone();
    }
    if ns != os {
        let mut paths = Vec::new();
        changed_paths(
            &serde_json::to_value(&os).unwrap_or_default(),
            &serde_json::to_value(&ns).unwrap_or_default(),
            "spec",
            &mut paths,
        );
        let mut detail = POD_UPDATE_FORBIDDEN.to_string();
        if !paths.is_empty() {
            detail.push_str("\n  changed: ");
            detail.push_str(&paths.join(", "));
        }
        errs.push(FieldError::forbidden("spec", detail));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed_of(group: &str, kind: &str) -> Typed {
        match (group, kind) {
            ("", "Pod") => POD,
            ("", "Service") => SERVICE,
            ("", "Endpoints") => ENDPOINTS,
            ("", "ConfigMap") => CONFIG_MAP,
            ("", "Secret") => SECRET,
            ("", "Namespace") => NAMESPACE,
            ("", "Node") => NODE,
            ("", "Event") => EVENT,
            ("", "ServiceAccount") => SERVICE_ACCOUNT,
            ("", "Binding") => BINDING,
            ("apps", "Deployment") => DEPLOYMENT,
            ("apps", "ReplicaSet") => REPLICA_SET,
            ("", "ReplicationController") => REPLICATION_CONTROLLER,
            ("apps", "DaemonSet") => DAEMON_SET,
            ("apps", "StatefulSet") => STATEFUL_SET,
            ("batch", "Job") => JOB,
            ("batch", "CronJob") => CRON_JOB,
            ("networking.k8s.io", "Ingress") => INGRESS,
            ("networking.k8s.io", "IngressClass") => INGRESS_CLASS,
            ("discovery.k8s.io", "EndpointSlice") => ENDPOINT_SLICE,
            ("coordination.k8s.io", "Lease") => LEASE,
            ("autoscaling", "Scale") => SCALE,
            _ => panic!("no typed form for {group}/{kind}"),
        }
    }

    fn admit(group: &str, kind: &str, obj: Value) -> Result<Value, AdmitError> {
        typed_of(group, kind).admit(obj)
    }

    fn unknown_fields(group: &str, kind: &str, obj: &Value) -> Vec<String> {
        typed_of(group, kind).unknown_fields(obj)
    }

    fn validate_update(group: &str, kind: &str, old: &Value, new: &Value) -> Vec<FieldError> {
        typed_of(group, kind).validate_update(old, new)
    }
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx:1.25",
                        "ports": [{"containerPort": 80}],
                        "resources": {"limits": {"cpu": 1, "memory": "64Mi"}}}]}
                }
            }
        })
    }

    #[test]
    fn a_replication_controller_takes_its_selector_from_the_template() {
        let rc = |selector: Value| {
            json!({
                "apiVersion": "v1", "kind": "ReplicationController",
                "metadata": {"name": "nginx"},
                "spec": {"selector": selector, "template": {
                    "metadata": {"labels": {"app": "nginx"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}}
            })
        };
        let out = admit("", "ReplicationController", rc(Value::Null)).unwrap();
        assert_eq!(out["spec"]["selector"], json!({"app": "nginx"}));
        assert_eq!(out["metadata"]["labels"], json!({"app": "nginx"}));
        assert_eq!(out["spec"]["replicas"], 1);
        let err = admit("", "ReplicationController", rc(json!({"app": "other"}))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"nginx\"}: `selector` does not match template `labels`"
        );
    }

    #[test]
    fn admit_defaults_and_round_trips() {
        let out = admit("apps", "Deployment", deployment()).unwrap();
        assert_eq!(out["apiVersion"], "apps/v1");
        assert_eq!(out["kind"], "Deployment");
        assert_eq!(out["spec"]["replicas"], 1);
        assert_eq!(out["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        let c = &out["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(c["resources"]["limits"]["cpu"], "1");
        assert_eq!(out["spec"]["template"]["spec"]["restartPolicy"], "Always");
    }

    #[test]
    fn admit_fills_api_version_and_kind() {
        let out = admit(
            "",
            "ConfigMap",
            json!({"metadata": {"name": "c"}, "data": {"a": "b"}}),
        )
        .unwrap();
        assert_eq!(out["apiVersion"], "v1");
        assert_eq!(out["kind"], "ConfigMap");
    }

    #[test]
    fn decode_error_has_path_and_go_wording() {
        let mut d = deployment();
        d["spec"]["replicas"] = json!("3");
        match admit("apps", "Deployment", d).unwrap_err() {
            AdmitError::Decode { path, message } => {
                assert_eq!(path, "spec.replicas");
                assert_eq!(
                    message,
                    "json: cannot unmarshal string into Go struct field Deployment.spec.replicas of type int32"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        let mut d = deployment();
        d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = json!("x");
        match admit("apps", "Deployment", d).unwrap_err() {
            AdmitError::Decode { path, .. } => {
                assert_eq!(
                    path,
                    "spec.template.spec.containers[0].ports[0].containerPort"
                )
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn invalid_objects_report_all_errors() {
        let mut d = deployment();
        d["spec"]["replicas"] = json!(-1);
        d["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"});
        d["metadata"]["name"] = json!("Web");
        let AdmitError::Invalid(errs) = admit("apps", "Deployment", d).unwrap_err() else {
            panic!("expected Invalid");
        };
        let msgs: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert!(
            msgs.contains(
                &"spec.replicas: Invalid value: -1: must be greater than or equal to 0".to_string()
            ),
            "{msgs:#?}"
        );
        assert!(msgs.contains(&"spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`".to_string()), "{msgs:#?}");
        assert!(
            msgs.iter().any(|m| m.starts_with(
                "metadata.name: Invalid value: \"Web\": a lowercase RFC 1123 subdomain"
            )),
            "{msgs:#?}"
        );
    }

    #[test]
    fn unknown_field_paths() {
        let mut d = deployment();
        d["spec"]["template"]["spec"]["containers"][0]["imagee"] = json!("x");
        d["spec"]["foo"] = json!(1);
        d["metadata"]["creationTimestamp"] = Value::Null;
        let mut u = unknown_fields("apps", "Deployment", &d);
        u.sort();
        assert_eq!(
            u,
            vec![
                "spec.foo".to_string(),
                "spec.template.spec.containers[0].imagee".to_string()
            ]
        );
        assert!(unknown_fields("apps", "Deployment", &deployment()).is_empty());
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"a": "b"}, "data": {"c": "ZA=="}});
        assert!(unknown_fields("", "Secret", &secret).is_empty());
    }

    #[test]
    fn immutable_selector() {
        let old = admit("apps", "Deployment", deployment()).unwrap();
        let mut new = old.clone();
        new["spec"]["selector"]["matchLabels"] = json!({"app": "web2"});
        new["spec"]["template"]["metadata"]["labels"] = json!({"app": "web2"});
        let errs = validate_update("apps", "Deployment", &old, &new);
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
        );
        let mut scaled = old.clone();
        scaled["spec"]["replicas"] = json!(3);
        assert!(validate_update("apps", "Deployment", &old, &scaled).is_empty());
    }

    #[test]
    fn pod_updates() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}});
        let old = admit("", "Pod", pod).unwrap();
        let mut image = old.clone();
        image["spec"]["containers"][0]["image"] = json!("nginx:2");
        assert!(validate_update("", "Pod", &old, &image).is_empty());
        let mut tol = old.clone();
        tol["spec"]["tolerations"] = json!([{"key": "k", "operator": "Exists"}]);
        assert!(validate_update("", "Pod", &old, &tol).is_empty());
        let mut bad = old.clone();
        bad["spec"]["containers"][0]["name"] = json!("d");
        let errs = validate_update("", "Pod", &old, &bad);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].to_string().starts_with("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"));
        assert!(errs[0].detail.contains("spec.containers[0].name"));
    }

    #[test]
    fn service_cluster_ip_and_secret_type() {
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"clusterIP": "10.96.0.5", "ports": [{"port": 80}]}});
        let old = admit("", "Service", svc).unwrap();
        let mut new = old.clone();
        new["spec"]["clusterIP"] = json!("10.96.0.6");
        new["spec"]["clusterIPs"] = json!(["10.96.0.6"]);
        let errs = validate_update("", "Service", &old, &new);
        assert_eq!(
            errs[0].to_string(),
            "spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.6\"}: may not change once set"
        );
        let mut keep = old.clone();
        keep["spec"].as_object_mut().unwrap().remove("clusterIP");
        keep["spec"].as_object_mut().unwrap().remove("clusterIPs");
        assert!(validate_update("", "Service", &old, &keep).is_empty());

        let s = json!({"metadata": {"name": "s"}, "type": "Opaque", "immutable": true, "data": {"a": "Yg=="}});
        let mut t = s.clone();
        t["type"] = json!("kubernetes.io/basic-auth");
        t["data"] = json!({"username": "Yg=="});
        t["immutable"] = json!(false);
        let errs: Vec<String> = validate_update("", "Secret", &s, &t)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errs,
            vec![
                "type: Invalid value: \"kubernetes.io/basic-auth\": field is immutable".to_string(),
                "immutable: Forbidden: field is immutable when `immutable` is set".to_string(),
                "data: Forbidden: field is immutable when `immutable` is set".to_string(),
            ]
        );
    }

    #[test]
    fn job_selector_generated_from_uid() {
        let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi", "uid": "abc"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "perl"}]}}}});
        let out = admit("batch", "Job", job).unwrap();
        assert_eq!(
            out["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
            "abc"
        );
        assert_eq!(
            out["spec"]["template"]["metadata"]["labels"]["job-name"],
            "pi"
        );
        assert_eq!(
            out["metadata"]["labels"]["batch.kubernetes.io/job-name"],
            "pi"
        );
        let no_rp = json!({"metadata": {"name": "pi"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "perl"}]}}}});
        let AdmitError::Invalid(errs) = admit("batch", "Job", no_rp).unwrap_err() else {
            panic!()
        };
        assert_eq!(errs[0].to_string(), "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"");
    }
}
