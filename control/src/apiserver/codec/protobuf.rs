//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`).
//!
//! kubectl's typed clients (`kubectl create configmap|secret|deployment|...`) POST objects
//! as `k8s\0` followed by a `runtime.Unknown` envelope whose `raw` field holds the typed
//! message. The store keeps JSON, so [`decode`] turns the message into exactly the JSON the
//! Go types would marshal to: camelCase names, `omitempty` honoured, pointer fields kept
//! even when zero (`replicas: 0`, `automountServiceAccountToken: false`), non-pointer
//! structs always present (`status: {}`, `resources: {}`), bytes as base64, times as
//! RFC 3339, quantities as strings and IntOrString as number or string.
//!
//! The per-type field tables below mirror the Go json tags of k8s.io/api and
//! k8s.io/apimachinery v0.35 (the release `k8s-pb` 0.9 is built from), matched to the
//! protobuf messages by field number.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use prost::Message as _;
use serde_json::{Map, Value};

use k8s_pb::api::apps::v1 as apps_v1;
use k8s_pb::api::authentication::v1 as authentication_v1;
use k8s_pb::api::authorization::v1 as authorization_v1;
use k8s_pb::api::autoscaling::v1 as autoscaling_v1;
use k8s_pb::api::batch::v1 as batch_v1;
use k8s_pb::api::certificates::v1 as certificates_v1;
use k8s_pb::api::core::v1 as core_v1;
use k8s_pb::api::networking::v1 as networking_v1;
use k8s_pb::api::policy::v1 as policy_v1;
use k8s_pb::api::rbac::v1 as rbac_v1;
use k8s_pb::api::scheduling::v1 as scheduling_v1;
use k8s_pb::apimachinery::pkg::api::resource;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta_v1;
use k8s_pb::apimachinery::pkg::runtime;
use k8s_pb::apimachinery::pkg::util::intstr;

/// The four bytes every Kubernetes protobuf body starts with.
const MAGIC: &[u8] = b"k8s\0";

/// True for `application/vnd.kubernetes.protobuf` (parameters allowed).
pub fn is_protobuf(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/vnd.kubernetes.protobuf")
}

/// Why a protobuf body could not be turned into JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The body does not start with `k8s\0`.
    MissingMagic,
    /// The envelope or the object is not valid protobuf for its type.
    Malformed(String),
    /// The object's kind has no protobuf decoding here; the server answers 415.
    UnknownKind { api_version: String, kind: String },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::MissingMagic => {
                f.write_str("protobuf body does not start with the \"k8s\\0\" prefix")
            }
            DecodeError::Malformed(msg) => write!(f, "malformed protobuf body: {msg}"),
            DecodeError::UnknownKind { api_version, kind } => write!(
                f,
                "protobuf is not supported for kind {kind:?} (apiVersion {api_version:?}); send JSON"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decode a protobuf request body (magic + runtime.Unknown) into the object's JSON, with apiVersion and kind set from typeMeta.
pub fn decode(body: &[u8]) -> Result<Value, DecodeError> {
    let rest = body.strip_prefix(MAGIC).ok_or(DecodeError::MissingMagic)?;
    let unknown = runtime::Unknown::decode(rest)
        .map_err(|e| DecodeError::Malformed(format!("runtime.Unknown: {e}")))?;
    if let Some(enc) = unknown
        .content_encoding
        .as_deref()
        .filter(|e| !e.is_empty())
    {
        return Err(DecodeError::Malformed(format!(
            "unsupported contentEncoding {enc:?}"
        )));
    }
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let fields = match decode_kind(&api_version, &kind, &raw) {
        Some(result) => result?,
        None => return Err(DecodeError::UnknownKind { api_version, kind }),
    };
    // kind and apiVersion lead, as in the Go encoding (visible with preserve_order).
    let mut object = Map::new();
    object.insert("kind".into(), Value::String(kind));
    object.insert("apiVersion".into(), Value::String(api_version));
    if let Value::Object(fields) = fields {
        object.extend(fields);
    }
    Ok(Value::Object(object))
}

fn typed<T: prost::Message + Default + ToJson>(raw: &[u8]) -> Result<Value, DecodeError> {
    let message = T::decode(raw).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    Ok(message.to_json())
}

/// The JSON form of a protobuf message or field value, as Go's encoding/json writes it.
trait ToJson {
    fn to_json(&self) -> Value;
}

impl ToJson for String {
    fn to_json(&self) -> Value {
        Value::String(self.clone())
    }
}

impl ToJson for bool {
    fn to_json(&self) -> Value {
        Value::Bool(*self)
    }
}

impl ToJson for i32 {
    fn to_json(&self) -> Value {
        Value::from(*self)
    }
}

impl ToJson for i64 {
    fn to_json(&self) -> Value {
        Value::from(*self)
    }
}

/// Go marshals `[]byte` as standard base64.
impl ToJson for Vec<u8> {
    fn to_json(&self) -> Value {
        Value::String(base64::engine::general_purpose::STANDARD.encode(self))
    }
}

impl ToJson for meta_v1::Time {
    fn to_json(&self) -> Value {
        match timestamp(self.seconds, self.nanos) {
            Some((secs, _)) => Value::String(rfc3339(secs, None)),
            None => Value::Null,
        }
    }
}

impl ToJson for meta_v1::MicroTime {
    fn to_json(&self) -> Value {
        match timestamp(self.seconds, self.nanos) {
            Some((secs, nanos)) => Value::String(rfc3339(secs, Some(nanos / 1000))),
            None => Value::Null,
        }
    }
}

impl ToJson for meta_v1::Duration {
    fn to_json(&self) -> Value {
        Value::String(go_duration(self.duration.unwrap_or(0)))
    }
}

/// managedFields' fieldsV1 carries its JSON verbatim.
impl ToJson for meta_v1::FieldsV1 {
    fn to_json(&self) -> Value {
        raw_json(self.raw.as_deref())
    }
}

impl ToJson for runtime::RawExtension {
    fn to_json(&self) -> Value {
        raw_json(self.raw.as_deref())
    }
}

/// The protobuf form already holds the canonical string; a zero Quantity prints as "0".
impl ToJson for resource::Quantity {
    fn to_json(&self) -> Value {
        match self.string.as_deref() {
            Some(s) if !s.is_empty() => Value::String(s.to_owned()),
            _ => Value::String("0".into()),
        }
    }
}

impl ToJson for intstr::IntOrString {
    fn to_json(&self) -> Value {
        if self.r#type == Some(1) {
            Value::String(self.str_val.clone().unwrap_or_default())
        } else {
            Value::from(self.int_val.unwrap_or(0))
        }
    }
}

// ExtraValue is a named `[]string` in Go, so it marshals as a bare array.
impl ToJson for authentication_v1::ExtraValue {
    fn to_json(&self) -> Value {
        self.items.to_json()
    }
}

impl ToJson for authorization_v1::ExtraValue {
    fn to_json(&self) -> Value {
        self.items.to_json()
    }
}

impl ToJson for certificates_v1::ExtraValue {
    fn to_json(&self) -> Value {
        self.items.to_json()
    }
}

impl<T: ToJson> ToJson for [T] {
    fn to_json(&self) -> Value {
        Value::Array(self.iter().map(ToJson::to_json).collect())
    }
}

impl<T: ToJson> ToJson for BTreeMap<String, T> {
    fn to_json(&self) -> Value {
        Value::Object(self.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
    }
}

fn raw_json(raw: Option<&[u8]>) -> Value {
    raw.and_then(|raw| serde_json::from_slice(raw).ok())
        .unwrap_or(Value::Null)
}

/// Seconds and nanoseconds of a set time; `None` for Go's zero time, which travels as an
/// empty message (or as year 1 from older encoders).
fn timestamp(seconds: Option<i64>, nanos: Option<i32>) -> Option<(i64, u32)> {
    const GO_ZERO_TIME: i64 = -62_135_596_800;
    let (secs, nanos) = (seconds.unwrap_or(0), nanos.unwrap_or(0).max(0) as u32);
    if (secs == 0 || secs == GO_ZERO_TIME) && nanos == 0 {
        return None;
    }
    Some((secs, nanos))
}

/// `2006-01-02T15:04:05Z`, or with `.000000` microseconds for MicroTime.
fn rfc3339(secs: i64, micros: Option<u32>) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant), valid for the whole proleptic Gregorian range.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rem / 3600, rem / 60 % 60, rem % 60);
    match micros {
        Some(us) => format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{us:06}Z"),
        None => format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z"),
    }
}

/// Go's `time.Duration.String()`: "1h2m3.5s", "150ms", "0s".
fn go_duration(nanos: i64) -> String {
    fn frac(v: u64, prec: u32) -> (String, u64) {
        let p = 10u64.pow(prec);
        let f = v % p;
        if f == 0 {
            return (String::new(), v / p);
        }
        let digits = format!("{f:0width$}", width = prec as usize);
        (format!(".{}", digits.trim_end_matches('0')), v / p)
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    if u == 0 {
        return "0s".into();
    }
    if u < 1_000_000_000 {
        let (prec, unit) = if u < 1_000 {
            (0, "ns")
        } else if u < 1_000_000 {
            (3, "µs")
        } else {
            (6, "ms")
        };
        let (f, whole) = frac(u, prec);
        return format!("{sign}{whole}{f}{unit}");
    }
    let (f, secs) = frac(u, 9);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{sign}{s}{f}s"),
        (0, _) => format!("{sign}{m}m{s}{f}s"),
        _ => format!("{sign}{h}h{m}m{s}{f}s"),
    }
}

// Field writers, one per Go field shape. Go marshals every non-pointer field into
// protobuf, so presence alone says nothing; the Go json tag decides what is written.

/// Pointer with `omitempty`: written whenever set, even if zero.
fn opt<T: ToJson>(o: &mut Map<String, Value>, key: &str, v: &Option<T>) {
    if let Some(v) = v {
        o.insert(key.into(), v.to_json());
    }
}

/// Pointer without `omitempty`: `null` when unset.
fn opt_or_null<T: ToJson>(o: &mut Map<String, Value>, key: &str, v: &Option<T>) {
    o.insert(key.into(), v.as_ref().map_or(Value::Null, ToJson::to_json));
}

/// Scalar with `omitempty` (or struct with `omitzero`): skipped when zero.
fn nonzero<T: ToJson>(o: &mut Map<String, Value>, key: &str, v: &Option<T>) {
    let Some(v) = v else { return };
    let v = v.to_json();
    let zero = match &v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(_) | Value::Object(_) => false,
    };
    if !zero {
        o.insert(key.into(), v);
    }
}

/// Scalar without `omitempty`, or a non-pointer struct (Go never omits those).
fn req<T: ToJson + Default>(o: &mut Map<String, Value>, key: &str, v: &Option<T>) {
    let v = match v {
        Some(v) => v.to_json(),
        None => T::default().to_json(),
    };
    o.insert(key.into(), v);
}

/// Slice with `omitempty`.
fn list<T: ToJson>(o: &mut Map<String, Value>, key: &str, v: &[T]) {
    if !v.is_empty() {
        o.insert(key.into(), v.to_json());
    }
}

/// Slice without `omitempty`: protobuf decodes an empty list as nil, which is `null`.
fn list_or_null<T: ToJson>(o: &mut Map<String, Value>, key: &str, v: &[T]) {
    let v = if v.is_empty() {
        Value::Null
    } else {
        v.to_json()
    };
    o.insert(key.into(), v);
}

/// Map with `omitempty`.
fn map<T: ToJson>(o: &mut Map<String, Value>, key: &str, v: &BTreeMap<String, T>) {
    if !v.is_empty() {
        o.insert(key.into(), v.to_json());
    }
}

/// Embedded struct (`json:",inline"`): its fields join the parent object.
fn inline<T: ToJson + Default>(o: &mut Map<String, Value>, v: &Option<T>) {
    let v = match v {
        Some(v) => v.to_json(),
        None => T::default().to_json(),
    };
    if let Value::Object(fields) = v {
        o.extend(fields);
    }
}

/// `ToJson` for a message from its field writers; `s` is the message, `o` the object.
macro_rules! fields {
    ($ty:ty, |$s:ident, $o:ident| $body:block) => {
        impl ToJson for $ty {
            fn to_json(&self) -> Value {
                let $s = self;
                let mut object = Map::new();
                let $o = &mut object;
                $body
                Value::Object(object)
            }
        }
    };
}

// Kinds reachable from a request body, then one field table per message in Go struct
// order, each line naming the Go field shape that decides how it is written.

/// The `(apiVersion, kind)` pairs of `decode_kind`, for its test.
#[cfg(test)]
const KINDS: &[(&str, &str)] = &[
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Namespace"),
    ("v1", "ServiceAccount"),
    ("v1", "Service"),
    ("v1", "Pod"),
    ("v1", "ResourceQuota"),
    ("v1", "LimitRange"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "Binding"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "ReplicaSet"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("networking.k8s.io/v1", "Ingress"),
    ("networking.k8s.io/v1", "IngressClass"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("scheduling.k8s.io/v1", "PriorityClass"),
    ("policy/v1", "PodDisruptionBudget"),
    ("policy/v1", "Eviction"),
    ("authentication.k8s.io/v1", "TokenRequest"),
    ("authentication.k8s.io/v1", "SelfSubjectReview"),
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"),
    ("authorization.k8s.io/v1", "SubjectAccessReview"),
    ("certificates.k8s.io/v1", "CertificateSigningRequest"),
    ("autoscaling/v1", "HorizontalPodAutoscaler"),
    ("autoscaling/v1", "Scale"),
];

/// Decodes `raw` as the message for `(apiVersion, kind)`; `None` for kinds not covered.
fn decode_kind(api_version: &str, kind: &str, raw: &[u8]) -> Option<Result<Value, DecodeError>> {
    Some(match (api_version, kind) {
        ("v1", "ConfigMap") => typed::<core_v1::ConfigMap>(raw),
        ("v1", "Secret") => typed::<core_v1::Secret>(raw),
        ("v1", "Namespace") => typed::<core_v1::Namespace>(raw),
        ("v1", "ServiceAccount") => typed::<core_v1::ServiceAccount>(raw),
        ("v1", "Service") => typed::<core_v1::Service>(raw),
        ("v1", "Pod") => typed::<core_v1::Pod>(raw),
        ("v1", "ResourceQuota") => typed::<core_v1::ResourceQuota>(raw),
        ("v1", "LimitRange") => typed::<core_v1::LimitRange>(raw),
        ("v1", "PersistentVolumeClaim") => typed::<core_v1::PersistentVolumeClaim>(raw),
        ("v1", "Binding") => typed::<core_v1::Binding>(raw),
        ("apps/v1", "Deployment") => typed::<apps_v1::Deployment>(raw),
        ("apps/v1", "ReplicaSet") => typed::<apps_v1::ReplicaSet>(raw),
        ("apps/v1", "StatefulSet") => typed::<apps_v1::StatefulSet>(raw),
        ("apps/v1", "DaemonSet") => typed::<apps_v1::DaemonSet>(raw),
        ("batch/v1", "Job") => typed::<batch_v1::Job>(raw),
        ("batch/v1", "CronJob") => typed::<batch_v1::CronJob>(raw),
        ("networking.k8s.io/v1", "Ingress") => typed::<networking_v1::Ingress>(raw),
        ("networking.k8s.io/v1", "IngressClass") => typed::<networking_v1::IngressClass>(raw),
        ("networking.k8s.io/v1", "NetworkPolicy") => typed::<networking_v1::NetworkPolicy>(raw),
        ("rbac.authorization.k8s.io/v1", "Role") => typed::<rbac_v1::Role>(raw),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => typed::<rbac_v1::RoleBinding>(raw),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => typed::<rbac_v1::ClusterRole>(raw),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            typed::<rbac_v1::ClusterRoleBinding>(raw)
        }
        ("scheduling.k8s.io/v1", "PriorityClass") => typed::<scheduling_v1::PriorityClass>(raw),
        ("policy/v1", "PodDisruptionBudget") => typed::<policy_v1::PodDisruptionBudget>(raw),
        ("policy/v1", "Eviction") => typed::<policy_v1::Eviction>(raw),
        ("authentication.k8s.io/v1", "TokenRequest") => {
            typed::<authentication_v1::TokenRequest>(raw)
        }
        ("authentication.k8s.io/v1", "SelfSubjectReview") => {
            typed::<authentication_v1::SelfSubjectReview>(raw)
        }
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => {
            typed::<authorization_v1::SelfSubjectAccessReview>(raw)
        }
        ("authorization.k8s.io/v1", "SelfSubjectRulesReview") => {
            typed::<authorization_v1::SelfSubjectRulesReview>(raw)
        }
        ("authorization.k8s.io/v1", "SubjectAccessReview") => {
            typed::<authorization_v1::SubjectAccessReview>(raw)
        }
        ("certificates.k8s.io/v1", "CertificateSigningRequest") => {
            typed::<certificates_v1::CertificateSigningRequest>(raw)
        }
        ("autoscaling/v1", "HorizontalPodAutoscaler") => {
            typed::<autoscaling_v1::HorizontalPodAutoscaler>(raw)
        }
        ("autoscaling/v1", "Scale") => typed::<autoscaling_v1::Scale>(raw),
        _ => return None,
    })
}

fields!(apps_v1::DaemonSet, |s, o| {
    req(o, "metadata", &s.metadata);
    req(o, "spec", &s.spec);
    req(o, "status", &s.status);
});

fields!(apps_v1::DaemonSetCondition, |s, o| {
    req(o, "type", &s.r#type);
    req(o, "status", &s.status);
    req(o, "lastTransitionTime", &s.last_transition_time);
    nonzero(o, "reason", &s.reason);
    nonzero(o, "message", &s.message);
});

fields!(apps_v1::DaemonSetSpec, |s, o| {
    opt_or_null(o, "selector", &s.selector);
    req(o, "template", &s.template);
    req(o, "updateStrategy", &s.update_strategy);
    nonzero(o, "minReadySeconds", &s.min_ready_seconds);
    opt(o, "revisionHistoryLimit", &s.revision_history_limit);
});

fields!(apps_v1::DaemonSetStatus, |s, o| {
    req(o, "currentNumberScheduled", &s.current_number_scheduled);
    req(o, "numberMisscheduled", &s.number_misscheduled);
    req(o, "desiredNumberScheduled", &s.desired_number_scheduled);
    req(o, "numberReady", &s.number_ready);
    nonzero(o, "observedGeneration", &s.observed_generation);
    nonzero(o, "updatedNumberScheduled", &s.updated_number_scheduled);
    nonzero(o, "numberAvailable", &s.number_available);
    nonzero(o, "numberUnavailable", &s.number_unavailable);
    opt(o, "collisionCount", &s.collision_count);
    list(o, "conditions", &s.conditions);
});

fields!(apps_v1::DaemonSetUpdateStrategy, |s, o| {
    nonzero(o, "type", &s.r#type);
    opt(o, "rollingUpdate", &s.rolling_update);
});

fields!(apps_v1::Deployment, |s, o| {
    req(o, "metadata", &s.metadata);
    req(o, "spec", &s.spec);
    req(o, "status", &s.status);
});

fields!(apps_v1::DeploymentCondition, |s, o| {
    req(o, "type", &s.r#type);
    req(o, "status", &s.status);
    req(o, "lastUpdateTime", &s.last_update_time);
    req(o, "lastTransitionTime", &s.last_transition_time);
    nonzero(o, "reason", &s.reason);
    nonzero(o, "message", &s.message);
});

fields!(apps_v1::DeploymentSpec, |s, o| {
    opt(o, "replicas", &s.replicas);
    opt_or_null(o, "selector", &s.selector);
    req(o, "template", &s.template);
    req(o, "strategy", &s.strategy);
    nonzero(o, "minReadySeconds", &s.min_ready_seconds);
    opt(o, "revisionHistoryLimit", &s.revision_history_limit);
    nonzero(o, "paused", &s.paused);
    opt(o, "progressDeadlineSeconds", &s.progress_deadline_seconds);
});

fields!(apps_v1::DeploymentStatus, |s, o| {
    nonzero(o, "observedGeneration", &s.observed_generation);
    nonzero(o, "replicas", &s.replicas);
    nonzero(o, "updatedReplicas", &s.updated_replicas);
    nonzero(o, "readyReplicas", &s.ready_replicas);
    nonzero(o, "availableReplicas", &s.available_replicas);
    nonzero(o, "unavailableReplicas", &s.unavailable_replicas);
    opt(o, "terminatingReplicas", &s.terminating_replicas);
    list(o, "conditions", &s.conditions);
    opt(o, "collisionCount", &s.collision_count);
});

fields!(apps_v1::DeploymentStrategy, |s, o| {
    nonzero(o, "type", &s.r#type);
    opt(o, "rollingUpdate", &s.rolling_update);
});

fields!(apps_v1::ReplicaSet, |s, o| {
    req(o, "metadata", &s.metadata);
    req(o, "spec", &s.spec);
    req(o, "status", &s.status);
});

fields!(apps_v1::ReplicaSetCondition, |s, o| {
    req(o, "type", &s.r#type);
    req(o, "status", &s.status);
    req(o, "lastTransitionTime", &s.last_transition_time);
    nonzero(o, "reason", &s.reason);
    nonzero(o, "message", &s.message);
});

fields!(apps_v1::ReplicaSetSpec, |s, o| {
    opt(o, "replicas", &s.replicas);
    nonzero(o, "minReadySeconds", &s.min_ready_seconds);
    opt_or_null(o, "selector", &s.selector);
    req(o, "template", &s.template);
});

fields!(apps_v1::ReplicaSetStatus, |s, o| {
    req(o, "replicas", &s.replicas);
    nonzero(o, "fullyLabeledReplicas", &s.fully_labeled_replicas);
    nonzero(o, "readyReplicas", &s.ready_replicas);
    nonzero(o, "availableReplicas", &s.available_replicas);
    opt(o, "terminatingReplicas", &s.terminating_replicas);
    nonzero(o, "observedGeneration", &s.observed_generation);
    list(o, "conditions", &s.conditions);
});

fields!(apps_v1::RollingUpdateDaemonSet, |s, o| {
    opt(o, "maxUnavailable", &s.max_unavailable);
    opt(o, "maxSurge", &s.max_surge);
});

fields!(apps_v1::RollingUpdateDeployment, |s, o| {
    opt(o, "maxUnavailable", &s.max_unavailable);
    opt(o, "maxSurge", &s.max_surge);
});

fields!(apps_v1::RollingUpdateStatefulSetStrategy, |s, o| {
    opt(o, "partition", &s.partition);
    opt(o, "maxUnavailable", &s.max_unavailable);
});

fields!(apps_v1::StatefulSet, |s, o| {
    req(o, "metadata", &s.metadata);
    req(o, "spec", &s.spec);
    req(o, "status", &s.status);
});

fields!(apps_v1::StatefulSetCondition, |s, o| {
    req(o, "type", &s.r#type);
    req(o, "status", &s.status);
    req(o, "lastTransitionTime", &s.last_transition_time);
    nonzero(o, "reason", &s.reason);
    nonzero(o, "message", &s.message);
});

fields!(apps_v1::StatefulSetOrdinals, |s, o| {
    req(o, "start", &s.start);
});

fields!(
    apps_v1::StatefulSetPersistentVolumeClaimRetentionPolicy,
    |s, o| {
        nonzero(o, "whenDeleted", &s.when_deleted);
        nonzero(o, "whenScaled", &s.when_scaled);
    }
);

fields!(apps_v1::StatefulSetSpec, |s, o| {
    opt(o, "replicas", &s.replicas);
    opt_or_null(o, "selector", &s.selector);
    req(o, "template", &s.template);
    list(o, "volumeClaimTemplates", &s.volume_claim_templates);
    req(o, "serviceName", &s.service_name);
    nonzero(o, "podManagementPolicy", &s.pod_management_policy);
    req(o, "updateStrategy", &s.update_strategy);
    opt(o, "revisionHistoryLimit", &s.revision_history_limit);
    nonzero(o, "minReadySeconds", &s.min_ready_seconds);
    opt(
        o,
        "persistentVolumeClaimRetentionPolicy",
        &s.persistent_volume_claim_retention_policy,
    );
    opt(o, "ordinals", &s.ordinals);
});

fields!(apps_v1::StatefulSetStatus, |s, o| {
    nonzero(o, "observedGeneration", &s.observed_generation);
    req(o, "replicas", &s.replicas);
    nonzero(o, "readyReplicas", &s.ready_replicas);
    nonzero(o, "currentReplicas", &s.current_replicas);
    nonzero(o, "updatedReplicas", &s.updated_replicas);
    nonzero(o, "currentRevision", &s.current_revision);
    nonzero(o, "updateRevision", &s.update_revision);
    opt(o, "collisionCount", &s.collision_count);
    list(o, "conditions", &s.conditions);
    req(o, "availableReplicas", &s.available_replicas);
});

fields!(apps_v1::StatefulSetUpdateStrategy, |s, o| {
    nonzero(o, "type", &s.r#type);
    opt(o, "rollingUpdate", &s.rolling_update);
});

fields!(authentication_v1::BoundObjectReference, |s, o| {
    nonzero(o, "kind", &s.kind);
    nonzero(o, "apiVersion", &s.api_version);
    nonzero(o, "name", &s.name);
    nonzero(o, "uid", &s.u_id);
});

fields!(authentication_v1::SelfSubjectReview, |s, o| {
    req(o, "metadata", &s.metadata);
    req(o, "status", &s.status);
});

fields!(authentication_v1::SelfSubjectReviewStatus, |s, o| {
    req(o, "userInfo", &s.user_info);
});

fields!(authentication_v1::TokenRequest, |s, o| {
    req(o, "metadata", &s.metadata);
    req(o, "spec", &s.spec);
    req(o, "status", &s.status);
});

fields!(authentication_v1::TokenRequestSpec, |s, o| {
    list_or_null(o, "audiences", &s.audiences);
    opt_or_null(o, "expirationSeconds", &s.expiration_seconds);
    opt_or_null(o, "boundObjectRef", &s.bound_object_ref);
});

fields!(authentication_v1::TokenRequestStatus, |s, o| {
    req(o, "token", &s.token);
    req(o, "expirationTimestamp", &s.expiration_timestamp);
});

fields!(authentication_v1::UserInfo, |s, o| {
    nonzero(o, "username", &s.username);
    nonzero(o, "uid", &s.uid);
    list(o, "groups", &s.groups);
    map(o, "extra", &s.extra);
});

fields!(authorization_v1::FieldSelectorAttributes, |s, o| {
    nonzero(o, "rawSelector", &s.raw_selector);
    list(o, "requirements", &s.requirements);
});

fields!(authorization_v1::LabelSelectorAttributes, |s, o| {
    nonzero(o, "rawSelector", &s.raw_selector);
    list(o, "requirements", &s.requirements);
});

fields!(authorization_v1::NonResourceAttributes, |s, o| {
    nonzero(o, "path", &s.path);
    nonzero(o, "verb", &s.verb);
});

fields!(authorization_v1::NonResourceRule, |s, o| {
    list_or_null(o, "verbs", &s.verbs);
    list(o, "nonResourceURLs", &s.non_resource_ur_ls);
});

fields!(authorization_v1::ResourceAttributes, |s, o| {
    nonzero(o, "namespace", &s.namespace);
    nonzero(o, "verb", &s.verb);
    nonzero(o, "group", &s.group);
    nonzero(o, "version", &s.version);
    nonzero(o, "resource", &s.resource);
    nonzero(o, "subresource", &s.subresource);
    nonzero(o, "name", &s.name);
    opt(o, "fieldSelector", &s.field_selector);
    opt(o, "labelSelector", &s.label_selector);
});

fields!(authorization_v1::ResourceRule, |s, o| {
    list_or_null(o, "verbs", &s.verbs);
    list(o, "apiGroups", &s.api_groups);
    list(o, "resources", &s.resources);
    list(o, "resourceNames", &s.resource_names);
});

fields!(authorization_v1::SelfSubjectAccessReview, |s, o| {
    req(o, "metadata", &s.metadata);
    req(o, "spec", &s.spec);
    req(o, "status", &s.status);
});

fields!(authorization_v1::SelfSubjectAccessReviewSpec, |s, o| {
    opt(o, "resourceAttributes", &s.resource_attributes);
    opt(o, "nonResourceAttributes", &s.non_resource_attributes);
});

fields!(authorization_v1::SelfSubjectRulesReview, |s, o| {
    req(o, "metadata", &s.metadata);
    req(o, "spec", &s.spec);
    req(o, "status", &s.status);
});

fields!(authorization_v1::SelfSubjectRulesReviewSpec, |s, o| {
    nonzero(o, "namespace", &s.namespace);
});

fields!(authorization_v1::SubjectAccessReview, |s, o| {
    req(o, "metadata", &s.metadata);
    req(o, "spec", &s.spec);
    req(o, "status", &s.status);
});

fields!(authorization_v1::SubjectAccessReviewSpec, |s, o| {
    opt(o, "resourceAttributes", &s.resource_attributes);
    opt(o, "nonResourceAttributes", &s.non_resource_attributes);
    nonzero(o, "user", &s.user);
    list(o, "groups", &s.groups);
    map(o, "extra", &s.extra);
    nonzero(o, "uid", &s.uid);
});

fields!(authorization_v1::SubjectAccessReviewStatus, |s, o| {
    req(o, "allowed", &s.allowed);
    nonzero(o, "denied", &s.denied);
    nonzero(o, "reason", &s.reason);
    nonzero(o, "evaluationError", &s.evaluation_error);
});

fields!(authorization_v1::SubjectRulesReviewStatus, |s, o| {
    list_or_null(o, "resourceRules", &s.resource_rules);
    list_or_null(o, "nonResourceRules", &s.non_resource_rules);
    req(o, "incomplete", &s.incomplete);
    nonzero(o, "evaluationError", &s.evaluation_error);
});

fields!(autoscaling_v1::CrossVersionObjectReference, |s, o| {
    req(o, "kind", &s.kind);
    req(o, "name", &s.name);
    nonzero(o, "apiVersion", &s.api_version);
});

fields!(autoscaling_v1::HorizontalPodAutoscaler, |s, o| {
    req(o, "metadata", &s.metadata);
    req(o, "spec", &s.spec);
    req(o, "status", &s.status);
});

fields!(autoscaling_v1::HorizontalPodAutoscalerSpec, |s, o| {
    req(o, "scaleTargetRef", &s.scale_target_ref);
    opt(o, "minReplicas", &s.min_replicas);
    req(o, "maxReplicas", &s.max_replicas);
    opt(
        o,
        "targetCPUUtilizationPercentage",
        &s.target_cpu_utilization_percentage,
    );
});

fields!(autoscaling_v1::HorizontalPodAutoscalerStatus, |s, o| {
    opt(o, "observedGeneration", &s.observed_generation);
    opt(o, "lastScaleTime", &s.last_scale_time);
    req(o, "currentReplicas", &s.current_replicas);
    req(o, "desiredReplicas", &s.desired_replicas);
    opt(
        o,
        "currentCPUUtilizationPercentage",
        &s.current_cpu_utilization_percentage,
    );
});

fields!(autoscaling_v1::Scale, |s, o| {
    req(o, "metadata", &s.metadata);
    req(o, "spec", &s.spec);
    req(o, "status", &s.status);
});

fields!(autoscaling_v1::ScaleSpec, |s, o| {
    nonzero(o, "replicas", &s.replicas);
});

fields!(autoscaling_v1::ScaleStatus, |s, o| {
    req(o, "replicas", &s.replicas);
    nonzero(o, "selector", &s.selector);
});

fields!(batch_v1::CronJob, |s, o| {
    req(o, "metadata", &s.metadata);
    req(o, "spec", &s.spec);
    req(o, "status", &s.status);
});

fields!(batch_v1::CronJobSpec, |s, o| {
    req(o, "schedule", &s.schedule);
    opt(o, "timeZone", &s.time_zone);
    opt(o, "startingDeadlineSeconds", &s.starting_deadline_seconds);
    nonzero(o, "concurrencyPolicy", &s.concurrency_policy);
    opt(o, "suspend", &s.suspend);
    req(o, "jobTemplate", &s.job_template);
    opt(
        o,
        "successfulJobsHistoryLimit",
        &s.successful_jobs_history_limit,
    );
    opt(o, "failedJobsHistoryLimit", &s.failed_jobs_history_limit);
});

fields!(batch_v1::CronJobStatus, |s, o| {
    list(o, "active", &s.active);
    opt(o, "lastScheduleTime", &s.last_schedule_time);
    opt(o, "lastSuccessfulTime", &s.last_successful_time);
});

fields!(batch_v1::Job, |s, o| {
    req(o, "metadata", &s.metadata);
    req(o, "spec", &s.spec);
    req(o, "status", &s.status);
});

fields!(batch_v1::JobCondition, |s, o| {
    req(o, "type", &s.r#type);
    req(o, "status", &s.status);
    req(o, "lastProbeTime", &s.last_probe_time);
    req(o, "lastTransitionTime", &s.last_transition_time);
    nonzero(o, "reason", &s.reason);
    nonzero(o, "message", &s.message);
});

fields!(batch_v1::JobSpec, |s, o| {
    opt(o, "parallelism", &s.parallelism);
    opt(o, "completions", &s.completions);
    opt(o, "activeDeadlineSeconds", &s.active_deadline_seconds);
    opt(o, "podFailurePolicy", &s.pod_failure_policy);
    opt(o, "successPolicy", &s.success_policy);
    opt(o, "backoffLimit", &s.backoff_limit);
    opt(o, "backoffLimitPerIndex", &s.backoff_limit_per_index);
    opt(o, "maxFailedIndexes", &s.max_failed_indexes);
    opt(o, "selector", &s.selector);
    opt(o, "manualSelector", &s.manual_selector);
    req(o, "template", &s.template);
    opt(o, "ttlSecondsAfterFinished", &s.ttl_seconds_after_finished);
    opt(o, "completionMode", &s.completion_mode);
    opt(o, "suspend", &s.suspend);
    opt(o, "podReplacementPolicy", &s.pod_replacement_policy);
    opt(o, "managedBy", &s.managed_by);
});

fields!(batch_v1::JobStatus, |s, o| {
    list(o, "conditions", &s.conditions);
    opt(o, "startTime", &s.start_time);
    opt(o, "completionTime", &s.completion_time);
    nonzero(o, "active", &s.active);
    nonzero(o, "succeeded", &s.succeeded);
    nonzero(o, "failed", &s.failed);
    opt(o, "terminating", &s.terminating);
    nonzero(o, "completedIndexes", &s.completed_indexes);
    opt(o, "failedIndexes", &s.failed_indexes);
    opt(o, "uncountedTerminatedPods", &s.uncounted_terminated_pods);
    opt(o, "ready", &s.ready);
});

fields!(batch_v1::JobTemplateSpec, |s, o| {
    req(o, "metadata", &s.metadata);
    req(o, "spec", &s.spec);
});

fields!(batch_v1::PodFailurePolicy, |s, o| {
    list_or_null(o, "rules", &s.rules);
});

fields!(batch_v1::PodFailurePolicyOnExitCodesRequirement, |s, o| {
    opt(o, "containerName", &s.container_name);
    req(o, "operator", &s.operator);
    list_or_null(o, "values", &s.values);
});

fields!(batch_v1::PodFailurePolicyOnPodConditionsPattern, |s, o| {
    req(o, "type", &s.r#type);
    req(o, "status", &s.status);
});

fields!(batch_v1::PodFailurePolicyRule, |s, o| {
    req(o, "action", &s.action);
    opt(o, "onExitCodes", &s.on_exit_codes);
    list(o, "onPodConditions", &s.on_pod_conditions);
});

fields!(batch_v1::SuccessPolicy, |s, o| {
    list_or_null(o, "rules", &s.rules);
});

fields!(batch_v1::SuccessPolicyRule, |s, o| {
    opt(o, "succeededIndexes", &s.succeeded_indexes);
    opt(o, "succeededCount", &s.succeeded_count);
});

fields!(batch_v1::UncountedTerminatedPods, |s, o| {
    list(o, "succeeded", &s.succeeded);
    list(o, "failed", &s.failed);
});

fields!(certificates_v1::CertificateSigningRequest, |s, o| {
    req(o, "metadata", &s.metadata);
    req(o, "spec", &s.spec);
    req(o, "status", &s.status);
});

fields!(
    certificates_v1::CertificateSigningRequestCondition,
    |s, o| {
        req(o, "type", &s.r#type);
        req(o, "status", &s.status);
        nonzero(o, "reason", &s.reason);
        nonzero(o, "message", &s.message);
        req(o, "lastUpdateTime", &s.last_update_time);
        req(o, "lastTransitionTime", &s.last_transition_time);
    }
);

fields!(certificates_v1::CertificateSigningRequestSpec, |s, o| {
    req(o, "request", &s.request);
    req(o, "signerName", &s.signer_name);
    opt(o, "expirationSeconds", &s.expiration_seconds);
    list(o, "usages", &s.usages);
    nonzero(o, "username", &s.username);
    nonzero(o, "uid", &s.uid);
    list(o, "groups", &s.groups);
    map(o, "extra", &s.extra);
});

fields!(certificates_v1::CertificateSigningRequestStatus, |s, o| {
    list(o, "conditions", &s.conditions);
    nonzero(o, "certificate", &s.certificate);
});

fields!(core_v1::Affinity, |s, o| {
    opt(o, "nodeAffinity", &s.node_affinity);
    opt(o, "podAffinity", &s.pod_affinity);
    opt(o, "podAntiAffinity", &s.pod_anti_affinity);
});

fields!(core_v1::AppArmorProfile, |s, o| {
    req(o, "type", &s.r#type);
    opt(o, "localhostProfile", &s.localhost_profile);
});

fields!(core_v1::AwsElasticBlockStoreVolumeSource, |s, o| {
    req(o, "volumeID", &s.volume_id);
    nonzero(o, "fsType", &s.fs_type);
    nonzero(o, "partition", &s.partition);
    nonzero(o, "readOnly", &s.read_only);
});

fields!(core_v1::AzureDiskVolumeSource, |s, o| {
    req(o, "diskName", &s.disk_name);
    req(o, "diskURI", &s.disk_uri);
    opt(o, "cachingMode", &s.caching_mode);
    opt(o, "fsType", &s.fs_type);
    opt(o, "readOnly", &s.read_only);
    opt(o, "kind", &s.kind);
});

fields!(core_v1::AzureFileVolumeSource, |s, o| {
    req(o, "secretName", &s.secret_name);
    req(o, "shareName", &s.share_name);
    nonzero(o, "readOnly", &s.read_only);
});

fields!(core_v1::Binding, |s, o| {
    req(o, "metadata", &s.metadata);
    req(o, "target", &s.target);
});

fields!(core_v1::CSIVolumeSource, |s, o| {
    req(o, "driver", &s.driver);
    opt(o, "readOnly", &s.read_only);
    opt(o, "fsType", &s.fs_type);
    map(o, "volumeAttributes", &s.volume_attributes);
    opt(o, "nodePublishSecretRef", &s.node_publish_secret_ref);
});

fields!(core_v1::Capabilities, |s, o| {
    list(o, "add", &s.add);
    list(o, "drop", &s.drop);
});

fields!(core_v1::CephFsVolumeSource, |s, o| {
    list_or_null(o, "monitors", &s.monitors);
    nonzero(o, "path", &s.path);
    nonzero(o, "user", &s.user);
    nonzero(o, "secretFile", &s.secret_file);
    opt(o, "secretRef", &s.secret_ref);
    nonzero(o, "readOnly", &s.read_only);
});

fields!(core_v1::CinderVolumeSource, |s, o| {
    req(o, "volumeID", &s.volume_id);
    nonzero(o, "fsType", &s.fs_type);
    nonzero(o, "readOnly", &s.read_only);
    opt(o, "secretRef", &s.secret_ref);
});

fields!(core_v1::ClientIpConfig, |s, o| {
    opt(o, "timeoutSeconds", &s.timeout_seconds);
});

fields!(core_v1::ClusterTrustBundleProjection, |s, o| {
    opt(o, "name", &s.name);
    opt(o, "signerName", &s.signer_name);
    opt(o, "labelSelector", &s.label_selector);
    opt(o, "optional", &s.optional);
    req(o, "path", &s.path);
});

fields!(core_v1::ConfigMap, |s, o| {
    req(o, "metadata", &s.metadata);
    opt(o, "immutable", &s.immutable);
    map(o, "data", &s.data);
    map(o, "binaryData", &s.binary_data);
});

fields!(core_v1::ConfigMapEnvSource, |s, o| {
    inline(o, &s.local_object_reference);
    opt(o, "optional", &s.optional);
});

fields!(core_v1::ConfigMapKeySelector, |s, o| {
    inline(o, &s.local_object_reference);
    req(o, "key", &s.key);
    opt(o, "optional", &s.optional);
});

fields!(core_v1::ConfigMapProjection, |s, o| {
    inline(o, &s.local_object_reference);
    list(o, "items", &s.items);
    opt(o, "optional", &s.optional);
});

fields!(core_v1::ConfigMapVolumeSource, |s, o| {
    inline(o, &s.local_object_reference);
    list(o, "items", &s.items);
    opt(o, "defaultMode", &s.default_mode);
    opt(o, "optional", &s.optional);
});

fields!(core_v1::Container, |s, o| {
    req(o, "name", &s.name);
    nonzero(o, "image", &s.image);
    list(o, "command", &s.command);
    list(o, "args", &s.args);
    nonzero(o, "workingDir", &s.working_dir);
    list(o, "ports", &s.ports);
    list(o, "envFrom", &s.env_from);
    list(o, "env", &s.env);
    req(o, "resources", &s.resources);
    list(o, "resizePolicy", &s.resize_policy);
    opt(o, "restartPolicy", &s.restart_policy);
    list(o, "restartPolicyRules", &s.restart_policy_rules);
    list(o, "volumeMounts", &s.volume_mounts);
    list(o, "volumeDevices", &s.volume_devices);
    opt(o, "livenessProbe", &s.liveness_probe);
    opt(o, "readinessProbe", &s.readiness_probe);
    opt(o, "startupProbe", &s.startup_probe);
    opt(o, "lifecycle", &s.lifecycle);
    nonzero(o, "terminationMessagePath", &s.termination_message_path);
    nonzero(o, "terminationMessagePolicy", &s.termination_message_policy);
    nonzero(o, "imagePullPolicy", &s.image_pull_policy);
    opt(o, "securityContext", &s.security_context);
    nonzero(o, "stdin", &s.stdin);
    nonzero(o, "stdinOnce", &s.stdin_once);
    nonzero(o, "tty", &s.tty);
});

fields!(core_v1::ContainerExtendedResourceRequest, |s, o| {
    req(o, "containerName", &s.container_name);
    req(o, "resourceName", &s.resource_name);
    req(o, "requestName", &s.request_name);
});

fields!(core_v1::ContainerPort, |s, o| {
    nonzero(o, "name", &s.name);
    nonzero(o, "hostPort", &s.host_port);
    req(o, "containerPort", &s.container_port);
    nonzero(o, "protocol", &s.protocol);
    nonzero(o, "hostIP", &s.host_ip);
});

fields!(core_v1::ContainerResizePolicy, |s, o| {
    req(o, "resourceName", &s.resource_name);
    req(o, "restartPolicy", &s.restart_policy);
});

fields!(core_v1::ContainerRestartRule, |s, o| {
    nonzero(o, "action", &s.action);
    opt(o, "exitCodes", &s.exit_codes);
});

fields!(core_v1::ContainerRestartRuleOnExitCodes, |s, o| {
    nonzero(o, "operator", &s.operator);
    list(o, "values", &s.values);
});

fields!(core_v1::ContainerState, |s, o| {
    opt(o, "waiting", &s.waiting);
    opt(o, "running", &s.running);
    opt(o, "terminated", &s.terminated);
});

fields!(core_v1::ContainerStateRunning, |s, o| {
    req(o, "startedAt", &s.started_at);
});

fields!(core_v1::ContainerStateTerminated, |s, o| {
    req(o, "exitCode", &s.exit_code);
    nonzero(o, "signal", &s.signal);
    nonzero(o, "reason", &s.reason);
    nonzero(o, "message", &s.message);
    req(o, "startedAt", &s.started_at);
    req(o, "finishedAt", &s.finished_at);
    nonzero(o, "containerID", &s.container_id);
});

fields!(core_v1::ContainerStateWaiting, |s, o| {
    nonzero(o, "reason", &s.reason);
    nonzero(o, "message", &s.message);
});

fields!(core_v1::ContainerStatus, |s, o| {
    req(o, "name", &s.name);
    req(o, "state", &s.state);
    req(o, "lastState", &s.last_state);
    req(o, "ready", &s.ready);
    req(o, "restartCount", &s.restart_count);
    req(o, "image", &s.image);
    req(o, "imageID", &s.image_id);
    nonzero(o, "containerID", &s.container_id);
    opt(o, "started", &s.started);
    map(o, "allocatedResources", &s.allocated_resources);
    opt(o, "resources", &s.resources);
    list(o, "volumeMounts", &s.volume_mounts);
    opt(o, "user", &s.user);
    list(o, "allocatedResourcesStatus", &s.allocated_resources_status);
    opt(o, "stopSignal", &s.stop_signal);
});

fields!(core_v1::ContainerUser, |s, o| {
    opt(o, "linux", &s.linux);
});

fields!(core_v1::DownwardAPIProjection, |s, o| {
    list(o, "items", &s.items);
});

fields!(core_v1::DownwardAPIVolumeFile, |s, o| {
    req(o, "path", &s.path);
    opt(o, "fieldRef", &s.field_ref);
    opt(o, "resourceFieldRef", &s.resource_field_ref);
    opt(o, "mode", &s.mode);
});

fields!(core_v1::DownwardAPIVolumeSource, |s, o| {
    list(o, "items", &s.items);
    opt(o, "defaultMode", &s.default_mode);
});

fields!(core_v1::EmptyDirVolumeSource, |s, o| {
    nonzero(o, "medium", &s.medium);
    opt(o, "sizeLimit", &s.size_limit);
});

fields!(core_v1::EnvFromSource, |s, o| {
    nonzero(o, "prefix", &s.prefix);
    opt(o, "configMapRef", &s.config_map_ref);
    opt(o, "secretRef", &s.secret_ref);
});

fields!(core_v1::EnvVar, |s, o| {
    req(o, "name", &s.name);
    nonzero(o, "value", &s.value);
    opt(o, "valueFrom", &s.value_from);
});

fields!(core_v1::EnvVarSource, |s, o| {
    opt(o, "fieldRef", &s.field_ref);
    opt(o, "resourceFieldRef", &s.resource_field_ref);
    opt(o, "configMapKeyRef", &s.config_map_key_ref);
    opt(o, "secretKeyRef", &s.secret_key_ref);
    opt(o, "fileKeyRef", &s.file_key_ref);
});

fields!(core_v1::EphemeralContainer, |s, o| {
    inline(o, &s.ephemeral_container_common);
    nonzero(o, "targetContainerName", &s.target_container_name);
});

fields!(core_v1::EphemeralContainerCommon, |s, o| {
    req(o, "name", &s.name);
    nonzero(o, "image", &s.image);
    list(o, "command", &s.command);
    list(o, "args", &s.args);
    nonzero(o, "workingDir", &s.working_dir);
    list(o, "ports", &s.ports);
    list(o, "envFrom", &s.env_from);
    list(o, "env", &s.env);
    req(o, "resources", &s.resources);
    list(o, "resizePolicy", &s.resize_policy);
    opt(o, "restartPolicy", &s.restart_policy);
    list(o, "restartPolicyRules", &s.restart_policy_rules);
    list(o, "volumeMounts", &s.volume_mounts);
    list(o, "volumeDevices", &s.volume_devices);
    opt(o, "livenessProbe", &s.liveness_probe);
    opt(o, "readinessProbe", &s.readiness_probe);
    opt(o, "startupProbe", &s.startup_probe);
    opt(o, "lifecycle", &s.lifecycle);
    nonzero(o, "terminationMessagePath", &s.termination_message_path);
    nonzero(o, "terminationMessagePolicy", &s.termination_message_policy);
    nonzero(o, "imagePullPolicy", &s.image_pull_policy);
    opt(o, "securityContext", &s.security_context);
    nonzero(o, "stdin", &s.stdin);
    nonzero(o, "stdinOnce", &s.stdin_once);
    nonzero(o, "tty", &s.tty);
});

fields!(core_v1::EphemeralVolumeSource, |s, o| {
    opt(o, "volumeClaimTemplate", &s.volume_claim_template);
});

fields!(core_v1::ExecAction, |s, o| {
    list(o, "command", &s.command);
});

fields!(core_v1::FcVolumeSource, |s, o| {
    list(o, "targetWWNs", &s.target_ww_ns);
    opt(o, "lun", &s.lun);
    nonzero(o, "fsType", &s.fs_type);
    nonzero(o, "readOnly", &s.read_only);
    list(o, "wwids", &s.wwids);
});

fields!(core_v1::FileKeySelector, |s, o| {
    req(o, "volumeName", &s.volume_name);
    req(o, "path", &s.path);
    req(o, "key", &s.key);
    opt(o, "optional", &s.optional);
});

fields!(core_v1::FlexVolumeSource, |s, o| {
    req(o, "driver", &s.driver);
    nonzero(o, "fsType", &s.fs_type);
    opt(o, "secretRef", &s.secret_ref);
    nonzero(o, "readOnly", &s.read_only);
    map(o, "options", &s.options);
});

fields!(core_v1::FlockerVolumeSource, |s, o| {
    nonzero(o, "datasetName", &s.dataset_name);
    nonzero(o, "datasetUUID", &s.dataset_uuid);
});

fields!(core_v1::GcePersistentDiskVolumeSource, |s, o| {
    req(o, "pdName", &s.pd_name);
    nonzero(o, "fsType", &s.fs_type);
    nonzero(o, "partition", &s.partition);
    nonzero(o, "readOnly", &s.read_only);
});

fields!(core_v1::GitRepoVolumeSource, |s, o| {
    req(o, "repository", &s.repository);
    nonzero(o, "revision", &s.revision);
    nonzero(o, "directory", &s.directory);
});

fields!(core_v1::GlusterfsVolumeSource, |s, o| {
    req(o, "endpoints", &s.endpoints);
    req(o, "path", &s.path);
    nonzero(o, "readOnly", &s.read_only);
});

fields!(core_v1::GrpcAction, |s, o| {
    req(o, "port", &s.port);
    opt_or_null(o, "service", &s.service);
});

fields!(core_v1::HostAlias, |s, o| {
    req(o, "ip", &s.ip);
    list(o, "hostnames", &s.hostnames);
});

fields!(core_v1::HostIp, |s, o| {
    req(o, "ip", &s.ip);
});

fields!(core_v1::HostPathVolumeSource, |s, o| {
    req(o, "path", &s.path);
    opt(o, "type", &s.r#type);
});

fields!(core_v1::HttpGetAction, |s, o| {
    nonzero(o, "path", &s.path);
    req(o, "port", &s.port);
    nonzero(o, "host", &s.host);
    nonzero(o, "scheme", &s.scheme);
    list(o, "httpHeaders", &s.http_headers);
});

fields!(core_v1::HttpHeader, |s, o| {
    req(o, "name", &s.name);
    req(o, "value", &s.value);
});

fields!(core_v1::ImageVolumeSource, |s, o| {
    nonzero(o, "reference", &s.reference);
    nonzero(o, "pullPolicy", &s.pull_policy);
});

fields!(core_v1::IscsiVolumeSource, |s, o| {
    req(o, "targetPortal", &s.target_portal);
    req(o, "iqn", &s.iqn);
    req(o, "lun", &s.lun);
    nonzero(o, "iscsiInterface", &s.iscsi_interface);
    nonzero(o, "fsType", &s.fs_type);
    nonzero(o, "readOnly", &s.read_only);
    list(o, "portals", &s.portals);
    nonzero(o, "chapAuthDiscovery", &s.chap_auth_discovery);
    nonzero(o, "chapAuthSession", &s.chap_auth_session);
    opt(o, "secretRef", &s.secret_ref);
    opt(o, "initiatorName", &s.initiator_name);
});

fields!(core_v1::KeyToPath, |s, o| {
    req(o, "key", &s.key);
    req(o, "path", &s.path);
    opt(o, "mode", &s.mode);
});

fields!(core_v1::Lifecycle, |s, o| {
    opt(o, "postStart", &s.post_start);
    opt(o, "preStop", &s.pre_stop);
    opt(o, "stopSignal", &s.stop_signal);
});

fields!(core_v1::LifecycleHandler, |s, o| {
    opt(o, "exec", &s.exec);
    opt(o, "httpGet", &s.http_get);
    opt(o, "tcpSocket", &s.tcp_socket);
    opt(o, "sleep", &s.sleep);
});

fields!(core_v1::LimitRange, |s, o| {
    req(o, "metadata", &s.metadata);
    req(o, "spec", &s.spec);
});

fields!(core_v1::LimitRangeItem, |s, o| {
    req(o, "type", &s.r#type);
    map(o, "max", &s.max);
    map(o, "min", &s.min);
    map(o, "default", &s.default);
    map(o, "defaultRequest", &s.default_request);
    map(o, "maxLimitRequestRatio", &s.max_limit_request_ratio);
});

fields!(core_v1::LimitRangeSpec, |s, o| {
    list_or_null(o, "limits", &s.limits);
});

fields!(core_v1::LinuxContainerUser, |s, o| {
    req(o, "uid", &s.uid);
    req(o, "gid", &s.gid);
    list(o, "supplementalGroups", &s.supplemental_groups);
});

fields!(core_v1::LoadBalancerIngress, |s, o| {
    nonzero(o, "ip", &s.ip);
    nonzero(o, "hostname", &s.hostname);
    opt(o, "ipMode", &s.ip_mode);
    list(o, "ports", &s.ports);
});

fields!(core_v1::LoadBalancerStatus, |s, o| {
    list(o, "ingress", &s.ingress);
});

fields!(core_v1::LocalObjectReference, |s, o| {
    nonzero(o, "name", &s.name);
});

fields!(core_v1::ModifyVolumeStatus, |s, o| {
    nonzero(
        o,
        "targetVolumeAttributesClassName",
        &s.target_volume_attributes_class_name,
    );
    req(o, "status", &s.status);
});

fields!(core_v1::Namespace, |s, o| {
    req(o, "metadata", &s.metadata);
    req(o, "spec", &s.spec);
    req(o, "status", &s.status);
});

fields!(core_v1::NamespaceCondition, |s, o| {
    req(o, "type", &s.r#type);
    req(o, "status", &s.status);
    req(o, "lastTransitionTime", &s.last_transition_time);
    nonzero(o, "reason", &s.reason);
    nonzero(o, "message", &s.message);
});

fields!(core_v1::NamespaceSpec, |s, o| {
    list(o, "finalizers", &s.finalizers);
});

fields!(core_v1::NamespaceStatus, |s, o| {
    nonzero(o, "phase", &s.phase);
    list(o, "conditions", &s.conditions);
});

fields!(core_v1::NfsVolumeSource, |s, o| {
    req(o, "server", &s.server);
    req(o, "path", &s.path);
    nonzero(o, "readOnly", &s.read_only);
});

fields!(core_v1::NodeAffinity, |s, o| {
    opt(
        o,
        "requiredDuringSchedulingIgnoredDuringExecution",
        &s.required_during_scheduling_ignored_during_execution,
    );
    list(
        o,
        "preferredDuringSchedulingIgnoredDuringExecution",
        &s.preferred_during_scheduling_ignored_during_execution,
    );
});

fields!(core_v1::NodeSelector, |s, o| {
    list_or_null(o, "nodeSelectorTerms", &s.node_selector_terms);
});

fields!(core_v1::NodeSelectorRequirement, |s, o| {
    req(o, "key", &s.key);
    req(o, "operator", &s.operator);
    list(o, "values", &s.values);
});

fields!(core_v1::NodeSelectorTerm, |s, o| {
    list(o, "matchExpressions", &s.match_expressions);
    list(o, "matchFields", &s.match_fields);
});

fields!(core_v1::ObjectFieldSelector, |s, o| {
    nonzero(o, "apiVersion", &s.api_version);
    req(o, "fieldPath", &s.field_path);
});

fields!(core_v1::ObjectReference, |s, o| {
    nonzero(o, "kind", &s.kind);
    nonzero(o, "namespace", &s.namespace);
    nonzero(o, "name", &s.name);
    nonzero(o, "uid", &s.uid);
    nonzero(o, "apiVersion", &s.api_version);
    nonzero(o, "resourceVersion", &s.resource_version);
    nonzero(o, "fieldPath", &s.field_path);
});

fields!(core_v1::PersistentVolumeClaim, |s, o| {
    req(o, "metadata", &s.metadata);
    req(o, "spec", &s.spec);
    req(o, "status", &s.status);
});

fields!(core_v1::PersistentVolumeClaimCondition, |s, o| {
    req(o, "type", &s.r#type);
    req(o, "status", &s.status);
    req(o, "lastProbeTime", &s.last_probe_time);
    req(o, "lastTransitionTime", &s.last_transition_time);
    nonzero(o, "reason", &s.reason);
    nonzero(o, "message", &s.message);
});

fields!(core_v1::PersistentVolumeClaimSpec, |s, o| {
    list(o, "accessModes", &s.access_modes);
    opt(o, "selector", &s.selector);
    req(o, "resources", &s.resources);
    nonzero(o, "volumeName", &s.volume_name);
    opt(o, "storageClassName", &s.storage_class_name);
    opt(o, "volumeMode", &s.volume_mode);
    opt(o, "dataSource", &s.data_source);
    opt(o, "dataSourceRef", &s.data_source_ref);
    opt(
        o,
        "volumeAttributesClassName",
        &s.volume_attributes_class_name,
    );
});

fields!(core_v1::PersistentVolumeClaimStatus, |s, o| {
    nonzero(o, "phase", &s.phase);
    list(o, "accessModes", &s.access_modes);
    map(o, "capacity", &s.capacity);
    list(o, "conditions", &s.conditions);
    map(o, "allocatedResources", &s.allocated_resources);
    map(
        o,
        "allocatedResourceStatuses",
        &s.allocated_resource_statuses,
    );
    opt(
        o,
        "currentVolumeAttributesClassName",
        &s.current_volume_attributes_class_name,
    );
    opt(o, "modifyVolumeStatus", &s.modify_volume_status);
});

fields!(core_v1::PersistentVolumeClaimTemplate, |s, o| {
    req(o, "metadata", &s.metadata);
    req(o, "spec", &s.spec);
});

fields!(core_v1::PersistentVolumeClaimVolumeSource, |s, o| {
    req(o, "claimName", &s.claim_name);
    nonzero(o, "readOnly", &s.read_only);
});

fields!(core_v1::PhotonPersistentDiskVolumeSource, |s, o| {
    req(o, "pdID", &s.pd_id);
    nonzero(o, "fsType", &s.fs_type);
});

fields!(core_v1::Pod, |s, o| {
    req(o, "metadata", &s.metadata);
    req(o, "spec", &s.spec);
    req(o, "status", &s.status);
});

fields!(core_v1::PodAffinity, |s, o| {
    list(
        o,
        "requiredDuringSchedulingIgnoredDuringExecution",
        &s.required_during_scheduling_ignored_during_execution,
    );
    list(
        o,
        "preferredDuringSchedulingIgnoredDuringExecution",
        &s.preferred_during_scheduling_ignored_during_execution,
    );
});

fields!(core_v1::PodAffinityTerm, |s, o| {
    opt(o, "labelSelector", &s.label_selector);
    list(o, "namespaces", &s.namespaces);
    req(o, "topologyKey", &s.topology_key);
    opt(o, "namespaceSelector", &s.namespace_selector);
    list(o, "matchLabelKeys", &s.match_label_keys);
    list(o, "mismatchLabelKeys", &s.mismatch_label_keys);
});

fields!(core_v1::PodAntiAffinity, |s, o| {
    list(
        o,
        "requiredDuringSchedulingIgnoredDuringExecution",
        &s.required_during_scheduling_ignored_during_execution,
    );
    list(
        o,
        "preferredDuringSchedulingIgnoredDuringExecution",
        &s.preferred_during_scheduling_ignored_during_execution,
    );
});

fields!(core_v1::PodCertificateProjection, |s, o| {
    nonzero(o, "signerName", &s.signer_name);
    nonzero(o, "keyType", &s.key_type);
    opt(o, "maxExpirationSeconds", &s.max_expiration_seconds);
    nonzero(o, "credentialBundlePath", &s.credential_bundle_path);
    nonzero(o, "keyPath", &s.key_path);
    nonzero(o, "certificateChainPath", &s.certificate_chain_path);
    map(o, "userAnnotations", &s.user_annotations);
});

fields!(core_v1::PodCondition, |s, o| {
    req(o, "type", &s.r#type);
    nonzero(o, "observedGeneration", &s.observed_generation);
    req(o, "status", &s.status);
    req(o, "lastProbeTime", &s.last_probe_time);
    req(o, "lastTransitionTime", &s.last_transition_time);
    nonzero(o, "reason", &s.reason);
    nonzero(o, "message", &s.message);
});

fields!(core_v1::PodDnsConfig, |s, o| {
    list(o, "nameservers", &s.nameservers);
    list(o, "searches", &s.searches);
    list(o, "options", &s.options);
});

fields!(core_v1::PodDnsConfigOption, |s, o| {
    nonzero(o, "name", &s.name);
    opt(o, "value", &s.value);
});

fields!(core_v1::PodExtendedResourceClaimStatus, |s, o| {
    list_or_null(o, "requestMappings", &s.request_mappings);
    req(o, "resourceClaimName", &s.resource_claim_name);
});

fields!(core_v1::PodIp, |s, o| {
    req(o, "ip", &s.ip);
});

fields!(core_v1::PodOs, |s, o| {
    req(o, "name", &s.name);
});

fields!(core_v1::PodReadinessGate, |s, o| {
    req(o, "conditionType", &s.condition_type);
});

fields!(core_v1::PodResourceClaim, |s, o| {
    req(o, "name", &s.name);
    opt(o, "resourceClaimName", &s.resource_claim_name);
    opt(
        o,
        "resourceClaimTemplateName",
        &s.resource_claim_template_name,
    );
});

fields!(core_v1::PodResourceClaimStatus, |s, o| {
    req(o, "name", &s.name);
    opt(o, "resourceClaimName", &s.resource_claim_name);
});

fields!(core_v1::PodSchedulingGate, |s, o| {
    req(o, "name", &s.name);
});

fields!(core_v1::PodSecurityContext, |s, o| {
    opt(o, "seLinuxOptions", &s.se_linux_options);
    opt(o, "windowsOptions", &s.windows_options);
    opt(o, "runAsUser", &s.run_as_user);
    opt(o, "runAsGroup", &s.run_as_group);
    opt(o, "runAsNonRoot", &s.run_as_non_root);
    list(o, "supplementalGroups", &s.supplemental_groups);
    opt(o, "supplementalGroupsPolicy", &s.supplemental_groups_policy);
    opt(o, "fsGroup", &s.fs_group);
    list(o, "sysctls", &s.sysctls);
    opt(o, "fsGroupChangePolicy", &s.fs_group_change_policy);
    opt(o, "seccompProfile", &s.seccomp_profile);
    opt(o, "appArmorProfile", &s.app_armor_profile);
    opt(o, "seLinuxChangePolicy", &s.se_linux_change_policy);
});

fields!(core_v1::PodSpec, |s, o| {
    list(o, "volumes", &s.volumes);
    list(o, "initContainers", &s.init_containers);
    list_or_null(o, "containers", &s.containers);
    list(o, "ephemeralContainers", &s.ephemeral_containers);
    nonzero(o, "restartPolicy", &s.restart_policy);
    opt(
        o,
        "terminationGracePeriodSeconds",
        &s.termination_grace_period_seconds,
    );
    opt(o, "activeDeadlineSeconds", &s.active_deadline_seconds);
    nonzero(o, "dnsPolicy", &s.dns_policy);
    map(o, "nodeSelector", &s.node_selector);
    nonzero(o, "serviceAccountName", &s.service_account_name);
    nonzero(o, "serviceAccount", &s.service_account);
    opt(
        o,
        "automountServiceAccountToken",
        &s.automount_service_account_token,
    );
    nonzero(o, "nodeName", &s.node_name);
    nonzero(o, "hostNetwork", &s.host_network);
    nonzero(o, "hostPID", &s.host_pid);
    nonzero(o, "hostIPC", &s.host_ipc);
    opt(o, "shareProcessNamespace", &s.share_process_namespace);
    opt(o, "securityContext", &s.security_context);
    list(o, "imagePullSecrets", &s.image_pull_secrets);
    nonzero(o, "hostname", &s.hostname);
    nonzero(o, "subdomain", &s.subdomain);
    opt(o, "affinity", &s.affinity);
    nonzero(o, "schedulerName", &s.scheduler_name);
    list(o, "tolerations", &s.tolerations);
    list(o, "hostAliases", &s.host_aliases);
    nonzero(o, "priorityClassName", &s.priority_class_name);
    opt(o, "priority", &s.priority);
    opt(o, "dnsConfig", &s.dns_config);
    list(o, "readinessGates", &s.readiness_gates);
    opt(o, "runtimeClassName", &s.runtime_class_name);
    opt(o, "enableServiceLinks", &s.enable_service_links);
    opt(o, "preemptionPolicy", &s.preemption_policy);
    map(o, "overhead", &s.overhead);
    list(
        o,
        "topologySpreadConstraints",
        &s.topology_spread_constraints,
    );
    opt(o, "setHostnameAsFQDN", &s.set_hostname_as_fqdn);
    opt(o, "os", &s.os);
    opt(o, "hostUsers", &s.host_users);
    list(o, "schedulingGates", &s.scheduling_gates);
    list(o, "resourceClaims", &s.resource_claims);
    opt(o, "resources", &s.resources);
    opt(o, "hostnameOverride", &s.hostname_override);
    opt(o, "workloadRef", &s.workload_ref);
});

fields!(core_v1::PodStatus, |s, o| {
    nonzero(o, "observedGeneration", &s.observed_generation);
    nonzero(o, "phase", &s.phase);
    list(o, "conditions", &s.conditions);
    nonzero(o, "message", &s.message);
    nonzero(o, "reason", &s.reason);
    nonzero(o, "nominatedNodeName", &s.nominated_node_name);
    nonzero(o, "hostIP", &s.host_ip);
    list(o, "hostIPs", &s.host_ips);
    nonzero(o, "podIP", &s.pod_ip);
    list(o, "podIPs", &s.pod_ips);
    opt(o, "startTime", &s.start_time);
    list(o, "initContainerStatuses", &s.init_container_statuses);
    list(o, "containerStatuses", &s.container_statuses);
    nonzero(o, "qosClass", &s.qos_class);
    list(
        o,
        "ephemeralContainerStatuses",
        &s.ephemeral_container_statuses,
    );
    nonzero(o, "resize", &s.resize);
    list(o, "resourceClaimStatuses", &s.resource_claim_statuses);
    opt(
        o,
        "extendedResourceClaimStatus",
        &s.extended_resource_claim_status,
    );
    map(o, "allocatedResources", &s.allocated_resources);
    opt(o, "resources", &s.resources);
});

fields!(core_v1::PodTemplateSpec, |s, o| {
    req(o, "metadata", &s.metadata);
    req(o, "spec", &s.spec);
});

fields!(core_v1::PortStatus, |s, o| {
    req(o, "port", &s.port);
    req(o, "protocol", &s.protocol);
    opt(o, "error", &s.error);
});

fields!(core_v1::PortworxVolumeSource, |s, o| {
    req(o, "volumeID", &s.volume_id);
    nonzero(o, "fsType", &s.fs_type);
    nonzero(o, "readOnly", &s.read_only);
});

fields!(core_v1::PreferredSchedulingTerm, |s, o| {
    req(o, "weight", &s.weight);
    req(o, "preference", &s.preference);
});

fields!(core_v1::Probe, |s, o| {
    inline(o, &s.handler);
    nonzero(o, "initialDelaySeconds", &s.initial_delay_seconds);
    nonzero(o, "timeoutSeconds", &s.timeout_seconds);
    nonzero(o, "periodSeconds", &s.period_seconds);
    nonzero(o, "successThreshold", &s.success_threshold);
    nonzero(o, "failureThreshold", &s.failure_threshold);
    opt(
        o,
        "terminationGracePeriodSeconds",
        &s.termination_grace_period_seconds,
    );
});

fields!(core_v1::ProbeHandler, |s, o| {
    opt(o, "exec", &s.exec);
    opt(o, "httpGet", &s.http_get);
    opt(o, "tcpSocket", &s.tcp_socket);
    opt(o, "grpc", &s.grpc);
});

fields!(core_v1::ProjectedVolumeSource, |s, o| {
    list_or_null(o, "sources", &s.sources);
    opt(o, "defaultMode", &s.default_mode);
});

fields!(core_v1::QuobyteVolumeSource, |s, o| {
    req(o, "registry", &s.registry);
    req(o, "volume", &s.volume);
    nonzero(o, "readOnly", &s.read_only);
    nonzero(o, "user", &s.user);
    nonzero(o, "group", &s.group);
    nonzero(o, "tenant", &s.tenant);
});

fields!(core_v1::RbdVolumeSource, |s, o| {
    list_or_null(o, "monitors", &s.monitors);
    req(o, "image", &s.image);
    nonzero(o, "fsType", &s.fs_type);
    nonzero(o, "pool", &s.pool);
    nonzero(o, "user", &s.user);
    nonzero(o, "keyring", &s.keyring);
    opt(o, "secretRef", &s.secret_ref);
    nonzero(o, "readOnly", &s.read_only);
});

fields!(core_v1::ResourceClaim, |s, o| {
    req(o, "name", &s.name);
    nonzero(o, "request", &s.request);
});

fields!(core_v1::ResourceFieldSelector, |s, o| {
    nonzero(o, "containerName", &s.container_name);
    req(o, "resource", &s.resource);
    req(o, "divisor", &s.divisor);
});

fields!(core_v1::ResourceHealth, |s, o| {
    req(o, "resourceID", &s.resource_id);
    nonzero(o, "health", &s.health);
});

fields!(core_v1::ResourceQuota, |s, o| {
    req(o, "metadata", &s.metadata);
    req(o, "spec", &s.spec);
    req(o, "status", &s.status);
});

fields!(core_v1::ResourceQuotaSpec, |s, o| {
    map(o, "hard", &s.hard);
    list(o, "scopes", &s.scopes);
    opt(o, "scopeSelector", &s.scope_selector);
});

fields!(core_v1::ResourceQuotaStatus, |s, o| {
    map(o, "hard", &s.hard);
    map(o, "used", &s.used);
});

fields!(core_v1::ResourceRequirements, |s, o| {
    map(o, "limits", &s.limits);
    map(o, "requests", &s.requests);
    list(o, "claims", &s.claims);
});

fields!(core_v1::ResourceStatus, |s, o| {
    req(o, "name", &s.name);
    list(o, "resources", &s.resources);
});

fields!(core_v1::ScaleIoVolumeSource, |s, o| {
    req(o, "gateway", &s.gateway);
    req(o, "system", &s.system);
    opt_or_null(o, "secretRef", &s.secret_ref);
    nonzero(o, "sslEnabled", &s.ssl_enabled);
    nonzero(o, "protectionDomain", &s.protection_domain);
    nonzero(o, "storagePool", &s.storage_pool);
    nonzero(o, "storageMode", &s.storage_mode);
    nonzero(o, "volumeName", &s.volume_name);
    nonzero(o, "fsType", &s.fs_type);
    nonzero(o, "readOnly", &s.read_only);
});

fields!(core_v1::ScopeSelector, |s, o| {
    list(o, "matchExpressions", &s.match_expressions);
});

fields!(core_v1::ScopedResourceSelectorRequirement, |s, o| {
    req(o, "scopeName", &s.scope_name);
    req(o, "operator", &s.operator);
    list(o, "values", &s.values);
});

fields!(core_v1::SeLinuxOptions, |s, o| {
    nonzero(o, "user", &s.user);
    nonzero(o, "role", &s.role);
    nonzero(o, "type", &s.r#type);
    nonzero(o, "level", &s.level);
});

fields!(core_v1::SeccompProfile, |s, o| {
    req(o, "type", &s.r#type);
    opt(o, "localhostProfile", &s.localhost_profile);
});

fields!(core_v1::Secret, |s, o| {
    req(o, "metadata", &s.metadata);
    opt(o, "immutable", &s.immutable);
    map(o, "data", &s.data);
    map(o, "stringData", &s.string_data);
    nonzero(o, "type", &s.r#type);
});

fields!(core_v1::SecretEnvSource, |s, o| {
    inline(o, &s.local_object_reference);
    opt(o, "optional", &s.optional);
});

fields!(core_v1::SecretKeySelector, |s, o| {
    inline(o, &s.local_object_reference);
    req(o, "key", &s.key);
    opt(o, "optional", &s.optional);
});

fields!(core_v1::SecretProjection, |s, o| {
    inline(o, &s.local_object_reference);
    list(o, "items", &s.items);
    opt(o, "optional", &s.optional);
});

fields!(core_v1::SecretVolumeSource, |s, o| {
    nonzero(o, "secretName", &s.secret_name);
    list(o, "items", &s.items);
    opt(o, "defaultMode", &s.default_mode);
    opt(o, "optional", &s.optional);
});

fields!(core_v1::SecurityContext, |s, o| {
    opt(o, "capabilities", &s.capabilities);
    opt(o, "privileged", &s.privileged);
    opt(o, "seLinuxOptions", &s.se_linux_options);
    opt(o, "windowsOptions", &s.windows_options);
    opt(o, "runAsUser", &s.run_as_user);
    opt(o, "runAsGroup", &s.run_as_group);
    opt(o, "runAsNonRoot", &s.run_as_non_root);
    opt(o, "readOnlyRootFilesystem", &s.read_only_root_filesystem);
    opt(o, "allowPrivilegeEscalation", &s.allow_privilege_escalation);
    opt(o, "procMount", &s.proc_mount);
    opt(o, "seccompProfile", &s.seccomp_profile);
    opt(o, "appArmorProfile", &s.app_armor_profile);
});

fields!(core_v1::Service, |s, o| {
    req(o, "metadata", &s.metadata);
    req(o, "spec", &s.spec);
    req(o, "status", &s.status);
});

fields!(core_v1::ServiceAccount, |s, o| {
    req(o, "metadata", &s.metadata);
    list(o, "secrets", &s.secrets);
    list(o, "imagePullSecrets", &s.image_pull_secrets);
    opt(
        o,
        "automountServiceAccountToken",
        &s.automount_service_account_token,
    );
});

fields!(core_v1::ServiceAccountTokenProjection, |s, o| {
    nonzero(o, "audience", &s.audience);
    opt(o, "expirationSeconds", &s.expiration_seconds);
    req(o, "path", &s.path);
});

fields!(core_v1::ServicePort, |s, o| {
    nonzero(o, "name", &s.name);
    nonzero(o, "protocol", &s.protocol);
    opt(o, "appProtocol", &s.app_protocol);
    req(o, "port", &s.port);
    req(o, "targetPort", &s.target_port);
    nonzero(o, "nodePort", &s.node_port);
});

fields!(core_v1::ServiceSpec, |s, o| {
    list(o, "ports", &s.ports);
    map(o, "selector", &s.selector);
    nonzero(o, "clusterIP", &s.cluster_ip);
    list(o, "clusterIPs", &s.cluster_ips);
    nonzero(o, "type", &s.r#type);
    list(o, "externalIPs", &s.external_ips);
    nonzero(o, "sessionAffinity", &s.session_affinity);
    nonzero(o, "loadBalancerIP", &s.load_balancer_ip);
    list(
        o,
        "loadBalancerSourceRanges",
        &s.load_balancer_source_ranges,
    );
    nonzero(o, "externalName", &s.external_name);
    nonzero(o, "externalTrafficPolicy", &s.external_traffic_policy);
    nonzero(o, "healthCheckNodePort", &s.health_check_node_port);
    nonzero(
        o,
        "publishNotReadyAddresses",
        &s.publish_not_ready_addresses,
    );
    opt(o, "sessionAffinityConfig", &s.session_affinity_config);
    list(o, "ipFamilies", &s.ip_families);
    opt(o, "ipFamilyPolicy", &s.ip_family_policy);
    opt(
        o,
        "allocateLoadBalancerNodePorts",
        &s.allocate_load_balancer_node_ports,
    );
    opt(o, "loadBalancerClass", &s.load_balancer_class);
    opt(o, "internalTrafficPolicy", &s.internal_traffic_policy);
    opt(o, "trafficDistribution", &s.traffic_distribution);
});

fields!(core_v1::ServiceStatus, |s, o| {
    req(o, "loadBalancer", &s.load_balancer);
    list(o, "conditions", &s.conditions);
});

fields!(core_v1::SessionAffinityConfig, |s, o| {
    opt(o, "clientIP", &s.client_ip);
});

fields!(core_v1::SleepAction, |s, o| {
    req(o, "seconds", &s.seconds);
});

fields!(core_v1::StorageOsVolumeSource, |s, o| {
    nonzero(o, "volumeName", &s.volume_name);
    nonzero(o, "volumeNamespace", &s.volume_namespace);
    nonzero(o, "fsType", &s.fs_type);
    nonzero(o, "readOnly", &s.read_only);
    opt(o, "secretRef", &s.secret_ref);
});

fields!(core_v1::Sysctl, |s, o| {
    req(o, "name", &s.name);
    req(o, "value", &s.value);
});

fields!(core_v1::TcpSocketAction, |s, o| {
    req(o, "port", &s.port);
    nonzero(o, "host", &s.host);
});

fields!(core_v1::Toleration, |s, o| {
    nonzero(o, "key", &s.key);
    nonzero(o, "operator", &s.operator);
    nonzero(o, "value", &s.value);
    nonzero(o, "effect", &s.effect);
    opt(o, "tolerationSeconds", &s.toleration_seconds);
});

fields!(core_v1::TopologySpreadConstraint, |s, o| {
    req(o, "maxSkew", &s.max_skew);
    req(o, "topologyKey", &s.topology_key);
    req(o, "whenUnsatisfiable", &s.when_unsatisfiable);
    opt(o, "labelSelector", &s.label_selector);
    opt(o, "minDomains", &s.min_domains);
    opt(o, "nodeAffinityPolicy", &s.node_affinity_policy);
    opt(o, "nodeTaintsPolicy", &s.node_taints_policy);
    list(o, "matchLabelKeys", &s.match_label_keys);
});

fields!(core_v1::TypedLocalObjectReference, |s, o| {
    opt_or_null(o, "apiGroup", &s.api_group);
    req(o, "kind", &s.kind);
    req(o, "name", &s.name);
});

fields!(core_v1::TypedObjectReference, |s, o| {
    opt_or_null(o, "apiGroup", &s.api_group);
    req(o, "kind", &s.kind);
    req(o, "name", &s.name);
    opt(o, "namespace", &s.namespace);
});

fields!(core_v1::Volume, |s, o| {
    req(o, "name", &s.name);
    inline(o, &s.volume_source);
});

fields!(core_v1::VolumeDevice, |s, o| {
    req(o, "name", &s.name);
    req(o, "devicePath", &s.device_path);
});

fields!(core_v1::VolumeMount, |s, o| {
    req(o, "name", &s.name);
    nonzero(o, "readOnly", &s.read_only);
    opt(o, "recursiveReadOnly", &s.recursive_read_only);
    req(o, "mountPath", &s.mount_path);
    nonzero(o, "subPath", &s.sub_path);
    opt(o, "mountPropagation", &s.mount_propagation);
    nonzero(o, "subPathExpr", &s.sub_path_expr);
});

fields!(core_v1::VolumeMountStatus, |s, o| {
    req(o, "name", &s.name);
    req(o, "mountPath", &s.mount_path);
    nonzero(o, "readOnly", &s.read_only);
    opt(o, "recursiveReadOnly", &s.recursive_read_only);
});

fields!(core_v1::VolumeProjection, |s, o| {
    opt(o, "secret", &s.secret);
    opt(o, "downwardAPI", &s.downward_api);
    opt(o, "configMap", &s.config_map);
    opt(o, "serviceAccountToken", &s.service_account_token);
    opt(o, "clusterTrustBundle", &s.cluster_trust_bundle);
    opt(o, "podCertificate", &s.pod_certificate);
});

fields!(core_v1::VolumeResourceRequirements, |s, o| {
    map(o, "limits", &s.limits);
    map(o, "requests", &s.requests);
});

fields!(core_v1::VolumeSource, |s, o| {
    opt(o, "hostPath", &s.host_path);
    opt(o, "emptyDir", &s.empty_dir);
    opt(o, "gcePersistentDisk", &s.gce_persistent_disk);
    opt(o, "awsElasticBlockStore", &s.aws_elastic_block_store);
    opt(o, "gitRepo", &s.git_repo);
    opt(o, "secret", &s.secret);
    opt(o, "nfs", &s.nfs);
    opt(o, "iscsi", &s.iscsi);
    opt(o, "glusterfs", &s.glusterfs);
    opt(o, "persistentVolumeClaim", &s.persistent_volume_claim);
    opt(o, "rbd", &s.rbd);
    opt(o, "flexVolume", &s.flex_volume);
    opt(o, "cinder", &s.cinder);
    opt(o, "cephfs", &s.cephfs);
    opt(o, "flocker", &s.flocker);
    opt(o, "downwardAPI", &s.downward_api);
    opt(o, "fc", &s.fc);
    opt(o, "azureFile", &s.azure_file);
    opt(o, "configMap", &s.config_map);
    opt(o, "vsphereVolume", &s.vsphere_volume);
    opt(o, "quobyte", &s.quobyte);
    opt(o, "azureDisk", &s.azure_disk);
    opt(o, "photonPersistentDisk", &s.photon_persistent_disk);
    opt(o, "projected", &s.projected);
    opt(o, "portworxVolume", &s.portworx_volume);
    opt(o, "scaleIO", &s.scale_io);
    opt(o, "storageos", &s.storageos);
    opt(o, "csi", &s.csi);
    opt(o, "ephemeral", &s.ephemeral);
    opt(o, "image", &s.image);
});

fields!(core_v1::VsphereVirtualDiskVolumeSource, |s, o| {
    req(o, "volumePath", &s.volume_path);
    nonzero(o, "fsType", &s.fs_type);
    nonzero(o, "storagePolicyName", &s.storage_policy_name);
    nonzero(o, "storagePolicyID", &s.storage_policy_id);
});

fields!(core_v1::WeightedPodAffinityTerm, |s, o| {
    req(o, "weight", &s.weight);
    req(o, "podAffinityTerm", &s.pod_affinity_term);
});

fields!(core_v1::WindowsSecurityContextOptions, |s, o| {
    opt(o, "gmsaCredentialSpecName", &s.gmsa_credential_spec_name);
    opt(o, "gmsaCredentialSpec", &s.gmsa_credential_spec);
    opt(o, "runAsUserName", &s.run_as_user_name);
    opt(o, "hostProcess", &s.host_process);
});

fields!(core_v1::WorkloadReference, |s, o| {
    req(o, "name", &s.name);
    req(o, "podGroup", &s.pod_group);
    nonzero(o, "podGroupReplicaKey", &s.pod_group_replica_key);
});

fields!(meta_v1::Condition, |s, o| {
    req(o, "type", &s.r#type);
    req(o, "status", &s.status);
    nonzero(o, "observedGeneration", &s.observed_generation);
    req(o, "lastTransitionTime", &s.last_transition_time);
    req(o, "reason", &s.reason);
    req(o, "message", &s.message);
});

fields!(meta_v1::DeleteOptions, |s, o| {
    opt(o, "gracePeriodSeconds", &s.grace_period_seconds);
    opt(o, "preconditions", &s.preconditions);
    opt(o, "orphanDependents", &s.orphan_dependents);
    opt(o, "propagationPolicy", &s.propagation_policy);
    list(o, "dryRun", &s.dry_run);
    opt(
        o,
        "ignoreStoreReadErrorWithClusterBreakingPotential",
        &s.ignore_store_read_error_with_cluster_breaking_potential,
    );
});

fields!(meta_v1::FieldSelectorRequirement, |s, o| {
    req(o, "key", &s.key);
    req(o, "operator", &s.operator);
    list(o, "values", &s.values);
});

fields!(meta_v1::LabelSelector, |s, o| {
    map(o, "matchLabels", &s.match_labels);
    list(o, "matchExpressions", &s.match_expressions);
});

fields!(meta_v1::LabelSelectorRequirement, |s, o| {
    req(o, "key", &s.key);
    req(o, "operator", &s.operator);
    list(o, "values", &s.values);
});

fields!(meta_v1::ManagedFieldsEntry, |s, o| {
    nonzero(o, "manager", &s.manager);
    nonzero(o, "operation", &s.operation);
    nonzero(o, "apiVersion", &s.api_version);
    opt(o, "time", &s.time);
    nonzero(o, "fieldsType", &s.fields_type);
    opt(o, "fieldsV1", &s.fields_v1);
    nonzero(o, "subresource", &s.subresource);
});

fields!(meta_v1::ObjectMeta, |s, o| {
    nonzero(o, "name", &s.name);
    nonzero(o, "generateName", &s.generate_name);
    nonzero(o, "namespace", &s.namespace);
    nonzero(o, "selfLink", &s.self_link);
    nonzero(o, "uid", &s.uid);
    nonzero(o, "resourceVersion", &s.resource_version);
    nonzero(o, "generation", &s.generation);
    nonzero(o, "creationTimestamp", &s.creation_timestamp);
    opt(o, "deletionTimestamp", &s.deletion_timestamp);
    opt(
        o,
        "deletionGracePeriodSeconds",
        &s.deletion_grace_period_seconds,
    );
    map(o, "labels", &s.labels);
    map(o, "annotations", &s.annotations);
    list(o, "ownerReferences", &s.owner_references);
    list(o, "finalizers", &s.finalizers);
    list(o, "managedFields", &s.managed_fields);
});

fields!(meta_v1::OwnerReference, |s, o| {
    req(o, "apiVersion", &s.api_version);
    req(o, "kind", &s.kind);
    req(o, "name", &s.name);
    req(o, "uid", &s.uid);
    opt(o, "controller", &s.controller);
    opt(o, "blockOwnerDeletion", &s.block_owner_deletion);
});

fields!(meta_v1::Preconditions, |s, o| {
    opt(o, "uid", &s.uid);
    opt(o, "resourceVersion", &s.resource_version);
});

fields!(networking_v1::HttpIngressPath, |s, o| {
    nonzero(o, "path", &s.path);
    opt_or_null(o, "pathType", &s.path_type);
    req(o, "backend", &s.backend);
});

fields!(networking_v1::HttpIngressRuleValue, |s, o| {
    list_or_null(o, "paths", &s.paths);
});

fields!(networking_v1::Ingress, |s, o| {
    req(o, "metadata", &s.metadata);
    req(o, "spec", &s.spec);
    req(o, "status", &s.status);
});

fields!(networking_v1::IngressBackend, |s, o| {
    opt(o, "service", &s.service);
    opt(o, "resource", &s.resource);
});

fields!(networking_v1::IngressClass, |s, o| {
    req(o, "metadata", &s.metadata);
    req(o, "spec", &s.spec);
});

fields!(networking_v1::IngressClassParametersReference, |s, o| {
    opt(o, "apiGroup", &s.a_pi_group);
    req(o, "kind", &s.kind);
    req(o, "name", &s.name);
    opt_or_null(o, "scope", &s.scope);
    opt(o, "namespace", &s.namespace);
});

fields!(networking_v1::IngressClassSpec, |s, o| {
    nonzero(o, "controller", &s.controller);
    opt(o, "parameters", &s.parameters);
});

fields!(networking_v1::IngressLoadBalancerIngress, |s, o| {
    nonzero(o, "ip", &s.ip);
    nonzero(o, "hostname", &s.hostname);
    list(o, "ports", &s.ports);
});

fields!(networking_v1::IngressLoadBalancerStatus, |s, o| {
    list(o, "ingress", &s.ingress);
});

fields!(networking_v1::IngressPortStatus, |s, o| {
    req(o, "port", &s.port);
    req(o, "protocol", &s.protocol);
    opt(o, "error", &s.error);
});

fields!(networking_v1::IngressRule, |s, o| {
    nonzero(o, "host", &s.host);
    inline(o, &s.ingress_rule_value);
});

fields!(networking_v1::IngressRuleValue, |s, o| {
    opt(o, "http", &s.http);
});

fields!(networking_v1::IngressServiceBackend, |s, o| {
    req(o, "name", &s.name);
    req(o, "port", &s.port);
});

fields!(networking_v1::IngressSpec, |s, o| {
    opt(o, "ingressClassName", &s.ingress_class_name);
    opt(o, "defaultBackend", &s.default_backend);
    list(o, "tls", &s.tls);
    list(o, "rules", &s.rules);
});

fields!(networking_v1::IngressStatus, |s, o| {
    req(o, "loadBalancer", &s.load_balancer);
});

fields!(networking_v1::IngressTls, |s, o| {
    list(o, "hosts", &s.hosts);
    nonzero(o, "secretName", &s.secret_name);
});

fields!(networking_v1::IpBlock, |s, o| {
    req(o, "cidr", &s.cidr);
    list(o, "except", &s.except);
});

fields!(networking_v1::NetworkPolicy, |s, o| {
    req(o, "metadata", &s.metadata);
    req(o, "spec", &s.spec);
});

fields!(networking_v1::NetworkPolicyEgressRule, |s, o| {
    list(o, "ports", &s.ports);
    list(o, "to", &s.to);
});

fields!(networking_v1::NetworkPolicyIngressRule, |s, o| {
    list(o, "ports", &s.ports);
    list(o, "from", &s.from);
});

fields!(networking_v1::NetworkPolicyPeer, |s, o| {
    opt(o, "podSelector", &s.pod_selector);
    opt(o, "namespaceSelector", &s.namespace_selector);
    opt(o, "ipBlock", &s.ip_block);
});

fields!(networking_v1::NetworkPolicyPort, |s, o| {
    opt(o, "protocol", &s.protocol);
    opt(o, "port", &s.port);
    opt(o, "endPort", &s.end_port);
});

fields!(networking_v1::NetworkPolicySpec, |s, o| {
    req(o, "podSelector", &s.pod_selector);
    list(o, "ingress", &s.ingress);
    list(o, "egress", &s.egress);
    list(o, "policyTypes", &s.policy_types);
});

fields!(networking_v1::ServiceBackendPort, |s, o| {
    nonzero(o, "name", &s.name);
    nonzero(o, "number", &s.number);
});

fields!(policy_v1::Eviction, |s, o| {
    req(o, "metadata", &s.metadata);
    opt(o, "deleteOptions", &s.delete_options);
});

fields!(policy_v1::PodDisruptionBudget, |s, o| {
    req(o, "metadata", &s.metadata);
    req(o, "spec", &s.spec);
    req(o, "status", &s.status);
});

fields!(policy_v1::PodDisruptionBudgetSpec, |s, o| {
    opt(o, "minAvailable", &s.min_available);
    opt(o, "selector", &s.selector);
    opt(o, "maxUnavailable", &s.max_unavailable);
    opt(
        o,
        "unhealthyPodEvictionPolicy",
        &s.unhealthy_pod_eviction_policy,
    );
});

fields!(policy_v1::PodDisruptionBudgetStatus, |s, o| {
    nonzero(o, "observedGeneration", &s.observed_generation);
    map(o, "disruptedPods", &s.disrupted_pods);
    req(o, "disruptionsAllowed", &s.disruptions_allowed);
    req(o, "currentHealthy", &s.current_healthy);
    req(o, "desiredHealthy", &s.desired_healthy);
    req(o, "expectedPods", &s.expected_pods);
    list(o, "conditions", &s.conditions);
});

fields!(rbac_v1::AggregationRule, |s, o| {
    list(o, "clusterRoleSelectors", &s.cluster_role_selectors);
});

fields!(rbac_v1::ClusterRole, |s, o| {
    req(o, "metadata", &s.metadata);
    list_or_null(o, "rules", &s.rules);
    opt(o, "aggregationRule", &s.aggregation_rule);
});

fields!(rbac_v1::ClusterRoleBinding, |s, o| {
    req(o, "metadata", &s.metadata);
    list(o, "subjects", &s.subjects);
    req(o, "roleRef", &s.role_ref);
});

fields!(rbac_v1::PolicyRule, |s, o| {
    list_or_null(o, "verbs", &s.verbs);
    list(o, "apiGroups", &s.api_groups);
    list(o, "resources", &s.resources);
    list(o, "resourceNames", &s.resource_names);
    list(o, "nonResourceURLs", &s.non_resource_ur_ls);
});

fields!(rbac_v1::Role, |s, o| {
    req(o, "metadata", &s.metadata);
    list_or_null(o, "rules", &s.rules);
});

fields!(rbac_v1::RoleBinding, |s, o| {
    req(o, "metadata", &s.metadata);
    list(o, "subjects", &s.subjects);
    req(o, "roleRef", &s.role_ref);
});

fields!(rbac_v1::RoleRef, |s, o| {
    req(o, "apiGroup", &s.api_group);
    req(o, "kind", &s.kind);
    req(o, "name", &s.name);
});

fields!(rbac_v1::Subject, |s, o| {
    req(o, "kind", &s.kind);
    nonzero(o, "apiGroup", &s.api_group);
    req(o, "name", &s.name);
    nonzero(o, "namespace", &s.namespace);
});

fields!(scheduling_v1::PriorityClass, |s, o| {
    req(o, "metadata", &s.metadata);
    req(o, "value", &s.value);
    nonzero(o, "globalDefault", &s.global_default);
    nonzero(o, "description", &s.description);
    opt(o, "preemptionPolicy", &s.preemption_policy);
});

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Bodies sent by kubectl v1.32.4, captured from a local listener.
    const CONFIGMAP: &[u8] =
        b"k8s\x00\x0a\x0f\x0a\x02v1\x12\x09ConfigMap\x12F\x0a\x1b\x0a\x06myblog\x12\x00\x1a\
          \x05luffy\x22\x00*\x002\x008\x00B\x00\x12\x13\x0a\x0aMYSQL_HOST\x12\x05mysql\x12\x12\
          \x0a\x0aMYSQL_PORT\x12\x043306\x1a\x00\x22\x00";
    const SECRET: &[u8] =
        b"k8s\x00\x0a\x0c\x0a\x02v1\x12\x06Secret\x12.\x0a\x16\x0a\x06myblog\x12\x00\x1a\x00\
          \x22\x00*\x002\x008\x00B\x00\x12\x12\x0a\x0aMYSQL_USER\x12\x04root\x1a\x00\x1a\x00\
          \x22\x00";
    const DEPLOYMENT: &[u8] =
        b"k8s\x00\x0a\x15\x0a\x07apps/v1\x12\x0aDeployment\x12\xb8\x01\x0a\x1f\x0a\x03web\x12\
          \x00\x1a\x00\x22\x00*\x002\x008\x00B\x00Z\x0a\x0a\x03app\x12\x03web\x12\x86\x01\x08\
          \x02\x12\x0c\x0a\x0a\x0a\x03app\x12\x03web\x1al\x0a\x1c\x0a\x00\x12\x00\x1a\x00\x22\
          \x00*\x002\x008\x00B\x00Z\x0a\x0a\x03app\x12\x03web\x12L\x12.\x0a\x05nginx\x12\x05ng\
          inx*\x002\x0a\x0a\x00\x10\x00\x18P\x22\x00*\x00B\x00j\x00r\x00\x80\x01\x00\x88\x01\
          \x00\x90\x01\x00\xa2\x01\x00\x1a\x002\x00B\x00J\x00R\x00X\x00`\x00h\x00\x82\x01\x00\
          \x8a\x01\x00\x9a\x01\x00\xc2\x01\x00\x22\x02\x0a\x00(\x008\x00\x1a\x0c\x08\x00\x10\
          \x00\x18\x00\x20\x00(\x008\x00\x1a\x00\x22\x00";
    const NAMESPACE: &[u8] =
        b"k8s\x00\x0a\x0f\x0a\x02v1\x12\x09Namespace\x12\x1d\x0a\x15\x0a\x05luffy\x12\x00\x1a\
          \x00\x22\x00*\x002\x008\x00B\x00\x12\x00\x1a\x02\x0a\x00\x1a\x00\x22\x00";
    const SERVICE_CLUSTERIP: &[u8] =
        b"k8s\x00\x0a\x0d\x0a\x02v1\x12\x07Service\x12i\x0a\x1f\x0a\x03web\x12\x00\x1a\x00\x22\
          \x00*\x002\x008\x00B\x00Z\x0a\x0a\x03app\x12\x03web\x12B\x0a\x1b\x0a\x0780-8080\x12\
          \x03TCP\x18P\x22\x07\x08\x00\x10\x90?\x1a\x00(\x00\x12\x0a\x0a\x03app\x12\x03web\x1a\
          \x00\x22\x09ClusterIP:\x00B\x00R\x00Z\x00`\x00h\x00\x1a\x02\x0a\x00\x1a\x00\x22\x00";
    const SERVICE_NODEPORT: &[u8] =
        b"k8s\x00\x0a\x0d\x0a\x02v1\x12\x07Service\x12m\x0a\x1f\x0a\x03web\x12\x00\x1a\x00\x22\
          \x00*\x002\x008\x00B\x00Z\x0a\x0a\x03app\x12\x03web\x12F\x0a\x20\x0a\x0780-http\x12\
          \x03TCP\x18P\x22\x0a\x08\x01\x10\x00\x1a\x04http(\x80\xeb\x01\x12\x0a\x0a\x03app\x12\
          \x03web\x1a\x00\x22\x08NodePort:\x00B\x00R\x00Z\x00`\x00h\x00\x1a\x02\x0a\x00\x1a\
          \x00\x22\x00";
    const INGRESS: &[u8] =
        b"k8s\x00\x0a\x1f\x0a\x14networking.k8s.io/v1\x12\x07Ingress\x12i\x0a\x16\x0a\x06simpl\
          e\x12\x00\x1a\x00\x22\x00*\x002\x008\x00B\x00\x12K\x12\x12\x0a\x07foo.com\x12\x07my-\
          cert\x1a.\x0a\x07foo.com\x12#\x0a!\x0a\x1f\x0a\x04/bar\x12\x0f\x22\x0d\x0a\x04svc1\
          \x12\x05\x0a\x00\x10\x90?\x1a\x06Prefix\x22\x05nginx\x1a\x02\x0a\x00\x1a\x00\x22\x00";
    const JOB: &[u8] =
        b"k8s\x00\x0a\x0f\x0a\x08batch/v1\x12\x03Job\x12\x84\x01\x0a\x12\x0a\x02pi\x12\x00\x1a\
          \x00\x22\x00*\x002\x008\x00B\x00\x12d2b\x0a\x10\x0a\x00\x12\x00\x1a\x00\x22\x00*\x00\
          2\x008\x00B\x00\x12N\x12+\x0a\x02pi\x12\x04perl\x1a\x04perl\x1a\x02-e\x1a\x011*\x00B\
          \x00j\x00r\x00\x80\x01\x00\x88\x01\x00\x90\x01\x00\xa2\x01\x00\x1a\x05Never2\x00B\
          \x00J\x00R\x00X\x00`\x00h\x00\x82\x01\x00\x8a\x01\x00\x9a\x01\x00\xc2\x01\x00\x1a\
          \x08\x20\x00(\x000\x00:\x00\x1a\x00\x22\x00";
    const CRONJOB: &[u8] =
        b"k8s\x00\x0a\x13\x0a\x08batch/v1\x12\x07CronJob\x12\xae\x01\x0a\x15\x0a\x05hello\x12\
          \x00\x1a\x00\x22\x00*\x002\x008\x00B\x00\x12\x92\x01\x0a\x0b*/1\x20*\x20*\x20*\x20*\
          \x1a\x00*\x80\x01\x0a\x15\x0a\x05hello\x12\x00\x1a\x00\x22\x00*\x002\x008\x00B\x00\
          \x12g2e\x0a\x10\x0a\x00\x12\x00\x1a\x00\x22\x00*\x002\x008\x00B\x00\x12Q\x12*\x0a\
          \x05hello\x12\x07busybox\x1a\x04date*\x00B\x00j\x00r\x00\x80\x01\x00\x88\x01\x00\x90\
          \x01\x00\xa2\x01\x00\x1a\x09OnFailure2\x00B\x00J\x00R\x00X\x00`\x00h\x00\x82\x01\x00\
          \x8a\x01\x00\x9a\x01\x00\xc2\x01\x00\x1a\x00\x1a\x00\x22\x00";
    const PDB: &[u8] =
        b"k8s\x00\x0a\x20\x0a\x09policy/v1\x12\x13PodDisruptionBudget\x12>\x0a\x16\x0a\x06my-p\
          db\x12\x00\x1a\x00\x22\x00*\x002\x008\x00B\x00\x12\x18\x0a\x06\x08\x00\x10\x01\x1a\
          \x00\x12\x0e\x0a\x0c\x0a\x03app\x12\x05rails\x1a\x0a\x08\x00\x18\x00\x20\x00(\x000\
          \x00\x1a\x00\x22\x00";
    const PRIORITYCLASS: &[u8] =
        b"k8s\x00\x0a%\x0a\x14scheduling.k8s.io/v1\x12\x0dPriorityClass\x12(\x0a\x14\x0a\x04hi\
          gh\x12\x00\x1a\x00\x22\x00*\x002\x008\x00B\x00\x10\xe8\x07\x18\x00\x22\x04high*\x05N\
          ever\x1a\x00\x22\x00";
    const QUOTA: &[u8] =
        b"k8s\x00\x0a\x13\x0a\x02v1\x12\x0dResourceQuota\x12L\x0a\x11\x0a\x01q\x12\x00\x1a\x00\
          \x22\x00*\x002\x008\x00B\x00\x125\x0a\x0a\x0a\x03cpu\x12\x03\x0a\x011\x0a\x0e\x0a\
          \x06memory\x12\x04\x0a\x021G\x0a\x0b\x0a\x04pods\x12\x03\x0a\x012\x12\x0aBestEffort\
          \x1a\x00\x1a\x00\x22\x00";
    const ROLEBINDING: &[u8] =
        b"k8s\x00\x0a+\x0a\x1crbac.authorization.k8s.io/v1\x12\x0bRoleBinding\x12\x8e\x01\x0a\
          \x12\x0a\x02rb\x12\x00\x1a\x00\x22\x00*\x002\x008\x00B\x00\x12(\x0a\x04User\x12\x19r\
          bac.authorization.k8s.io\x1a\x03bob\x22\x00\x12\x1f\x0a\x0eServiceAccount\x12\x00\
          \x1a\x02sa\x22\x07default\x1a-\x0a\x19rbac.authorization.k8s.io\x12\x04Role\x1a\x0ap\
          od-reader\x1a\x00\x22\x00";
    const CLUSTERROLE: &[u8] =
        b"k8s\x00\x0a+\x0a\x1crbac.authorization.k8s.io/v1\x12\x0bClusterRole\x12$\x0a\x12\x0a\
          \x02cr\x12\x00\x1a\x00\x22\x00*\x002\x008\x00B\x00\x12\x0e\x0a\x03get*\x07/logs/*\
          \x1a\x00\x22\x00";
    const SERVICEACCOUNT: &[u8] =
        b"k8s\x00\x0a\x14\x0a\x02v1\x12\x0eServiceAccount\x12\x15\x0a\x13\x0a\x03sa1\x12\x00\
          \x1a\x00\x22\x00*\x002\x008\x00B\x00\x1a\x00\x22\x00";
    const TOKEN_REQUEST: &[u8] =
        b"k8s\x00\x0a(\x0a\x18authentication.k8s.io/v1\x12\x0cTokenRequest\x12\x1a\x0a\x10\x0a\
          \x00\x12\x00\x1a\x00\x22\x00*\x002\x008\x00B\x00\x12\x00\x1a\x04\x0a\x00\x12\x00\x1a\
          \x00\x22\x00";

    fn decoded(body: &[u8]) -> Value {
        decode(body).unwrap_or_else(|e| panic!("decode failed: {e}"))
    }

    /// Wraps a typed message the way client-go's protobuf serializer does.
    fn envelope<M: prost::Message>(api_version: &str, kind: &str, object: &M) -> Vec<u8> {
        let unknown = runtime::Unknown {
            type_meta: Some(runtime::TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(object.encode_to_vec()),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        body
    }

    /// ObjectMeta as Go writes it: every non-pointer field present, zero or not.
    fn go_meta(name: &str, namespace: &str) -> meta_v1::ObjectMeta {
        meta_v1::ObjectMeta {
            name: Some(name.into()),
            generate_name: Some(String::new()),
            namespace: Some(namespace.into()),
            self_link: Some(String::new()),
            uid: Some(String::new()),
            resource_version: Some(String::new()),
            generation: Some(0),
            creation_timestamp: Some(meta_v1::Time::default()),
            ..Default::default()
        }
    }

    fn strings(items: &[(&str, &str)]) -> BTreeMap<String, String> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn content_type_detection() {
        assert!(is_protobuf("application/vnd.kubernetes.protobuf"));
        assert!(is_protobuf(
            "Application/VND.Kubernetes.Protobuf ; charset=x"
        ));
        assert!(is_protobuf(
            "application/vnd.kubernetes.protobuf;stream=watch"
        ));
        assert!(!is_protobuf("application/json"));
        assert!(!is_protobuf("application/vnd.kubernetes.protobuf.extra"));
        assert!(!is_protobuf(""));
    }

    #[test]
    fn kubectl_create_configmap() {
        let want = json!({
            "kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "myblog", "namespace": "luffy"},
            "data": {"MYSQL_HOST": "mysql", "MYSQL_PORT": "3306"}
        });
        assert_eq!(decoded(CONFIGMAP), want);

        let encoded = core_v1::ConfigMap {
            metadata: Some(go_meta("myblog", "luffy")),
            data: strings(&[("MYSQL_HOST", "mysql"), ("MYSQL_PORT", "3306")]),
            ..Default::default()
        };
        assert_eq!(decoded(&envelope("v1", "ConfigMap", &encoded)), want);
    }

    #[test]
    fn kubectl_create_secret_generic() {
        assert_eq!(
            decoded(SECRET),
            json!({
                "kind": "Secret", "apiVersion": "v1",
                "metadata": {"name": "myblog"},
                "data": {"MYSQL_USER": "cm9vdA=="}
            })
        );
    }

    #[test]
    fn kubectl_create_secret_tls() {
        let secret = core_v1::Secret {
            metadata: Some(go_meta("mytls", "")),
            data: [
                ("tls.crt".to_string(), b"CERT\n".to_vec()),
                ("tls.key".to_string(), b"KEY\xff".to_vec()),
            ]
            .into(),
            r#type: Some("kubernetes.io/tls".into()),
            ..Default::default()
        };
        assert_eq!(
            decoded(&envelope("v1", "Secret", &secret)),
            json!({
                "kind": "Secret", "apiVersion": "v1",
                "metadata": {"name": "mytls"},
                "data": {"tls.crt": "Q0VSVAo=", "tls.key": "S0VZ/w=="},
                "type": "kubernetes.io/tls"
            })
        );
    }

    #[test]
    fn kubectl_create_namespace_and_serviceaccount() {
        assert_eq!(
            decoded(NAMESPACE),
            json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "luffy"},
                   "spec": {}, "status": {}})
        );
        assert_eq!(
            decoded(SERVICEACCOUNT),
            json!({"kind": "ServiceAccount", "apiVersion": "v1", "metadata": {"name": "sa1"}})
        );
    }

    #[test]
    fn kubectl_create_deployment() {
        let want = json!({
            "kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "nginx", "image": "nginx",
                        "ports": [{"containerPort": 80}],
                        "resources": {}
                    }]}
                },
                "strategy": {}
            },
            "status": {}
        });
        assert_eq!(decoded(DEPLOYMENT), want);

        let labels = strings(&[("app", "web")]);
        let mut template_meta = go_meta("", "");
        template_meta.labels = labels.clone();
        let mut meta = go_meta("web", "");
        meta.labels = labels.clone();
        let container = core_v1::Container {
            name: Some("nginx".into()),
            image: Some("nginx".into()),
            ports: vec![core_v1::ContainerPort {
                name: Some(String::new()),
                host_port: Some(0),
                container_port: Some(80),
                protocol: Some(String::new()),
                host_ip: Some(String::new()),
            }],
            resources: Some(Default::default()),
            termination_message_path: Some(String::new()),
            image_pull_policy: Some(String::new()),
            stdin: Some(false),
            tty: Some(false),
            ..Default::default()
        };
        let deployment = apps_v1::Deployment {
            metadata: Some(meta),
            spec: Some(apps_v1::DeploymentSpec {
                replicas: Some(2),
                selector: Some(meta_v1::LabelSelector {
                    match_labels: labels,
                    ..Default::default()
                }),
                template: Some(core_v1::PodTemplateSpec {
                    metadata: Some(template_meta),
                    spec: Some(core_v1::PodSpec {
                        containers: vec![container],
                        restart_policy: Some(String::new()),
                        host_network: Some(false),
                        ..Default::default()
                    }),
                }),
                strategy: Some(Default::default()),
                min_ready_seconds: Some(0),
                paused: Some(false),
                ..Default::default()
            }),
            status: Some(Default::default()),
        };
        assert_eq!(
            decoded(&envelope("apps/v1", "Deployment", &deployment)),
            want
        );
    }

    #[test]
    fn kubectl_create_service() {
        let port = |name: &str, target: Value| json!({"name": name, "port": 80, "protocol": "TCP", "targetPort": target});
        assert_eq!(
            decoded(SERVICE_CLUSTERIP),
            json!({
                "kind": "Service", "apiVersion": "v1",
                "metadata": {"name": "web", "labels": {"app": "web"}},
                "spec": {"ports": [port("80-8080", json!(8080))], "selector": {"app": "web"},
                         "type": "ClusterIP"},
                "status": {"loadBalancer": {}}
            })
        );
        let mut nodeport = port("80-http", json!("http"));
        nodeport["nodePort"] = json!(30080);
        assert_eq!(
            decoded(SERVICE_NODEPORT)["spec"]["ports"],
            json!([nodeport])
        );
        assert_eq!(decoded(SERVICE_NODEPORT)["spec"]["type"], "NodePort");
    }

    #[test]
    fn kubectl_create_ingress() {
        assert_eq!(
            decoded(INGRESS),
            json!({
                "kind": "Ingress", "apiVersion": "networking.k8s.io/v1",
                "metadata": {"name": "simple"},
                "spec": {
                    "ingressClassName": "nginx",
                    "rules": [{"host": "foo.com", "http": {"paths": [{
                        "path": "/bar", "pathType": "Prefix",
                        "backend": {"service": {"name": "svc1", "port": {"number": 8080}}}
                    }]}}],
                    "tls": [{"hosts": ["foo.com"], "secretName": "my-cert"}]
                },
                "status": {"loadBalancer": {}}
            })
        );
    }

    #[test]
    fn kubectl_create_job_and_cronjob() {
        let pod = |name: &str, command: Value, image: &str, restart: &str| {
            json!({"metadata": {}, "spec": {
                "containers": [{"name": name, "image": image, "command": command,
                                "resources": {}}],
                "restartPolicy": restart
            }})
        };
        assert_eq!(
            decoded(JOB),
            json!({
                "kind": "Job", "apiVersion": "batch/v1", "metadata": {"name": "pi"},
                "spec": {"template": pod("pi", json!(["perl", "-e", "1"]), "perl", "Never")},
                "status": {}
            })
        );
        assert_eq!(
            decoded(CRONJOB),
            json!({
                "kind": "CronJob", "apiVersion": "batch/v1", "metadata": {"name": "hello"},
                "spec": {
                    "schedule": "*/1 * * * *",
                    "jobTemplate": {"metadata": {"name": "hello"}, "spec": {
                        "template": pod("hello", json!(["date"]), "busybox", "OnFailure")
                    }}
                },
                "status": {}
            })
        );
    }

    #[test]
    fn kubectl_create_policy_scheduling_quota() {
        assert_eq!(
            decoded(PDB),
            json!({
                "kind": "PodDisruptionBudget", "apiVersion": "policy/v1",
                "metadata": {"name": "my-pdb"},
                "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "rails"}}},
                "status": {"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0,
                           "expectedPods": 0}
            })
        );
        assert_eq!(
            decoded(PRIORITYCLASS),
            json!({
                "kind": "PriorityClass", "apiVersion": "scheduling.k8s.io/v1",
                "metadata": {"name": "high"}, "value": 1000, "description": "high",
                "preemptionPolicy": "Never"
            })
        );
        assert_eq!(
            decoded(QUOTA),
            json!({
                "kind": "ResourceQuota", "apiVersion": "v1", "metadata": {"name": "q"},
                "spec": {"hard": {"cpu": "1", "memory": "1G", "pods": "2"},
                         "scopes": ["BestEffort"]},
                "status": {}
            })
        );
    }

    #[test]
    fn kubectl_create_rbac() {
        assert_eq!(
            decoded(ROLEBINDING),
            json!({
                "kind": "RoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
                "metadata": {"name": "rb"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                            "name": "pod-reader"},
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"},
                    {"kind": "ServiceAccount", "name": "sa", "namespace": "default"}
                ]
            })
        );
        assert_eq!(
            decoded(CLUSTERROLE),
            json!({
                "kind": "ClusterRole", "apiVersion": "rbac.authorization.k8s.io/v1",
                "metadata": {"name": "cr"},
                "rules": [{"verbs": ["get"], "nonResourceURLs": ["/logs/*"]}]
            })
        );
    }

    #[test]
    fn kubectl_create_token_keeps_required_nulls() {
        assert_eq!(
            decoded(TOKEN_REQUEST),
            json!({
                "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {},
                "spec": {"audiences": null, "boundObjectRef": null, "expirationSeconds": null},
                "status": {"token": "", "expirationTimestamp": null}
            })
        );
    }

    #[test]
    fn pod_spec_fields_and_pointer_zeros() {
        let int = |v: i32| intstr::IntOrString {
            r#type: Some(0),
            int_val: Some(v),
            str_val: Some(String::new()),
        };
        let quantity = |s: &str| resource::Quantity {
            string: Some(s.into()),
        };
        let mut meta = go_meta("", "prod");
        meta.generate_name = Some("web-".into());
        meta.creation_timestamp = Some(meta_v1::Time {
            seconds: Some(1_700_000_000),
            nanos: Some(0),
        });
        meta.deletion_grace_period_seconds = Some(0);
        meta.annotations = strings(&[("a", "b")]);
        meta.finalizers = vec!["x/y".into()];
        meta.owner_references = vec![meta_v1::OwnerReference {
            api_version: Some("apps/v1".into()),
            kind: Some("ReplicaSet".into()),
            name: Some("rs".into()),
            uid: Some("u1".into()),
            controller: Some(true),
            block_owner_deletion: Some(false),
        }];
        let container = core_v1::Container {
            name: Some("app".into()),
            image: Some("img".into()),
            args: vec!["--v".into()],
            image_pull_policy: Some("IfNotPresent".into()),
            env: vec![
                core_v1::EnvVar {
                    name: Some("A".into()),
                    value: Some("1".into()),
                    value_from: None,
                },
                core_v1::EnvVar {
                    name: Some("B".into()),
                    value: Some(String::new()),
                    value_from: Some(core_v1::EnvVarSource {
                        secret_key_ref: Some(core_v1::SecretKeySelector {
                            local_object_reference: Some(core_v1::LocalObjectReference {
                                name: Some("s".into()),
                            }),
                            key: Some("k".into()),
                            optional: Some(false),
                        }),
                        ..Default::default()
                    }),
                },
            ],
            env_from: vec![core_v1::EnvFromSource {
                prefix: Some(String::new()),
                config_map_ref: Some(core_v1::ConfigMapEnvSource {
                    local_object_reference: Some(core_v1::LocalObjectReference {
                        name: Some("cm".into()),
                    }),
                    optional: None,
                }),
                secret_ref: None,
            }],
            resources: Some(core_v1::ResourceRequirements {
                limits: [("memory".to_string(), quantity("128Mi"))].into(),
                requests: [("cpu".to_string(), quantity("100m"))].into(),
                claims: vec![],
            }),
            volume_mounts: vec![core_v1::VolumeMount {
                name: Some("data".into()),
                read_only: Some(true),
                mount_path: Some("/data".into()),
                sub_path: Some(String::new()),
                ..Default::default()
            }],
            liveness_probe: Some(core_v1::Probe {
                handler: Some(core_v1::ProbeHandler {
                    http_get: Some(core_v1::HttpGetAction {
                        path: Some("/healthz".into()),
                        port: Some(intstr::IntOrString {
                            r#type: Some(1),
                            int_val: Some(0),
                            str_val: Some("http".into()),
                        }),
                        host: Some(String::new()),
                        scheme: Some("HTTP".into()),
                        http_headers: vec![],
                    }),
                    ..Default::default()
                }),
                initial_delay_seconds: Some(0),
                period_seconds: Some(10),
                ..Default::default()
            }),
            readiness_probe: Some(core_v1::Probe {
                handler: Some(core_v1::ProbeHandler {
                    tcp_socket: Some(core_v1::TcpSocketAction {
                        port: Some(int(8080)),
                        host: Some(String::new()),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            security_context: Some(core_v1::SecurityContext {
                run_as_non_root: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        };
        let volume = |name: &str, source: core_v1::VolumeSource| core_v1::Volume {
            name: Some(name.into()),
            volume_source: Some(source),
        };
        let spec = core_v1::PodSpec {
            containers: vec![container],
            volumes: vec![
                volume(
                    "data",
                    core_v1::VolumeSource {
                        empty_dir: Some(core_v1::EmptyDirVolumeSource {
                            medium: Some(String::new()),
                            size_limit: Some(quantity("1Gi")),
                        }),
                        ..Default::default()
                    },
                ),
                volume(
                    "cfg",
                    core_v1::VolumeSource {
                        config_map: Some(core_v1::ConfigMapVolumeSource {
                            local_object_reference: Some(core_v1::LocalObjectReference {
                                name: Some("cm".into()),
                            }),
                            items: vec![core_v1::KeyToPath {
                                key: Some("k".into()),
                                path: Some("p".into()),
                                mode: None,
                            }],
                            default_mode: Some(0o644),
                            optional: None,
                        }),
                        ..Default::default()
                    },
                ),
                volume(
                    "host",
                    core_v1::VolumeSource {
                        host_path: Some(core_v1::HostPathVolumeSource {
                            path: Some("/var/log".into()),
                            // A pointer in Go: unset rather than "".
                            r#type: None,
                        }),
                        ..Default::default()
                    },
                ),
                volume(
                    "sec",
                    core_v1::VolumeSource {
                        secret: Some(core_v1::SecretVolumeSource {
                            secret_name: Some("s".into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ),
            ],
            restart_policy: Some("Always".into()),
            termination_grace_period_seconds: Some(0),
            dns_policy: Some("ClusterFirst".into()),
            node_selector: strings(&[("disk", "ssd")]),
            service_account_name: Some("sa".into()),
            automount_service_account_token: Some(false),
            host_network: Some(false),
            tolerations: vec![core_v1::Toleration {
                key: Some("k".into()),
                operator: Some("Exists".into()),
                value: Some(String::new()),
                effect: Some("NoSchedule".into()),
                toleration_seconds: None,
            }],
            ..Default::default()
        };
        let deployment = apps_v1::Deployment {
            metadata: Some(meta),
            spec: Some(apps_v1::DeploymentSpec {
                replicas: Some(0),
                template: Some(core_v1::PodTemplateSpec {
                    metadata: None,
                    spec: Some(spec),
                }),
                strategy: Some(apps_v1::DeploymentStrategy {
                    r#type: Some("RollingUpdate".into()),
                    rolling_update: Some(apps_v1::RollingUpdateDeployment {
                        max_unavailable: Some(int(0)),
                        max_surge: Some(intstr::IntOrString {
                            r#type: Some(1),
                            int_val: Some(0),
                            str_val: Some("25%".into()),
                        }),
                    }),
                }),
                ..Default::default()
            }),
            status: None,
        };
        assert_eq!(
            decoded(&envelope("apps/v1", "Deployment", &deployment)),
            json!({
                "kind": "Deployment", "apiVersion": "apps/v1",
                "metadata": {
                    "generateName": "web-", "namespace": "prod",
                    "creationTimestamp": "2023-11-14T22:13:20Z",
                    "deletionGracePeriodSeconds": 0,
                    "annotations": {"a": "b"},
                    "finalizers": ["x/y"],
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                        "name": "rs", "uid": "u1", "controller": true,
                        "blockOwnerDeletion": false}]
                },
                "spec": {
                    "replicas": 0,
                    "selector": null,
                    "template": {"metadata": {}, "spec": {
                        "containers": [{
                            "name": "app", "image": "img", "args": ["--v"],
                            "imagePullPolicy": "IfNotPresent",
                            "env": [
                                {"name": "A", "value": "1"},
                                {"name": "B", "valueFrom": {"secretKeyRef": {
                                    "name": "s", "key": "k", "optional": false}}}
                            ],
                            "envFrom": [{"configMapRef": {"name": "cm"}}],
                            "resources": {"limits": {"memory": "128Mi"},
                                          "requests": {"cpu": "100m"}},
                            "volumeMounts": [{"name": "data", "readOnly": true,
                                              "mountPath": "/data"}],
                            "livenessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http",
                                            "scheme": "HTTP"},
                                "periodSeconds": 10
                            },
                            "readinessProbe": {"tcpSocket": {"port": 8080}},
                            "securityContext": {"runAsNonRoot": false}
                        }],
                        "volumes": [
                            {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}},
                            {"name": "cfg", "configMap": {"name": "cm", "defaultMode": 420,
                                "items": [{"key": "k", "path": "p"}]}},
                            {"name": "host", "hostPath": {"path": "/var/log"}},
                            {"name": "sec", "secret": {"secretName": "s"}}
                        ],
                        "restartPolicy": "Always",
                        "terminationGracePeriodSeconds": 0,
                        "dnsPolicy": "ClusterFirst",
                        "nodeSelector": {"disk": "ssd"},
                        "serviceAccountName": "sa",
                        "automountServiceAccountToken": false,
                        "tolerations": [{"key": "k", "operator": "Exists",
                                         "effect": "NoSchedule"}]
                    }},
                    "strategy": {"type": "RollingUpdate", "rollingUpdate": {
                        "maxUnavailable": 0, "maxSurge": "25%"}}
                },
                "status": {}
            })
        );
    }

    #[test]
    fn every_listed_kind_decodes() {
        for (api_version, kind) in KINDS {
            let body = envelope(api_version, kind, &meta_v1::Status::default());
            let object = decoded(&body);
            assert_eq!(object["kind"], *kind);
            assert_eq!(object["apiVersion"], *api_version);
        }
    }

    #[test]
    fn errors() {
        let err = decode(&envelope("v1", "Frobnicator", &meta_v1::Status::default())).unwrap_err();
        assert_eq!(
            err,
            DecodeError::UnknownKind {
                api_version: "v1".into(),
                kind: "Frobnicator".into()
            }
        );
        assert!(err.to_string().contains("Frobnicator"));
        assert_eq!(
            decode(b"{\"kind\":\"Pod\"}"),
            Err(DecodeError::MissingMagic)
        );
        assert!(matches!(
            decode(b"k8s\0\x0a\x05\x0a"),
            Err(DecodeError::Malformed(_))
        ));
        let mut bad_raw = envelope("v1", "ConfigMap", &meta_v1::Status::default());
        // Replace raw with a truncated length-delimited field.
        let unknown = runtime::Unknown {
            type_meta: Some(runtime::TypeMeta {
                api_version: Some("v1".into()),
                kind: Some("ConfigMap".into()),
            }),
            raw: Some(vec![0x0a, 0x09, 0x0a]),
            ..Default::default()
        };
        bad_raw.truncate(MAGIC.len());
        bad_raw.extend(unknown.encode_to_vec());
        assert!(matches!(decode(&bad_raw), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn time_and_duration_formats() {
        assert_eq!(rfc3339(0, None), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400, None), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(-1, Some(5)), "1969-12-31T23:59:59.000005Z");
        let micro = meta_v1::MicroTime {
            seconds: Some(1_700_000_000),
            nanos: Some(123_456_789),
        };
        assert_eq!(micro.to_json(), "2023-11-14T22:13:20.123456Z");
        assert_eq!(meta_v1::Time::default().to_json(), Value::Null);
        let go_zero = meta_v1::Time {
            seconds: Some(-62_135_596_800),
            nanos: Some(0),
        };
        assert_eq!(go_zero.to_json(), Value::Null);
        for (nanos, want) in [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (150_000_000, "150ms"),
            (1_500_000_000, "1.5s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (-2_000_000_000, "-2s"),
        ] {
            assert_eq!(go_duration(nanos), want);
        }
    }
}
