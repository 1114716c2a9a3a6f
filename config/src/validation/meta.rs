//! Object metadata, labels, annotations and label selectors.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::strings::*;
use super::{child, go_quote, index, FieldError};

/// Total size limit of all annotations of an object (256 KiB).
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// Which format a kind's `metadata.name` must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// A DNS-1123 subdomain (most kinds).
    Subdomain,
    /// A DNS-1123 label (Namespace).
    Label,
    /// A DNS-1035 label (Service).
    Dns1035,
    /// Only "required" is checked.
    Any,
}

impl NameRule {
    fn check(self, name: &str, prefix: bool) -> Vec<String> {
        let name = if prefix {
            mask_trailing_dash(name)
        } else {
            name.to_string()
        };
        match self {
            NameRule::Subdomain => is_dns1123_subdomain(&name),
            NameRule::Label => is_dns1123_label(&name),
            NameRule::Dns1035 => is_dns1035_label(&name),
            NameRule::Any => vec![],
        }
    }
}

/// Validates `metadata`: name (or generateName), namespace format, labels, annotations.
/// Whether a namespaced kind carries a namespace is left to the server.
pub fn validate_object_meta(meta: &ObjectMeta, rule: NameRule, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = meta.name.as_deref().unwrap_or("");
    let generate_name = meta.generate_name.as_deref().unwrap_or("");
    if !generate_name.is_empty() {
        for m in rule.check(generate_name, true) {
            errs.push(FieldError::invalid_str(
                child(path, "generateName"),
                generate_name,
                m,
            ));
        }
    }
    if name.is_empty() {
        if generate_name.is_empty() {
            errs.push(FieldError::required(
                child(path, "name"),
                "name or generateName is required",
            ));
        }
    } else {
        for m in rule.check(name, false) {
            errs.push(FieldError::invalid_str(child(path, "name"), name, m));
        }
    }
    if let Some(ns) = meta.namespace.as_deref().filter(|n| !n.is_empty()) {
        for m in is_dns1123_label(ns) {
            errs.push(FieldError::invalid_str(child(path, "namespace"), ns, m));
        }
    }
    if let Some(g) = meta.generation {
        errs.extend(super::validate_nonnegative(g, &child(path, "generation")));
    }
    errs.extend(validate_labels(
        meta.labels.as_ref(),
        &child(path, "labels"),
    ));
    errs.extend(validate_annotations(
        meta.annotations.as_ref(),
        &child(path, "annotations"),
    ));
    for (i, f) in meta.finalizers.iter().flatten().enumerate() {
        for m in is_qualified_name(f) {
            errs.push(FieldError::invalid_str(
                index(&child(path, "finalizers"), i),
                f,
                m,
            ));
        }
    }
    for (i, r) in meta.owner_references.iter().flatten().enumerate() {
        let p = index(&child(path, "ownerReferences"), i);
        if r.api_version.is_empty() {
            errs.push(FieldError::invalid_str(
                child(&p, "apiVersion"),
                "",
                "version must not be empty",
            ));
        }
        if r.kind.is_empty() {
            errs.push(FieldError::invalid_str(
                child(&p, "kind"),
                "",
                "kind must not be empty",
            ));
        }
        if r.name.is_empty() {
            errs.push(FieldError::invalid_str(
                child(&p, "name"),
                "",
                "name must not be empty",
            ));
        }
        if r.uid.is_empty() {
            errs.push(FieldError::invalid_str(
                child(&p, "uid"),
                "",
                "uid must not be empty",
            ));
        }
    }
    errs
}

/// Label keys must be qualified names and values valid label values. Errors point at the
/// map itself (`metadata.labels`), as in Kubernetes.
pub fn validate_labels(labels: Option<&BTreeMap<String, String>>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (k, v) in labels.into_iter().flatten() {
        for m in is_qualified_name(k) {
            errs.push(FieldError::invalid_str(path, k, m));
        }
        for m in is_valid_label_value(v) {
            errs.push(FieldError::invalid_str(path, v, m));
        }
    }
    errs
}

/// Annotation keys must be qualified names (checked lower-cased); all keys and values
/// together may not exceed 256 KiB.
pub fn validate_annotations(
    annotations: Option<&BTreeMap<String, String>>,
    path: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut total = 0usize;
    for (k, v) in annotations.into_iter().flatten() {
        for m in is_qualified_name(&k.to_lowercase()) {
            errs.push(FieldError::invalid_str(path, k, m));
        }
        total += k.len() + v.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errs
}

/// Validates a `metav1.LabelSelector` (matchLabels and matchExpressions).
pub fn validate_label_selector(sel: &LabelSelector, path: &str) -> Vec<FieldError> {
    let mut errs = validate_labels(sel.match_labels.as_ref(), &child(path, "matchLabels"));
    for (i, r) in sel.match_expressions.iter().flatten().enumerate() {
        let p = index(&child(path, "matchExpressions"), i);
        let n_values = r.values.as_ref().map_or(0, Vec::len);
        match r.operator.as_str() {
            "In" | "NotIn" => {
                if n_values == 0 {
                    errs.push(FieldError::required(
                        child(&p, "values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if n_values > 0 {
                    errs.push(FieldError::forbidden(
                        child(&p, "values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            other => errs.push(FieldError::invalid_str(
                child(&p, "operator"),
                other,
                "not a valid selector operator",
            )),
        }
        for m in is_qualified_name(&r.key) {
            errs.push(FieldError::invalid_str(child(&p, "key"), &r.key, m));
        }
        for (j, v) in r.values.iter().flatten().enumerate() {
            for m in is_valid_label_value(v) {
                errs.push(FieldError::invalid_str(
                    index(&child(&p, "values"), j),
                    v,
                    m,
                ));
            }
        }
    }
    errs
}

/// True when the selector has neither matchLabels nor matchExpressions.
pub(crate) fn selector_is_empty(sel: &LabelSelector) -> bool {
    sel.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
        && sel.match_expressions.as_ref().is_none_or(Vec::is_empty)
}

/// Renders a `metav1.LabelSelector` as Go's `%#v` of `v1.LabelSelector`.
pub fn render_label_selector(sel: &LabelSelector) -> String {
    let exprs = match &sel.match_expressions {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(list) => format!(
            "[]v1.LabelSelectorRequirement{{{}}}",
            list.iter()
                .map(|r| format!(
                    "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
                    go_quote(&r.key),
                    go_quote(&r.operator),
                    super::render_string_slice(r.values.as_deref())
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{}}}",
        super::render_map(sel.match_labels.as_ref()),
        exprs
    )
}

/// Whether a selector (converted as Kubernetes' `LabelSelectorAsSelector`) matches the
/// labels. An empty selector matches everything; an unconvertible one matches nothing.
pub(crate) fn selector_matches(
    sel: &LabelSelector,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    let empty = BTreeMap::new();
    match crate::selector::LabelSelector::from_label_selector(sel) {
        Ok(s) => s.matches(labels.unwrap_or(&empty)),
        Err(_) => false,
    }
}
