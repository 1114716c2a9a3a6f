//! A StatefulSet pod's stable identity: its ordinal name, the labels that
//! name it, its hostname under the governing Service, and the revision of
//! the template it was made from (Kubernetes' `stateful_set_utils.go`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// The label with the pod's own name, so a Service can select one replica.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label with the pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// The label with the revision the pod was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// The name of the pod with ordinal `ord`.
pub fn pod_name(set: &str, ord: i32) -> String {
    format!("{set}-{ord}")
}

/// The claim of ordinal `ord` from the template `volume`:
/// `<volume>-<set>-<ord>` (`data-web-0`).
pub fn claim_name(volume: &str, set: &str, ord: i32) -> String {
    format!("{volume}-{set}-{ord}")
}

/// Whether the set's `persistentVolumeClaimRetentionPolicy` says
/// `Delete` for `when` (`whenDeleted` or `whenScaled`); Retain otherwise.
pub fn deletes_claims(set: &StatefulSet, when: &str) -> bool {
    let policy = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    let value = match when {
        "whenDeleted" => policy.and_then(|p| p.when_deleted.as_deref()),
        _ => policy.and_then(|p| p.when_scaled.as_deref()),
    };
    value == Some("Delete")
}

/// A reference that makes `owner` an owner (not the controller) of a
/// claim, so the garbage collector deletes the claim after it.
pub fn claim_owner(api_version: &str, kind: &str, meta: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: None,
        block_owner_deletion: None,
    }
}

/// The claims the set's volumeClaimTemplates give ordinal `ord`: the
/// template's labels plus the set's selector, so they can be found by it;
/// owned by the set when its retention policy deletes them with it.
pub fn claims_for(set: &StatefulSet, ord: i32) -> Vec<PersistentVolumeClaim> {
    let set_name = set.metadata.name.clone().unwrap_or_default();
    let spec = set.spec.clone().unwrap_or_default();
    let owners = deletes_claims(set, "whenDeleted")
        .then(|| vec![claim_owner("apps/v1", "StatefulSet", &set.metadata)]);
    spec.volume_claim_templates
        .unwrap_or_default()
        .into_iter()
        .map(|mut claim| {
            let volume = claim.metadata.name.clone().unwrap_or_default();
            let mut labels = claim.metadata.labels.take().unwrap_or_default();
            labels.extend(spec.selector.match_labels.clone().unwrap_or_default());
            claim.metadata = ObjectMeta {
                name: Some(claim_name(&volume, &set_name, ord)),
                namespace: set.metadata.namespace.clone(),
                labels: Some(labels),
                annotations: claim.metadata.annotations.take(),
                owner_references: owners.clone(),
                ..Default::default()
            };
            claim.status = None;
            claim
        })
        .collect()
}

/// The ordinal of a pod named `<set>-<n>`, or None for any other name.
pub fn ordinal_of(set: &str, pod: &str) -> Option<i32> {
    let n = pod.strip_prefix(set)?.strip_prefix('-')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// The revision name a pod carries in `controller-revision-hash`:
/// `<set>-<hash of the template>`, as Kubernetes names ControllerRevisions.
/// The hash is stable across restarts (FNV-1a over the template's JSON), so
/// a restarted controller does not see every pod as outdated.
pub fn revision_name(set: &StatefulSet) -> String {
    let template = set.spec.as_ref().map(|s| &s.template);
    let bytes = serde_json::to_vec(&template).unwrap_or_default();
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!(
        "{}-{}",
        set.metadata.name.as_deref().unwrap_or(""),
        safe_encode(&h.to_string())
    )
}

/// Kubernetes' `rand.SafeEncodeString`: no vowels (no words) and no
/// look-alike characters.
fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[b as usize % ALPHANUMS.len()] as char)
        .collect()
}

/// The revision a pod was made from, if labelled.
pub fn revision_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(REVISION_LABEL)
        .map(String::as_str)
}

/// The controller reference a StatefulSet puts on its pods.
pub fn controller_ref(set: &StatefulSet) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: "StatefulSet".into(),
        name: set.metadata.name.clone().unwrap_or_default(),
        uid: set.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The pod with ordinal `ord` made from the set's current template, with
/// the identity labels and `hostname`/`subdomain`, so that the headless
/// Service named by `serviceName` gives it a stable DNS name.
pub fn new_pod(set: &StatefulSet, ord: i32, revision: &str) -> Pod {
    let set_name = set.metadata.name.clone().unwrap_or_default();
    let name = pod_name(&set_name, ord);
    let spec = set.spec.clone().unwrap_or_default();
    let tmeta = spec.template.metadata.unwrap_or_default();
    let mut labels: BTreeMap<String, String> = tmeta.labels.unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ord.to_string());
    labels.insert(REVISION_LABEL.into(), revision.to_string());
    let mut pod_spec = spec.template.spec.unwrap_or_default();
    // Each volumeClaimTemplate becomes the pod's own claim, replacing a
    // template volume of the same name.
    let volumes = pod_spec.volumes.get_or_insert_with(Vec::new);
    for claim in spec.volume_claim_templates.iter().flatten() {
        let volume = claim.metadata.name.clone().unwrap_or_default();
        volumes.retain(|v| v.name != volume);
        volumes.push(Volume {
            name: volume.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(&volume, &set_name, ord),
                read_only: None,
            }),
            ..Default::default()
        });
    }
    if volumes.is_empty() {
        pod_spec.volumes = None;
    }
    pod_spec.hostname = Some(name.clone());
    if let Some(svc) = spec.service_name.filter(|s| !s.is_empty()) {
        pod_spec.subdomain = Some(svc);
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![controller_ref(set)]),
            ..Default::default()
        },
        spec: Some(pod_spec),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_parse_only_exact_names() {
        assert_eq!(ordinal_of("web", "web-0"), Some(0));
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        assert_eq!(ordinal_of("web", "web-x"), None);
        assert_eq!(ordinal_of("web", "web-+1"), None);
        assert_eq!(ordinal_of("web", "webx-1"), None);
        assert_eq!(ordinal_of("web", "web-"), None);
    }

    #[test]
    fn revision_follows_the_template() {
        let mut set: StatefulSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {}, "serviceName": "web", "template": {
                "spec": {"containers": [{"name": "c", "image": "a"}]}}}
        }))
        .unwrap();
        let a = revision_name(&set);
        assert!(a.starts_with("web-"));
        assert_eq!(a, revision_name(&set));
        set.spec.as_mut().unwrap().replicas = Some(5);
        assert_eq!(a, revision_name(&set));
        set.spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers[0]
            .image = Some("b".into());
        assert_ne!(a, revision_name(&set));
    }
}
