//! Validation of API objects, with Kubernetes' field paths and wording.
//!
//! Every validator returns *all* the errors it finds as [`FieldError`]s whose `field` is the
//! full path (`spec.template.spec.containers[0].ports[1].containerPort`) and whose
//! [`FieldError::message`] reads as the Kubernetes API server's would
//! (`Invalid value: "Foo": a lowercase RFC 1123 label must consist of …`).
//!
//! The string checks (`is_dns1123_subdomain`, `is_qualified_name`, …) return Kubernetes'
//! messages for each rule a value breaks; an empty list means the value is valid.

use std::collections::BTreeMap;
use std::fmt;

mod apps;
mod autoscaling;
mod batch;
mod certificates;
mod core;
mod meta;
mod networking;
mod pod;
mod policy;
mod quota;
mod rbac;
mod storage;
mod strings;

pub use self::apps::render_int_or_string;
pub use self::apps::{
    validate_controller_revision, validate_daemon_set, validate_deployment, validate_replica_set,
    validate_replication_controller, validate_stateful_set,
};
pub use self::autoscaling::validate_horizontal_pod_autoscaler;
pub use self::batch::{parse_cron_schedule, validate_cron_job, validate_job};
pub use self::certificates::validate_certificate_signing_request;
pub use self::core::{
    validate_binding, validate_config_map, validate_endpoints, validate_event, validate_namespace,
    validate_node, validate_scale, validate_secret, validate_service, validate_service_account,
};
pub use self::meta::{
    render_label_selector, validate_annotations, validate_label_selector, validate_labels,
    validate_object_meta, NameRule,
};
pub use self::networking::{
    validate_endpoint_slice, validate_ingress, validate_ingress_class, validate_lease,
    validate_network_policy,
};
pub use self::pod::{
    validate_pod, validate_pod_spec, validate_pod_template_spec, validate_resources,
};
pub use self::policy::validate_pod_disruption_budget;
pub use self::quota::{validate_limit_range, validate_resource_quota};
pub use self::rbac::{
    default_subjects, validate_binding_update, validate_cluster_role,
    validate_cluster_role_binding, validate_role, validate_role_binding,
};
pub use self::storage::{
    validate_claim_spec, validate_persistent_volume, validate_persistent_volume_claim,
    validate_storage_class, ACCESS_MODES,
};
pub use self::strings::*;

/// The kind of a field error (Kubernetes' `field.ErrorType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldErrorKind {
    /// A required value is missing.
    Required,
    /// The value is malformed or out of range.
    Invalid,
    /// The value must be unique and is not.
    Duplicate,
    /// The value is not one of the supported values.
    NotSupported,
    /// The field may not be set or changed.
    Forbidden,
    /// The value is too long.
    TooLong,
    /// The list has too many items.
    TooMany,
    /// The value refers to something that does not exist (`Not found`).
    NotFound,
}

/// One validation error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// What kind of error.
    pub kind: FieldErrorKind,
    /// The full field path, e.g. `spec.template.spec.containers[0].image`.
    pub field: String,
    /// The offending value, already rendered as Kubernetes renders it: strings quoted
    /// (`"abc"`), numbers bare (`-1`), maps as `map[string]string{"a":"b"}`.
    pub value: Option<String>,
    /// The explanation (may be empty).
    pub detail: String,
}

impl FieldError {
    /// `Required value` (with `: detail` when there is one).
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Required, field, None, detail)
    }

    /// `Invalid value: <value>: detail`; `value` must already be rendered (see
    /// [`go_quote`], [`render_map`]).
    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(FieldErrorKind::Invalid, field, Some(value.into()), detail)
    }

    /// `Invalid value: "<value>": detail` for a string value.
    pub fn invalid_str(field: impl Into<String>, value: &str, detail: impl Into<String>) -> Self {
        Self::invalid(field, go_quote(value), detail)
    }

    /// `Invalid value: <n>: detail` for a number.
    pub fn invalid_int(field: impl Into<String>, value: i64, detail: impl Into<String>) -> Self {
        Self::invalid(field, value.to_string(), detail)
    }

    /// `Duplicate value: <value>` (value already rendered).
    pub fn duplicate(field: impl Into<String>, value: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Duplicate, field, Some(value.into()), "")
    }

    /// `Unsupported value: "<value>": supported values: "A", "B"`.
    pub fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            format!(
                "supported values: {}",
                supported
                    .iter()
                    .map(|s| go_quote(s))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        Self::new(
            FieldErrorKind::NotSupported,
            field,
            Some(go_quote(value)),
            detail,
        )
    }

    /// `Forbidden: detail`.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Forbidden, field, None, detail)
    }

    /// `Too long: may not be more than <max> bytes`.
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        let unit = if max == 1 { "byte" } else { "bytes" };
        Self::new(
            FieldErrorKind::TooLong,
            field,
            None,
            format!("may not be more than {max} {unit}"),
        )
    }

    /// `Too many: <actual>: must have at most <max> items`.
    pub fn too_many(field: impl Into<String>, actual: usize, max: usize) -> Self {
        let unit = if max == 1 { "item" } else { "items" };
        Self::new(
            FieldErrorKind::TooMany,
            field,
            Some(actual.to_string()),
            format!("must have at most {max} {unit}"),
        )
    }

    /// `Not found: "<value>"`.
    pub fn not_found(field: impl Into<String>, value: &str) -> Self {
        Self::new(FieldErrorKind::NotFound, field, Some(go_quote(value)), "")
    }

    fn new(
        kind: FieldErrorKind,
        field: impl Into<String>,
        value: Option<String>,
        detail: impl Into<String>,
    ) -> Self {
        FieldError {
            kind,
            field: field.into(),
            value,
            detail: detail.into(),
        }
    }

    /// The error without its field prefix, worded as Kubernetes' `ErrorBody`.
    pub fn message(&self) -> String {
        let type_str = match self.kind {
            FieldErrorKind::Required => "Required value",
            FieldErrorKind::Invalid => "Invalid value",
            FieldErrorKind::Duplicate => "Duplicate value",
            FieldErrorKind::NotSupported => "Unsupported value",
            FieldErrorKind::Forbidden => "Forbidden",
            FieldErrorKind::TooLong => "Too long",
            FieldErrorKind::TooMany => "Too many",
            FieldErrorKind::NotFound => "Not found",
        };
        let mut s = match self.kind {
            FieldErrorKind::Required | FieldErrorKind::Forbidden | FieldErrorKind::TooLong => {
                type_str.to_string()
            }
            _ => {
                let v = self.value.as_deref().unwrap_or("\"null\"");
                format!("{type_str}: {v}")
            }
        };
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }

    /// The `metav1.CauseType` of this error.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::TooLong => "FieldValueTooLong",
            FieldErrorKind::TooMany => "FieldValueTooMany",
            FieldErrorKind::NotFound => "FieldValueNotFound",
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message())
    }
}

impl std::error::Error for FieldError {}

/// Quotes a string as Go's `%q` does (`"a\"b"`).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Renders a string map as Go's `%#v` does: `map[string]string{"a":"b", "c":"d"}`, or
/// `map[string]string(nil)` when absent.
pub fn render_map(m: Option<&BTreeMap<String, String>>) -> String {
    match m {
        None => "map[string]string(nil)".into(),
        Some(m) => {
            let inner: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(v)))
                .collect();
            format!("map[string]string{{{}}}", inner.join(", "))
        }
    }
}

/// Renders a string slice as Go's `%#v` does: `[]string{"a", "b"}`.
pub fn render_string_slice(v: Option<&[String]>) -> String {
    match v {
        None => "[]string(nil)".into(),
        Some(v) => format!(
            "[]string{{{}}}",
            v.iter().map(|s| go_quote(s)).collect::<Vec<_>>().join(", ")
        ),
    }
}

pub(crate) fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

pub(crate) fn key(path: &str, k: &str) -> String {
    format!("{path}[{k}]")
}

/// `must be greater than or equal to 0` for negative values.
pub fn validate_nonnegative(value: i64, field: &str) -> Vec<FieldError> {
    if value < 0 {
        vec![FieldError::invalid_int(field, value, IS_NEGATIVE_ERROR)]
    } else {
        vec![]
    }
}

/// Kubernetes' message for a negative value.
pub const IS_NEGATIVE_ERROR: &str = "must be greater than or equal to 0";
/// Kubernetes' message for a value that must be positive.
pub const IS_NOT_POSITIVE_ERROR: &str = "must be greater than 0";

#[cfg(test)]
mod tests;
