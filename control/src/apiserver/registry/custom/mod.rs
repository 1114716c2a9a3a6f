//! Custom resources: the kinds CustomResourceDefinitions add to the
//! registry. A definition's served versions become resources once it is
//! established; objects of every version share one storage prefix and are
//! stored in the definition's storage version (conversion `None`: only
//! `apiVersion` changes between versions).

pub mod cel;
pub mod columns;
pub mod definition;
pub mod schema;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use serde_json::{json, Value};

use kedge_config::validation::FieldError;

use super::{compare_versions, Resource, Subresource, ALL_VERBS, SCALE, STATUS};

/// What a served version of a custom resource is.
pub struct Version {
    /// The resource it is served as.
    pub resource: &'static Resource,
    /// Name of the CustomResourceDefinition.
    pub definition: String,
    /// The version objects are stored in.
    pub storage_version: &'static str,
    /// The version's `openAPIV3Schema`.
    pub schema: Option<Value>,
    /// `additionalPrinterColumns`, compiled.
    pub columns: Vec<columns::Column>,
    /// Where the scale subresource reads and writes.
    pub scale: Option<ScalePaths>,
    /// The definition is being deleted: no new objects.
    pub terminating: bool,
}

/// The paths of a `scale` subresource (`.spec.replicas` and so on).
#[derive(Debug, Clone)]
pub struct ScalePaths {
    /// `specReplicasPath`.
    pub spec_replicas: String,
    /// `statusReplicasPath`.
    pub status_replicas: String,
    /// `labelSelectorPath`, if any.
    pub label_selector: Option<String>,
}

/// The custom resources one server serves.
#[derive(Default)]
pub struct Served {
    versions: Vec<Arc<Version>>,
}

impl Served {
    /// What the established definitions among `definitions` serve. A
    /// definition is served from the moment its `Established` condition is
    /// true, including while it is being deleted (so its objects can be
    /// listed and removed).
    pub fn from_definitions<'a>(definitions: impl IntoIterator<Item = &'a Value>) -> Self {
        let mut versions = Vec::new();
        for crd in definitions {
            if !established(crd) {
                continue;
            }
            versions.extend(versions_of(crd).into_iter().map(Arc::new));
        }
        versions.sort_by(|a, b| {
            (a.resource.group, a.resource.plural)
                .cmp(&(b.resource.group, b.resource.plural))
                .then_with(|| compare_versions(a.resource.version, b.resource.version))
        });
        Self { versions }
    }

    /// The resource served at `group/version/plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
        self.version(group, version, plural).map(|v| v.resource)
    }

    /// A kind in its preferred version.
    pub fn by_kind(&self, group: &str, kind: &str) -> Option<&'static Resource> {
        self.versions
            .iter()
            .map(|v| v.resource)
            .find(|r| r.group == group && r.kind == kind)
    }

    /// Every served version, by group, plural and version priority.
    pub fn resources(&self) -> impl Iterator<Item = &'static Resource> + '_ {
        self.versions.iter().map(|v| v.resource)
    }

    /// What a served version is.
    pub fn version(&self, group: &str, version: &str, plural: &str) -> Option<Arc<Version>> {
        self.versions
            .iter()
            .find(|v| {
                let r = v.resource;
                r.group == group && r.version == version && r.plural == plural
            })
            .cloned()
    }

    /// Every version served, with its definition.
    pub fn versions(&self) -> &[Arc<Version>] {
        &self.versions
    }
}

/// Whether a definition's `Established` condition is true.
pub fn established(crd: &Value) -> bool {
    condition_true(crd, "Established")
}

/// Whether the named condition of a definition is true.
pub fn condition_true(crd: &Value, kind: &str) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some(kind)
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn strings_at(v: &Value, pointer: &str) -> Vec<&'static str> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(intern).collect())
        .unwrap_or_default()
}

/// The served versions of one definition.
fn versions_of(crd: &Value) -> Vec<Version> {
    // Served names are the accepted ones (they differ from spec.names only
    // while a rename waits for its names to be accepted).
    let names = match crd.pointer("/status/acceptedNames") {
        Some(n) if n.get("plural").is_some() => n,
        _ => crd.pointer("/spec/names").unwrap_or(&Value::Null),
    };
    let group = intern(str_at(crd, "/spec/group"));
    let kind = str_at(names, "/kind");
    let plural = str_at(names, "/plural");
    if group.is_empty() || kind.is_empty() || plural.is_empty() {
        return Vec::new();
    }
    let singular = match str_at(names, "/singular") {
        "" => kind.to_lowercase(),
        s => s.to_string(),
    };
    let namespaced = str_at(crd, "/spec/scope") != "Cluster";
    let short_names = intern_slice(strings_at(names, "/shortNames"));
    let categories = intern_slice(strings_at(names, "/categories"));
    let empty = Vec::new();
    let all = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let storage_version = all
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .map(|v| intern(str_at(v, "/name")))
        .unwrap_or("");
    let name = str_at(crd, "/metadata/name").to_string();
    let terminating = crd.pointer("/metadata/deletionTimestamp").is_some();
    all.iter()
        .filter(|v| v.get("served").and_then(Value::as_bool) == Some(true))
        .filter(|v| !str_at(v, "/name").is_empty())
        .map(|v| {
            let mut subresources = Vec::new();
            if v.pointer("/subresources/status").is_some() {
                subresources.push(STATUS);
            }
            let scale = v.pointer("/subresources/scale").map(|s| ScalePaths {
                spec_replicas: str_at(s, "/specReplicasPath").to_string(),
                status_replicas: str_at(s, "/statusReplicasPath").to_string(),
                label_selector: s
                    .get("labelSelectorPath")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            });
            if scale.is_some() {
                subresources.push(SCALE);
            }
            let resource = intern_resource(Resource {
                group,
                version: intern(str_at(v, "/name")),
                plural: intern(plural),
                singular: intern(&singular),
                kind: intern(kind),
                namespaced,
                short_names,
                categories,
                subresources: intern_subresources(subresources),
                verbs: ALL_VERBS,
                custom: true,
                selectable_fields: intern_slice(
                    v.get("selectableFields")
                        .and_then(Value::as_array)
                        .map(|fields| {
                            fields
                                .iter()
                                .filter_map(|f| f.get("jsonPath").and_then(Value::as_str))
                                .map(|p| intern(p.trim_start_matches('.')))
                                .collect()
                        })
                        .unwrap_or_default(),
                ),
            });
            Version {
                resource,
                definition: name.clone(),
                storage_version,
                schema: v.pointer("/schema/openAPIV3Schema").cloned(),
                columns: columns::columns(v.get("additionalPrinterColumns")),
                scale,
                terminating,
            }
        })
        .collect()
}

// Resources are `&'static` throughout the server (the built-in ones are
// statics). Those of custom resources are interned: each distinct
// description is allocated once per process and reused, so only renaming a
// kind, not changing its schema, allocates for good.

fn interned<T: Default + Send + 'static>(cell: &'static OnceLock<Mutex<T>>) -> &'static Mutex<T> {
    cell.get_or_init(Mutex::default)
}

/// The one `&'static str` for `s`.
pub fn intern(s: &str) -> &'static str {
    static STRINGS: OnceLock<Mutex<HashMap<String, &'static str>>> = OnceLock::new();
    let mut strings = interned(&STRINGS).lock();
    if let Some(s) = strings.get(s) {
        return s;
    }
    let leaked: &'static str = Box::leak(s.to_string().into_boxed_str());
    strings.insert(s.to_string(), leaked);
    leaked
}

/// The one `&'static [&'static str]` for these strings (list map keys).
pub fn intern_keys(items: Vec<&'static str>) -> &'static [&'static str] {
    intern_slice(items)
}

fn intern_slice(items: Vec<&'static str>) -> &'static [&'static str] {
    static SLICES: OnceLock<Mutex<HashMap<Vec<&'static str>, &'static [&'static str]>>> =
        OnceLock::new();
    let mut slices = interned(&SLICES).lock();
    if let Some(s) = slices.get(&items) {
        return s;
    }
    let leaked: &'static [&'static str] = Box::leak(items.clone().into_boxed_slice());
    slices.insert(items, leaked);
    leaked
}

fn intern_subresources(items: Vec<Subresource>) -> &'static [Subresource] {
    static SLICES: OnceLock<Mutex<HashMap<String, &'static [Subresource]>>> = OnceLock::new();
    let key = format!("{items:?}");
    let mut slices = interned(&SLICES).lock();
    if let Some(s) = slices.get(&key) {
        return s;
    }
    let leaked: &'static [Subresource] = Box::leak(items.into_boxed_slice());
    slices.insert(key, leaked);
    leaked
}

fn intern_resource(r: Resource) -> &'static Resource {
    static RESOURCES: OnceLock<Mutex<HashMap<String, &'static Resource>>> = OnceLock::new();
    let key = format!("{r:?}");
    let mut resources = interned(&RESOURCES).lock();
    if let Some(r) = resources.get(&key) {
        return r;
    }
    let leaked: &'static Resource = Box::leak(Box::new(r));
    resources.insert(key, leaked);
    leaked
}

/// Why a custom object was refused.
pub enum Refusal {
    /// Breaks the schema or the metadata rules (422).
    Invalid(Vec<FieldError>),
    /// Fields the schema does not declare, with strict field validation
    /// (400): kube-apiserver's `unknown field` messages.
    UnknownFields(Vec<String>),
}

/// Prepare a custom object for storage as kube-apiserver does: drop the
/// fields its schema does not declare (an error instead when `strict`),
/// fill in defaults, validate it against the schema and its CEL rules
/// (transition rules against `old`, the stored object of an update), and
/// store it in the storage version.
pub fn admit(
    version: &Version,
    mut obj: Value,
    old: Option<&Value>,
    strict: bool,
) -> Result<Value, Refusal> {
    if let Some(schema) = &version.schema {
        let pruned = schema::prune(schema, &mut obj);
        if strict && !pruned.is_empty() {
            return Err(Refusal::UnknownFields(pruned));
        }
        schema::apply_defaults(schema, &mut obj);
        let mut errs = validate_meta(&obj, version.resource.namespaced);
        errs.extend(schema::validate(schema, &obj));
        errs.extend(cel::validate(schema, &obj, old));
        if !errs.is_empty() {
            return Err(Refusal::Invalid(errs));
        }
    } else {
        let errs = validate_meta(&obj, version.resource.namespaced);
        if !errs.is_empty() {
            return Err(Refusal::Invalid(errs));
        }
    }
    to_storage(version, &mut obj);
    Ok(obj)
}

/// The object's metadata checked as for any kind (names are DNS subdomains).
fn validate_meta(obj: &Value, namespaced: bool) -> Vec<FieldError> {
    use kedge_config::validation::{validate_object_meta, NameRule};
    let meta = obj.get("metadata").cloned().unwrap_or(json!({}));
    match serde_json::from_value(meta) {
        Ok(meta) => {
            let mut errs = validate_object_meta(&meta, NameRule::Subdomain, "metadata");
            if !namespaced {
                errs.retain(|e| e.field != "metadata.namespace");
            }
            errs
        }
        Err(e) => vec![FieldError::invalid("metadata", "", e.to_string())],
    }
}

/// Set the storage version's `apiVersion` (conversion `None`).
pub fn to_storage(version: &Version, obj: &mut Value) {
    let r = version.resource;
    obj["apiVersion"] = json!(format!("{}/{}", r.group, version.storage_version));
}

/// The object as the requested version presents it (conversion `None`):
/// `None` when it already is.
pub fn present(r: &Resource, obj: &Value) -> Option<Value> {
    if !r.custom {
        return super::conversion::present(r, obj);
    }
    let want = r.api_version();
    if !r.custom || obj.get("apiVersion").and_then(Value::as_str) == Some(want.as_str()) {
        return None;
    }
    let mut out = obj.clone();
    out["apiVersion"] = json!(want);
    Some(out)
}

/// Read a simple JSON path (`.spec.replicas`) from an object.
pub fn read_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut at = obj;
    for seg in path.strip_prefix('.')?.split('.') {
        at = at.get(seg)?;
    }
    Some(at)
}

/// Write a simple JSON path, creating the objects on the way.
pub fn write_path(obj: &mut Value, path: &str, value: Value) {
    let Some(path) = path.strip_prefix('.') else {
        return;
    };
    let mut at = obj;
    let segs: Vec<&str> = path.split('.').collect();
    for (i, seg) in segs.iter().enumerate() {
        if !at.is_object() {
            *at = json!({});
        }
        let map = at.as_object_mut().expect("made an object");
        if i == segs.len() - 1 {
            map.insert(seg.to_string(), value);
            return;
        }
        at = map.entry(seg.to_string()).or_insert_with(|| json!({}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(established: bool) -> Value {
        let mut v = json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "crontabs.stable.example.com"},
            "spec": {
                "group": "stable.example.com",
                "scope": "Namespaced",
                "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab",
                          "shortNames": ["ct"], "categories": ["all"]},
                "versions": [
                    {"name": "v1beta1", "served": true, "storage": false,
                     "schema": {"openAPIV3Schema": {"type": "object"}}},
                    {"name": "v1", "served": true, "storage": true,
                     "schema": {"openAPIV3Schema": {"type": "object"}},
                     "subresources": {"status": {}, "scale": {
                        "specReplicasPath": ".spec.replicas",
                        "statusReplicasPath": ".status.replicas"}}},
                    {"name": "v0", "served": false, "storage": false},
                ],
            },
        });
        if established {
            v["status"] = json!({"conditions": [{"type": "Established", "status": "True"}]});
        }
        v
    }

    #[test]
    fn established_definitions_serve_their_served_versions() {
        assert!(Served::from_definitions([&crd(false)])
            .versions()
            .is_empty());
        let served = Served::from_definitions([&crd(true)]);
        let names: Vec<&str> = served.resources().map(|r| r.version).collect();
        assert_eq!(names, ["v1", "v1beta1"]);
        let v1 = served.find("stable.example.com", "v1", "crontabs").unwrap();
        assert!(v1.namespaced && v1.custom && v1.has_status());
        assert!(v1.subresource("scale").is_some());
        assert_eq!(v1.short_names, ["ct"]);
        let beta = served
            .version("stable.example.com", "v1beta1", "crontabs")
            .unwrap();
        assert!(!beta.resource.has_status());
        assert_eq!(beta.storage_version, "v1");
        assert_eq!(
            served
                .by_kind("stable.example.com", "CronTab")
                .unwrap()
                .version,
            "v1"
        );
        // The same description is the same resource.
        let again = Served::from_definitions([&crd(true)]);
        assert!(std::ptr::eq(
            v1,
            again.find("stable.example.com", "v1", "crontabs").unwrap()
        ));
    }

    #[test]
    fn objects_are_presented_in_the_requested_version() {
        let served = Served::from_definitions([&crd(true)]);
        let beta = served
            .find("stable.example.com", "v1beta1", "crontabs")
            .unwrap();
        let stored = json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab"});
        assert_eq!(
            present(beta, &stored).unwrap()["apiVersion"],
            "stable.example.com/v1beta1"
        );
        let v1 = served.find("stable.example.com", "v1", "crontabs").unwrap();
        assert!(present(v1, &stored).is_none());
    }

    #[test]
    fn simple_paths_read_and_write() {
        let mut o = json!({"spec": {"replicas": 2}});
        assert_eq!(read_path(&o, ".spec.replicas"), Some(&json!(2)));
        assert_eq!(read_path(&o, "spec.replicas"), None);
        write_path(&mut o, ".status.replicas", json!(3));
        assert_eq!(o["status"]["replicas"], 3);
    }
}
