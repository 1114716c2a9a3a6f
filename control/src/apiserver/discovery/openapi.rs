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

use crate::apiserver::registry::custom::Served;
use crate::apiserver::registry::{builtin, generated, kinds};
use crate::apiserver::registry::{Registry, Resource};

const REF_PREFIX: &str = "#/components/schemas/";

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The schemas of the served kinds (each kind's module names its type),
/// of the bodies of the `binding` and `scale` subresources, and ListMeta.
fn add_kind_schemas(gen: &mut SchemaGenerator) {
    gen.subschema_for::<core::v1::Binding>();
    gen.subschema_for::<autoscaling::v1::Scale>();
    // The lists of custom resources refer to it.
    gen.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta>();
    for k in kinds::ALL {
        (k.openapi)(gen);
    }
}

/// The schema name of a served kind (or of Binding and Scale).
fn kind_schema_name(group: &str, version: &str, kind: &str) -> String {
    if let Some(name) = kinds::type_name_in(group, version, kind) {
        return name.to_string();
    }
    let g = if group.is_empty() { "core" } else { group };
    format!("io.k8s.api.{g}.{version}.{kind}")
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

/// Adds the strategic-merge and list metadata of the Go types (their
/// `patchStrategy`/`patchMergeKey` tags and `+listType`, `+listMapKey`,
/// `+mapType`, `+structType` markers), which k8s-openapi's schemas do not
/// carry, from the generated API table. kubectl's client-side apply reads it
/// to merge lists by key.
fn add_patch_meta(schemas: &mut Map<String, Value>) {
    for ty in generated::TYPES {
        let Some(Value::Object(schema)) = schemas.get_mut(ty.name) else {
            continue;
        };
        if ty.struct_type == "atomic" || ty.map_type == "atomic" {
            schema.insert("x-kubernetes-map-type".into(), json!("atomic"));
        }
        let Some(Value::Object(props)) = schema.get_mut("properties") else {
            continue;
        };
        add_field_meta(ty, props);
    }
}

/// The extensions of `ty`'s fields, onto the properties of the schema that
/// holds them (an inline struct's fields are its outer type's properties).
fn add_field_meta(ty: &generated::Type, props: &mut Map<String, Value>) {
    for f in ty.fields {
        if f.inline {
            if let Some(inner) = f.shape.message().and_then(generated::find) {
                add_field_meta(inner, props);
            }
            continue;
        }
        let Some(Value::Object(target)) = props.get_mut(f.json) else {
            continue;
        };
        let mut put = |k: &str, v: Value| {
            target.insert(k.to_string(), v);
        };
        if !f.patch_merge_key.is_empty() {
            put("x-kubernetes-patch-merge-key", json!(f.patch_merge_key));
        }
        if !f.patch_strategy.is_empty() {
            put("x-kubernetes-patch-strategy", json!(f.patch_strategy));
        }
        match f.list {
            generated::ListType::Atomic => put("x-kubernetes-list-type", json!("atomic")),
            generated::ListType::Set => put("x-kubernetes-list-type", json!("set")),
            generated::ListType::Map(keys) => {
                put("x-kubernetes-list-type", json!("map"));
                put("x-kubernetes-list-map-keys", json!(keys));
            }
            generated::ListType::None | generated::ListType::Other(_) => {}
        }
        if !f.map_type.is_empty() {
            put("x-kubernetes-map-type", json!(f.map_type));
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
        add_kind_schemas(&mut gen);
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
            if let Some(Value::Object(s)) = schemas.get_mut(&kind_schema_name(group, version, kind))
            {
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
    let base = format!("/{}", gv_path(r.group, r.version));
    if r.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
    } else {
        format!("{base}/{}/{{name}}", r.plural)
    }
}

fn operation(r: &Resource, verb: &str, body_types: &[&str]) -> Value {
    let schema =
        json!({"$ref": format!("{REF_PREFIX}{}", kind_schema_name(r.group, r.version, r.kind))});
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

fn build_document(group: &str, version: &str) -> Value {
    let all = all_schemas();
    let mut paths = Map::new();
    let mut names = BTreeSet::new();
    for r in builtin::resources()
        .filter(|r| r.group == group && r.version == version && kinds::has_schema(group, r.kind))
    {
        let kind = kind_schema_name(r.group, r.version, r.kind);
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
    if builtin::resources()
        .any(|r| r.group == group && r.version == version && r.subresource("scale").is_some())
    {
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

/// Each group-version's document with the hash of its content, built
/// once.
fn documents() -> &'static [(String, Value, u64)] {
    static DOCS: OnceLock<Vec<(String, Value, u64)>> = OnceLock::new();
    DOCS.get_or_init(|| {
        let mut versions: Vec<(&str, &str)> = Vec::new();
        for r in builtin::resources().filter(|r| kinds::has_schema(r.group, r.kind)) {
            if !versions.contains(&(r.group, r.version)) {
                versions.push((r.group, r.version));
            }
        }
        versions
            .into_iter()
            .map(|(g, v)| {
                let doc = build_document(g, v);
                // A content hash, so kubectl's cache (keyed by the URL)
                // refreshes whenever a document changes.
                let hash = content_hash(&doc);
                (gv_path(g, v), doc, hash)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
        &doc["components"]["schemas"][name]
    }

    #[test]
    fn deployment_schema_is_explainable() {
        let doc = document("apis/apps/v1", &Registry::new()).unwrap();
        let d = schema(&doc, "io.k8s.api.apps.v1.Deployment");
        assert_eq!(
            d["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
        );
        let strategy = &schema(&doc, "io.k8s.api.apps.v1.DeploymentSpec")["properties"]["strategy"];
        assert_eq!(
            strategy["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy"
        );
        assert_eq!(strategy["x-kubernetes-patch-strategy"], "retainKeys");
        let s = schema(&doc, "io.k8s.api.apps.v1.DeploymentStrategy");
        assert!(s["properties"]["rollingUpdate"].is_object());
        assert!(schema(&doc, "io.k8s.api.autoscaling.v1.Scale").is_object());
    }

    #[test]
    fn every_reference_resolves() {
        for (_, doc, _) in documents() {
            let mut names = BTreeSet::new();
            collect_refs(
                doc,
                &doc["components"]["schemas"].as_object().unwrap().clone(),
                &mut names,
            );
            for n in names {
                assert!(schema(doc, &n).is_object(), "{n} missing");
            }
        }
    }

    #[test]
    fn merge_keys_match_kubernetes() {
        let doc = document("api/v1", &Registry::new()).unwrap();
        let containers = &schema(&doc, "io.k8s.api.core.v1.PodSpec")["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        let owners = &schema(&doc, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")["properties"]
            ["ownerReferences"];
        assert_eq!(owners["x-kubernetes-patch-merge-key"], "uid");
        let port = &schema(&doc, "io.k8s.api.core.v1.ServicePort")["properties"]["targetPort"];
        assert!(port["allOf"][0]["$ref"]
            .as_str()
            .unwrap()
            .ends_with("IntOrString"));
        let ios = schema(&doc, "io.k8s.apimachinery.pkg.util.intstr.IntOrString");
        assert_eq!(ios["format"], "int-or-string");
        assert!(ios.get("type").is_none());
    }

    #[test]
    fn index_lists_every_group() {
        let index = index(&Registry::new());
        // All but the resource metrics, which publish no schema.
        for r in builtin::resources().filter(|r| r.group != "metrics.k8s.io") {
            let path = gv_path(r.group, r.version);
            let url = index["paths"][&path]["serverRelativeURL"].as_str().unwrap();
            assert!(url.starts_with(&format!("/openapi/v3/{path}?hash=")));
        }
    }

    #[test]
    fn list_metadata_comes_from_the_generated_table() {
        let doc = document("apis/batch/v1", &Registry::new()).unwrap();
        let conditions = &schema(&doc, "io.k8s.api.batch.v1.JobStatus")["properties"]["conditions"];
        // Merged by type in strategic merge, atomic for server-side apply.
        assert_eq!(conditions["x-kubernetes-patch-merge-key"], "type");
        assert_eq!(conditions["x-kubernetes-list-type"], "atomic");
        let doc = document("api/v1", &Registry::new()).unwrap();
        let volumes = &schema(&doc, "io.k8s.api.core.v1.PodSpec")["properties"]["volumes"];
        assert_eq!(volumes["x-kubernetes-patch-strategy"], "merge,retainKeys");
        let selector = schema(&doc, "io.k8s.api.core.v1.ConfigMapKeySelector");
        assert_eq!(selector["x-kubernetes-map-type"], "atomic");
    }

    #[test]
    fn a_custom_group_has_a_document_without_strategic_merge() {
        let crd = json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object",
                        "properties": {"spec": {"type": "object"}}}}}],
            },
            "status": {"conditions": [{"type": "Established", "status": "True"}]},
        });
        let registry = Registry::new();
        registry.replace_custom(Served::from_definitions([&crd]));
        let index = index(&registry);
        assert!(index["paths"]["apis/example.com/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap()
            .starts_with("/openapi/v3/apis/example.com/v1?hash="));
        let doc = document("apis/example.com/v1", &registry).unwrap();
        let widget = schema(&doc, "com.example.v1.Widget");
        assert_eq!(
            widget["x-kubernetes-group-version-kind"],
            json!([{"group": "example.com", "kind": "Widget", "version": "v1"}])
        );
        assert!(widget["properties"]["metadata"]["allOf"][0]["$ref"]
            .as_str()
            .unwrap()
            .ends_with("ObjectMeta"));
        assert!(schema(&doc, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta").is_object());
        let patch = &doc["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]
            ["patch"]["requestBody"]["content"];
        assert!(patch.get("application/merge-patch+json").is_some());
        assert!(patch
            .get("application/strategic-merge-patch+json")
            .is_none());
        let mut names = BTreeSet::new();
        collect_refs(
            &doc,
            doc["components"]["schemas"].as_object().unwrap(),
            &mut names,
        );
        for n in names {
            assert!(schema(&doc, &n).is_object(), "{n} missing");
        }
    }
}
