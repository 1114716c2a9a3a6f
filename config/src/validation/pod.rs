//! Pods, pod templates and everything inside a pod spec.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::core::v1::{
    Container, EnvFromSource, EnvVar, HTTPGetAction, LifecycleHandler, Pod, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::{validate_annotations, validate_labels, validate_object_meta, NameRule};
use super::strings::*;
use super::{child, go_quote, index, key, validate_nonnegative, FieldError, IS_NOT_POSITIVE_ERROR};
use crate::quantity::parse_quantity;

const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

/// Validates a Pod: metadata and spec.
pub fn validate_pod(pod: &Pod) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&pod.metadata, NameRule::Subdomain, "metadata");
    let default = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&default);
    errs.extend(validate_pod_spec(spec, "spec"));
    // Rules that apply to pods but not to templates.
    for (field, list) in [
        ("containers", Some(&spec.containers)),
        ("initContainers", spec.init_containers.as_ref()),
    ] {
        for (i, c) in list.into_iter().flatten().enumerate() {
            let image = c.image.as_deref().unwrap_or("");
            if !image.is_empty() && image.trim() != image {
                errs.push(FieldError::invalid_str(
                    child(&index(&child("spec", field), i), "image"),
                    image,
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }
    errs
}

/// Validates a pod template at `path` (e.g. `spec.template`): its labels and annotations
/// (reported as `<path>.labels`, as Kubernetes does) and its pod spec.
pub fn validate_pod_template_spec(t: &PodTemplateSpec, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(m) = &t.metadata {
        errs.extend(validate_labels(m.labels.as_ref(), &child(path, "labels")));
        errs.extend(validate_annotations(
            m.annotations.as_ref(),
            &child(path, "annotations"),
        ));
    }
    let default = PodSpec::default();
    errs.extend(validate_pod_spec(
        t.spec.as_ref().unwrap_or(&default),
        &child(path, "spec"),
    ));
    errs
}

/// Validates a pod spec at `path` (e.g. `spec` or `spec.template.spec`).
pub fn validate_pod_spec(spec: &PodSpec, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let (volume_names, mut e) = validate_volumes(
        spec.volumes.as_deref().unwrap_or(&[]),
        &child(path, "volumes"),
    );
    errs.append(&mut e);

    let host_network = spec.host_network == Some(true);
    let mut all_names: HashSet<String> = HashSet::new();
    let init = spec.init_containers.as_deref().unwrap_or(&[]);
    for (i, c) in init.iter().enumerate() {
        let p = index(&child(path, "initContainers"), i);
        errs.extend(validate_container(
            c,
            &p,
            &volume_names,
            host_network,
            &mut all_names,
            true,
        ));
        if let Some(rp) = c.restart_policy.as_deref() {
            if rp != "Always" {
                errs.push(FieldError::not_supported(
                    child(&p, "restartPolicy"),
                    rp,
                    &["Always"],
                ));
            }
        }
        let sidecar = c.restart_policy.as_deref() == Some("Always");
        if !sidecar {
            for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                let set = match probe {
                    "livenessProbe" => c.liveness_probe.is_some(),
                    "readinessProbe" => c.readiness_probe.is_some(),
                    _ => c.startup_probe.is_some(),
                };
                if set {
                    errs.push(FieldError::forbidden(
                        child(&p, probe),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
            if c.lifecycle.is_some() {
                errs.push(FieldError::forbidden(
                    child(&p, "lifecycle"),
                    "may not be set for init containers without restartPolicy=Always",
                ));
            }
        }
    }
    if spec.containers.is_empty() {
        errs.push(FieldError::required(child(path, "containers"), ""));
    }
    for (i, c) in spec.containers.iter().enumerate() {
        let p = index(&child(path, "containers"), i);
        errs.extend(validate_container(
            c,
            &p,
            &volume_names,
            host_network,
            &mut all_names,
            false,
        ));
        if let Some(rp) = c.restart_policy.as_deref() {
            let _ = rp;
            errs.push(FieldError::forbidden(
                child(&p, "restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    errs.extend(validate_host_ports(spec, path));

    match spec.restart_policy.as_deref().unwrap_or("") {
        "Always" | "OnFailure" | "Never" => {}
        "" => errs.push(FieldError::required(child(path, "restartPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            child(path, "restartPolicy"),
            other,
            &["Always", "OnFailure", "Never"],
        )),
    }
    match spec.dns_policy.as_deref().unwrap_or("") {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" => {}
        "None" => {
            if spec.dns_config.is_none() {
                errs.push(FieldError::required(
                    child(path, "dnsConfig"),
                    "must provide `dnsConfig` when `dnsPolicy` is None",
                ));
            }
        }
        "" => errs.push(FieldError::required(child(path, "dnsPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            child(path, "dnsPolicy"),
            other,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        )),
    }
    if let Some(dc) = &spec.dns_config {
        let p = child(path, "dnsConfig");
        let ns = dc.nameservers.as_deref().unwrap_or(&[]);
        if ns.len() > 3 {
            errs.push(FieldError::invalid(
                child(&p, "nameservers"),
                super::render_string_slice(Some(ns)),
                "must not have more than 3 nameservers",
            ));
        }
        for (i, n) in ns.iter().enumerate() {
            for m in is_valid_ip(n) {
                errs.push(FieldError::invalid_str(
                    index(&child(&p, "nameservers"), i),
                    n,
                    m,
                ));
            }
        }
        if spec.dns_policy.as_deref() == Some("None") && ns.is_empty() {
            errs.push(FieldError::required(
                child(&p, "nameservers"),
                "must provide at least one DNS nameserver when `dnsPolicy` is None",
            ));
        }
        let searches = dc.searches.as_deref().unwrap_or(&[]);
        if searches.len() > 32 {
            errs.push(FieldError::invalid(
                child(&p, "searches"),
                super::render_string_slice(Some(searches)),
                "must not have more than 32 search paths",
            ));
        }
        for (i, s) in searches.iter().enumerate() {
            let s2 = s.strip_suffix('.').unwrap_or(s);
            for m in is_dns1123_subdomain(s2) {
                errs.push(FieldError::invalid_str(
                    index(&child(&p, "searches"), i),
                    s,
                    m,
                ));
            }
        }
        for (i, o) in dc.options.iter().flatten().enumerate() {
            if o.name.as_deref().unwrap_or("").is_empty() {
                errs.push(FieldError::required(
                    child(&index(&child(&p, "options"), i), "name"),
                    "Option.Name must not be empty",
                ));
            }
        }
    }
    if let Some(t) = spec.termination_grace_period_seconds {
        errs.extend(validate_nonnegative(
            t,
            &child(path, "terminationGracePeriodSeconds"),
        ));
    }
    if let Some(a) = spec.active_deadline_seconds {
        if !(1..=i32::MAX as i64).contains(&a) {
            errs.push(FieldError::invalid_int(
                child(path, "activeDeadlineSeconds"),
                a,
                inclusive_range_error(1, i32::MAX as i64),
            ));
        }
    }
    errs.extend(validate_labels(
        spec.node_selector.as_ref(),
        &child(path, "nodeSelector"),
    ));
    for (field, v) in [
        ("serviceAccountName", spec.service_account_name.as_deref()),
        ("nodeName", spec.node_name.as_deref()),
        ("priorityClassName", spec.priority_class_name.as_deref()),
        ("runtimeClassName", spec.runtime_class_name.as_deref()),
    ] {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            let msgs = is_dns1123_subdomain(v);
            for m in msgs {
                errs.push(FieldError::invalid_str(child(path, field), v, m));
            }
        }
    }
    for (field, v) in [
        ("hostname", spec.hostname.as_deref()),
        ("subdomain", spec.subdomain.as_deref()),
    ] {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            for m in is_dns1123_label(v) {
                errs.push(FieldError::invalid_str(child(path, field), v, m));
            }
        }
    }
    for (i, h) in spec.host_aliases.iter().flatten().enumerate() {
        let p = index(&child(path, "hostAliases"), i);
        let ip = h.ip.as_str();
        for m in is_valid_ip(ip) {
            errs.push(FieldError::invalid_str(child(&p, "ip"), ip, m));
        }
        for (j, hn) in h.hostnames.iter().flatten().enumerate() {
            for m in is_dns1123_subdomain(hn) {
                errs.push(FieldError::invalid_str(
                    index(&child(&p, "hostnames"), j),
                    hn,
                    m,
                ));
            }
        }
    }
    for (i, s) in spec.image_pull_secrets.iter().flatten().enumerate() {
        if s.name.is_empty() {
            errs.push(FieldError::required(
                child(&index(&child(path, "imagePullSecrets"), i), "name"),
                "",
            ));
        }
    }
    errs.extend(validate_tolerations(
        spec.tolerations.as_deref().unwrap_or(&[]),
        &child(path, "tolerations"),
    ));
    if let Some(sc) = &spec.security_context {
        let p = child(path, "securityContext");
        for (field, v) in [
            ("runAsUser", sc.run_as_user),
            ("runAsGroup", sc.run_as_group),
            ("fsGroup", sc.fs_group),
        ] {
            if let Some(v) = v {
                if !(0..=i32::MAX as i64).contains(&v) {
                    errs.push(FieldError::invalid_int(
                        child(&p, field),
                        v,
                        inclusive_range_error(0, i32::MAX as i64),
                    ));
                }
            }
        }
    }
    errs
}

fn validate_host_ports(spec: &PodSpec, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let lists = [
        (
            "initContainers",
            spec.init_containers.as_deref().unwrap_or(&[]),
        ),
        ("containers", spec.containers.as_slice()),
    ];
    for (field, list) in lists {
        for (i, c) in list.iter().enumerate() {
            for (j, p) in c.ports.iter().flatten().enumerate() {
                let hp = p.host_port.unwrap_or(0);
                if hp == 0 {
                    continue;
                }
                let k = format!(
                    "{}/{}/{}",
                    p.host_ip.as_deref().unwrap_or(""),
                    p.protocol.as_deref().unwrap_or("TCP"),
                    hp
                );
                if !seen.insert(k.clone()) {
                    errs.push(FieldError::duplicate(
                        child(
                            &index(&child(&index(&child(path, field), i), "ports"), j),
                            "hostPort",
                        ),
                        go_quote(&k),
                    ));
                }
            }
        }
    }
    errs
}

fn validate_container(
    c: &Container,
    path: &str,
    volumes: &BTreeMap<String, bool>,
    host_network: bool,
    all_names: &mut HashSet<String>,
    is_init: bool,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if c.name.is_empty() {
        errs.push(FieldError::required(child(path, "name"), ""));
    } else {
        for m in is_dns1123_label(&c.name) {
            errs.push(FieldError::invalid_str(child(path, "name"), &c.name, m));
        }
        if !all_names.insert(c.name.clone()) {
            errs.push(FieldError::duplicate(
                child(path, "name"),
                go_quote(&c.name),
            ));
        }
    }
    if c.image.as_deref().unwrap_or("").is_empty() {
        errs.push(FieldError::required(child(path, "image"), ""));
    }
    let _ = is_init;
    // Ports.
    let mut port_names: HashSet<&str> = HashSet::new();
    for (i, p) in c.ports.iter().flatten().enumerate() {
        let pp = index(&child(path, "ports"), i);
        if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            let msgs = is_valid_port_name(name);
            if !msgs.is_empty() {
                for m in msgs {
                    errs.push(FieldError::invalid_str(child(&pp, "name"), name, m));
                }
            } else if !port_names.insert(name) {
                errs.push(FieldError::duplicate(child(&pp, "name"), go_quote(name)));
            }
        }
        if p.container_port == 0 {
            errs.push(FieldError::required(child(&pp, "containerPort"), ""));
        } else {
            for m in is_valid_port_num(p.container_port as i64) {
                errs.push(FieldError::invalid_int(
                    child(&pp, "containerPort"),
                    p.container_port as i64,
                    m,
                ));
            }
        }
        if let Some(hp) = p.host_port.filter(|h| *h != 0) {
            for m in is_valid_port_num(hp as i64) {
                errs.push(FieldError::invalid_int(
                    child(&pp, "hostPort"),
                    hp as i64,
                    m,
                ));
            }
            if host_network && hp != p.container_port {
                errs.push(FieldError::invalid_int(
                    child(&pp, "hostPort"),
                    hp as i64,
                    "must match `containerPort` when `hostNetwork` is true",
                ));
            }
        }
        if let Some(ip) = p.host_ip.as_deref().filter(|s| !s.is_empty()) {
            for m in is_valid_ip(ip) {
                errs.push(FieldError::invalid_str(child(&pp, "hostIP"), ip, m));
            }
        }
        match p.protocol.as_deref().unwrap_or("") {
            "" => errs.push(FieldError::required(child(&pp, "protocol"), "")),
            "TCP" | "UDP" | "SCTP" => {}
            other => errs.push(FieldError::not_supported(
                child(&pp, "protocol"),
                other,
                PROTOCOLS,
            )),
        }
    }
    errs.extend(validate_env(
        c.env.as_deref().unwrap_or(&[]),
        &child(path, "env"),
    ));
    errs.extend(validate_env_from(
        c.env_from.as_deref().unwrap_or(&[]),
        &child(path, "envFrom"),
    ));
    errs.extend(validate_volume_mounts(
        c.volume_mounts.as_deref().unwrap_or(&[]),
        volumes,
        &child(path, "volumeMounts"),
    ));
    for (field, probe) in [
        ("livenessProbe", &c.liveness_probe),
        ("readinessProbe", &c.readiness_probe),
        ("startupProbe", &c.startup_probe),
    ] {
        if let Some(probe) = probe {
            errs.extend(validate_probe(probe, &child(path, field), field));
        }
    }
    if let Some(l) = &c.lifecycle {
        let lp = child(path, "lifecycle");
        if let Some(h) = &l.post_start {
            errs.extend(validate_lifecycle_handler(h, &child(&lp, "postStart")));
        }
        if let Some(h) = &l.pre_stop {
            errs.extend(validate_lifecycle_handler(h, &child(&lp, "preStop")));
        }
    }
    if let Some(r) = &c.resources {
        errs.extend(validate_resources(r, &child(path, "resources")));
    }
    match c.image_pull_policy.as_deref() {
        None | Some("Always") | Some("IfNotPresent") | Some("Never") => {}
        Some("") => errs.push(FieldError::required(child(path, "imagePullPolicy"), "")),
        Some(other) => errs.push(FieldError::not_supported(
            child(path, "imagePullPolicy"),
            other,
            &["Always", "IfNotPresent", "Never"],
        )),
    }
    match c.termination_message_policy.as_deref() {
        None | Some("File") | Some("FallbackToLogsOnError") => {}
        Some("") => errs.push(FieldError::required(
            child(path, "terminationMessagePolicy"),
            "",
        )),
        Some(other) => errs.push(FieldError::not_supported(
            child(path, "terminationMessagePolicy"),
            other,
            &["File", "FallbackToLogsOnError"],
        )),
    }
    if let Some(sc) = &c.security_context {
        let p = child(path, "securityContext");
        for (field, v) in [
            ("runAsUser", sc.run_as_user),
            ("runAsGroup", sc.run_as_group),
        ] {
            if let Some(v) = v {
                if !(0..=i32::MAX as i64).contains(&v) {
                    errs.push(FieldError::invalid_int(
                        child(&p, field),
                        v,
                        inclusive_range_error(0, i32::MAX as i64),
                    ));
                }
            }
        }
        if sc.privileged == Some(true) && sc.allow_privilege_escalation == Some(false) {
            errs.push(FieldError::invalid(
                child(&p, "allowPrivilegeEscalation"),
                "false",
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            ));
        }
    }
    errs
}

fn validate_env(env: &[EnvVar], path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, ev) in env.iter().enumerate() {
        let p = index(path, i);
        if ev.name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        } else {
            for m in is_env_var_name(&ev.name) {
                errs.push(FieldError::invalid_str(child(&p, "name"), &ev.name, m));
            }
        }
        if let Some(vf) = &ev.value_from {
            let vp = child(&p, "valueFrom");
            let mut n = 0;
            if let Some(f) = &vf.field_ref {
                n += 1;
                if f.field_path.is_empty() {
                    errs.push(FieldError::required(
                        child(&child(&vp, "fieldRef"), "fieldPath"),
                        "",
                    ));
                }
            }
            if let Some(r) = &vf.resource_field_ref {
                n += 1;
                if r.resource.is_empty() {
                    errs.push(FieldError::required(
                        child(&child(&vp, "resourceFieldRef"), "resource"),
                        "",
                    ));
                }
            }
            if let Some(r) = &vf.config_map_key_ref {
                n += 1;
                let rp = child(&vp, "configMapKeyRef");
                if r.name.is_empty() {
                    errs.push(FieldError::required(child(&rp, "name"), ""));
                }
                if r.key.is_empty() {
                    errs.push(FieldError::required(child(&rp, "key"), ""));
                } else {
                    for m in is_config_map_key(&r.key) {
                        errs.push(FieldError::invalid_str(child(&rp, "key"), &r.key, m));
                    }
                }
            }
            if let Some(r) = &vf.secret_key_ref {
                n += 1;
                let rp = child(&vp, "secretKeyRef");
                if r.name.is_empty() {
                    errs.push(FieldError::required(child(&rp, "name"), ""));
                }
                if r.key.is_empty() {
                    errs.push(FieldError::required(child(&rp, "key"), ""));
                } else {
                    for m in is_config_map_key(&r.key) {
                        errs.push(FieldError::invalid_str(child(&rp, "key"), &r.key, m));
                    }
                }
            }
            if n == 0 {
                errs.push(FieldError::invalid_str(
                    &vp,
                    "",
                    "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
                ));
            } else if n > 1 {
                errs.push(FieldError::invalid_str(
                    &vp,
                    "",
                    "may not have more than one field specified at a time",
                ));
            } else if !ev.value.as_deref().unwrap_or("").is_empty() {
                errs.push(FieldError::invalid_str(
                    &vp,
                    "",
                    "may not be specified when `value` is not empty",
                ));
            }
        }
    }
    errs
}

fn validate_env_from(list: &[EnvFromSource], path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, ef) in list.iter().enumerate() {
        let p = index(path, i);
        if let Some(prefix) = ef.prefix.as_deref().filter(|s| !s.is_empty()) {
            for m in is_env_var_name(prefix) {
                errs.push(FieldError::invalid_str(child(&p, "prefix"), prefix, m));
            }
        }
        let mut n = 0;
        if let Some(r) = &ef.config_map_ref {
            n += 1;
            if r.name.is_empty() {
                errs.push(FieldError::required(
                    child(&child(&p, "configMapRef"), "name"),
                    "",
                ));
            }
        }
        if let Some(r) = &ef.secret_ref {
            n += 1;
            if r.name.is_empty() {
                errs.push(FieldError::required(
                    child(&child(&p, "secretRef"), "name"),
                    "",
                ));
            }
        }
        if n == 0 {
            errs.push(FieldError::invalid_str(
                &p,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if n > 1 {
            errs.push(FieldError::invalid_str(
                &p,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
    errs
}

fn validate_local_descending_path(target: &str, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if target.starts_with('/') {
        errs.push(FieldError::invalid_str(
            path,
            target,
            "must be a relative path",
        ));
    }
    if target.split('/').any(|seg| seg == "..") {
        errs.push(FieldError::invalid_str(
            path,
            target,
            "must not contain '..'",
        ));
    }
    errs
}

fn validate_volume_mounts(
    mounts: &[VolumeMount],
    volumes: &BTreeMap<String, bool>,
    path: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut mount_points: HashSet<&str> = HashSet::new();
    for (i, m) in mounts.iter().enumerate() {
        let p = index(path, i);
        if m.name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        } else if !volumes.contains_key(&m.name) {
            errs.push(FieldError::not_found(child(&p, "name"), &m.name));
        }
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(child(&p, "mountPath"), ""));
        } else if !mount_points.insert(m.mount_path.as_str()) {
            errs.push(FieldError::invalid_str(
                child(&p, "mountPath"),
                &m.mount_path,
                "must be unique",
            ));
        }
        if let Some(sp) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            errs.extend(validate_local_descending_path(sp, &child(&p, "subPath")));
        }
        if m.sub_path_expr.as_deref().is_some_and(|s| !s.is_empty())
            && m.sub_path.as_deref().is_some_and(|s| !s.is_empty())
        {
            errs.push(FieldError::invalid_str(
                child(&p, "subPathExpr"),
                m.sub_path_expr.as_deref().unwrap_or(""),
                "subPathExpr and subPath are mutually exclusive",
            ));
        }
        if let Some(mp) = m.mount_propagation.as_deref() {
            if !["None", "HostToContainer", "Bidirectional"].contains(&mp) {
                errs.push(FieldError::not_supported(
                    child(&p, "mountPropagation"),
                    mp,
                    &["Bidirectional", "HostToContainer", "None"],
                ));
            }
        }
    }
    errs
}

fn validate_port_num_or_name(port: &IntOrString, path: &str) -> Vec<FieldError> {
    match port {
        IntOrString::Int(n) => is_valid_port_num(*n as i64)
            .into_iter()
            .map(|m| FieldError::invalid_int(path, *n as i64, m))
            .collect(),
        IntOrString::String(s) => is_valid_port_name(s)
            .into_iter()
            .map(|m| FieldError::invalid_str(path, s, m))
            .collect(),
    }
}

fn validate_http_get(h: &HTTPGetAction, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if h.path.as_deref().unwrap_or("").is_empty() {
        errs.push(FieldError::required(child(path, "path"), ""));
    }
    errs.extend(validate_port_num_or_name(&h.port, &child(path, "port")));
    if let Some(s) = h.scheme.as_deref() {
        if s != "HTTP" && s != "HTTPS" {
            errs.push(FieldError::not_supported(
                child(path, "scheme"),
                s,
                &["HTTP", "HTTPS"],
            ));
        }
    }
    for (i, hd) in h.http_headers.iter().flatten().enumerate() {
        let valid = !hd.name.is_empty()
            && hd
                .name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c as char));
        if !valid {
            errs.push(FieldError::invalid_str(
                child(&index(&child(path, "httpHeaders"), i), "name"),
                &hd.name,
                "a valid HTTP header must consist of alphanumeric characters or '-' (e.g. 'X-Header-Name', regex used for validation is '[-A-Za-z0-9]+')",
            ));
        }
    }
    errs
}

fn validate_probe(probe: &Probe, path: &str, which: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut handlers = Vec::new();
    if probe.exec.is_some() {
        handlers.push("exec");
    }
    if let Some(h) = &probe.http_get {
        handlers.push("httpGet");
        errs.extend(validate_http_get(h, &child(path, "httpGet")));
    }
    if let Some(t) = &probe.tcp_socket {
        handlers.push("tcpSocket");
        errs.extend(validate_port_num_or_name(
            &t.port,
            &child(&child(path, "tcpSocket"), "port"),
        ));
    }
    if let Some(g) = &probe.grpc {
        handlers.push("grpc");
        for m in is_valid_port_num(g.port as i64) {
            errs.push(FieldError::invalid_int(
                child(&child(path, "grpc"), "port"),
                g.port as i64,
                m,
            ));
        }
    }
    if let Some(e) = &probe.exec {
        if e.command.as_ref().is_none_or(Vec::is_empty) {
            errs.push(FieldError::required(
                child(&child(path, "exec"), "command"),
                "",
            ));
        }
    }
    match handlers.len() {
        0 => errs.push(FieldError::required(path, "must specify a handler type")),
        1 => {}
        _ => {
            for h in &handlers[1..] {
                errs.push(FieldError::forbidden(
                    child(path, h),
                    "may not specify more than 1 handler type",
                ));
            }
        }
    }
    for (field, v) in [
        ("initialDelaySeconds", probe.initial_delay_seconds),
        ("timeoutSeconds", probe.timeout_seconds),
        ("periodSeconds", probe.period_seconds),
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ] {
        if let Some(v) = v {
            errs.extend(validate_nonnegative(v as i64, &child(path, field)));
        }
    }
    if which != "readinessProbe" {
        if let Some(s) = probe.success_threshold {
            if s != 1 {
                errs.push(FieldError::invalid_int(
                    child(path, "successThreshold"),
                    s as i64,
                    "must be 1",
                ));
            }
        }
    }
    if let Some(t) = probe.termination_grace_period_seconds {
        if which == "readinessProbe" {
            errs.push(FieldError::invalid_int(
                child(path, "terminationGracePeriodSeconds"),
                t,
                "must not be set for readinessProbes",
            ));
        } else if t <= 0 {
            errs.push(FieldError::invalid_int(
                child(path, "terminationGracePeriodSeconds"),
                t,
                IS_NOT_POSITIVE_ERROR,
            ));
        }
    }
    errs
}

fn validate_lifecycle_handler(h: &LifecycleHandler, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut handlers = Vec::new();
    if let Some(e) = &h.exec {
        handlers.push("exec");
        if e.command.as_ref().is_none_or(Vec::is_empty) {
            errs.push(FieldError::required(
                child(&child(path, "exec"), "command"),
                "",
            ));
        }
    }
    if let Some(g) = &h.http_get {
        handlers.push("httpGet");
        errs.extend(validate_http_get(g, &child(path, "httpGet")));
    }
    if let Some(t) = &h.tcp_socket {
        handlers.push("tcpSocket");
        errs.extend(validate_port_num_or_name(
            &t.port,
            &child(&child(path, "tcpSocket"), "port"),
        ));
    }
    if let Some(s) = &h.sleep {
        handlers.push("sleep");
        if s.seconds < 0 {
            errs.push(FieldError::invalid_int(
                child(&child(path, "sleep"), "seconds"),
                s.seconds,
                "must be non-negative integer",
            ));
        }
    }
    match handlers.len() {
        0 => errs.push(FieldError::required(path, "must specify a handler type")),
        1 => {}
        _ => {
            for h in &handlers[1..] {
                errs.push(FieldError::forbidden(
                    child(path, h),
                    "may not specify more than 1 handler type",
                ));
            }
        }
    }
    errs
}

fn is_standard_container_resource(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-")
}

fn validate_resource_name(name: &str, path: &str) -> Vec<FieldError> {
    let mut errs: Vec<FieldError> = is_qualified_name(name)
        .into_iter()
        .map(|m| FieldError::invalid_str(path, name, m))
        .collect();
    if errs.is_empty() && !name.contains('/') && !is_standard_container_resource(name) {
        errs.push(FieldError::invalid_str(
            path,
            name,
            "must be a standard resource for containers",
        ));
    }
    errs
}

/// Validates resource requirements: names, quantities (parse, non-negative) and
/// requests <= limits.
pub fn validate_resources(r: &ResourceRequirements, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut limits = BTreeMap::new();
    let empty: BTreeMap<String, ApiQuantity> = BTreeMap::new();
    for (name, q) in r.limits.as_ref().unwrap_or(&empty) {
        let p = key(&child(path, "limits"), name);
        errs.extend(validate_resource_name(name, &p));
        match parse_quantity(&q.0) {
            Ok(v) => {
                if v.is_negative() {
                    errs.push(FieldError::invalid_str(&p, &q.0, super::IS_NEGATIVE_ERROR));
                }
                limits.insert(name.clone(), v);
            }
            Err(e) => errs.push(FieldError::invalid_str(&p, &q.0, e.to_string())),
        }
    }
    for (name, q) in r.requests.as_ref().unwrap_or(&empty) {
        let p = key(&child(path, "requests"), name);
        errs.extend(validate_resource_name(name, &p));
        match parse_quantity(&q.0) {
            Ok(v) => {
                if v.is_negative() {
                    errs.push(FieldError::invalid_str(&p, &q.0, super::IS_NEGATIVE_ERROR));
                }
                if let Some(l) = limits.get(name) {
                    if v > *l {
                        errs.push(FieldError::invalid_str(
                            &p,
                            &q.0,
                            format!("must be less than or equal to {name} limit of {l}"),
                        ));
                    }
                } else if name.starts_with("hugepages-") && !limits.is_empty() {
                    errs.push(FieldError::forbidden(&p, "hugepages require cpu or memory"));
                }
            }
            Err(e) => errs.push(FieldError::invalid_str(&p, &q.0, e.to_string())),
        }
    }
    errs
}

/// Validates volumes; returns the set of valid volume names (value: is it a
/// block-capable source) and the errors.
fn validate_volumes(volumes: &[Volume], path: &str) -> (BTreeMap<String, bool>, Vec<FieldError>) {
    let mut errs = Vec::new();
    let mut names = BTreeMap::new();
    for (i, v) in volumes.iter().enumerate() {
        let p = index(path, i);
        let mut name_ok = true;
        if v.name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
            name_ok = false;
        } else {
            let msgs = is_dns1123_label(&v.name);
            if !msgs.is_empty() {
                name_ok = false;
            }
            for m in msgs {
                errs.push(FieldError::invalid_str(child(&p, "name"), &v.name, m));
            }
        }
        if names.contains_key(&v.name) {
            errs.push(FieldError::duplicate(child(&p, "name"), go_quote(&v.name)));
            name_ok = false;
        }
        errs.extend(validate_volume_source(v, &p));
        if name_ok {
            names.insert(
                v.name.clone(),
                v.persistent_volume_claim.is_some() || v.ephemeral.is_some(),
            );
        } else if !v.name.is_empty() {
            // Keep mounts of an invalid volume from also reporting "not found".
            names.entry(v.name.clone()).or_insert(false);
        }
    }
    (names, errs)
}

fn validate_mode(mode: Option<i32>, path: &str) -> Vec<FieldError> {
    match mode {
        Some(m) if !(0..=0o777).contains(&m) => vec![FieldError::invalid_int(
            path,
            m as i64,
            "must be a number between 0 and 0777 (octal), both inclusive",
        )],
        _ => vec![],
    }
}

fn validate_key_to_paths(
    items: &[k8s_openapi::api::core::v1::KeyToPath],
    path: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, kp) in items.iter().enumerate() {
        let p = index(path, i);
        if kp.key.is_empty() {
            errs.push(FieldError::required(child(&p, "key"), ""));
        }
        if kp.path.is_empty() {
            errs.push(FieldError::required(child(&p, "path"), ""));
        } else {
            errs.extend(validate_local_descending_path(&kp.path, &child(&p, "path")));
        }
        errs.extend(validate_mode(kp.mode, &child(&p, "mode")));
    }
    errs
}

fn validate_volume_source(v: &Volume, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut sources: Vec<&str> = Vec::new();
    macro_rules! count {
        ($($field:ident => $name:literal),* $(,)?) => {
            $( if v.$field.is_some() { sources.push($name); } )*
        };
    }
    count!(
        empty_dir => "emptyDir", host_path => "hostPath", gce_persistent_disk => "gcePersistentDisk",
        aws_elastic_block_store => "awsElasticBlockStore", git_repo => "gitRepo", secret => "secret",
        nfs => "nfs", iscsi => "iscsi", glusterfs => "glusterfs",
        persistent_volume_claim => "persistentVolumeClaim", rbd => "rbd", flex_volume => "flexVolume",
        cinder => "cinder", cephfs => "cephfs", flocker => "flocker", downward_api => "downwardAPI",
        fc => "fc", azure_file => "azureFile", config_map => "configMap",
        vsphere_volume => "vsphereVolume", quobyte => "quobyte", azure_disk => "azureDisk",
        photon_persistent_disk => "photonPersistentDisk", projected => "projected",
        portworx_volume => "portworxVolume", scale_io => "scaleIO", storageos => "storageos",
        csi => "csi", ephemeral => "ephemeral", image => "image",
    );
    match sources.len() {
        0 => errs.push(FieldError::required(path, "must specify a volume type")),
        1 => {}
        _ => {
            for s in &sources[1..] {
                errs.push(FieldError::forbidden(
                    child(path, s),
                    "may not specify more than 1 volume type",
                ));
            }
        }
    }
    if let Some(hp) = &v.host_path {
        let p = child(path, "hostPath");
        if hp.path.is_empty() {
            errs.push(FieldError::required(child(&p, "path"), ""));
        }
        if let Some(t) = hp.type_.as_deref() {
            const TYPES: &[&str] = &[
                "",
                "DirectoryOrCreate",
                "Directory",
                "FileOrCreate",
                "File",
                "Socket",
                "CharDevice",
                "BlockDevice",
            ];
            if !TYPES.contains(&t) {
                errs.push(FieldError::not_supported(child(&p, "type"), t, TYPES));
            }
        }
    }
    if let Some(s) = &v.secret {
        let p = child(path, "secret");
        if s.secret_name.as_deref().unwrap_or("").is_empty() {
            errs.push(FieldError::required(child(&p, "secretName"), ""));
        }
        errs.extend(validate_mode(s.default_mode, &child(&p, "defaultMode")));
        errs.extend(validate_key_to_paths(
            s.items.as_deref().unwrap_or(&[]),
            &child(&p, "items"),
        ));
    }
    if let Some(c) = &v.config_map {
        let p = child(path, "configMap");
        if c.name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        }
        errs.extend(validate_mode(c.default_mode, &child(&p, "defaultMode")));
        errs.extend(validate_key_to_paths(
            c.items.as_deref().unwrap_or(&[]),
            &child(&p, "items"),
        ));
    }
    if let Some(c) = &v.persistent_volume_claim {
        if c.claim_name.is_empty() {
            errs.push(FieldError::required(
                child(&child(path, "persistentVolumeClaim"), "claimName"),
                "",
            ));
        }
    }
    if let Some(e) = &v.empty_dir {
        let p = child(path, "emptyDir");
        if let Some(m) = e.medium.as_deref() {
            if !(m.is_empty() || m == "Memory" || m.starts_with("HugePages")) {
                errs.push(FieldError::not_supported(
                    child(&p, "medium"),
                    m,
                    &["", "Memory", "HugePages"],
                ));
            }
        }
        if let Some(q) = &e.size_limit {
            match parse_quantity(&q.0) {
                Ok(v) if v.is_negative() => errs.push(FieldError::invalid_str(
                    child(&p, "sizeLimit"),
                    &q.0,
                    super::IS_NEGATIVE_ERROR,
                )),
                Ok(_) => {}
                Err(err) => errs.push(FieldError::invalid_str(
                    child(&p, "sizeLimit"),
                    &q.0,
                    err.to_string(),
                )),
            }
        }
    }
    if let Some(pr) = &v.projected {
        let p = child(path, "projected");
        errs.extend(validate_mode(pr.default_mode, &child(&p, "defaultMode")));
        for (i, s) in pr.sources.iter().flatten().enumerate() {
            let sp = index(&child(&p, "sources"), i);
            let n = [
                s.secret.is_some(),
                s.config_map.is_some(),
                s.downward_api.is_some(),
                s.service_account_token.is_some(),
                s.cluster_trust_bundle.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if n == 0 {
                errs.push(FieldError::required(&sp, "must specify exactly 1 of: `secret`, `configMap`, `downwardAPI`, `serviceAccountToken`, `clusterTrustBundle`"));
            } else if n > 1 {
                errs.push(FieldError::forbidden(
                    &sp,
                    "may not specify more than 1 volume type per source",
                ));
            }
            if let Some(t) = &s.service_account_token {
                if t.path.is_empty() {
                    errs.push(FieldError::required(
                        child(&child(&sp, "serviceAccountToken"), "path"),
                        "",
                    ));
                }
                if let Some(e) = t.expiration_seconds {
                    if e < 600 {
                        errs.push(FieldError::invalid_int(
                            child(&child(&sp, "serviceAccountToken"), "expirationSeconds"),
                            e,
                            "may not specify a duration less than 10 minutes",
                        ));
                    }
                }
            }
        }
    }
    if let Some(d) = &v.downward_api {
        errs.extend(validate_mode(
            d.default_mode,
            &child(&child(path, "downwardAPI"), "defaultMode"),
        ));
    }
    errs
}

fn validate_tolerations(tolerations: &[Toleration], path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, t) in tolerations.iter().enumerate() {
        let p = index(path, i);
        let k = t.key.as_deref().unwrap_or("");
        if !k.is_empty() {
            for m in is_qualified_name(k) {
                errs.push(FieldError::invalid_str(child(&p, "key"), k, m));
            }
        }
        let op = t.operator.as_deref().unwrap_or("");
        let value = t.value.as_deref().unwrap_or("");
        if k.is_empty() && op != "Exists" {
            errs.push(FieldError::invalid_str(
                child(&p, "operator"),
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        let effect = t.effect.as_deref().unwrap_or("");
        if t.toleration_seconds.is_some() && effect != "NoExecute" {
            errs.push(FieldError::invalid_str(
                child(&p, "effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match op {
            "" | "Equal" => {
                for m in is_valid_label_value(value) {
                    errs.push(FieldError::invalid_str(child(&p, "value"), value, m));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(FieldError::invalid_str(
                        child(&p, "value"),
                        value,
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                child(&p, "operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect)
        {
            errs.push(FieldError::not_supported(
                child(&p, "effect"),
                effect,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            ));
        }
    }
    errs
}
