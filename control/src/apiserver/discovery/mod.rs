//! Discovery documents: `/version`, legacy discovery (`/api`, `/apis`,
//! group-version resource lists) and aggregated discovery (apidiscovery v2),
//! which kubectl uses when the Content-Type says so exactly.

pub mod openapi;

use serde_json::{json, Value};

use crate::apiserver::registry::{GroupVersions, Registry, Resource};

/// The Content-Type that makes kubectl accept aggregated discovery.
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// The Kubernetes version the server reports. kubectl here picks its bundled
/// client by the minor version, so it must be one kubectl ships.
const MAJOR: &str = "1";
const MINOR: &str = "32";

/// The commit the binary was built from; empty when not built from git.
pub const GIT_COMMIT: &str = env!("KEDGE_GIT_COMMIT");

/// `clean` or `dirty` (uncommitted changes at build time); empty when not
/// built from git.
pub const GIT_TREE_STATE: &str = env!("KEDGE_GIT_TREE_STATE");

/// When the binary was built (RFC 3339, UTC), or `SOURCE_DATE_EPOCH`.
pub const BUILD_DATE: &str = env!("KEDGE_BUILD_DATE");

/// `v1.32.0-kedge.<kedge version>`, with `-dirty` as Kubernetes marks a
/// build with uncommitted changes; a semantic version either way.
pub fn git_version() -> String {
    let dirty = if GIT_TREE_STATE == "dirty" {
        "-dirty"
    } else {
        ""
    };
    format!(
        "v{MAJOR}.{MINOR}.0-kedge.{}{dirty}",
        env!("CARGO_PKG_VERSION")
    )
}

/// `/version`, as kube-apiserver's version.Info.
pub fn version() -> Value {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    json!({
        "major": MAJOR,
        "minor": MINOR,
        "gitVersion": git_version(),
        "gitCommit": GIT_COMMIT,
        "gitTreeState": GIT_TREE_STATE,
        "buildDate": BUILD_DATE,
        "goVersion": env!("KEDGE_RUSTC_VERSION"),
        "compiler": "rustc",
        "platform": format!("{}/{arch}", std::env::consts::OS),
    })
}

/// Whether the Accept header asks for aggregated discovery.
pub fn wants_aggregated(accept: &str) -> bool {
    accept.contains("as=APIGroupDiscoveryList")
}

/// `/api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_entry(g: &GroupVersions) -> Value {
    let versions: Vec<Value> = g
        .versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{}/{v}", g.group), "version": v}))
        .collect();
    json!({
        "name": g.group,
        "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
        "versions": versions,
    })
}

/// `/apis`.
pub fn groups(registry: &Registry) -> Value {
    let groups: Vec<Value> = registry
        .groups()
        .iter()
        .filter(|g| !g.group.is_empty())
        .map(group_entry)
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`.
pub fn group(name: &str, registry: &Registry) -> Option<Value> {
    if name.is_empty() {
        return None;
    }
    let mut g = group_entry(&registry.group(name)?);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

/// `/api/v1` or `/apis/<group>/<version>`.
pub fn resource_list(group: &str, version: &str, registry: &Registry) -> Option<Value> {
    let mut resources = Vec::new();
    for r in registry.in_group_version(group, version) {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        resources.push(entry);
        for s in r.subresources {
            let mut sub = json!({
                "name": format!("{}/{}", r.plural, s.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": if s.kind.is_empty() { r.kind } else { s.kind },
                "verbs": s.verbs,
            });
            if !s.group.is_empty() {
                sub["group"] = json!(s.group);
                sub["version"] = json!(s.version);
            }
            resources.push(sub);
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }))
}

fn aggregated_resource(r: &Resource) -> Value {
    let subresources: Vec<Value> = r
        .subresources
        .iter()
        .map(|s| {
            let (g, v, k) = if s.kind.is_empty() {
                (r.group, r.version, r.kind)
            } else {
                (s.group, s.version, s.kind)
            };
            json!({
                "subresource": s.name,
                "responseKind": {"group": g, "version": v, "kind": k},
                "verbs": s.verbs,
            })
        })
        .collect();
    let mut entry = json!({
        "resource": r.plural,
        "singularResource": r.singular,
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "verbs": r.verbs,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
    });
    if !r.short_names.is_empty() {
        entry["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        entry["categories"] = json!(r.categories);
    }
    if !subresources.is_empty() {
        entry["subresources"] = json!(subresources);
    }
    entry
}

/// Aggregated discovery for `/api` (core only) or `/apis` (named groups).
pub fn aggregated(core: bool, registry: &Registry) -> Value {
    let all = registry.resources();
    let items: Vec<Value> = registry
        .groups()
        .iter()
        .filter(|g| g.group.is_empty() == core)
        .map(|g| {
            let versions: Vec<Value> = g
                .versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = all
                        .iter()
                        .filter(|r| r.group == g.group && r.version == *v)
                        .map(|r| aggregated_resource(r))
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": g.group}, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}
