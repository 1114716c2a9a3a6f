//! The EndpointSlice reconciler (Kubernetes'
//! `staging/src/k8s.io/endpointslice/reconciler.go`): given the endpoints a
//! Service should have and the slices that exist, the fewest slice writes
//! that make them agree. Endpoints are grouped by the ports they offer (a
//! slice has one port list); changed endpoints are updated where they
//! are, removed ones taken out, new ones put first into slices that are
//! being written anyway, then into slices with room, then into new slices
//! of at most `max_per_slice`. A Service with no endpoints keeps one empty
//! placeholder slice.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;

use crate::controllers::endpoints::pods;

/// Label naming the Service a slice belongs to.
pub(crate) const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label naming the controller that manages a slice.
pub(crate) const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's name in `MANAGED_BY_LABEL`.
pub(crate) const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";

/// The writes that bring a Service's slices to the desired state.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// New slices (with `generateName`).
    pub create: Vec<EndpointSlice>,
    /// Existing slices with new contents.
    pub update: Vec<EndpointSlice>,
    /// Slices to delete.
    pub delete: Vec<EndpointSlice>,
}

impl Plan {
    /// Nothing to write.
    pub(crate) fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// The endpoints wanted for a Service, each with the ports it offers.
pub(crate) type Desired = Vec<(Vec<EndpointPort>, Endpoint)>;

/// Key of a port list (the list as JSON, in the Service's port order).
fn ports_key(ports: &[EndpointPort]) -> String {
    serde_json::to_string(ports).unwrap_or_default()
}

/// Key of an endpoint within a slice: its addresses and pod.
fn endpoint_key(ep: &Endpoint) -> (Vec<String>, Option<String>) {
    (
        ep.addresses.clone(),
        ep.target_ref.as_ref().and_then(|r| r.uid.clone()),
    )
}

/// The labels Kubernetes' `setEndpointSliceLabels` gives a Service's slices.
pub(crate) fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = svc
        .labels()
        .iter()
        .filter(|(k, _)| k.as_str() != SERVICE_NAME_LABEL && k.as_str() != MANAGED_BY_LABEL)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let ip_set = svc
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty() && ip != "None");
    if ip_set {
        labels.remove(pods::HEADLESS_LABEL);
    } else {
        labels.insert(pods::HEADLESS_LABEL.into(), String::new());
    }
    labels.insert(SERVICE_NAME_LABEL.into(), svc.name_any());
    labels.insert(MANAGED_BY_LABEL.into(), CONTROLLER_NAME.into());
    labels
}

fn new_slice(svc: &Service, address_type: &str, ports: &[EndpointPort]) -> EndpointSlice {
    let name = svc.name_any();
    // Names must stay valid DNS subdomains once the random suffix is added.
    let prefix: String = name.chars().take(57).collect();
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{prefix}-")),
            namespace: svc.namespace(),
            labels: Some(slice_labels(svc)),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Service".into(),
                name,
                uid: svc.uid().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        address_type: address_type.into(),
        endpoints: Vec::new(),
        ports: Some(ports.to_vec()),
    }
}

fn is_placeholder(slice: &EndpointSlice) -> bool {
    slice.endpoints.is_empty() && slice.ports.as_ref().is_none_or(Vec::is_empty)
}

/// Plan the writes for one address type. `existing` are the slices this
/// controller manages for the Service with that address type.
pub(crate) fn plan(
    svc: &Service,
    address_type: &str,
    desired: Desired,
    existing: &[EndpointSlice],
    max_per_slice: usize,
) -> Plan {
    let labels = slice_labels(svc);
    let creating_allowed = svc.metadata.deletion_timestamp.is_none();

    // Desired endpoints by port list, in a stable order (pod name).
    let mut wanted: BTreeMap<String, (Vec<EndpointPort>, Vec<Endpoint>)> = BTreeMap::new();
    for (ports, ep) in desired {
        wanted
            .entry(ports_key(&ports))
            .or_insert_with(|| (ports, Vec::new()))
            .1
            .push(ep);
    }
    for (_, eps) in wanted.values_mut() {
        eps.sort_by(|a, b| {
            let name = |e: &Endpoint| e.target_ref.as_ref().and_then(|r| r.name.clone());
            name(a)
                .cmp(&name(b))
                .then_with(|| a.addresses.cmp(&b.addresses))
        });
    }
    let mut existing_by_ports: BTreeMap<String, Vec<EndpointSlice>> = BTreeMap::new();
    for slice in existing {
        existing_by_ports
            .entry(ports_key(slice.ports.as_deref().unwrap_or_default()))
            .or_default()
            .push(slice.clone());
    }

    let mut plan = Plan::default();
    let mut keys: Vec<String> = wanted.keys().cloned().collect();
    for key in existing_by_ports.keys() {
        if !wanted.contains_key(key) {
            keys.push(key.clone());
        }
    }
    for key in keys {
        let (ports, wanted_eps) = wanted.remove(&key).unwrap_or_default();
        let slices = existing_by_ports.remove(&key).unwrap_or_default();
        by_ports(
            svc,
            address_type,
            &labels,
            &ports,
            wanted_eps,
            slices,
            max_per_slice,
            &mut plan,
        );
    }

    if !creating_allowed {
        plan.create.clear();
    }
    // A Service without endpoints keeps exactly one empty slice.
    if existing.len() == plan.delete.len() && plan.create.is_empty() && creating_allowed {
        if plan.delete.len() == 1 && is_placeholder(&plan.delete[0]) {
            plan.delete.clear();
        } else {
            let mut placeholder = new_slice(svc, address_type, &[]);
            placeholder.ports = Some(Vec::new());
            plan.create.push(placeholder);
        }
    }
    plan
}

/// Kubernetes' `reconcileByPortMapping` for one port list.
#[allow(clippy::too_many_arguments)]
fn by_ports(
    svc: &Service,
    address_type: &str,
    labels: &BTreeMap<String, String>,
    ports: &[EndpointPort],
    wanted: Vec<Endpoint>,
    slices: Vec<EndpointSlice>,
    max_per_slice: usize,
    plan: &mut Plan,
) {
    let mut remaining: Vec<Option<Endpoint>> = wanted.into_iter().map(Some).collect();
    let index: HashMap<_, usize> = remaining
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.as_ref().map(|e| (endpoint_key(e), i)))
        .collect();

    // 1. Keep, update or drop the endpoints already in slices.
    let mut to_update = Vec::new();
    let mut unchanged = Vec::new();
    for mut slice in slices {
        let mut changed = false;
        let mut kept = Vec::with_capacity(slice.endpoints.len());
        for ep in std::mem::take(&mut slice.endpoints) {
            match index
                .get(&endpoint_key(&ep))
                .and_then(|&i| remaining[i].take())
            {
                Some(want) => {
                    changed |= want != ep;
                    kept.push(want);
                }
                None => changed = true,
            }
        }
        slice.endpoints = kept;
        if slice.metadata.labels.as_ref() != Some(labels) {
            slice.metadata.labels = Some(labels.clone());
            changed = true;
        }
        if slice.endpoints.is_empty() {
            // An empty placeholder is kept only by the placeholder rule,
            // decided once every port list is planned.
            plan.delete.push(slice);
        } else if changed {
            to_update.push(slice);
        } else {
            unchanged.push(slice);
        }
    }

    // 2. Place new endpoints: first into slices written anyway (fullest
    // first), then into unchanged slices with room, then new slices.
    let mut new_eps: std::collections::VecDeque<Endpoint> =
        remaining.into_iter().flatten().collect();
    to_update.sort_by_key(|s| std::cmp::Reverse(s.endpoints.len()));
    for slice in &mut to_update {
        while slice.endpoints.len() < max_per_slice {
            let Some(ep) = new_eps.pop_front() else { break };
            slice.endpoints.push(ep);
        }
    }
    unchanged.sort_by_key(|s| std::cmp::Reverse(s.endpoints.len()));
    for mut slice in unchanged {
        if new_eps.is_empty() || slice.endpoints.len() >= max_per_slice {
            continue;
        }
        while slice.endpoints.len() < max_per_slice {
            let Some(ep) = new_eps.pop_front() else { break };
            slice.endpoints.push(ep);
        }
        to_update.push(slice);
    }
    while !new_eps.is_empty() {
        let mut slice = new_slice(svc, address_type, ports);
        let take = new_eps.len().min(max_per_slice);
        slice.endpoints = new_eps.drain(..take).collect();
        plan.create.push(slice);
    }
    plan.update.extend(to_update);
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ObjectReference, ServiceSpec};
    use k8s_openapi::api::discovery::v1::EndpointConditions;

    fn svc() -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("svc-uid".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some("10.96.0.20".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn port() -> Vec<EndpointPort> {
        vec![EndpointPort {
            name: Some("http".into()),
            port: Some(8080),
            protocol: Some("TCP".into()),
            app_protocol: None,
        }]
    }

    fn ep(i: usize, ready: bool) -> Endpoint {
        Endpoint {
            addresses: vec![format!("10.244.0.{i}")],
            conditions: Some(EndpointConditions {
                ready: Some(ready),
                serving: Some(ready),
                terminating: Some(false),
            }),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                name: Some(format!("pod-{i:03}")),
                uid: Some(format!("uid-{i}")),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn named(mut s: EndpointSlice, name: &str) -> EndpointSlice {
        s.metadata.name = Some(name.into());
        s.metadata.generate_name = None;
        s
    }

    #[test]
    fn splits_into_slices_of_at_most_max() {
        let desired = (0..250).map(|i| (port(), ep(i, true))).collect();
        let p = plan(&svc(), "IPv4", desired, &[], 100);
        let sizes: Vec<usize> = p.create.iter().map(|s| s.endpoints.len()).collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        let labels = p.create[0].metadata.labels.as_ref().unwrap();
        assert_eq!(labels[SERVICE_NAME_LABEL], "web");
        assert_eq!(labels[MANAGED_BY_LABEL], CONTROLLER_NAME);
        assert_eq!(p.create[0].metadata.generate_name.as_deref(), Some("web-"));
    }

    #[test]
    fn readiness_change_updates_in_place() {
        let first = plan(
            &svc(),
            "IPv4",
            (0..3).map(|i| (port(), ep(i, true))).collect(),
            &[],
            100,
        );
        let existing = vec![named(first.create[0].clone(), "web-abc")];
        let unchanged = plan(
            &svc(),
            "IPv4",
            (0..3).map(|i| (port(), ep(i, true))).collect(),
            &existing,
            100,
        );
        assert!(unchanged.is_empty());
        let desired = (0..3).map(|i| (port(), ep(i, i != 1))).collect();
        let p = plan(&svc(), "IPv4", desired, &existing, 100);
        assert!(p.create.is_empty() && p.delete.is_empty());
        assert_eq!(p.update.len(), 1);
        let conds = p.update[0].endpoints[1].conditions.as_ref().unwrap();
        assert_eq!(conds.ready, Some(false));
    }

    #[test]
    fn no_endpoints_leaves_a_placeholder() {
        let p = plan(&svc(), "IPv4", Vec::new(), &[], 100);
        assert_eq!(p.create.len(), 1);
        assert!(p.create[0].endpoints.is_empty());
        let existing = vec![named(p.create[0].clone(), "web-abc")];
        assert!(plan(&svc(), "IPv4", Vec::new(), &existing, 100).is_empty());
        // Endpoints arriving go into the placeholder's place.
        let p = plan(&svc(), "IPv4", vec![(port(), ep(1, true))], &existing, 100);
        assert_eq!(p.create.len(), 1);
        assert_eq!(p.delete.len(), 1);
    }
}
