//! The resources of the kinds built into the server (see [`super::kinds`]).

use super::kinds;
use super::Resource;

/// Every built-in resource, in discovery order.
pub fn resources() -> impl Iterator<Item = &'static Resource> {
    kinds::ALL.iter().map(|k| &k.resource)
}

/// The built-in groups in the order discovery lists them: core first, then
/// as they first appear among the kinds.
pub fn groups() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for r in resources() {
        if !out.contains(&r.group) {
            out.push(r.group);
        }
    }
    out
}

/// The resource served at `group/version/plural`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    resources().find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource for a group and kind.
pub fn by_kind(group: &str, kind: &str) -> Option<&'static Resource> {
    resources().find(|r| r.group == group && r.kind == kind)
}
