//! VolumeBinding: a pod's PersistentVolumeClaims decide where it may run.
//! A claim bound to a volume with node affinity (a local-path volume, a
//! `local` volume) pins the pod to the volume's node; an unbound claim of a
//! `WaitForFirstConsumer` class lets the pod go anywhere, and the scheduler
//! then names the chosen node on the claim ([`selected_nodes`]) for the
//! provisioner; an unbound claim of an `Immediate` class, or a missing one,
//! keeps the pod Pending.
//!
//! Unlike the other plugins it reads the claim, volume and class caches,
//! so the scheduler adds it to its framework itself.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::runtime::reflector::{ObjectRef, Store};

use super::node_affinity::CompiledTerm;
use crate::scheduler::framework::{CycleState, FilterPlugin, Status};
use crate::scheduler::types::{NodeInfo, PodInfo};

/// The plugin's name.
pub const NAME: &str = "VolumeBinding";
/// The reason when a bound volume lives on another node.
pub const ERR_AFFINITY: &str = "node(s) had volume node affinity conflict";
/// The reason when an Immediate claim is not bound yet.
pub const ERR_UNBOUND: &str = "pod has unbound immediate PersistentVolumeClaims";

const STATE_KEY: &str = "VolumeBinding";

/// The caches the plugin reads.
#[derive(Clone)]
pub struct VolumeBinding {
    /// Claims.
    pub claims: Store<PersistentVolumeClaim>,
    /// Volumes.
    pub volumes: Store<PersistentVolume>,
    /// Classes.
    pub classes: Store<StorageClass>,
}

/// The node terms each bound volume of the pod requires (any term of a
/// volume may match; every volume must).
struct Required(Vec<Vec<CompiledTerm>>);

fn claim_names(pod: &Pod) -> impl Iterator<Item = &str> {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.as_str())
}

impl VolumeBinding {
    fn claim(&self, ns: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.claims.get(&ObjectRef::new(name).within(ns))
    }

    fn waits_for_consumer(&self, pvc: &PersistentVolumeClaim) -> bool {
        let class = pvc
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.as_deref())
            .unwrap_or_default();
        !class.is_empty()
            && self
                .classes
                .get(&ObjectRef::new(class))
                .is_some_and(|c| c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"))
    }

    /// The unbound WaitForFirstConsumer claims of `pod` that do not name a
    /// node yet: the scheduler writes the chosen one on them.
    pub fn selected_nodes(&self, pod: &Pod) -> Vec<Arc<PersistentVolumeClaim>> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        claim_names(pod)
            .filter_map(|n| self.claim(ns, n))
            .filter(|c| {
                c.spec
                    .as_ref()
                    .and_then(|s| s.volume_name.as_deref())
                    .is_none_or(str::is_empty)
                    && self.waits_for_consumer(c)
                    && !c
                        .metadata
                        .annotations
                        .as_ref()
                        .is_some_and(|a| a.contains_key(crate::controllers::volume::SELECTED_NODE))
            })
            .collect()
    }
}

impl FilterPlugin for VolumeBinding {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo) -> Option<Status> {
        let mut required = Vec::new();
        for name in claim_names(&pod.pod) {
            let Some(pvc) = self.claim(&pod.namespace, name) else {
                return Some(Status::unresolvable(format!(
                    "persistentvolumeclaim \"{name}\" not found"
                )));
            };
            if pvc.metadata.deletion_timestamp.is_some() {
                return Some(Status::unresolvable(format!(
                    "persistentvolumeclaim \"{name}\" is being deleted"
                )));
            }
            let volume = pvc
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.as_deref())
                .filter(|v| !v.is_empty());
            let Some(volume) = volume else {
                if self.waits_for_consumer(&pvc) {
                    continue;
                }
                return Some(Status::unresolvable(ERR_UNBOUND));
            };
            let Some(pv) = self.volumes.get(&ObjectRef::new(volume)) else {
                return Some(Status::unresolvable(format!(
                    "persistentvolume \"{volume}\" not found"
                )));
            };
            if let Some(terms) = pv
                .spec
                .as_ref()
                .and_then(|s| s.node_affinity.as_ref())
                .and_then(|a| a.required.as_ref())
            {
                required.push(
                    terms
                        .node_selector_terms
                        .iter()
                        .map(CompiledTerm::new)
                        .collect(),
                );
            }
        }
        state.write(STATE_KEY, Required(required));
        None
    }

    fn filter(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
        let required = state.read::<Required>(STATE_KEY)?;
        let fits = required
            .0
            .iter()
            .all(|terms| terms.iter().any(|t| t.matches(&node.name, node.labels())));
        (!fits).then(|| Status::unschedulable(ERR_AFFINITY))
    }
}
