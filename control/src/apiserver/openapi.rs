//! OpenAPI v3 documents. kubectl reads them to learn that the server
//! validates fields (`fieldValidation` on each kind's PATCH operation); the
//! paths carry `x-kubernetes-group-version-kind` so it can find each kind.

use serde_json::{json, Map, Value};

use super::resources::{Resource, GROUPS, RESOURCES};

/// Changes whenever the documents change, so kubectl's cache refreshes.
const HASH: &str = "kedge-openapi-1";

fn gv_path(group: &str) -> String {
    if group.is_empty() {
        "api/v1".to_string()
    } else {
        format!("apis/{group}/v1")
    }
}

/// `/openapi/v3`: the list of group-version documents.
pub fn index() -> Value {
    let mut paths = Map::new();
    for g in GROUPS {
        let p = gv_path(g);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={HASH}")}),
        );
    }
    json!({ "paths": paths })
}

fn object_path(r: &Resource) -> String {
    let base = format!("/{}", gv_path(r.group));
    if r.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
    } else {
        format!("{base}/{}/{{name}}", r.plural)
    }
}

fn operation(r: &Resource, verb: &str) -> Value {
    json!({
        "operationId": format!("{verb}{}", r.kind),
        "x-kubernetes-action": verb,
        "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
        "parameters": [
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        ],
        "responses": {"200": {"description": "OK"}},
    })
}

/// `/openapi/v3/<api/v1 | apis/group/v1>`.
pub fn document(path: &str) -> Option<Value> {
    let group = GROUPS.iter().find(|g| gv_path(g) == path)?;
    let mut paths = Map::new();
    for r in RESOURCES.iter().filter(|r| r.group == *group) {
        paths.insert(
            object_path(r),
            json!({
                "get": operation(r, "get"),
                "put": operation(r, "put"),
                "patch": operation(r, "patch"),
                "delete": operation(r, "delete"),
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}
