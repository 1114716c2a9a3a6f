//! The registry of served resources: what discovery advertises, how URLs map
//! to storage keys, and which subresources each kind has. The built-in kinds
//! are listed in [`builtin`]; custom resources join and leave as their
//! CustomResourceDefinitions are established and deleted ([`custom`]).

pub mod builtin;
pub mod conversion;
pub mod custom;
// A table of facts: the server reads some of them so far.
#[allow(dead_code)]
pub mod generated;
pub mod kinds;

use std::cmp::Ordering;
use std::sync::Arc;

use parking_lot::RwLock;

/// One served resource (a plural name within a group/version).
#[derive(Debug)]
pub struct Resource {
    /// API group; empty for the legacy core group.
    pub group: &'static str,
    /// Served version.
    pub version: &'static str,
    /// Plural name as used in URLs.
    pub plural: &'static str,
    /// Singular name.
    pub singular: &'static str,
    /// Kind of the objects.
    pub kind: &'static str,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// kubectl short names.
    pub short_names: &'static [&'static str],
    /// Categories (`all` makes `kubectl get all` include it).
    pub categories: &'static [&'static str],
    /// Subresources beyond the object itself.
    pub subresources: &'static [Subresource],
    /// Kinds that are written only by controllers in Kubernetes still accept
    /// every verb here, so the list is the same for every resource except the
    /// few marked otherwise.
    pub verbs: &'static [&'static str],
    /// Whether a CustomResourceDefinition defines it (its schema, columns
    /// and scale paths are in [`Registry::custom`]).
    pub custom: bool,
    /// Fields list and watch may select on besides `metadata.name` and
    /// `metadata.namespace` (a custom resource's `selectableFields`);
    /// `prefix.*` selects every field below `prefix`.
    pub selectable_fields: &'static [&'static str],
}

/// A subresource such as `status` or `scale`.
#[derive(Debug)]
pub struct Subresource {
    /// Name as it appears after the object name in the URL.
    pub name: &'static str,
    /// Group of the kind the subresource speaks.
    pub group: &'static str,
    /// Version of the kind the subresource speaks.
    pub version: &'static str,
    /// Kind the subresource speaks.
    pub kind: &'static str,
    /// Verbs it supports.
    pub verbs: &'static [&'static str],
}

/// The verbs of an ordinary resource.
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// The verbs of `status` and `scale`.
pub const STATUS_VERBS: &[&str] = &["get", "patch", "update"];
/// The `status` subresource (it speaks its parent's kind).
pub const STATUS: Subresource = Subresource {
    name: "status",
    group: "",
    version: "",
    kind: "",
    verbs: STATUS_VERBS,
};
/// The `scale` subresource.
pub const SCALE: Subresource = Subresource {
    name: "scale",
    group: "autoscaling",
    version: "v1",
    kind: "Scale",
    verbs: STATUS_VERBS,
};

impl Resource {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The subresource with this name.
    pub fn subresource(&self, name: &str) -> Option<&'static Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// Whether the kind has a status subresource, so that writes to the main
    /// resource keep the stored status and writes to `status` keep the rest.
    pub fn has_status(&self) -> bool {
        self.subresource("status").is_some()
    }

    /// Whether list and watch may select on `field`.
    pub fn selects(&self, field: &str) -> bool {
        matches!(field, "metadata.name" | "metadata.namespace")
            || self
                .selectable_fields
                .iter()
                .any(|f| match f.strip_suffix('*') {
                    Some(prefix) => field.starts_with(prefix),
                    None => *f == field,
                })
    }

    /// The storage key prefix of all objects of this resource.
    pub fn prefix(&self) -> String {
        let g = if self.group.is_empty() {
            "core"
        } else {
            self.group
        };
        format!("/{g}/{}/", self.plural)
    }

    /// The storage key prefix for one namespace (or all for cluster scope).
    pub fn namespace_prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{ns}/", self.prefix()),
            _ => self.prefix(),
        }
    }

    /// The storage key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        let ns = if self.namespaced {
            namespace.unwrap_or("")
        } else {
            ""
        };
        format!("{}{ns}/{name}", self.prefix())
    }
}

/// The field of the generated table at `path` below the type `root`: each
/// segment a JSON field name (list items and map values add no segment),
/// inline structs looked through. `None` where the path leaves the table
/// (a custom resource, a field of a newer Kubernetes, a typo).
pub fn field_at<S: AsRef<str>>(root: &str, path: &[S]) -> Option<&'static generated::Field> {
    let (last, parents) = path.split_last()?;
    let mut ty = generated::find(root)?;
    for seg in parents {
        let f = ty.field(seg.as_ref())?;
        ty = generated::find(f.shape.message()?)?;
        if ty.custom_json {
            return None;
        }
    }
    ty.field(last.as_ref())
}

/// One API group and the versions it serves, the preferred one first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupVersions {
    /// The group (empty for the core group).
    pub group: &'static str,
    /// Served versions, in Kubernetes' priority order (`v2` before `v1`
    /// before `v1beta1` before `v1alpha1` before any other name).
    pub versions: Vec<&'static str>,
}

/// What one API server serves: the built-in kinds and the custom resources
/// of its established CustomResourceDefinitions. Lookups take a snapshot, so
/// a request sees one consistent set while definitions change.
#[derive(Default)]
pub struct Registry {
    custom: RwLock<Arc<custom::Served>>,
}

impl Registry {
    /// A registry serving the built-in kinds only.
    pub fn new() -> Self {
        Self::default()
    }

    /// The resource served at `group/version/plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
        builtin::find(group, version, plural)
            .or_else(|| self.custom.read().find(group, version, plural))
    }

    /// The resource of a kind in its group's preferred version.
    pub fn by_kind(&self, group: &str, kind: &str) -> Option<&'static Resource> {
        builtin::by_kind(group, kind).or_else(|| self.custom.read().by_kind(group, kind))
    }

    /// Every served resource (each version of a custom resource once),
    /// built-in kinds first.
    pub fn resources(&self) -> Vec<&'static Resource> {
        let custom = self.custom.read().clone();
        builtin::resources().chain(custom.resources()).collect()
    }

    /// The resources of one group/version.
    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<&'static Resource> {
        self.resources()
            .into_iter()
            .filter(|r| r.group == group && r.version == version)
            .collect()
    }

    /// The served groups in discovery order: the built-in groups as
    /// [`builtin::groups`] lists them, then custom groups by name.
    pub fn groups(&self) -> Vec<GroupVersions> {
        let builtin = builtin::groups();
        let mut out: Vec<GroupVersions> = builtin
            .iter()
            .map(|g| {
                let mut versions: Vec<&'static str> = Vec::new();
                for r in builtin::resources().filter(|r| r.group == *g) {
                    if !versions.contains(&r.version) {
                        versions.push(r.version);
                    }
                }
                GroupVersions { group: g, versions }
            })
            .collect();
        for r in self.custom.read().resources() {
            match out.iter_mut().find(|g| g.group == r.group) {
                Some(g) if !g.versions.contains(&r.version) => g.versions.push(r.version),
                Some(_) => {}
                None => out.push(GroupVersions {
                    group: r.group,
                    versions: vec![r.version],
                }),
            }
        }
        out[builtin.len()..].sort_by(|a, b| a.group.cmp(b.group));
        for g in &mut out {
            g.versions.sort_by(|a, b| compare_versions(a, b));
        }
        out
    }

    /// The served versions of one group, preferred first.
    pub fn group(&self, group: &str) -> Option<GroupVersions> {
        self.groups().into_iter().find(|g| g.group == group)
    }

    /// What the definition of a custom resource says (schema, printer
    /// columns, scale paths); `None` for built-in kinds.
    pub fn custom(&self, r: &Resource) -> Option<Arc<custom::Version>> {
        if !r.custom {
            return None;
        }
        self.custom.read().version(r.group, r.version, r.plural)
    }

    /// The custom resources served now.
    pub fn served(&self) -> Arc<custom::Served> {
        self.custom.read().clone()
    }

    /// Serve `served` from now on instead of the custom resources before.
    pub fn replace_custom(&self, served: custom::Served) {
        *self.custom.write() = Arc::new(served);
    }
}

/// Orders API versions by Kubernetes' priority: GA versions (`v1`, `v2`)
/// before beta before alpha, higher numbers first within each, and names
/// that are not Kubernetes versions last, alphabetically.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn parse(v: &str) -> Option<(u8, u64, u64)> {
        let rest = v.strip_prefix('v')?;
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let major: u64 = rest[..digits].parse().ok()?;
        if major == 0 {
            return None;
        }
        let tail = &rest[digits..];
        let (stage, minor) = if tail.is_empty() {
            return Some((3, major, 0));
        } else if let Some(m) = tail.strip_prefix("beta") {
            (2, m)
        } else if let Some(m) = tail.strip_prefix("alpha") {
            (1, m)
        } else {
            return None;
        };
        if minor.is_empty() || !minor.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        Some((stage, major, minor.parse().ok()?))
    }
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_as_kubernetes_prefers_them() {
        let mut v = vec![
            "v1alpha1",
            "foo1",
            "v1beta2",
            "v11alpha2",
            "v2",
            "v1",
            "v12alpha1",
            "v10beta3",
            "foo10",
            "v10",
            "v3beta1",
            "v10",
            "v1beta1",
        ];
        v.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(
            v,
            [
                "v10",
                "v10",
                "v2",
                "v1",
                "v10beta3",
                "v3beta1",
                "v1beta2",
                "v1beta1",
                "v12alpha1",
                "v11alpha2",
                "v1alpha1",
                "foo1",
                "foo10"
            ]
        );
    }
}
