//! Defaulting as the Kubernetes v1.33 API server applies it on write (`SetDefaults_*`),
//! on the typed `k8s-openapi` objects.
//!
//! Only what the API's defaulting functions do lives here; what the server itself assigns
//! (ClusterIPs, ipFamilies, node ports, uids, the `default` service account) does not,
//! except [`add_default_tolerations`] (the `DefaultTolerationSeconds` admission step) and
//! [`generate_job_selector`] (the Job strategy's selector generation), which the server
//! calls.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetUpdateStrategy, Deployment, DeploymentStrategy, ReplicaSet,
    RollingUpdateDaemonSet, RollingUpdateDeployment, RollingUpdateStatefulSetStrategy, StatefulSet,
    StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ClientIPConfig, Container, EmptyDirVolumeSource, Endpoints, HTTPGetAction, LifecycleHandler,
    Namespace, NamespaceSpec, NamespaceStatus, Node, PersistentVolumeClaim, Pod,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ReplicationController,
    ResourceRequirements, Secret, Service, SessionAffinityConfig, Toleration, Volume,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::ByteString;

/// The grace period pods get when none is given.
pub const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS: i64 = 30;
/// Mode of files projected from ConfigMaps, Secrets, the downward API (0644).
pub const DEFAULT_VOLUME_MODE: i32 = 0o644;
/// How long pods tolerate a not-ready or unreachable node (seconds).
pub const DEFAULT_NOT_READY_TOLERATION_SECONDS: i64 = 300;

/// The tag of an image reference: `latest` when neither a tag nor a digest is given, empty
/// when only a digest is.
pub fn image_tag(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.rsplit_once(':') {
        Some((_, tag)) => tag.to_string(),
        None if digest.is_some() => String::new(),
        None => "latest".to_string(),
    }
}

/// `SetDefaults_Container`: pull policy from the tag, termination message path and
/// policy, port protocols, probe and lifecycle handler defaults, `resources: {}`.
pub fn default_container(c: &mut Container) {
    if c.image_pull_policy.as_deref().unwrap_or("").is_empty() {
        let tag = image_tag(c.image.as_deref().unwrap_or(""));
        c.image_pull_policy = Some(
            if tag == "latest" {
                "Always"
            } else {
                "IfNotPresent"
            }
            .into(),
        );
    }
    if c.termination_message_path
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        c.termination_message_path = Some("/dev/termination-log".into());
    }
    if c.termination_message_policy
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        c.termination_message_policy = Some("File".into());
    }
    for p in c.ports.iter_mut().flatten() {
        if p.protocol.as_deref().unwrap_or("").is_empty() {
            p.protocol = Some("TCP".into());
        }
    }
    for probe in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        default_probe(probe);
    }
    if let Some(l) = &mut c.lifecycle {
        for h in [&mut l.post_start, &mut l.pre_stop].into_iter().flatten() {
            default_lifecycle_handler(h);
        }
    }
    for e in c.env.iter_mut().flatten() {
        if let Some(f) = e.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            if f.api_version.as_deref().unwrap_or("").is_empty() {
                f.api_version = Some("v1".into());
            }
        }
    }
    if c.resources.is_none() {
        c.resources = Some(ResourceRequirements::default());
    }
}

fn default_http_get(h: &mut HTTPGetAction) {
    if h.path.as_deref().unwrap_or("").is_empty() {
        h.path = Some("/".into());
    }
    if h.scheme.as_deref().unwrap_or("").is_empty() {
        h.scheme = Some("HTTP".into());
    }
}

fn default_lifecycle_handler(h: &mut LifecycleHandler) {
    if let Some(g) = &mut h.http_get {
        default_http_get(g);
    }
}

/// `SetDefaults_Probe` (timeout 1s, period 10s, success 1, failure 3) and the HTTP action's
/// path `/` and scheme `HTTP`.
pub fn default_probe(p: &mut Probe) {
    for (field, v) in [
        (&mut p.timeout_seconds, 1),
        (&mut p.period_seconds, 10),
        (&mut p.success_threshold, 1),
        (&mut p.failure_threshold, 3),
    ] {
        if field.unwrap_or(0) == 0 {
            *field = Some(v);
        }
    }
    if let Some(h) = &mut p.http_get {
        default_http_get(h);
    }
}

/// `SetDefaults_Volume` and the defaults of volume sources.
pub fn default_volume(v: &mut Volume) {
    let has_source = v.host_path.is_some()
        || v.empty_dir.is_some()
        || v.gce_persistent_disk.is_some()
        || v.aws_elastic_block_store.is_some()
        || v.git_repo.is_some()
        || v.secret.is_some()
        || v.nfs.is_some()
        || v.iscsi.is_some()
        || v.glusterfs.is_some()
        || v.persistent_volume_claim.is_some()
        || v.rbd.is_some()
        || v.flex_volume.is_some()
        || v.cinder.is_some()
        || v.cephfs.is_some()
        || v.flocker.is_some()
        || v.downward_api.is_some()
        || v.fc.is_some()
        || v.azure_file.is_some()
        || v.config_map.is_some()
        || v.vsphere_volume.is_some()
        || v.quobyte.is_some()
        || v.azure_disk.is_some()
        || v.photon_persistent_disk.is_some()
        || v.projected.is_some()
        || v.portworx_volume.is_some()
        || v.scale_io.is_some()
        || v.storageos.is_some()
        || v.csi.is_some()
        || v.ephemeral.is_some()
        || v.image.is_some();
    if !has_source {
        v.empty_dir = Some(EmptyDirVolumeSource::default());
    }
    if let Some(s) = &mut v.secret {
        s.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
    }
    if let Some(s) = &mut v.config_map {
        s.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
    }
    if let Some(s) = &mut v.downward_api {
        s.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
        for f in s.items.iter_mut().flatten() {
            if let Some(r) = &mut f.field_ref {
                if r.api_version.as_deref().unwrap_or("").is_empty() {
                    r.api_version = Some("v1".into());
                }
            }
        }
    }
    if let Some(s) = &mut v.projected {
        s.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
        for src in s.sources.iter_mut().flatten() {
            if let Some(t) = &mut src.service_account_token {
                t.expiration_seconds.get_or_insert(3600);
            }
            if let Some(d) = &mut src.downward_api {
                for f in d.items.iter_mut().flatten() {
                    if let Some(r) = &mut f.field_ref {
                        if r.api_version.as_deref().unwrap_or("").is_empty() {
                            r.api_version = Some("v1".into());
                        }
                    }
                }
            }
        }
    }
    if let Some(h) = &mut v.host_path {
        h.type_.get_or_insert_with(String::new);
    }
    if let Some(t) = v
        .ephemeral
        .as_mut()
        .and_then(|e| e.volume_claim_template.as_mut())
    {
        t.spec
            .volume_mode
            .get_or_insert_with(|| "Filesystem".into());
    }
    if let Some(img) = &mut v.image {
        if img.pull_policy.as_deref().unwrap_or("").is_empty() {
            let tag = image_tag(img.reference.as_deref().unwrap_or(""));
            img.pull_policy = Some(
                if tag == "latest" {
                    "Always"
                } else {
                    "IfNotPresent"
                }
                .into(),
            );
        }
    }
}

/// `SetDefaults_PodSpec` plus the defaults of everything inside a pod spec (containers,
/// volumes, probes). This is what pod templates get.
pub fn default_pod_spec(spec: &mut PodSpec) {
    if spec.dns_policy.as_deref().unwrap_or("").is_empty() {
        spec.dns_policy = Some("ClusterFirst".into());
    }
    if spec.restart_policy.as_deref().unwrap_or("").is_empty() {
        spec.restart_policy = Some("Always".into());
    }
    if spec.security_context.is_none() {
        spec.security_context = Some(PodSecurityContext::default());
    }
    spec.termination_grace_period_seconds
        .get_or_insert(DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS);
    if spec.scheduler_name.as_deref().unwrap_or("").is_empty() {
        spec.scheduler_name = Some("default-scheduler".into());
    }
    if spec.host_network == Some(true) {
        default_host_network_ports(spec);
    }
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        default_container(c);
    }
    for c in spec.ephemeral_containers.iter_mut().flatten() {
        if c.image_pull_policy.as_deref().unwrap_or("").is_empty() {
            let tag = image_tag(c.image.as_deref().unwrap_or(""));
            c.image_pull_policy = Some(
                if tag == "latest" {
                    "Always"
                } else {
                    "IfNotPresent"
                }
                .into(),
            );
        }
        c.termination_message_path
            .get_or_insert_with(|| "/dev/termination-log".into());
        c.termination_message_policy
            .get_or_insert_with(|| "File".into());
    }
    for v in spec.volumes.iter_mut().flatten() {
        default_volume(v);
    }
}

fn default_host_network_ports(spec: &mut PodSpec) {
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        for p in c.ports.iter_mut().flatten() {
            if p.host_port.unwrap_or(0) == 0 {
                p.host_port = Some(p.container_port);
            }
        }
    }
}

/// Defaults of a pod template (its pod spec).
pub fn default_pod_template_spec(t: &mut PodTemplateSpec) {
    default_pod_spec(t.spec.get_or_insert_with(Default::default));
}

/// `SetDefaults_Pod`: the pod spec defaults, requests defaulted from limits,
/// `enableServiceLinks: true`, host ports for host-network pods.
pub fn default_pod(pod: &mut Pod) {
    let spec = pod.spec.get_or_insert_with(Default::default);
    default_pod_spec(spec);
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        if let Some(r) = &mut c.resources {
            if let Some(limits) = r.limits.clone() {
                let requests = r.requests.get_or_insert_with(BTreeMap::new);
                for (k, v) in limits {
                    requests.entry(k).or_insert(v);
                }
            }
        }
    }
    spec.enable_service_links.get_or_insert(true);
}

/// The `DefaultTolerationSeconds` admission step: tolerate `node.kubernetes.io/not-ready`
/// and `node.kubernetes.io/unreachable` (NoExecute) for 300 seconds unless the pod already
/// tolerates them.
pub fn add_default_tolerations(spec: &mut PodSpec) {
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for taint in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let tolerated = tolerations.iter().any(|t| {
            let key = t.key.as_deref().unwrap_or("");
            let effect = t.effect.as_deref().unwrap_or("");
            (key == taint || key.is_empty()) && (effect == "NoExecute" || effect.is_empty())
        });
        if !tolerated {
            tolerations.push(Toleration {
                key: Some(taint.into()),
                operator: Some("Exists".into()),
                effect: Some("NoExecute".into()),
                toleration_seconds: Some(DEFAULT_NOT_READY_TOLERATION_SECONDS),
                value: None,
            });
        }
    }
}

/// `SetDefaults_Service`, plus `ipFamilyPolicy: SingleStack` and the pairing of
/// `clusterIP` with `clusterIPs`.
pub fn default_service(svc: &mut Service) {
    let spec = svc.spec.get_or_insert_with(Default::default);
    if spec.session_affinity.as_deref().unwrap_or("").is_empty() {
        spec.session_affinity = Some("None".into());
    }
    match spec.session_affinity.as_deref() {
        Some("None") => spec.session_affinity_config = None,
        Some("ClientIP") => {
            let has_timeout = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .is_some();
            if !has_timeout {
                spec.session_affinity_config = Some(SessionAffinityConfig {
                    client_ip: Some(ClientIPConfig {
                        timeout_seconds: Some(10800),
                    }),
                });
            }
        }
        _ => {}
    }
    if spec.type_.as_deref().unwrap_or("").is_empty() {
        spec.type_ = Some("ClusterIP".into());
    }
    let ty = spec.type_.clone().unwrap_or_default();
    for p in spec.ports.iter_mut().flatten() {
        if p.protocol.as_deref().unwrap_or("").is_empty() {
            p.protocol = Some("TCP".into());
        }
        let unset = match &p.target_port {
            None => true,
            Some(IntOrString::Int(0)) => true,
            Some(IntOrString::String(s)) => s.is_empty(),
            _ => false,
        };
        if unset {
            p.target_port = Some(IntOrString::Int(p.port));
        }
    }
    let externally_accessible = ty == "NodePort"
        || ty == "LoadBalancer"
        || (ty == "ClusterIP" && spec.external_ips.as_ref().is_some_and(|v| !v.is_empty()));
    if externally_accessible
        && spec
            .external_traffic_policy
            .as_deref()
            .unwrap_or("")
            .is_empty()
    {
        spec.external_traffic_policy = Some("Cluster".into());
    }
    if spec.internal_traffic_policy.is_none()
        && matches!(ty.as_str(), "NodePort" | "LoadBalancer" | "ClusterIP")
    {
        spec.internal_traffic_policy = Some("Cluster".into());
    }
    if ty == "LoadBalancer" {
        spec.allocate_load_balancer_node_ports.get_or_insert(true);
    }
    if ty != "ExternalName" {
        spec.ip_family_policy
            .get_or_insert_with(|| "SingleStack".into());
        let cluster_ip = spec.cluster_ip.clone().unwrap_or_default();
        let ips_empty = spec.cluster_ips.as_ref().is_none_or(Vec::is_empty);
        if !cluster_ip.is_empty() && ips_empty {
            spec.cluster_ips = Some(vec![cluster_ip]);
        } else if cluster_ip.is_empty() && !ips_empty {
            spec.cluster_ip = spec.cluster_ips.as_ref().and_then(|v| v.first().cloned());
        }
    }
}

/// `SetDefaults_Deployment`: replicas 1, RollingUpdate 25%/25%, revisionHistoryLimit 10,
/// progressDeadlineSeconds 600, and the template's pod spec defaults.
pub fn default_deployment(d: &mut Deployment) {
    let spec = d.spec.get_or_insert_with(Default::default);
    spec.replicas.get_or_insert(1);
    let strategy = spec
        .strategy
        .get_or_insert_with(DeploymentStrategy::default);
    if strategy.type_.as_deref().unwrap_or("").is_empty() {
        strategy.type_ = Some("RollingUpdate".into());
    }
    if strategy.type_.as_deref() == Some("RollingUpdate") {
        let ru = strategy
            .rolling_update
            .get_or_insert_with(RollingUpdateDeployment::default);
        ru.max_unavailable
            .get_or_insert_with(|| IntOrString::String("25%".into()));
        ru.max_surge
            .get_or_insert_with(|| IntOrString::String("25%".into()));
    }
    spec.revision_history_limit.get_or_insert(10);
    spec.progress_deadline_seconds.get_or_insert(600);
    default_pod_template_spec(&mut spec.template);
}

/// `SetDefaults_ReplicaSet`: replicas 1, and the template's pod spec defaults.
pub fn default_replica_set(rs: &mut ReplicaSet) {
    let spec = rs.spec.get_or_insert_with(Default::default);
    spec.replicas.get_or_insert(1);
    if let Some(t) = &mut spec.template {
        default_pod_template_spec(t);
    }
}

/// `SetDefaults_ReplicationController`: the selector and the object's
/// labels come from the template's labels when empty; replicas 1.
pub fn default_replication_controller(rc: &mut ReplicationController) {
    let spec = rc.spec.get_or_insert_with(Default::default);
    let labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone());
    if let Some(labels) = labels {
        if spec.selector.as_ref().is_none_or(BTreeMap::is_empty) {
            spec.selector = Some(labels.clone());
        }
        if rc.metadata.labels.as_ref().is_none_or(BTreeMap::is_empty) {
            rc.metadata.labels = Some(labels);
        }
    }
    spec.replicas.get_or_insert(1);
    if let Some(t) = &mut spec.template {
        default_pod_template_spec(t);
    }
}

/// `SetDefaults_DaemonSet`: RollingUpdate with maxUnavailable 1 and maxSurge 0,
/// revisionHistoryLimit 10.
pub fn default_daemon_set(ds: &mut DaemonSet) {
    let spec = ds.spec.get_or_insert_with(Default::default);
    let s = spec
        .update_strategy
        .get_or_insert_with(DaemonSetUpdateStrategy::default);
    if s.type_.as_deref().unwrap_or("").is_empty() {
        s.type_ = Some("RollingUpdate".into());
    }
    if s.type_.as_deref() == Some("RollingUpdate") {
        let ru = s
            .rolling_update
            .get_or_insert_with(RollingUpdateDaemonSet::default);
        ru.max_unavailable.get_or_insert(IntOrString::Int(1));
        ru.max_surge.get_or_insert(IntOrString::Int(0));
    }
    spec.revision_history_limit.get_or_insert(10);
    default_pod_template_spec(&mut spec.template);
}

/// `SetDefaults_PersistentVolumeClaim`: volumeMode Filesystem, phase
/// Pending.
pub fn default_persistent_volume_claim(pvc: &mut PersistentVolumeClaim) {
    default_pvc_template(pvc);
}

/// `SetDefaults_PersistentVolume`: reclaim policy Retain, volumeMode
/// Filesystem, phase Pending.
pub fn default_persistent_volume(pv: &mut k8s_openapi::api::core::v1::PersistentVolume) {
    let spec = pv.spec.get_or_insert_with(Default::default);
    spec.persistent_volume_reclaim_policy
        .get_or_insert_with(|| "Retain".into());
    spec.volume_mode.get_or_insert_with(|| "Filesystem".into());
    let status = pv.status.get_or_insert_with(Default::default);
    status.phase.get_or_insert_with(|| "Pending".into());
}

/// `SetDefaults_StorageClass`: reclaim policy Delete, binding Immediate.
pub fn default_storage_class(sc: &mut k8s_openapi::api::storage::v1::StorageClass) {
    sc.reclaim_policy.get_or_insert_with(|| "Delete".into());
    sc.volume_binding_mode
        .get_or_insert_with(|| "Immediate".into());
}

fn default_pvc_template(pvc: &mut PersistentVolumeClaim) {
    let spec = pvc.spec.get_or_insert_with(Default::default);
    spec.volume_mode.get_or_insert_with(|| "Filesystem".into());
    let status = pvc.status.get_or_insert_with(Default::default);
    status.phase.get_or_insert_with(|| "Pending".into());
}

/// `SetDefaults_StatefulSet`: OrderedReady, RollingUpdate with partition 0, PVC retention
/// Retain/Retain, replicas 1, revisionHistoryLimit 10.
pub fn default_stateful_set(ss: &mut StatefulSet) {
    let spec = ss.spec.get_or_insert_with(Default::default);
    if spec
        .pod_management_policy
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        spec.pod_management_policy = Some("OrderedReady".into());
    }
    let s = spec
        .update_strategy
        .get_or_insert_with(StatefulSetUpdateStrategy::default);
    if s.type_.as_deref().unwrap_or("").is_empty() {
        s.type_ = Some("RollingUpdate".into());
        s.rolling_update
            .get_or_insert_with(RollingUpdateStatefulSetStrategy::default);
    }
    if s.type_.as_deref() == Some("RollingUpdate") {
        if let Some(ru) = &mut s.rolling_update {
            ru.partition.get_or_insert(0);
        }
    }
    let p = spec
        .persistent_volume_claim_retention_policy
        .get_or_insert_with(StatefulSetPersistentVolumeClaimRetentionPolicy::default);
    if p.when_deleted.as_deref().unwrap_or("").is_empty() {
        p.when_deleted = Some("Retain".into());
    }
    if p.when_scaled.as_deref().unwrap_or("").is_empty() {
        p.when_scaled = Some("Retain".into());
    }
    spec.replicas.get_or_insert(1);
    spec.revision_history_limit.get_or_insert(10);
    for pvc in spec.volume_claim_templates.iter_mut().flatten() {
        default_pvc_template(pvc);
    }
    default_pod_template_spec(&mut spec.template);
}

/// `SetDefaults_Job`: completions and parallelism 1 when both unset, backoffLimit 6,
/// NonIndexed, not suspended, podReplacementPolicy, labels from the template.
pub fn default_job(job: &mut Job) {
    let spec = job.spec.get_or_insert_with(Default::default);
    if spec.completions.is_none() && spec.parallelism.is_none() {
        spec.completions = Some(1);
        spec.parallelism = Some(1);
    }
    spec.parallelism.get_or_insert(1);
    if spec.backoff_limit.is_none() {
        spec.backoff_limit = Some(if spec.backoff_limit_per_index.is_some() {
            i32::MAX
        } else {
            6
        });
    }
    spec.completion_mode
        .get_or_insert_with(|| "NonIndexed".into());
    spec.suspend.get_or_insert(false);
    if spec.pod_replacement_policy.is_none() {
        spec.pod_replacement_policy = Some(
            if spec.pod_failure_policy.is_some() {
                "Failed"
            } else {
                "TerminatingOrFailed"
            }
            .into(),
        );
    }
    if let Some(pfp) = &mut spec.pod_failure_policy {
        for rule in &mut pfp.rules {
            for c in rule.on_pod_conditions.iter_mut().flatten() {
                if c.status.is_empty() {
                    c.status = "True".into();
                }
            }
        }
    }
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone());
    default_pod_template_spec(&mut spec.template);
    if let Some(labels) = template_labels {
        if job.metadata.labels.as_ref().is_none_or(BTreeMap::is_empty) {
            job.metadata.labels = Some(labels);
        }
    }
}

/// The Job strategy's selector generation (when `manualSelector` is not true): adds
/// `batch.kubernetes.io/controller-uid`, `batch.kubernetes.io/job-name`, `controller-uid`
/// and `job-name` to the template's labels and selects on the controller uid. Needs
/// `metadata.uid`; does nothing without it or when a selector is already set manually.
pub fn generate_job_selector(job: &mut Job) {
    let Some(uid) = job.metadata.uid.clone().filter(|u| !u.is_empty()) else {
        return;
    };
    let name = job.metadata.name.clone().unwrap_or_default();
    let spec = job.spec.get_or_insert_with(Default::default);
    if spec.manual_selector == Some(true) {
        return;
    }
    let labels = spec
        .template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(BTreeMap::new);
    for k in ["job-name", "batch.kubernetes.io/job-name"] {
        labels.entry(k.into()).or_insert_with(|| name.clone());
    }
    for k in ["controller-uid", "batch.kubernetes.io/controller-uid"] {
        labels.entry(k.into()).or_insert_with(|| uid.clone());
    }
    let selector = spec.selector.get_or_insert_with(LabelSelector::default);
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .entry("batch.kubernetes.io/controller-uid".into())
        .or_insert(uid);
    if job.metadata.labels.as_ref().is_none_or(BTreeMap::is_empty) {
        job.metadata.labels = Some(labels.clone());
    }
}

/// `SetDefaults_CronJob`: Allow, not suspended, history limits 3 and 1, and the pod spec
/// defaults of the job template.
pub fn default_cron_job(cj: &mut CronJob) {
    let spec = cj.spec.get_or_insert_with(Default::default);
    if spec.concurrency_policy.as_deref().unwrap_or("").is_empty() {
        spec.concurrency_policy = Some("Allow".into());
    }
    spec.suspend.get_or_insert(false);
    spec.successful_jobs_history_limit.get_or_insert(3);
    spec.failed_jobs_history_limit.get_or_insert(1);
    let job_spec = spec.job_template.spec.get_or_insert_with(Default::default);
    default_pod_template_spec(&mut job_spec.template);
}

/// `SetDefaults_Secret` (type Opaque), and `stringData` merged into `data` (stringData is
/// write-only; its keys win).
pub fn default_secret(s: &mut Secret) {
    if s.type_.as_deref().unwrap_or("").is_empty() {
        s.type_ = Some("Opaque".into());
    }
    if let Some(sd) = s.string_data.take() {
        let data = s.data.get_or_insert_with(BTreeMap::new);
        for (k, v) in sd {
            data.insert(k, ByteString(v.into_bytes()));
        }
    }
}

/// Namespace: `status.phase: Active`, the `kubernetes.io/metadata.name` label, and on
/// creation (no resourceVersion yet) the `kubernetes` finalizer.
pub fn default_namespace(ns: &mut Namespace) {
    ns.status
        .get_or_insert_with(NamespaceStatus::default)
        .phase
        .get_or_insert_with(|| "Active".into());
    if let Some(name) = ns.metadata.name.clone().filter(|n| !n.is_empty()) {
        ns.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert("kubernetes.io/metadata.name".into(), name);
    }
    if ns.metadata.resource_version.is_none() {
        let spec = ns.spec.get_or_insert_with(NamespaceSpec::default);
        let f = spec.finalizers.get_or_insert_with(Vec::new);
        if !f.iter().any(|x| x == "kubernetes") {
            f.push("kubernetes".into());
        }
    }
}

/// Ingress has no defaults.
pub fn default_ingress(_ing: &mut Ingress) {}

/// Endpoints: port protocol TCP.
pub fn default_endpoints(ep: &mut Endpoints) {
    for ss in ep.subsets.iter_mut().flatten() {
        for p in ss.ports.iter_mut().flatten() {
            if p.protocol.as_deref().unwrap_or("").is_empty() {
                p.protocol = Some("TCP".into());
            }
        }
    }
}

/// EndpointSlice: port name `""` and protocol TCP.
pub fn default_endpoint_slice(es: &mut EndpointSlice) {
    for p in es.ports.iter_mut().flatten() {
        p.name.get_or_insert_with(String::new);
        if p.protocol.as_deref().unwrap_or("").is_empty() {
            p.protocol = Some("TCP".into());
        }
    }
}

/// Node: allocatable defaults to capacity.
pub fn default_node(node: &mut Node) {
    if let Some(status) = &mut node.status {
        if status.allocatable.is_none() {
            status.allocatable = status.capacity.clone();
        }
    }
}

/// HorizontalPodAutoscaler (autoscaling/v2): one replica at least, CPU at
/// 80 % when no metric is named, and a `behavior` given only in part
/// filled in with the controller's defaults (Kubernetes' v2 defaulting).
pub fn default_horizontal_pod_autoscaler(
    hpa: &mut k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler,
) {
    use k8s_openapi::api::autoscaling::v2::{MetricSpec, MetricTarget, ResourceMetricSource};
    let spec = hpa.spec.get_or_insert_with(Default::default);
    spec.min_replicas.get_or_insert(1);
    if spec.metrics.as_ref().is_none_or(Vec::is_empty) {
        spec.metrics = Some(vec![MetricSpec {
            type_: "Resource".into(),
            resource: Some(ResourceMetricSource {
                name: "cpu".into(),
                target: MetricTarget {
                    type_: "Utilization".into(),
                    average_utilization: Some(80),
                    ..Default::default()
                },
            }),
            ..Default::default()
        }]);
    }
    if let Some(b) = spec.behavior.as_mut() {
        let up = b.scale_up.get_or_insert_with(Default::default);
        fill_scaling_rules(up, &HPA_SCALE_UP);
        let down = b.scale_down.get_or_insert_with(Default::default);
        fill_scaling_rules(down, &HPA_SCALE_DOWN);
    }
}

/// The defaults of one direction's scaling rules: stabilization window,
/// and policies as (type, value, period seconds).
pub struct ScalingDefaults {
    /// Seconds of recommendations looked back over.
    pub stabilization_window_seconds: i32,
    /// The policies.
    pub policies: &'static [(&'static str, i32, i32)],
}

/// Scaling up: at once, by 4 pods or 100 % per 15 s, whichever is more.
pub const HPA_SCALE_UP: ScalingDefaults = ScalingDefaults {
    stabilization_window_seconds: 0,
    policies: &[("Pods", 4, 15), ("Percent", 100, 15)],
};

/// Scaling down: after 5 minutes of lower recommendations, by up to 100 %
/// per 15 s.
pub const HPA_SCALE_DOWN: ScalingDefaults = ScalingDefaults {
    stabilization_window_seconds: 300,
    policies: &[("Percent", 100, 15)],
};

fn fill_scaling_rules(
    rules: &mut k8s_openapi::api::autoscaling::v2::HPAScalingRules,
    defaults: &ScalingDefaults,
) {
    use k8s_openapi::api::autoscaling::v2::HPAScalingPolicy;
    rules
        .stabilization_window_seconds
        .get_or_insert(defaults.stabilization_window_seconds);
    rules.select_policy.get_or_insert_with(|| "Max".into());
    if rules.policies.is_none() {
        rules.policies = Some(
            defaults
                .policies
                .iter()
                .map(|(t, v, p)| HPAScalingPolicy {
                    type_: t.to_string(),
                    value: *v,
                    period_seconds: *p,
                })
                .collect(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerPort;

    #[test]
    fn image_tags() {
        assert_eq!(image_tag("nginx"), "latest");
        assert_eq!(image_tag("nginx:1.25"), "1.25");
        assert_eq!(image_tag("nginx:latest"), "latest");
        assert_eq!(image_tag("localhost:5000/app"), "latest");
        assert_eq!(image_tag("localhost:5000/app:v2"), "v2");
        assert_eq!(image_tag("nginx@sha256:abc"), "");
        assert_eq!(image_tag("nginx:1.2@sha256:abc"), "1.2");
    }

    #[test]
    fn pod_defaults() {
        let mut pod = Pod {
            spec: Some(PodSpec {
                containers: vec![
                    Container {
                        name: "a".into(),
                        image: Some("nginx".into()),
                        ports: Some(vec![ContainerPort {
                            container_port: 80,
                            ..Default::default()
                        }]),
                        liveness_probe: Some(Probe {
                            http_get: Some(HTTPGetAction {
                                port: IntOrString::Int(80),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        resources: Some(ResourceRequirements {
                            limits: Some(
                                [(
                                    "cpu".to_string(),
                                    k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                                        "1".into(),
                                    ),
                                )]
                                .into(),
                            ),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    Container {
                        name: "b".into(),
                        image: Some("busybox:1.36".into()),
                        ..Default::default()
                    },
                ],
                volumes: Some(vec![Volume {
                    name: "v".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        default_pod(&mut pod);
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirst"));
        assert_eq!(spec.scheduler_name.as_deref(), Some("default-scheduler"));
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        assert_eq!(spec.enable_service_links, Some(true));
        assert!(spec.security_context.is_some());
        let a = &spec.containers[0];
        assert_eq!(a.image_pull_policy.as_deref(), Some("Always"));
        assert_eq!(
            spec.containers[1].image_pull_policy.as_deref(),
            Some("IfNotPresent")
        );
        assert_eq!(
            a.termination_message_path.as_deref(),
            Some("/dev/termination-log")
        );
        assert_eq!(a.termination_message_policy.as_deref(), Some("File"));
        assert_eq!(
            a.ports.as_ref().unwrap()[0].protocol.as_deref(),
            Some("TCP")
        );
        let probe = a.liveness_probe.as_ref().unwrap();
        assert_eq!(
            (
                probe.timeout_seconds,
                probe.period_seconds,
                probe.success_threshold,
                probe.failure_threshold
            ),
            (Some(1), Some(10), Some(1), Some(3))
        );
        let hg = probe.http_get.as_ref().unwrap();
        assert_eq!(
            (hg.path.as_deref(), hg.scheme.as_deref()),
            (Some("/"), Some("HTTP"))
        );
        assert_eq!(
            a.resources.as_ref().unwrap().requests.as_ref().unwrap()["cpu"].0,
            "1"
        );
        assert!(spec.volumes.as_ref().unwrap()[0].empty_dir.is_some());
    }

    #[test]
    fn tolerations() {
        let mut spec = PodSpec::default();
        add_default_tolerations(&mut spec);
        add_default_tolerations(&mut spec);
        let t = spec.tolerations.as_ref().unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].toleration_seconds, Some(300));
        let mut tolerate_all = PodSpec {
            tolerations: Some(vec![Toleration {
                operator: Some("Exists".into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        add_default_tolerations(&mut tolerate_all);
        assert_eq!(tolerate_all.tolerations.unwrap().len(), 1);
    }

    #[test]
    fn service_defaults() {
        let mut svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "s"},
            "spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 81, "targetPort": "http"}], "clusterIP": "10.96.0.5"}
        }))
        .unwrap();
        default_service(&mut svc);
        let spec = svc.spec.unwrap();
        assert_eq!(spec.session_affinity.as_deref(), Some("None"));
        let ports = spec.ports.unwrap();
        assert_eq!(ports[0].target_port, Some(IntOrString::Int(80)));
        assert_eq!(
            ports[1].target_port,
            Some(IntOrString::String("http".into()))
        );
        assert_eq!(ports[0].protocol.as_deref(), Some("TCP"));
        assert_eq!(spec.external_traffic_policy.as_deref(), Some("Cluster"));
        assert_eq!(spec.internal_traffic_policy.as_deref(), Some("Cluster"));
        assert_eq!(spec.ip_family_policy.as_deref(), Some("SingleStack"));
        assert_eq!(spec.cluster_ips, Some(vec!["10.96.0.5".to_string()]));
    }

    #[test]
    fn workload_defaults() {
        let mut d = Deployment::default();
        default_deployment(&mut d);
        let spec = d.spec.unwrap();
        assert_eq!(spec.replicas, Some(1));
        let ru = spec.strategy.unwrap().rolling_update.unwrap();
        assert_eq!(ru.max_surge, Some(IntOrString::String("25%".into())));
        assert_eq!(spec.revision_history_limit, Some(10));
        assert_eq!(spec.progress_deadline_seconds, Some(600));

        let mut ds = DaemonSet::default();
        default_daemon_set(&mut ds);
        let ru = ds
            .spec
            .unwrap()
            .update_strategy
            .unwrap()
            .rolling_update
            .unwrap();
        assert_eq!(
            (ru.max_unavailable, ru.max_surge),
            (Some(IntOrString::Int(1)), Some(IntOrString::Int(0)))
        );

        let mut ss = StatefulSet::default();
        default_stateful_set(&mut ss);
        let spec = ss.spec.unwrap();
        assert_eq!(spec.pod_management_policy.as_deref(), Some("OrderedReady"));
        assert_eq!(
            spec.update_strategy
                .unwrap()
                .rolling_update
                .unwrap()
                .partition,
            Some(0)
        );
        assert_eq!(
            spec.persistent_volume_claim_retention_policy
                .unwrap()
                .when_scaled
                .as_deref(),
            Some("Retain")
        );

        let mut job = Job::default();
        default_job(&mut job);
        let spec = job.spec.unwrap();
        assert_eq!(
            (spec.completions, spec.parallelism, spec.backoff_limit),
            (Some(1), Some(1), Some(6))
        );
        assert_eq!(
            spec.pod_replacement_policy.as_deref(),
            Some("TerminatingOrFailed")
        );

        let mut cj = CronJob::default();
        default_cron_job(&mut cj);
        let spec = cj.spec.unwrap();
        assert_eq!(spec.concurrency_policy.as_deref(), Some("Allow"));
        assert_eq!(
            (
                spec.successful_jobs_history_limit,
                spec.failed_jobs_history_limit
            ),
            (Some(3), Some(1))
        );
    }

    #[test]
    fn secret_and_namespace() {
        let mut s = Secret {
            string_data: Some([("a".to_string(), "x".to_string())].into()),
            ..Default::default()
        };
        default_secret(&mut s);
        assert_eq!(s.type_.as_deref(), Some("Opaque"));
        assert_eq!(s.data.unwrap()["a"].0, b"x");
        assert!(s.string_data.is_none());

        let mut ns = Namespace::default();
        ns.metadata.name = Some("team".into());
        default_namespace(&mut ns);
        assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Active"));
        assert_eq!(
            ns.spec.unwrap().finalizers.unwrap(),
            vec!["kubernetes".to_string()]
        );
        assert_eq!(
            ns.metadata.labels.unwrap()["kubernetes.io/metadata.name"],
            "team"
        );
    }

    #[test]
    fn job_selector_generation() {
        let mut job = Job::default();
        job.metadata.name = Some("pi".into());
        job.metadata.uid = Some("u-1".into());
        generate_job_selector(&mut job);
        let spec = job.spec.unwrap();
        assert_eq!(
            spec.selector.unwrap().match_labels.unwrap()["batch.kubernetes.io/controller-uid"],
            "u-1"
        );
        let labels = spec.template.metadata.unwrap().labels.unwrap();
        assert_eq!(labels["job-name"], "pi");
        assert_eq!(labels["controller-uid"], "u-1");
    }
}
