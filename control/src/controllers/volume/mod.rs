//! The PersistentVolume controller (Kubernetes' `pkg/controller/volume/
//! persistentvolume`, the "persistent-volume-binder"), with kedge's
//! local-path provisioner built in (as k3s ships one):
//!
//! - a Pending claim binds to the smallest Available volume of its class
//!   that offers its access modes and size (both sides written: the
//!   volume's `claimRef`, the claim's `volumeName`, then both statuses);
//! - failing that, a claim of a class provisioned by [`PROVISIONER`] gets a
//!   new volume: a directory on one node (the node's storage directory,
//!   from its [`STORAGE_DIR_ANNOTATION`]), with node affinity so the pod
//!   follows its data. Under `WaitForFirstConsumer` (the default class's
//!   mode) the node is the one the scheduler chose for the claim's first
//!   pod (`volume.kubernetes.io/selected-node`);
//! - a bound claim that asks for more grows its volume when its class
//!   allows expansion;
//! - a volume whose claim is gone is Released; `Delete` then has its node
//!   remove a provisioned volume's directory and deletes the volume,
//!   `Retain` keeps it Released for an admin.
//!
//! It is level-triggered: any claim, volume or class event wakes one pass
//! over all of them, and a pass runs every [`RESYNC`] regardless.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimStatus,
    PersistentVolumeSpec, PersistentVolumeStatus, VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kedge_config::quantity::parse_quantity;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::Client;

use super::events::{self, EventType, Recorder};
use super::Context;

pub use kedge_config::storage::{
    LOCAL_PATH_DIR_ANNOTATION as STORAGE_DIR_ANNOTATION, LOCAL_PATH_PROVISIONER as PROVISIONER,
    SELECTED_NODE_ANNOTATION as SELECTED_NODE,
};

/// Where a node without the annotation keeps them.
pub const DEFAULT_STORAGE_DIR: &str = "/var/lib/kedge/storage";

/// How often every claim and volume is looked at even without events.
const RESYNC: Duration = Duration::from_secs(15);

/// Events coming close together make one pass.
const DEBOUNCE: Duration = Duration::from_millis(50);

/// What a pass works with.
pub struct State {
    client: Client,
    recorder: Recorder,
    claims: Store<PersistentVolumeClaim>,
    volumes: Store<PersistentVolume>,
    classes: Store<StorageClass>,
    nodes: Store<Node>,
    /// Claims already told they wait for a consumer.
    told: parking_lot::Mutex<std::collections::HashSet<String>>,
}

/// Run the controller until the future is dropped.
pub async fn run(ctx: Arc<Context>) {
    let claims = ctx.informers.get::<PersistentVolumeClaim>();
    let volumes = ctx.informers.get::<PersistentVolume>();
    let classes = ctx.informers.get::<StorageClass>();
    let nodes = ctx.informers.get::<Node>();
    let state = State {
        client: ctx.client.clone(),
        recorder: ctx.recorder("persistentvolume-controller"),
        claims: claims.store(),
        volumes: volumes.store(),
        classes: classes.store(),
        nodes: nodes.store(),
        told: Default::default(),
    };
    let mut wake = futures::stream::select_all([
        claims.subscribe().map(|_| ()).boxed(),
        volumes.subscribe().map(|_| ()).boxed(),
        classes.subscribe().map(|_| ()).boxed(),
    ]);
    let _ = state.claims.wait_until_ready().await;
    let _ = state.volumes.wait_until_ready().await;
    let _ = state.classes.wait_until_ready().await;
    let _ = state.nodes.wait_until_ready().await;
    loop {
        state.pass().await;
        tokio::select! {
            Some(()) = wake.next() => tokio::time::sleep(DEBOUNCE).await,
            _ = tokio::time::sleep(RESYNC) => {}
        }
        // Drain what came meanwhile: one pass covers it.
        while let Some(Some(())) = futures::FutureExt::now_or_never(wake.next()) {}
    }
}

fn name_of(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

fn ns_of(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or_default()
}

/// The claim's requested size in bytes.
fn requested(pvc: &PersistentVolumeClaim) -> i128 {
    parse_quantity(&request_quantity(pvc).0).map_or(0, |q| q.as_bytes())
}

/// The claim's `resources.requests.storage` as written (`0` if absent).
fn request_quantity(pvc: &PersistentVolumeClaim) -> Quantity {
    pvc.spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .cloned()
        .unwrap_or_else(|| Quantity("0".into()))
}

fn capacity(pv: &PersistentVolume) -> i128 {
    pv.spec
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .and_then(|q| parse_quantity(&q.0).ok())
        .map_or(0, |q| q.as_bytes())
}

fn class_of_claim(pvc: &PersistentVolumeClaim) -> &str {
    pvc.spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or_default()
}

fn class_of_volume(pv: &PersistentVolume) -> &str {
    pv.spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or_default()
}

fn phase_of_volume(pv: &PersistentVolume) -> &str {
    pv.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

fn phase_of_claim(pvc: &PersistentVolumeClaim) -> &str {
    pvc.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// Whether `pv` offers everything `pvc` asks for (class, modes, size).
fn satisfies(pv: &PersistentVolume, pvc: &PersistentVolumeClaim) -> bool {
    let Some(spec) = pv.spec.as_ref() else {
        return false;
    };
    let offered = spec.access_modes.clone().unwrap_or_default();
    let wanted = pvc
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.clone())
        .unwrap_or_default();
    let mode = |m: Option<&String>| m.map_or("Filesystem", String::as_str).to_string();
    class_of_volume(pv) == class_of_claim(pvc)
        && wanted.iter().all(|m| offered.contains(m))
        && capacity(pv) >= requested(pvc)
        && mode(spec.volume_mode.as_ref())
            == mode(pvc.spec.as_ref().and_then(|s| s.volume_mode.as_ref()))
}

/// Whether `pv`'s claimRef names this claim (by uid once it has one).
fn claimed_by(pv: &PersistentVolume, pvc: &PersistentVolumeClaim) -> bool {
    let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return false;
    };
    r.name.as_deref() == pvc.metadata.name.as_deref()
        && r.namespace.as_deref() == pvc.metadata.namespace.as_deref()
        && (r.uid.as_deref().is_none_or(str::is_empty) || r.uid == pvc.metadata.uid)
}

impl State {
    /// One look at every volume and claim.
    async fn pass(&self) {
        // What was said of claims that are gone is forgotten.
        let live: std::collections::HashSet<String> = self
            .claims
            .state()
            .iter()
            .filter_map(|c| c.metadata.uid.clone())
            .collect();
        // Keys are a claim's uid, or `resize/<uid>/<resourceVersion>`.
        let uid_of = |key: &str| {
            key.strip_prefix("resize/")
                .and_then(|rest| rest.split('/').next())
                .unwrap_or(key)
                .to_string()
        };
        self.told.lock().retain(|key| live.contains(&uid_of(key)));
        for pv in self.volumes.state() {
            if let Err(e) = self.sync_volume(&pv).await {
                tracing::debug!(pv = name_of(&pv.metadata), error = %e, "volume sync failed");
            }
        }
        for pvc in self.claims.state() {
            if let Err(e) = self.sync_claim(&pvc).await {
                tracing::debug!(pvc = name_of(&pvc.metadata), error = %e, "claim sync failed");
            }
        }
    }

    fn claim_for(&self, pv: &PersistentVolume) -> Option<Arc<PersistentVolumeClaim>> {
        let r = pv.spec.as_ref()?.claim_ref.as_ref()?;
        let found = self.claims.get(
            &ObjectRef::new(r.name.as_deref()?).within(r.namespace.as_deref().unwrap_or_default()),
        )?;
        (r.uid.as_deref().is_none_or(str::is_empty) || r.uid == found.metadata.uid).then_some(found)
    }

    /// A volume's phase follows its claim: Available without one, Bound
    /// with it, Released once it is gone (and then reclaimed).
    async fn sync_volume(&self, pv: &PersistentVolume) -> Result<(), kube::Error> {
        if pv.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let has_ref = pv.spec.as_ref().is_some_and(|s| s.claim_ref.is_some());
        let phase = phase_of_volume(pv);
        let want = if !has_ref {
            "Available"
        } else if let Some(pvc) = self.claim_for(pv) {
            let bound_here = pvc.spec.as_ref().and_then(|s| s.volume_name.as_deref())
                == pv.metadata.name.as_deref();
            if bound_here {
                "Bound"
            } else if phase == "Bound" {
                // The claim was bound elsewhere meanwhile.
                "Released"
            } else {
                // Pre-bound, waiting for the claim to take it.
                "Available"
            }
        } else if phase == "Available" || phase == "Pending" {
            // Pre-bound to a claim that does not exist (yet).
            "Available"
        } else {
            "Released"
        };
        if want != phase && !(phase == "Released" && want == "Released") {
            self.set_volume_phase(pv, want).await?;
        }
        if want == "Released" {
            self.reclaim(pv).await?;
        }
        Ok(())
    }

    async fn set_volume_phase(
        &self,
        pv: &PersistentVolume,
        phase: &str,
    ) -> Result<(), kube::Error> {
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        let mut next = pv.clone();
        next.status = Some(PersistentVolumeStatus {
            phase: Some(phase.into()),
            last_phase_transition_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::now(),
            )),
            ..pv.status.clone().unwrap_or_default()
        });
        api.replace_status(name_of(&pv.metadata), &PostParams::default(), &next)
            .await?;
        Ok(())
    }

    /// A Released volume under `Delete` goes away; under `Retain` it stays.
    async fn reclaim(&self, pv: &PersistentVolume) -> Result<(), kube::Error> {
        let policy = pv
            .spec
            .as_ref()
            .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
            .unwrap_or("Retain");
        if policy != "Delete" {
            return Ok(());
        }
        if !self.remove_directory(pv).await {
            // Tried again on a later pass.
            return Ok(());
        }
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        match api
            .delete(name_of(&pv.metadata), &DeleteParams::default())
            .await
        {
            Ok(_) => {
                tracing::info!(pv = name_of(&pv.metadata), "deleted released volume");
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// For a volume this controller provisioned, have its node remove the
    /// directory (the kubelet's `/localPath/{dir}`, through the API
    /// server's `nodes/proxy`); whether the volume may go now. A node that
    /// no longer exists took the directory with it.
    async fn remove_directory(&self, pv: &PersistentVolume) -> bool {
        let provisioned = pv
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("pv.kubernetes.io/provisioned-by"))
            .is_some_and(|p| p == PROVISIONER);
        let spec = pv.spec.as_ref();
        let dir = spec
            .and_then(|s| s.host_path.as_ref())
            .and_then(|h| h.path.rsplit('/').next())
            .map(str::to_string);
        let node = spec
            .and_then(|s| s.node_affinity.as_ref())
            .and_then(|a| a.required.as_ref())
            .and_then(|r| r.node_selector_terms.first())
            .and_then(|t| t.match_expressions.as_ref())
            .and_then(|e| e.iter().find(|r| r.key == "kubernetes.io/hostname"))
            .and_then(|r| r.values.as_ref()?.first().cloned());
        let (true, Some(dir), Some(node)) = (provisioned, dir, node) else {
            return true;
        };
        if self.nodes.get(&ObjectRef::new(&node)).is_none() {
            return true;
        }
        let request = hyper::Request::delete(format!("/api/v1/nodes/{node}/proxy/localPath/{dir}"))
            .body(Vec::new());
        let Ok(request) = request else {
            return true;
        };
        match self.client.request_text(request).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(pv = name_of(&pv.metadata), %node, error = %e, "removing the volume's directory failed; retrying");
                false
            }
        }
    }

    /// Bind a Pending claim, provisioning a volume if its class does.
    async fn sync_claim(&self, pvc: &PersistentVolumeClaim) -> Result<(), kube::Error> {
        if pvc.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let volume_name = pvc
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .filter(|n| !n.is_empty());
        if let Some(volume_name) = volume_name {
            let Some(pv) = self.volumes.get(&ObjectRef::new(&volume_name)) else {
                if phase_of_claim(pvc) == "Bound" {
                    self.set_claim_status(pvc, None, "Lost").await?;
                }
                return Ok(());
            };
            if pv.spec.as_ref().is_none_or(|s| s.claim_ref.is_none()) {
                // Asked for by name: the volume takes the claim.
                self.bind_volume(&pv, pvc).await?;
                return Ok(());
            }
            if claimed_by(&pv, pvc) && phase_of_claim(pvc) != "Bound" {
                self.set_claim_status(pvc, Some(&pv), "Bound").await?;
            } else if claimed_by(&pv, pvc) && requested(pvc) > capacity(&pv) {
                self.expand(pvc, &pv).await?;
            }
            return Ok(());
        }
        // A volume pre-bound to this claim, else the best free match.
        let volumes = self.volumes.state();
        let prebound = volumes.iter().find(|pv| {
            claimed_by(pv, pvc)
                && phase_of_volume(pv) != "Released"
                && pv.metadata.deletion_timestamp.is_none()
        });
        let chosen = prebound.cloned().or_else(|| {
            volumes
                .iter()
                .filter(|pv| {
                    phase_of_volume(pv) == "Available"
                        && pv.spec.as_ref().is_some_and(|s| s.claim_ref.is_none())
                        && pv.metadata.deletion_timestamp.is_none()
                        && satisfies(pv, pvc)
                })
                .min_by_key(|pv| capacity(pv))
                .cloned()
        });
        if let Some(pv) = chosen {
            let pv = if claimed_by(&pv, pvc) {
                pv
            } else {
                Arc::new(self.bind_volume(&pv, pvc).await?)
            };
            self.bind_claim(pvc, &pv).await?;
            return Ok(());
        }
        self.provision(pvc).await
    }

    /// A bound claim asks for more than its volume has: a volume of a
    /// class that allows expansion grows (a local-path directory has no
    /// size of its own, so that is the volume's capacity and then the
    /// claim's).
    async fn expand(
        &self,
        pvc: &PersistentVolumeClaim,
        pv: &PersistentVolume,
    ) -> Result<(), kube::Error> {
        let reference = events::reference("v1", "PersistentVolumeClaim", &pvc.metadata);
        let allowed = self
            .classes
            .get(&ObjectRef::new(class_of_claim(pvc)))
            .is_some_and(|c| c.allow_volume_expansion == Some(true));
        if !allowed {
            if self.told.lock().insert(format!(
                "resize/{}/{}",
                pvc.metadata.uid.as_deref().unwrap_or_default(),
                pvc.metadata.resource_version.as_deref().unwrap_or_default()
            )) {
                self.recorder
                    .record(
                        &reference,
                        EventType::Warning,
                        "ExternalExpanding",
                        "the claim's StorageClass does not allow volume expansion",
                    )
                    .await;
            }
            return Ok(());
        }
        let size = request_quantity(pvc);
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        let mut next = pv.clone();
        next.spec
            .get_or_insert_with(Default::default)
            .capacity
            .get_or_insert_with(Default::default)
            .insert("storage".into(), size.clone());
        let grown = api
            .replace(name_of(&pv.metadata), &PostParams::default(), &next)
            .await?;
        self.set_claim_status(pvc, Some(&grown), "Bound").await?;
        self.recorder
            .record(
                &reference,
                EventType::Normal,
                "VolumeResizeSuccessful",
                &format!(
                    "ExpandVolume succeeded for volume {}",
                    name_of(&pv.metadata)
                ),
            )
            .await;
        Ok(())
    }

    /// Point the volume at the claim.
    async fn bind_volume(
        &self,
        pv: &PersistentVolume,
        pvc: &PersistentVolumeClaim,
    ) -> Result<PersistentVolume, kube::Error> {
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        let mut next = pv.clone();
        let spec = next.spec.get_or_insert_with(Default::default);
        spec.claim_ref = Some(claim_reference(pvc));
        let mut annotations = next.metadata.annotations.take().unwrap_or_default();
        annotations.insert("pv.kubernetes.io/bound-by-controller".into(), "yes".into());
        next.metadata.annotations = Some(annotations);
        api.replace(name_of(&pv.metadata), &PostParams::default(), &next)
            .await
    }

    /// Point the claim at the volume, then mark it Bound.
    async fn bind_claim(
        &self,
        pvc: &PersistentVolumeClaim,
        pv: &PersistentVolume,
    ) -> Result<(), kube::Error> {
        let api: Api<PersistentVolumeClaim> =
            Api::namespaced(self.client.clone(), ns_of(&pvc.metadata));
        let mut next = pvc.clone();
        next.spec.get_or_insert_with(Default::default).volume_name = pv.metadata.name.clone();
        let mut annotations = next.metadata.annotations.take().unwrap_or_default();
        annotations.insert("pv.kubernetes.io/bind-completed".into(), "yes".into());
        annotations.insert("pv.kubernetes.io/bound-by-controller".into(), "yes".into());
        next.metadata.annotations = Some(annotations);
        let written = api
            .replace(name_of(&pvc.metadata), &PostParams::default(), &next)
            .await?;
        self.set_claim_status(&written, Some(pv), "Bound").await?;
        tracing::debug!(
            pvc = name_of(&pvc.metadata),
            pv = name_of(&pv.metadata),
            "bound"
        );
        Ok(())
    }

    async fn set_claim_status(
        &self,
        pvc: &PersistentVolumeClaim,
        pv: Option<&PersistentVolume>,
        phase: &str,
    ) -> Result<(), kube::Error> {
        let api: Api<PersistentVolumeClaim> =
            Api::namespaced(self.client.clone(), ns_of(&pvc.metadata));
        let mut next = pvc.clone();
        let spec = pv.and_then(|v| v.spec.as_ref());
        next.status = Some(PersistentVolumeClaimStatus {
            phase: Some(phase.into()),
            access_modes: spec.and_then(|s| s.access_modes.clone()),
            capacity: spec.and_then(|s| s.capacity.clone()),
            ..Default::default()
        });
        api.replace_status(name_of(&pvc.metadata), &PostParams::default(), &next)
            .await?;
        Ok(())
    }

    /// A new volume for the claim, if its class is ours and (for
    /// WaitForFirstConsumer) a node was chosen.
    async fn provision(&self, pvc: &PersistentVolumeClaim) -> Result<(), kube::Error> {
        let class_name = class_of_claim(pvc);
        if class_name.is_empty() {
            return Ok(());
        }
        let Some(class) = self.classes.get(&ObjectRef::new(class_name)) else {
            return Ok(());
        };
        if class.provisioner != PROVISIONER {
            return Ok(());
        }
        let reference = events::reference("v1", "PersistentVolumeClaim", &pvc.metadata);
        let selected = pvc
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(SELECTED_NODE))
            .cloned();
        let Some(node_name) = selected else {
            let message = if class.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer") {
                "waiting for first consumer to be created before binding"
            } else {
                "the local-path provisioner needs volumeBindingMode WaitForFirstConsumer: a volume lives on the node of its first pod"
            };
            // Said once, when the claim is new (a pass runs every 15 s).
            if !self
                .told
                .lock()
                .insert(pvc.metadata.uid.clone().unwrap_or_default())
            {
                return Ok(());
            }
            self.recorder
                .record(
                    &reference,
                    EventType::Normal,
                    "WaitForFirstConsumer",
                    message,
                )
                .await;
            return Ok(());
        };
        let node = self.nodes.get(&ObjectRef::new(&node_name));
        let dir = node
            .as_ref()
            .and_then(|n| n.metadata.annotations.as_ref())
            .and_then(|a| a.get(STORAGE_DIR_ANNOTATION))
            .cloned()
            .unwrap_or_else(|| DEFAULT_STORAGE_DIR.into());
        let uid = pvc.metadata.uid.clone().unwrap_or_default();
        let pv_name = format!("pvc-{uid}");
        let path = format!(
            "{}/{pv_name}_{}_{}",
            dir.trim_end_matches('/'),
            ns_of(&pvc.metadata),
            name_of(&pvc.metadata)
        );
        let size = request_quantity(pvc);
        let pv = PersistentVolume {
            metadata: ObjectMeta {
                name: Some(pv_name.clone()),
                annotations: Some(BTreeMap::from([(
                    "pv.kubernetes.io/provisioned-by".to_string(),
                    PROVISIONER.to_string(),
                )])),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                capacity: Some(BTreeMap::from([("storage".to_string(), size)])),
                access_modes: pvc.spec.as_ref().and_then(|s| s.access_modes.clone()),
                claim_ref: Some(claim_reference(pvc)),
                host_path: Some(HostPathVolumeSource {
                    path,
                    type_: Some("DirectoryOrCreate".into()),
                }),
                node_affinity: Some(VolumeNodeAffinity {
                    required: Some(NodeSelector {
                        node_selector_terms: vec![NodeSelectorTerm {
                            match_expressions: Some(vec![NodeSelectorRequirement {
                                key: "kubernetes.io/hostname".into(),
                                operator: "In".into(),
                                values: Some(vec![node_name.clone()]),
                            }]),
                            ..Default::default()
                        }],
                    }),
                }),
                persistent_volume_reclaim_policy: Some(
                    class
                        .reclaim_policy
                        .clone()
                        .unwrap_or_else(|| "Delete".into()),
                ),
                storage_class_name: Some(class_name.to_string()),
                volume_mode: pvc.spec.as_ref().and_then(|s| s.volume_mode.clone()),
                mount_options: class.mount_options.clone(),
                ..Default::default()
            }),
            status: None,
        };
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        match api.create(&PostParams::default(), &pv).await {
            Ok(_) => {
                self.recorder
                    .record(
                        &reference,
                        EventType::Normal,
                        "ProvisioningSucceeded",
                        &format!("Successfully provisioned volume {pv_name} on node {node_name}"),
                    )
                    .await;
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The reference a volume keeps to its claim.
fn claim_reference(pvc: &PersistentVolumeClaim) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        namespace: pvc.metadata.namespace.clone(),
        name: pvc.metadata.name.clone(),
        uid: pvc.metadata.uid.clone(),
        resource_version: pvc.metadata.resource_version.clone(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pv(class: &str, size: &str, modes: &[&str]) -> PersistentVolume {
        serde_json::from_value(json!({
            "metadata": {"name": "pv"},
            "spec": {"storageClassName": class, "capacity": {"storage": size},
                     "accessModes": modes, "hostPath": {"path": "/x"}},
        }))
        .unwrap()
    }

    fn pvc(class: &str, size: &str, modes: &[&str]) -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": "c", "namespace": "default", "uid": "u1"},
            "spec": {"storageClassName": class, "accessModes": modes,
                     "resources": {"requests": {"storage": size}}},
        }))
        .unwrap()
    }

    #[test]
    fn a_volume_satisfies_a_claim_by_class_modes_and_size() {
        let claim = pvc("manual", "1Gi", &["ReadWriteOnce"]);
        assert!(satisfies(&pv("manual", "1Gi", &["ReadWriteOnce"]), &claim));
        assert!(satisfies(
            &pv("manual", "2Gi", &["ReadWriteOnce", "ReadOnlyMany"]),
            &claim
        ));
        assert!(!satisfies(
            &pv("manual", "512Mi", &["ReadWriteOnce"]),
            &claim
        ));
        assert!(!satisfies(&pv("other", "1Gi", &["ReadWriteOnce"]), &claim));
        assert!(!satisfies(&pv("manual", "1Gi", &["ReadOnlyMany"]), &claim));
    }

    #[test]
    fn a_claim_ref_names_the_claim_by_uid_once_it_has_one() {
        let claim = pvc("", "1Gi", &["ReadWriteOnce"]);
        let mut volume = pv("", "1Gi", &["ReadWriteOnce"]);
        volume.spec.as_mut().unwrap().claim_ref = Some(ObjectReference {
            namespace: Some("default".into()),
            name: Some("c".into()),
            ..Default::default()
        });
        assert!(claimed_by(&volume, &claim));
        volume
            .spec
            .as_mut()
            .unwrap()
            .claim_ref
            .as_mut()
            .unwrap()
            .uid = Some("u2".into());
        assert!(!claimed_by(&volume, &claim));
    }
}
