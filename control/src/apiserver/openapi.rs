//! OpenAPI v3 documents. kubectl reads them to learn that the server
//! validates fields (`fieldValidation` on each kind's PATCH operation), to
//! explain kinds (`kubectl explain` walks `components.schemas`) and to compute
//! client-side apply patches (the `x-kubernetes-patch-*` extensions).
//!
//! The schemas come from k8s-openapi's `schemars` implementations, generated
//! once and reshaped to what kube-apiserver publishes: `#/components/schemas/`
//! references wrapped in `allOf` when they carry a description, the special
//! forms of IntOrString, Quantity and the time types, the strategic-merge and
//! list metadata that the generated schemas lack, and
//! `x-kubernetes-group-version-kind` on every served kind.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use k8s_openapi::api::{autoscaling, core};
use k8s_openapi::schemars::{generate::SchemaSettings, SchemaGenerator};
use serde_json::{json, Map, Value};

use super::registry::custom::Served;
use super::registry::{builtin, kinds};
use super::registry::{Registry, Resource};

const REF_PREFIX: &str = "#/components/schemas/";

/// Strategic-merge and list metadata of the Kubernetes 1.32 Go types (their
/// `patchStrategy`/`patchMergeKey` struct tags and `+listType`, `+listMapKey`,
/// `+mapType`, `+structType` markers), which k8s-openapi's schemas do not
/// carry. kubectl's client-side apply reads it to merge lists by key, so it
/// must match Kubernetes exactly. One field per line:
/// `<group.version.Type> <property> <key=value>...`, where the property `.`
/// stands for the type itself.
const PATCH_META: &str = "
apps.v1.DaemonSetStatus conditions merge-key=type strategy=merge list-type=map list-map-keys=type
apps.v1.DeploymentSpec strategy strategy=retainKeys
apps.v1.DeploymentStatus conditions merge-key=type strategy=merge list-type=map list-map-keys=type
apps.v1.ReplicaSetStatus conditions merge-key=type strategy=merge list-type=map list-map-keys=type
apps.v1.StatefulSetSpec volumeClaimTemplates list-type=atomic
apps.v1.StatefulSetStatus conditions merge-key=type strategy=merge list-type=map list-map-keys=type
batch.v1.CronJobStatus active list-type=atomic
batch.v1.JobStatus conditions merge-key=type strategy=merge list-type=atomic
batch.v1.PodFailurePolicy rules list-type=atomic
batch.v1.PodFailurePolicyOnExitCodesRequirement values list-type=set
batch.v1.PodFailurePolicyRule onPodConditions list-type=atomic
batch.v1.SuccessPolicy rules list-type=atomic
batch.v1.UncountedTerminatedPods failed list-type=set
batch.v1.UncountedTerminatedPods succeeded list-type=set
core.v1.Capabilities add list-type=atomic
core.v1.Capabilities drop list-type=atomic
core.v1.CephFSVolumeSource monitors list-type=atomic
core.v1.ConfigMapKeySelector . map-type=atomic
core.v1.ConfigMapProjection items list-type=atomic
core.v1.ConfigMapVolumeSource items list-type=atomic
core.v1.Container args list-type=atomic
core.v1.Container command list-type=atomic
core.v1.Container env merge-key=name strategy=merge list-type=map list-map-keys=name
core.v1.Container envFrom list-type=atomic
core.v1.Container ports merge-key=containerPort strategy=merge list-type=map list-map-keys=containerPort,protocol
core.v1.Container resizePolicy list-type=atomic
core.v1.Container volumeDevices merge-key=devicePath strategy=merge list-type=map list-map-keys=devicePath
core.v1.Container volumeMounts merge-key=mountPath strategy=merge list-type=map list-map-keys=mountPath
core.v1.ContainerImage names list-type=atomic
core.v1.ContainerStatus allocatedResourcesStatus merge-key=name strategy=merge list-type=map list-map-keys=name
core.v1.ContainerStatus volumeMounts merge-key=mountPath strategy=merge list-type=map list-map-keys=mountPath
core.v1.DownwardAPIProjection items list-type=atomic
core.v1.DownwardAPIVolumeSource items list-type=atomic
core.v1.EndpointAddress . map-type=atomic
core.v1.EndpointPort . map-type=atomic
core.v1.EndpointSubset addresses list-type=atomic
core.v1.EndpointSubset notReadyAddresses list-type=atomic
core.v1.EndpointSubset ports list-type=atomic
core.v1.Endpoints subsets list-type=atomic
core.v1.EphemeralContainer args list-type=atomic
core.v1.EphemeralContainer command list-type=atomic
core.v1.EphemeralContainer env merge-key=name strategy=merge list-type=map list-map-keys=name
core.v1.EphemeralContainer envFrom list-type=atomic
core.v1.EphemeralContainer ports merge-key=containerPort strategy=merge list-type=map list-map-keys=containerPort,protocol
core.v1.EphemeralContainer resizePolicy list-type=atomic
core.v1.EphemeralContainer volumeDevices merge-key=devicePath strategy=merge list-type=map list-map-keys=devicePath
core.v1.EphemeralContainer volumeMounts merge-key=mountPath strategy=merge list-type=map list-map-keys=mountPath
core.v1.ExecAction command list-type=atomic
core.v1.FCVolumeSource targetWWNs list-type=atomic
core.v1.FCVolumeSource wwids list-type=atomic
core.v1.HTTPGetAction httpHeaders list-type=atomic
core.v1.HostAlias hostnames list-type=atomic
core.v1.ISCSIVolumeSource portals list-type=atomic
core.v1.LinuxContainerUser supplementalGroups list-type=atomic
core.v1.LoadBalancerIngress ports list-type=atomic
core.v1.LoadBalancerStatus ingress list-type=atomic
core.v1.LocalObjectReference . map-type=atomic
core.v1.NamespaceSpec finalizers list-type=atomic
core.v1.NamespaceStatus conditions merge-key=type strategy=merge list-type=map list-map-keys=type
core.v1.NodeAffinity preferredDuringSchedulingIgnoredDuringExecution list-type=atomic
core.v1.NodeSelector . map-type=atomic
core.v1.NodeSelector nodeSelectorTerms list-type=atomic
core.v1.NodeSelectorRequirement values list-type=atomic
core.v1.NodeSelectorTerm . map-type=atomic
core.v1.NodeSelectorTerm matchExpressions list-type=atomic
core.v1.NodeSelectorTerm matchFields list-type=atomic
core.v1.NodeSpec podCIDRs strategy=merge list-type=set
core.v1.NodeSpec taints list-type=atomic
core.v1.NodeStatus addresses merge-key=type strategy=merge list-type=map list-map-keys=type
core.v1.NodeStatus conditions merge-key=type strategy=merge list-type=map list-map-keys=type
core.v1.NodeStatus images list-type=atomic
core.v1.NodeStatus runtimeHandlers list-type=atomic
core.v1.NodeStatus volumesAttached list-type=atomic
core.v1.NodeStatus volumesInUse list-type=atomic
core.v1.ObjectFieldSelector . map-type=atomic
core.v1.ObjectReference . map-type=atomic
core.v1.PersistentVolumeClaimSpec accessModes list-type=atomic
core.v1.PersistentVolumeClaimStatus accessModes list-type=atomic
core.v1.PersistentVolumeClaimStatus allocatedResourceStatuses map-type=granular
core.v1.PersistentVolumeClaimStatus conditions merge-key=type strategy=merge list-type=map list-map-keys=type
core.v1.PodAffinity preferredDuringSchedulingIgnoredDuringExecution list-type=atomic
core.v1.PodAffinity requiredDuringSchedulingIgnoredDuringExecution list-type=atomic
core.v1.PodAffinityTerm matchLabelKeys list-type=atomic
core.v1.PodAffinityTerm mismatchLabelKeys list-type=atomic
core.v1.PodAffinityTerm namespaces list-type=atomic
core.v1.PodAntiAffinity preferredDuringSchedulingIgnoredDuringExecution list-type=atomic
core.v1.PodAntiAffinity requiredDuringSchedulingIgnoredDuringExecution list-type=atomic
core.v1.PodDNSConfig nameservers list-type=atomic
core.v1.PodDNSConfig options list-type=atomic
core.v1.PodDNSConfig searches list-type=atomic
core.v1.PodSecurityContext supplementalGroups list-type=atomic
core.v1.PodSecurityContext sysctls list-type=atomic
core.v1.PodSpec containers merge-key=name strategy=merge list-type=map list-map-keys=name
core.v1.PodSpec ephemeralContainers merge-key=name strategy=merge list-type=map list-map-keys=name
core.v1.PodSpec hostAliases merge-key=ip strategy=merge list-type=map list-map-keys=ip
core.v1.PodSpec imagePullSecrets merge-key=name strategy=merge list-type=map list-map-keys=name
core.v1.PodSpec initContainers merge-key=name strategy=merge list-type=map list-map-keys=name
core.v1.PodSpec nodeSelector map-type=atomic
core.v1.PodSpec readinessGates list-type=atomic
core.v1.PodSpec resourceClaims merge-key=name strategy=merge,retainKeys list-type=map list-map-keys=name
core.v1.PodSpec schedulingGates merge-key=name strategy=merge list-type=map list-map-keys=name
core.v1.PodSpec tolerations list-type=atomic
core.v1.PodSpec topologySpreadConstraints merge-key=topologyKey strategy=merge list-type=map list-map-keys=topologyKey,whenUnsatisfiable
core.v1.PodSpec volumes merge-key=name strategy=merge,retainKeys list-type=map list-map-keys=name
core.v1.PodStatus conditions merge-key=type strategy=merge list-type=map list-map-keys=type
core.v1.PodStatus containerStatuses list-type=atomic
core.v1.PodStatus ephemeralContainerStatuses list-type=atomic
core.v1.PodStatus hostIPs merge-key=ip strategy=merge list-type=atomic
core.v1.PodStatus initContainerStatuses list-type=atomic
core.v1.PodStatus podIPs merge-key=ip strategy=merge list-type=map list-map-keys=ip
core.v1.PodStatus resourceClaimStatuses merge-key=name strategy=merge,retainKeys list-type=map list-map-keys=name
core.v1.ProjectedVolumeSource sources list-type=atomic
core.v1.RBDVolumeSource monitors list-type=atomic
core.v1.ResourceFieldSelector . map-type=atomic
core.v1.ResourceRequirements claims list-type=map list-map-keys=name
core.v1.ResourceStatus resources list-type=map list-map-keys=resourceID
core.v1.SecretKeySelector . map-type=atomic
core.v1.SecretProjection items list-type=atomic
core.v1.SecretVolumeSource items list-type=atomic
core.v1.ServiceAccount imagePullSecrets list-type=atomic
core.v1.ServiceAccount secrets merge-key=name strategy=merge list-type=map list-map-keys=name
core.v1.ServiceSpec clusterIPs list-type=atomic
core.v1.ServiceSpec externalIPs list-type=atomic
core.v1.ServiceSpec ipFamilies list-type=atomic
core.v1.ServiceSpec loadBalancerSourceRanges list-type=atomic
core.v1.ServiceSpec ports merge-key=port strategy=merge list-type=map list-map-keys=port,protocol
core.v1.ServiceSpec selector map-type=atomic
core.v1.ServiceStatus conditions merge-key=type strategy=merge list-type=map list-map-keys=type
core.v1.TopologySpreadConstraint matchLabelKeys list-type=atomic
core.v1.TypedLocalObjectReference . map-type=atomic
discovery.v1.Endpoint addresses list-type=set
discovery.v1.EndpointHints forZones list-type=atomic
discovery.v1.EndpointPort . map-type=atomic
discovery.v1.EndpointSlice endpoints list-type=atomic
discovery.v1.EndpointSlice ports list-type=atomic
meta.v1.LabelSelector . map-type=atomic
meta.v1.LabelSelector matchExpressions list-type=atomic
meta.v1.LabelSelectorRequirement values list-type=atomic
meta.v1.ObjectMeta finalizers strategy=merge list-type=set
meta.v1.ObjectMeta managedFields list-type=atomic
meta.v1.ObjectMeta ownerReferences merge-key=uid strategy=merge list-type=map list-map-keys=uid
meta.v1.OwnerReference . map-type=atomic
networking.v1.HTTPIngressRuleValue paths list-type=atomic
networking.v1.IngressLoadBalancerIngress ports list-type=atomic
networking.v1.IngressLoadBalancerStatus ingress list-type=atomic
networking.v1.IngressSpec rules list-type=atomic
networking.v1.IngressSpec tls list-type=atomic
networking.v1.IngressTLS hosts list-type=atomic
networking.v1.ServiceBackendPort . map-type=atomic
";

fn gv_path(group: &str) -> String {
    if group.is_empty() {
        "api/v1".to_string()
    } else {
        format!("apis/{group}/v1")
    }
}

/// The schemas of the served kinds (each kind's module names its type),
/// and of the bodies of the `binding` and `scale` subresources. Returns the
/// schema name of each kind, by (group, kind).
fn add_kind_schemas(gen: &mut SchemaGenerator) -> Vec<((&'static str, &'static str), String)> {
    gen.subschema_for::<core::v1::Binding>();
    gen.subschema_for::<autoscaling::v1::Scale>();
    kinds::ALL
        .iter()
        .map(|k| ((k.resource.group, k.resource.kind), (k.openapi)(gen)))
        .collect()
}

/// Full schema name of a `group.version.Type` short name.
fn schema_name(short: &str) -> String {
    match short.strip_prefix("meta.") {
        Some(rest) => format!("io.k8s.apimachinery.pkg.apis.meta.{rest}"),
        None => format!("io.k8s.api.{short}"),
    }
}

/// The schema name of a served kind (or of Binding and Scale).
fn kind_schema_name(group: &str, kind: &str) -> String {
    if let Some((_, name)) = all_kind_names()
        .iter()
        .find(|((g, k), _)| *g == group && *k == kind)
    {
        return name.clone();
    }
    let g = if group.is_empty() { "core" } else { group };
    format!("io.k8s.api.{g}.v1.{kind}")
}

/// The schema names of the served kinds, by (group, kind).
fn all_kind_names() -> &'static [((&'static str, &'static str), String)] {
    static NAMES: OnceLock<Vec<((&'static str, &'static str), String)>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut gen = SchemaSettings::openapi3()
            .with(|s| s.meta_schema = None)
            .into_generator();
        add_kind_schemas(&mut gen)
    })
}

/// kube-apiserver's own forms of the types serialized as scalars; explain
/// prints `<IntOrString>` and `<Quantity>` only when they have no `type`.
fn scalar_override(name: &str) -> Option<Value> {
    Some(match name {
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString" => json!({
            "format": "int-or-string",
            "oneOf": [{"type": "integer"}, {"type": "string"}],
        }),
        "io.k8s.apimachinery.pkg.api.resource.Quantity" => json!({
            "oneOf": [{"type": "string"}, {"type": "number"}],
        }),
        "io.k8s.apimachinery.pkg.apis.meta.v1.Time"
        | "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime" => {
            json!({"type": "string", "format": "date-time"})
        }
        _ => return None,
    })
}

/// Drops from `required` the fields that k8s-openapi requires (their Rust
/// fields are not `Option`s) but Kubernetes leaves optional, since explain
/// prints `-required-` from this list.
fn relax_required(name: &str, schema: &mut Value) {
    const OPTIONAL_NAME: &[&str] = &[
        "LocalObjectReference",
        "ConfigMapEnvSource",
        "ConfigMapKeySelector",
        "ConfigMapProjection",
        "ConfigMapVolumeSource",
        "SecretEnvSource",
        "SecretKeySelector",
        "SecretProjection",
    ];
    let optional_name = name
        .strip_prefix("io.k8s.api.core.v1.")
        .is_some_and(|t| OPTIONAL_NAME.contains(&t));
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    let Some(Value::Array(required)) = obj.get_mut("required") else {
        return;
    };
    required.retain(|f| f != "metadata" && !(optional_name && f == "name"));
    if required.is_empty() {
        obj.remove("required");
    }
}

/// Adds the [`PATCH_META`] extensions to the schemas present.
fn add_patch_meta(schemas: &mut Map<String, Value>) {
    for line in PATCH_META.lines().filter(|l| !l.trim().is_empty()) {
        let mut words = line.split_whitespace();
        let (Some(ty), Some(prop)) = (words.next(), words.next()) else {
            continue;
        };
        let Some(schema) = schemas.get_mut(&schema_name(ty)) else {
            continue;
        };
        let target = if prop == "." {
            Some(schema)
        } else {
            schema.pointer_mut(&format!("/properties/{prop}"))
        };
        let Some(Value::Object(target)) = target else {
            continue;
        };
        for kv in words {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let value = if k == "list-map-keys" {
                v.split(',').map(|s| Value::from(s.to_string())).collect()
            } else {
                Value::from(v.to_string())
            };
            let key = match k {
                "merge-key" => "x-kubernetes-patch-merge-key",
                "strategy" => "x-kubernetes-patch-strategy",
                "list-type" => "x-kubernetes-list-type",
                "list-map-keys" => "x-kubernetes-list-map-keys",
                "map-type" => "x-kubernetes-map-type",
                _ => continue,
            };
            target.insert(key.to_string(), value);
        }
    }
}

/// Every component schema, keyed by its Kubernetes name.
fn all_schemas() -> &'static Map<String, Value> {
    static SCHEMAS: OnceLock<Map<String, Value>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let mut gen = SchemaSettings::openapi3()
            .with(|s| s.meta_schema = None)
            .into_generator();
        let _ = add_kind_schemas(&mut gen);
        let mut schemas = gen.take_definitions(true);
        for (name, schema) in schemas.iter_mut() {
            if let (Some(mut replacement), Some(obj)) = (scalar_override(name), schema.as_object())
            {
                if let Some(d) = obj.get("description") {
                    replacement["description"] = d.clone();
                }
                *schema = replacement;
            }
        }
        for (name, schema) in schemas.iter_mut() {
            relax_required(name, schema);
        }
        add_patch_meta(&mut schemas);
        let mut gvks: Vec<(&str, &str, &str)> = builtin::resources()
            .map(|r| (r.group, r.version, r.kind))
            .collect();
        gvks.push(("", "v1", "Binding"));
        gvks.push(("autoscaling", "v1", "Scale"));
        for (group, version, kind) in gvks {
            if let Some(Value::Object(s)) = schemas.get_mut(&kind_schema_name(group, kind)) {
                s.insert(
                    "x-kubernetes-group-version-kind".to_string(),
                    json!([{"group": group, "kind": kind, "version": version}]),
                );
            }
        }
        schemas
    })
}

/// Collects the names of the schemas `value` references, transitively.
fn collect_refs(value: &Value, all: &Map<String, Value>, seen: &mut BTreeSet<String>) {
    match value {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "$ref" {
                    if let Some(name) = v.as_str().and_then(|r| r.strip_prefix(REF_PREFIX)) {
                        if seen.insert(name.to_string()) {
                            if let Some(s) = all.get(name) {
                                collect_refs(s, all, seen);
                            }
                        }
                    }
                } else {
                    collect_refs(v, all, seen);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, all, seen)),
        _ => {}
    }
}

fn object_path(r: &Resource) -> String {
    let base = format!("/{}", gv_path(r.group));
    if r.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
    } else {
        format!("{base}/{}/{{name}}", r.plural)
    }
}

fn operation(r: &Resource, verb: &str, body_types: &[&str]) -> Value {
    let schema = json!({"$ref": format!("{REF_PREFIX}{}", kind_schema_name(r.group, r.kind))});
    let mut op = json!({
        "operationId": format!("{verb}{}", r.kind),
        "x-kubernetes-action": verb,
        "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
        "parameters": [
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        ],
        "responses": {"200": {
            "description": "OK",
            "content": {"application/json": {"schema": schema}},
        }},
    });
    if !body_types.is_empty() {
        // The PATCH body types tell kubectl apply that strategic merge patch
        // is accepted, so it computes the patch from these schemas.
        let content: Map<String, Value> = body_types
            .iter()
            .map(|t| (t.to_string(), json!({"schema": {"type": "object"}})))
            .collect();
        op["requestBody"] = json!({"content": content, "required": true});
    }
    op
}

fn build_document(group: &str) -> Value {
    let all = all_schemas();
    let mut paths = Map::new();
    let mut names = BTreeSet::new();
    for r in builtin::resources().filter(|r| r.group == group) {
        let kind = kind_schema_name(r.group, r.kind);
        names.insert(kind.clone());
        if let Some(s) = all.get(&kind) {
            collect_refs(s, all, &mut names);
        }
        let put_body = ["application/json"];
        let patch_body = [
            "application/apply-patch+yaml",
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ];
        paths.insert(
            object_path(r),
            json!({
                "get": operation(r, "get", &[]),
                "put": operation(r, "put", &put_body),
                "patch": operation(r, "patch", &patch_body),
                "delete": operation(r, "delete", &[]),
            }),
        );
    }
    let scale = "io.k8s.api.autoscaling.v1.Scale";
    if builtin::resources().any(|r| r.group == group && r.subresource("scale").is_some()) {
        names.insert(scale.to_string());
        collect_refs(&all[scale], all, &mut names);
    }
    let schemas: Map<String, Value> = names
        .into_iter()
        .filter_map(|n| all.get(&n).map(|s| (n, s.clone())))
        .collect();
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

/// Each group's document with the hash of its content, built once.
fn documents() -> &'static [(String, Value, u64)] {
    static DOCS: OnceLock<Vec<(String, Value, u64)>> = OnceLock::new();
    DOCS.get_or_init(|| {
        builtin::groups()
            .into_iter()
            .map(|g| {
                let doc = build_document(g);
                // A content hash, so kubectl's cache (keyed by the URL)
                // refreshes whenever a document changes.
                let hash = content_hash(&doc);
                (gv_path(g), doc, hash)
            })
            .collect()
    })
}

fn content_hash(doc: &Value) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    doc.to_string().hash(&mut h);
    h.finish()
}

/// `/openapi/v3`: the list of group-version documents, custom resources'
/// included.
pub fn index(registry: &Registry) -> Value {
    let mut paths = Map::new();
    for (p, _, hash) in documents() {
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash:016X}")}),
        );
    }
    let served = registry.served();
    for g in registry.groups() {
        for v in g.versions {
            if let Some(doc) = custom_document(&served, g.group, v) {
                let p = format!("apis/{}/{v}", g.group);
                let hash = content_hash(&doc);
                paths.insert(
                    p.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash:016X}")}),
                );
            }
        }
    }
    json!({ "paths": paths })
}

/// `/openapi/v3/<api/v1 | apis/group/version>`.
pub fn document(path: &str, registry: &Registry) -> Option<Value> {
    if let Some(doc) = documents()
        .iter()
        .find(|(p, _, _)| p == path)
        .map(|(_, doc, _)| doc.clone())
    {
        return Some(doc);
    }
    let (group, version) = path.strip_prefix("apis/")?.split_once('/')?;
    custom_document(&registry.served(), group, version)
}

/// The schema name kube-apiserver gives a custom kind: the group's labels
/// reversed, then version and kind (`com.example.stable.v1.CronTab`).
fn custom_schema_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.rsplit('.').collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

/// The document of one custom group/version: each kind's schema from its
/// definition, with the standard `apiVersion`, `kind` and `metadata`, and
/// PATCH without strategic merge (custom resources do not take it, and
/// kubectl then computes JSON merge patches).
fn custom_document(served: &Served, group: &str, version: &str) -> Option<Value> {
    let all = all_schemas();
    let mut schemas = Map::new();
    let mut paths = Map::new();
    let mut names = BTreeSet::new();
    let meta = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
    let list_meta = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
    for v in served.versions() {
        let r = v.resource;
        if r.group != group || r.version != version {
            continue;
        }
        let name = custom_schema_name(group, version, r.kind);
        let gvk = json!([{"group": group, "kind": r.kind, "version": version}]);
        let mut schema = v
            .schema
            .clone()
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({"type": "object"}));
        let props = schema
            .as_object_mut()
            .expect("an object")
            .entry("properties")
            .or_insert_with(|| json!({}));
        if let Some(props) = props.as_object_mut() {
            props.insert(
                "apiVersion".into(),
                json!({"type": "string", "description": standard_doc("apiVersion")}),
            );
            props.insert(
                "kind".into(),
                json!({"type": "string", "description": standard_doc("kind")}),
            );
            props.insert(
                "metadata".into(),
                json!({"allOf": [{"$ref": format!("{REF_PREFIX}{meta}")}], "description": standard_doc("metadata")}),
            );
        }
        schema["x-kubernetes-group-version-kind"] = gvk.clone();
        schemas.insert(name.clone(), schema);
        schemas.insert(
            format!("{name}List"),
            json!({
                "type": "object",
                "required": ["items"],
                "properties": {
                    "apiVersion": {"type": "string", "description": standard_doc("apiVersion")},
                    "kind": {"type": "string", "description": standard_doc("kind")},
                    "items": {"type": "array", "items": {"$ref": format!("{REF_PREFIX}{name}")}},
                    "metadata": {"allOf": [{"$ref": format!("{REF_PREFIX}{list_meta}")}]},
                },
                "x-kubernetes-group-version-kind":
                    [{"group": group, "kind": format!("{}List", r.kind), "version": version}],
            }),
        );
        names.insert(meta.to_string());
        names.insert(list_meta.to_string());
        let patch_body = [
            "application/apply-patch+yaml",
            "application/json-patch+json",
            "application/merge-patch+json",
        ];
        let op = |verb: &str, body: &[&str]| {
            let mut op = operation(r, verb, body);
            op["responses"]["200"]["content"]["application/json"]["schema"] =
                json!({"$ref": format!("{REF_PREFIX}{name}")});
            op
        };
        paths.insert(
            object_path(r),
            json!({
                "get": op("get", &[]),
                "put": op("put", &["application/json"]),
                "patch": op("patch", &patch_body),
                "delete": op("delete", &[]),
            }),
        );
    }
    if schemas.is_empty() {
        return None;
    }
    for n in names.clone() {
        if let Some(s) = all.get(&n) {
            collect_refs(s, all, &mut names);
        }
    }
    for n in names {
        if let Some(s) = all.get(&n) {
            schemas.insert(n, s.clone());
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes CRD Swagger", "version": "v0.1.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// The description of a standard field (`apiVersion`, `kind`, `metadata`),
/// as the built-in kinds carry it.
fn standard_doc(field: &str) -> Value {
    all_schemas()
        .get("io.k8s.api.core.v1.ConfigMap")
        .and_then(|s| s.pointer(&format!("/properties/{field}/description")))
        .cloned()
        .unwrap_or(Value::Null)
}
