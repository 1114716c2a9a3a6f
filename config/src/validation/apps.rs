//! apps/v1: Deployment, ReplicaSet, DaemonSet, StatefulSet; and the
//! ReplicaSet's predecessor in v1, ReplicationController.

use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::core::v1::{PodTemplateSpec, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::{
    selector_is_empty, selector_matches, validate_label_selector, validate_labels,
    validate_object_meta, NameRule,
};
use super::pod::validate_pod_template_spec;
use super::strings::is_valid_percent;
use super::{child, render_map, validate_nonnegative, FieldError};

/// Renders an IntOrString as Go's `%#v` of `intstr.IntOrString`.
pub fn render_int_or_string(v: Option<&IntOrString>) -> String {
    match v {
        None => "intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}".into(),
        Some(IntOrString::Int(n)) => {
            format!("intstr.IntOrString{{Type:0, IntVal:{n}, StrVal:\"\"}}")
        }
        Some(IntOrString::String(s)) => format!(
            "intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}",
            super::go_quote(s)
        ),
    }
}

fn int_or_percent_value(v: Option<&IntOrString>) -> i64 {
    match v {
        None => 0,
        Some(IntOrString::Int(n)) => *n as i64,
        Some(IntOrString::String(s)) => s
            .strip_suffix('%')
            .and_then(|d| d.parse::<i64>().ok())
            .unwrap_or(0),
    }
}

pub(super) fn validate_positive_int_or_percent(
    v: Option<&IntOrString>,
    path: &str,
) -> Vec<FieldError> {
    match v {
        None => vec![],
        Some(IntOrString::Int(n)) => validate_nonnegative(*n as i64, path),
        Some(s @ IntOrString::String(str_val)) => is_valid_percent(str_val)
            .into_iter()
            .map(|m| FieldError::invalid(path, render_int_or_string(Some(s)), m))
            .collect(),
    }
}

pub(super) fn not_more_than_100_percent(v: Option<&IntOrString>, path: &str) -> Vec<FieldError> {
    if let Some(IntOrString::String(s)) = v {
        if let Some(n) = s.strip_suffix('%').and_then(|d| d.parse::<i64>().ok()) {
            if n > 100 {
                return vec![FieldError::invalid(
                    path,
                    render_int_or_string(v),
                    "must not be greater than 100%",
                )];
            }
        }
    }
    vec![]
}

/// The common part of workload specs: selector present and valid, not empty, matching the
/// template's labels; template valid with restartPolicy Always and no activeDeadlineSeconds.
fn validate_selector_and_template(
    selector: &LabelSelector,
    template: &PodTemplateSpec,
    kind_word: &str,
    kind_name: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let missing = selector_is_empty(selector);
    if missing {
        // An absent selector decodes as an empty one; Kubernetes reports it as required,
        // and a nil selector matches nothing.
        errs.push(FieldError::required("spec.selector", ""));
    } else {
        errs.extend(validate_label_selector(selector, "spec.selector"));
    }
    let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
    if missing || !selector_matches(selector, labels) {
        errs.push(FieldError::invalid(
            "spec.template.metadata.labels",
            render_map(labels),
            "`selector` does not match template `labels`",
        ));
    }
    let _ = kind_word;
    errs.extend(validate_pod_template_spec(template, "spec.template"));
    let spec = template.spec.as_ref();
    let rp = spec.and_then(|s| s.restart_policy.as_deref()).unwrap_or("");
    if rp != "Always" {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            rp,
            &["Always"],
        ));
    }
    if spec.and_then(|s| s.active_deadline_seconds).is_some() {
        errs.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            format!("activeDeadlineSeconds in {kind_name} is not Supported"),
        ));
    }
    errs
}

/// Validates a Deployment.
pub fn validate_deployment(d: &Deployment) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&d.metadata, NameRule::Subdomain, "metadata");
    let default = Default::default();
    let spec = d.spec.as_ref().unwrap_or(&default);
    if let Some(r) = spec.replicas {
        errs.extend(validate_nonnegative(r as i64, "spec.replicas"));
    }
    errs.extend(validate_selector_and_template(
        &spec.selector,
        &spec.template,
        "deployment",
        "ReplicaSet",
    ));
    if let Some(s) = &spec.strategy {
        match s.type_.as_deref().unwrap_or("") {
            "Recreate" => {
                if s.rolling_update.is_some() {
                    errs.push(FieldError::forbidden(
                        "spec.strategy.rollingUpdate",
                        "may not be specified when strategy `type` is 'Recreate'",
                    ));
                }
            }
            "RollingUpdate" => match &s.rolling_update {
                None => errs.push(FieldError::required(
                    "spec.strategy.rollingUpdate",
                    "this should be defaulted and never be nil",
                )),
                Some(ru) => {
                    let p = "spec.strategy.rollingUpdate";
                    errs.extend(validate_positive_int_or_percent(
                        ru.max_unavailable.as_ref(),
                        &child(p, "maxUnavailable"),
                    ));
                    errs.extend(validate_positive_int_or_percent(
                        ru.max_surge.as_ref(),
                        &child(p, "maxSurge"),
                    ));
                    if int_or_percent_value(ru.max_unavailable.as_ref()) == 0
                        && int_or_percent_value(ru.max_surge.as_ref()) == 0
                    {
                        errs.push(FieldError::invalid(
                            child(p, "maxUnavailable"),
                            render_int_or_string(ru.max_unavailable.as_ref()),
                            "may not be 0 when `maxSurge` is 0",
                        ));
                    }
                    errs.extend(not_more_than_100_percent(
                        ru.max_unavailable.as_ref(),
                        &child(p, "maxUnavailable"),
                    ));
                }
            },
            other => errs.push(FieldError::not_supported(
                "spec.strategy.type",
                other,
                &["Recreate", "RollingUpdate"],
            )),
        }
    }
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    errs.extend(validate_nonnegative(
        min_ready as i64,
        "spec.minReadySeconds",
    ));
    if let Some(r) = spec.revision_history_limit {
        errs.extend(validate_nonnegative(r as i64, "spec.revisionHistoryLimit"));
    }
    if let Some(p) = spec.progress_deadline_seconds {
        errs.extend(validate_nonnegative(
            p as i64,
            "spec.progressDeadlineSeconds",
        ));
        if p <= min_ready {
            errs.push(FieldError::invalid_int(
                "spec.progressDeadlineSeconds",
                p as i64,
                "must be greater than minReadySeconds",
            ));
        }
    }
    errs
}

/// Validates a ReplicaSet.
pub fn validate_replica_set(rs: &ReplicaSet) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&rs.metadata, NameRule::Subdomain, "metadata");
    let default = Default::default();
    let spec = rs.spec.as_ref().unwrap_or(&default);
    if let Some(r) = spec.replicas {
        errs.extend(validate_nonnegative(r as i64, "spec.replicas"));
    }
    errs.extend(validate_nonnegative(
        spec.min_ready_seconds.unwrap_or(0) as i64,
        "spec.minReadySeconds",
    ));
    let template = spec.template.clone().unwrap_or_default();
    errs.extend(validate_selector_and_template(
        &spec.selector,
        &template,
        "replicaset",
        "ReplicaSet",
    ));
    errs
}

/// Validates a ReplicationController (`ValidateReplicationControllerSpec`):
/// its selector is a plain label map the template's labels must carry.
pub fn validate_replication_controller(rc: &ReplicationController) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&rc.metadata, NameRule::Subdomain, "metadata");
    let default = Default::default();
    let spec = rc.spec.as_ref().unwrap_or(&default);
    errs.extend(validate_nonnegative(
        spec.min_ready_seconds.unwrap_or(0) as i64,
        "spec.minReadySeconds",
    ));
    let selector = spec.selector.as_ref().filter(|s| !s.is_empty());
    match selector {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(s) => errs.extend(validate_labels(Some(s), "spec.selector")),
    }
    if let Some(r) = spec.replicas {
        errs.extend(validate_nonnegative(r as i64, "spec.replicas"));
    }
    let Some(template) = &spec.template else {
        errs.push(FieldError::required("spec.template", ""));
        return errs;
    };
    let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
    if let Some(sel) = selector {
        if !sel
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        {
            errs.push(FieldError::invalid(
                "spec.template.metadata.labels",
                render_map(labels),
                "`selector` does not match template `labels`",
            ));
        }
    }
    errs.extend(validate_pod_template_spec(template, "spec.template"));
    let pod = template.spec.as_ref();
    let rp = pod.and_then(|s| s.restart_policy.as_deref()).unwrap_or("");
    if rp != "Always" {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            rp,
            &["Always"],
        ));
    }
    if pod.and_then(|s| s.active_deadline_seconds).is_some() {
        errs.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in ReplicationController is not Supported",
        ));
    }
    errs
}

/// Validates a ControllerRevision (`ValidateControllerRevision`): a
/// revision number that is not negative; the data it records is required.
pub fn validate_controller_revision(cr: &ControllerRevision) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&cr.metadata, NameRule::Subdomain, "metadata");
    if cr.data.as_ref().is_none_or(|d| d.0.is_null()) {
        errs.push(FieldError::required("data", ""));
    }
    errs.extend(validate_nonnegative(cr.revision, "revision"));
    errs
}

/// Validates a DaemonSet.
pub fn validate_daemon_set(ds: &DaemonSet) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&ds.metadata, NameRule::Subdomain, "metadata");
    let default = Default::default();
    let spec = ds.spec.as_ref().unwrap_or(&default);
    errs.extend(validate_selector_and_template(
        &spec.selector,
        &spec.template,
        "daemonset",
        "DaemonSet",
    ));
    errs.extend(validate_nonnegative(
        spec.min_ready_seconds.unwrap_or(0) as i64,
        "spec.minReadySeconds",
    ));
    if let Some(r) = spec.revision_history_limit {
        errs.extend(validate_nonnegative(r as i64, "spec.revisionHistoryLimit"));
    }
    if let Some(s) = &spec.update_strategy {
        match s.type_.as_deref().unwrap_or("") {
            "OnDelete" => {}
            "RollingUpdate" => match &s.rolling_update {
                None => errs.push(FieldError::required(
                    "spec.updateStrategy.rollingUpdate",
                    "",
                )),
                Some(ru) => {
                    let p = "spec.updateStrategy.rollingUpdate";
                    errs.extend(validate_positive_int_or_percent(
                        ru.max_unavailable.as_ref(),
                        &child(p, "maxUnavailable"),
                    ));
                    errs.extend(validate_positive_int_or_percent(
                        ru.max_surge.as_ref(),
                        &child(p, "maxSurge"),
                    ));
                    errs.extend(not_more_than_100_percent(
                        ru.max_unavailable.as_ref(),
                        &child(p, "maxUnavailable"),
                    ));
                    errs.extend(not_more_than_100_percent(
                        ru.max_surge.as_ref(),
                        &child(p, "maxSurge"),
                    ));
                    let has_unavailable = int_or_percent_value(ru.max_unavailable.as_ref()) != 0;
                    let has_surge = int_or_percent_value(ru.max_surge.as_ref()) != 0;
                    if has_unavailable && has_surge {
                        errs.push(FieldError::invalid(
                            child(p, "maxSurge"),
                            render_int_or_string(ru.max_surge.as_ref()),
                            "may not be set when maxUnavailable is non-zero",
                        ));
                    } else if !has_unavailable && !has_surge {
                        errs.push(FieldError::required(
                            child(p, "maxUnavailable"),
                            "cannot be 0 when maxSurge is 0",
                        ));
                    }
                }
            },
            other => errs.push(FieldError::not_supported(
                "spec.updateStrategy",
                other,
                &["RollingUpdate", "OnDelete"],
            )),
        }
    }
    errs
}

/// Validates a StatefulSet (`serviceName` is optional, as in v1.33).
pub fn validate_stateful_set(ss: &StatefulSet) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&ss.metadata, NameRule::Subdomain, "metadata");
    let default = Default::default();
    let spec = ss.spec.as_ref().unwrap_or(&default);
    match spec.pod_management_policy.as_deref().unwrap_or("") {
        "OrderedReady" | "Parallel" => {}
        "" => errs.push(FieldError::required("spec.podManagementPolicy", "")),
        other => errs.push(FieldError::invalid_str(
            "spec.podManagementPolicy",
            other,
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    match &spec.update_strategy {
        None => errs.push(FieldError::required("spec.updateStrategy", "")),
        Some(s) => match s.type_.as_deref().unwrap_or("") {
            "" => errs.push(FieldError::required("spec.updateStrategy", "")),
            "OnDelete" => {
                if s.rolling_update.is_some() {
                    errs.push(FieldError::invalid(
                        "spec.updateStrategy.rollingUpdate",
                        "&apps.RollingUpdateStatefulSetStrategy{...}",
                        "only allowed for updateStrategy 'RollingUpdate'",
                    ));
                }
            }
            "RollingUpdate" => {
                if let Some(ru) = &s.rolling_update {
                    if let Some(p) = ru.partition {
                        errs.extend(validate_nonnegative(
                            p as i64,
                            "spec.updateStrategy.rollingUpdate.partition",
                        ));
                    }
                }
            }
            other => errs.push(FieldError::invalid_str(
                "spec.updateStrategy",
                other,
                "must be 'RollingUpdate' or 'OnDelete'",
            )),
        },
    }
    if let Some(p) = &spec.persistent_volume_claim_retention_policy {
        for (field, v) in [
            ("whenDeleted", p.when_deleted.as_deref()),
            ("whenScaled", p.when_scaled.as_deref()),
        ] {
            let v = v.unwrap_or("");
            if v != "Retain" && v != "Delete" {
                errs.push(FieldError::not_supported(
                    child("spec.persistentVolumeClaimRetentionPolicy", field),
                    v,
                    &["Retain", "Delete"],
                ));
            }
        }
    }
    if let Some(o) = &spec.ordinals {
        if let Some(s) = o.start {
            errs.extend(validate_nonnegative(s as i64, "spec.ordinals.start"));
        }
    }
    if let Some(r) = spec.replicas {
        errs.extend(validate_nonnegative(r as i64, "spec.replicas"));
    }
    errs.extend(validate_nonnegative(
        spec.min_ready_seconds.unwrap_or(0) as i64,
        "spec.minReadySeconds",
    ));
    if let Some(r) = spec.revision_history_limit {
        errs.extend(validate_nonnegative(r as i64, "spec.revisionHistoryLimit"));
    }
    if let Some(name) = spec.service_name.as_deref().filter(|s| !s.is_empty()) {
        for m in super::strings::is_dns1035_label(name) {
            errs.push(FieldError::invalid_str("spec.serviceName", name, m));
        }
    }
    for (i, pvc) in spec.volume_claim_templates.iter().flatten().enumerate() {
        let p = super::index("spec.volumeClaimTemplates", i);
        if let Some(claim) = &pvc.spec {
            errs.extend(super::storage::validate_claim_spec(
                claim,
                &child(&p, "spec"),
            ));
        }
        let name = pvc.metadata.name.as_deref().unwrap_or("");
        if name.is_empty() {
            errs.push(FieldError::required(
                child(&child(&p, "metadata"), "name"),
                "name or generateName is required",
            ));
        } else {
            for m in super::strings::is_dns1123_subdomain(name) {
                errs.push(FieldError::invalid_str(
                    child(&child(&p, "metadata"), "name"),
                    name,
                    m,
                ));
            }
        }
    }
    // The template's mounts may name the claim templates: each becomes a
    // volume of the pod.
    let mut template = spec.template.clone();
    if let Some(pod) = template.spec.as_mut() {
        let volumes = pod.volumes.get_or_insert_with(Vec::new);
        for claim in spec.volume_claim_templates.iter().flatten() {
            let name = claim.metadata.name.clone().unwrap_or_default();
            volumes.retain(|v| v.name != name);
            volumes.push(k8s_openapi::api::core::v1::Volume {
                name: name.clone(),
                persistent_volume_claim: Some(
                    k8s_openapi::api::core::v1::PersistentVolumeClaimVolumeSource {
                        claim_name: name,
                        read_only: None,
                    },
                ),
                ..Default::default()
            });
        }
    }
    errs.extend(validate_selector_and_template(
        &spec.selector,
        &template,
        "statefulset",
        "StatefulSet",
    ));
    errs
}
