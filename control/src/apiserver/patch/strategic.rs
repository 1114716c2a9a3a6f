//! Strategic merge patch (`application/strategic-merge-patch+json`) on JSON values.
//!
//! Follows the apply side of Kubernetes' apimachinery `strategicpatch` package:
//! maps merge recursively and `null` deletes a key; lists with a merge key merge
//! element-wise; lists of primitives with the merge strategy are unioned; every
//! other list is atomic and replaced wholesale. The directives `kubectl apply`
//! and `kubectl patch` send are honoured: `$patch` (`replace`, `delete`),
//! `$retainKeys`, `$setElementOrder/<field>` and `$deleteFromPrimitiveList/<field>`.
//!
//! Patch strategies come from the generated API table (the `patchStrategy` and
//! `patchMergeKey` tags of k8s.io/api), walked from the kind's type. Kinds without
//! a schema get JSON merge patch (RFC 7386) behaviour, with directives still
//! interpreted rather than stored.
//!
//! Deliberate differences from apimachinery, which relies on decoding into typed
//! structs afterwards to tidy up:
//! - `{"$patch": "delete"}` on a map removes the key instead of leaving `{}`;
//! - values added where nothing existed before are stripped of nulls and of every
//!   directive (a `$patch: replace` map is kept, minus the marker).

use std::fmt;

use serde_json::{Map, Value};

use crate::apiserver::registry::{self, generated, kinds};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER_PREFIX: &str = "$setElementOrder/";
const DELETE_PRIMITIVE_PREFIX: &str = "$deleteFromPrimitiveList/";

/// Why a patch could not be applied; the API server answers it as a bad request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchError {
    message: String,
}

impl PatchError {
    fn new(message: impl Into<String>) -> Self {
        PatchError {
            message: message.into(),
        }
    }

    /// The human-readable reason.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for PatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PatchError {}

/// Apply a strategic merge patch to `original` for an object of `kind` (e.g.
/// "Deployment", "Pod", "Service") of API group `group` (`""` or `"core"` for the
/// core group); a kind of another group (a custom resource sharing the name) gets
/// no schema.
pub fn apply(
    original: &Value,
    patch: &Value,
    group: &str,
    kind: &str,
) -> Result<Value, PatchError> {
    let original = match original {
        Value::Object(map) => map.clone(),
        Value::Null => Map::new(),
        _ => return Err(PatchError::new("original object must be a JSON object")),
    };
    let Value::Object(patch) = patch else {
        return Err(PatchError::new(
            "strategic merge patch must be a JSON object",
        ));
    };
    let schema = Schema::for_kind(group, kind);
    let merged = schema.merge_map(&mut Vec::new(), original, patch.clone())?;
    // A top-level `$patch: delete` leaves nothing, as apimachinery does.
    Ok(Value::Object(merged.unwrap_or_default()))
}

/// How a field is patched; mirrors the `patchStrategy`/`patchMergeKey` tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    /// Replaced wholesale: the default for every list not in the table.
    Atomic,
    /// List of objects merged element-wise by this key.
    Merge(&'static str),
    /// As `Merge`; items also carry `$retainKeys` (honoured wherever it appears).
    MergeRetainKeys(&'static str),
    /// List of primitives merged as a set.
    Set,
    /// Map whose patches carry `$retainKeys` (honoured wherever it appears).
    RetainKeys,
}

/// What to do with a list field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListMode {
    Replace,
    /// Merging list; `None` for primitives, which need no key.
    Merge(Option<&'static str>),
}

impl Strategy {
    fn list_mode(self) -> ListMode {
        match self {
            Strategy::Merge(key) | Strategy::MergeRetainKeys(key) => ListMode::Merge(Some(key)),
            Strategy::Set => ListMode::Merge(None),
            Strategy::Atomic | Strategy::RetainKeys => ListMode::Replace,
        }
    }
}

/// The patch metadata of one kind: the root of its type in the generated
/// API table.
struct Schema {
    /// `None` for kinds without a schema (plain JSON merge semantics).
    root: Option<&'static str>,
}

/// The strategy of a field, from its `patchStrategy` and `patchMergeKey`.
fn strategy_of(f: &generated::Field) -> Strategy {
    let has = |s: &str| f.patch_strategy.split(',').any(|p| p == s);
    match f.shape {
        generated::Shape::RepeatedMessage(_) if has("merge") && !f.patch_merge_key.is_empty() => {
            if has("retainKeys") {
                Strategy::MergeRetainKeys(f.patch_merge_key)
            } else {
                Strategy::Merge(f.patch_merge_key)
            }
        }
        generated::Shape::RepeatedScalar(_) if has("merge") => Strategy::Set,
        _ if has("retainKeys") => Strategy::RetainKeys,
        _ => Strategy::Atomic,
    }
}

impl Schema {
    fn for_kind(group: &str, kind: &str) -> Schema {
        let group = if group == "core" { "" } else { group };
        Schema {
            root: kinds::type_name(group, kind),
        }
    }

    /// The strategy at `path` (field names; list items add none). Fields the
    /// table does not know (custom resources) are atomic.
    fn strategy(&self, path: &[String]) -> Strategy {
        self.root
            .and_then(|root| registry::field_at(root, path))
            .map(strategy_of)
            .unwrap_or(Strategy::Atomic)
    }

    fn list_mode(&self, path: &[String]) -> ListMode {
        self.strategy(path).list_mode()
    }

    /// Merges `patch` into `original`; `None` when the patch deletes the map.
    fn merge_map(
        &self,
        path: &mut Vec<String>,
        mut original: Map<String, Value>,
        mut patch: Map<String, Value>,
    ) -> Result<Option<Map<String, Value>>, PatchError> {
        if let Some(directive) = patch.remove(DIRECTIVE) {
            return match directive.as_str() {
                Some("replace") => clean_map(patch).map(Some),
                Some("delete") => Ok(None),
                _ => Err(bad_directive(&directive)),
            };
        }
        if let Some(retain) = patch.remove(RETAIN_KEYS) {
            retain_keys(&mut original, &patch, &retain)?;
        }
        // Ordered lists are merged first, together with their patch lists.
        let order_keys: Vec<String> = patch
            .keys()
            .filter(|key| key.starts_with(SET_ORDER_PREFIX))
            .cloned()
            .collect();
        for key in order_keys {
            let order = patch.remove(&key).unwrap_or(Value::Null);
            let field = &key[SET_ORDER_PREFIX.len()..];
            path.push(field.to_string());
            let result = self.merge_ordered_list(path, &mut original, &mut patch, field, order);
            path.pop();
            result?;
        }
        let mut deletions = Vec::new();
        for (key, value) in patch {
            if let Some(field) = key.strip_prefix(DELETE_PRIMITIVE_PREFIX) {
                deletions.push((field.to_string(), value));
            } else {
                self.merge_field(path, &mut original, key, value)?;
            }
        }
        for (field, value) in deletions {
            self.delete_from_primitive_list(path, &mut original, field, value)?;
        }
        Ok(Some(original))
    }

    fn merge_field(
        &self,
        path: &mut Vec<String>,
        original: &mut Map<String, Value>,
        key: String,
        patch: Value,
    ) -> Result<(), PatchError> {
        if patch.is_null() {
            remove_key(original, &key);
            return Ok(());
        }
        let Some(current) = original.get_mut(&key) else {
            if let Some(value) = clean(patch)? {
                original.insert(key, value);
            }
            return Ok(());
        };
        let replacement = match (current, patch) {
            (Value::Object(current), Value::Object(patch)) => {
                path.push(key.clone());
                let merged = self.merge_map(path, std::mem::take(current), patch);
                path.pop();
                merged?.map(Value::Object)
            }
            (Value::Array(current), Value::Array(patch)) => {
                path.push(key.clone());
                let merged = self.merge_list(path, std::mem::take(current), patch, false);
                path.pop();
                Some(Value::Array(merged?))
            }
            // Scalars, or a change of type: the patch value wins.
            (_, patch) => clean(patch)?,
        };
        match replacement {
            Some(value) => {
                original.insert(key, value);
            }
            None => remove_key(original, &key),
        }
        Ok(())
    }

    /// Merges two lists of the field at `path`; `delete` for a
    /// `$deleteFromPrimitiveList` patch, which applies whatever the strategy.
    fn merge_list(
        &self,
        path: &mut Vec<String>,
        original: Vec<Value>,
        patch: Vec<Value>,
        delete: bool,
    ) -> Result<Vec<Value>, PatchError> {
        let mode = self.list_mode(path);
        if !delete && mode == ListMode::Replace {
            return Ok(patch);
        }
        let Some(kind) = element_kind(&original, &patch)? else {
            return Ok(original);
        };
        if kind != ElementKind::Object {
            if delete {
                return Ok(original
                    .into_iter()
                    .filter(|item| !contains(&patch, item))
                    .collect());
            }
            let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
            for item in original.iter().chain(&patch) {
                if !contains(&merged, item) {
                    merged.push(item.clone());
                }
            }
            return enforce_order(merged, &patch, &original, None);
        }
        if delete {
            return Err(PatchError::new(format!(
                "$deleteFromPrimitiveList/{} applies only to lists of primitives",
                path.last().map(String::as_str).unwrap_or_default()
            )));
        }
        let ListMode::Merge(Some(key)) = mode else {
            return Err(PatchError::new(format!(
                "cannot merge lists without merge key for {}",
                path.join(".")
            )));
        };
        let (original, patch) = split_special_elements(original, patch, key)?;
        let server_order = identities(&original, Some(key))?;
        let patch_order = identities(&patch, Some(key))?;
        let merged = self.merge_by_key(path, original, patch, key)?;
        enforce_order(merged, &patch_order, &server_order, Some(key))
    }

    fn merge_by_key(
        &self,
        path: &mut Vec<String>,
        mut original: Vec<Value>,
        patch: Vec<Value>,
        key: &str,
    ) -> Result<Vec<Value>, PatchError> {
        for item in patch {
            let Value::Object(item) = item else {
                return Err(PatchError::new("merging list items must be objects"));
            };
            let id = item.get(key).cloned().ok_or_else(|| missing_key(key))?;
            let found = original
                .iter()
                .position(|o| o.get(key).is_some_and(|v| same(v, &id)));
            match found {
                Some(index) => {
                    let Value::Object(current) = std::mem::take(&mut original[index]) else {
                        return Err(PatchError::new("merging list items must be objects"));
                    };
                    match self.merge_map(path, current, item)? {
                        Some(merged) => original[index] = Value::Object(merged),
                        None => {
                            original.remove(index);
                        }
                    }
                }
                None => {
                    if let Some(value) = clean(Value::Object(item))? {
                        original.push(value);
                    }
                }
            }
        }
        Ok(original)
    }

    /// Handles `$setElementOrder/<field>`: merges the field's patch list, if
    /// any, and sorts the result by the order given.
    fn merge_ordered_list(
        &self,
        path: &mut Vec<String>,
        original: &mut Map<String, Value>,
        patch: &mut Map<String, Value>,
        field: &str,
        order: Value,
    ) -> Result<(), PatchError> {
        let Value::Array(order) = order else {
            return Err(PatchError::new(format!(
                "{SET_ORDER_PREFIX}{field} must be a list"
            )));
        };
        let mode = self.list_mode(path);
        // Order only means something for merging lists; atomic ones are replaced.
        if mode == ListMode::Replace {
            return Ok(());
        }
        let current = match original.get_mut(field) {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(std::mem::take(items)),
            Some(_) => return Err(PatchError::new(format!("{field} is not a list"))),
        };
        let patch_list = match patch.remove(field) {
            None => None,
            Some(Value::Array(items)) => Some(items),
            Some(_) => {
                return Err(PatchError::new(format!(
                    "{field} must be a list to go with {SET_ORDER_PREFIX}{field}"
                )))
            }
        };
        let empty = Vec::new();
        let kind = element_kind(
            current.as_ref().unwrap_or(&empty),
            patch_list.as_ref().unwrap_or(&empty),
        )?;
        let key = match (kind, mode) {
            (Some(ElementKind::Object), ListMode::Merge(Some(key))) => Some(key),
            (Some(ElementKind::Object), _) => {
                return Err(PatchError::new(format!(
                    "cannot merge lists without merge key for {}",
                    path.join(".")
                )))
            }
            _ => None,
        };
        if let Some(list) = &patch_list {
            validate_order(list, &order, key)?;
        }
        let server_order = match &current {
            Some(items) => identities(items, key)?,
            None => Vec::new(),
        };
        let merged = match (current, patch_list) {
            (Some(current), None) => current,
            (None, Some(list)) => match clean(Value::Array(list))? {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            },
            (Some(current), Some(list)) => self.merge_list(path, current, list, false)?,
            (None, None) => return Ok(()),
        };
        let merged = if kind.is_some() {
            enforce_order(merged, &identities(&order, key)?, &server_order, key)?
        } else {
            merged
        };
        original.insert(field.to_string(), Value::Array(merged));
        Ok(())
    }

    fn delete_from_primitive_list(
        &self,
        path: &mut Vec<String>,
        original: &mut Map<String, Value>,
        field: String,
        patch: Value,
    ) -> Result<(), PatchError> {
        let Value::Array(patch) = patch else {
            return Err(PatchError::new(format!(
                "{DELETE_PRIMITIVE_PREFIX}{field} must be a list"
            )));
        };
        // Nothing to delete from: the list is never created.
        let Some(Value::Array(current)) = original.get_mut(&field) else {
            return Ok(());
        };
        let current = std::mem::take(current);
        path.push(field.clone());
        let remaining = self.merge_list(path, current, patch, true);
        path.pop();
        original.insert(field, Value::Array(remaining?));
        Ok(())
    }
}

/// Removes a key without disturbing the order of the others.
fn remove_key(map: &mut Map<String, Value>, key: &str) {
    if map.contains_key(key) {
        map.retain(|k, _| k != key);
    }
}

fn bad_directive(value: &Value) -> PatchError {
    PatchError::new(format!("unknown patch type: {value} in $patch"))
}

fn missing_key(key: &str) -> PatchError {
    PatchError::new(format!("map does not contain declared merge key: {key}"))
}

/// `$retainKeys`: drops every key of `original` not listed; the patch itself
/// may only set listed keys.
fn retain_keys(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    retain: &Value,
) -> Result<(), PatchError> {
    let Value::Array(keys) = retain else {
        return Err(PatchError::new("$retainKeys must be a list of strings"));
    };
    let keep = |key: &str| keys.iter().any(|k| k.as_str() == Some(key));
    for (key, value) in patch {
        let directive =
            key.starts_with(SET_ORDER_PREFIX) || key.starts_with(DELETE_PRIMITIVE_PREFIX);
        if !value.is_null() && !directive && !keep(key) {
            return Err(PatchError::new(format!(
                "$retainKeys does not list {key:?}, which the patch sets"
            )));
        }
    }
    original.retain(|key, _| keep(key));
    Ok(())
}

/// Turns a patch value with nothing to merge into a plain value: nulls and
/// directives go, as a typed decode would drop them. `None` when deleted.
fn clean(value: Value) -> Result<Option<Value>, PatchError> {
    match value {
        Value::Object(mut map) => {
            if let Some(directive) = map.remove(DIRECTIVE) {
                match directive.as_str() {
                    Some("replace") => {}
                    Some("delete") => return Ok(None),
                    _ => return Err(bad_directive(&directive)),
                }
            }
            clean_map(map).map(|map| Some(Value::Object(map)))
        }
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                // Marker items (`replace`, `delete`) carry no content of their own.
                if let Some(directive) = item.get(DIRECTIVE) {
                    match directive.as_str() {
                        Some("replace" | "delete") => continue,
                        _ => return Err(bad_directive(directive)),
                    }
                }
                if let Some(item) = clean(item)? {
                    out.push(item);
                }
            }
            Ok(Some(Value::Array(out)))
        }
        other => Ok(Some(other)),
    }
}

fn clean_map(map: Map<String, Value>) -> Result<Map<String, Value>, PatchError> {
    let mut out = Map::new();
    for (key, value) in map {
        let directive = key == RETAIN_KEYS
            || key.starts_with(SET_ORDER_PREFIX)
            || key.starts_with(DELETE_PRIMITIVE_PREFIX);
        if directive || value.is_null() {
            continue;
        }
        if let Some(value) = clean(value)? {
            out.insert(key, value);
        }
    }
    Ok(out)
}

/// Items of a merging list must all share one JSON type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ElementKind {
    Null,
    Bool,
    Number,
    String,
    Object,
}

/// The common element type of two lists, `None` when both are empty.
fn element_kind(a: &[Value], b: &[Value]) -> Result<Option<ElementKind>, PatchError> {
    let mut kind = None;
    for item in a.iter().chain(b) {
        let this = match item {
            Value::Null => ElementKind::Null,
            Value::Bool(_) => ElementKind::Bool,
            Value::Number(_) => ElementKind::Number,
            Value::String(_) => ElementKind::String,
            Value::Object(_) => ElementKind::Object,
            Value::Array(_) => return Err(PatchError::new("lists of lists are not supported")),
        };
        match kind {
            None => kind = Some(this),
            Some(k) if k != this => {
                return Err(PatchError::new("list element types are not identical"))
            }
            Some(_) => {}
        }
    }
    Ok(kind)
}

/// JSON equality, except that numbers compare by value (80 == 80.0), as in Go.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || (x.as_f64().is_some() && x.as_f64() == y.as_f64())
        }
        _ => a == b,
    }
}

fn contains(list: &[Value], item: &Value) -> bool {
    list.iter().any(|v| same(v, item))
}

fn position(list: &[Value], id: &Value) -> Option<usize> {
    list.iter().position(|v| same(v, id))
}

/// What identifies each item: its merge key value, or the item for primitives.
fn identities(items: &[Value], key: Option<&str>) -> Result<Vec<Value>, PatchError> {
    items
        .iter()
        .map(|item| match key {
            Some(key) => item.get(key).cloned().ok_or_else(|| missing_key(key)),
            None => Ok(item.clone()),
        })
        .collect()
}

/// `$patch` items of a merging list: `delete` removes matching originals,
/// `replace` makes the other patch items the whole list. Returns the original
/// and the patch items left to merge.
fn split_special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut rest = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Some(directive) = item.get(DIRECTIVE).cloned() else {
            rest.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let id = item.get(key).ok_or_else(|| missing_key(key))?;
                original.retain(|o| !o.get(key).is_some_and(|v| same(v, id)));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(PatchError::new(
                    "merging lists cannot yet be specified in the patch",
                ))
            }
            _ => return Err(bad_directive(&directive)),
        }
    }
    if replace {
        let mut items = Vec::with_capacity(rest.len());
        for item in rest {
            items.extend(clean(item)?);
        }
        return Ok((items, Vec::new()));
    }
    Ok((original, rest))
}

/// `$setElementOrder` items must follow the patch list's relative order, and
/// every patch item (deletions aside) must appear in it.
fn validate_order(patch: &[Value], order: &[Value], key: Option<&str>) -> Result<(), PatchError> {
    if patch.is_empty() || order.is_empty() {
        return Ok(());
    }
    let items: Vec<&Value> = patch
        .iter()
        .filter(|item| key.is_none() || item.get(DIRECTIVE).is_none())
        .collect();
    let id = |item: &Value| -> Result<Value, PatchError> {
        match key {
            Some(key) => item.get(key).cloned().ok_or_else(|| missing_key(key)),
            None => Ok(item.clone()),
        }
    };
    let (mut p, mut o) = (0, 0);
    while p < items.len() && o < order.len() {
        if same(&id(items[p])?, &id(&order[o])?) {
            p += 1;
        }
        o += 1;
    }
    if p < items.len() {
        return Err(PatchError::new(
            "the order in the patch list doesn't match the $setElementOrder list",
        ));
    }
    Ok(())
}

/// Orders a merged list: items named by `order` follow it; the others keep
/// their relative order from `server_order` and are slotted in between where
/// the live list puts them before a patch item.
fn enforce_order(
    merged: Vec<Value>,
    order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
) -> Result<Vec<Value>, PatchError> {
    let ids = identities(&merged, key)?;
    let (mut patched, mut server_only): (Vec<_>, Vec<_>) = ids
        .into_iter()
        .zip(merged)
        .partition(|(id, _)| contains(order, id));
    patched.sort_by_key(|(id, _)| position(order, id).unwrap_or(usize::MAX));
    server_only.sort_by_key(|(id, _)| position(server_order, id).unwrap_or(usize::MAX));

    let mut out = Vec::with_capacity(patched.len() + server_only.len());
    let mut patched = patched.into_iter().peekable();
    let mut server_only = server_only.into_iter().peekable();
    loop {
        let take_server = match (server_only.peek(), patched.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            // A server-only item goes first only when the live list says so.
            (Some((s, _)), Some((p, _))) => {
                match (position(server_order, s), position(server_order, p)) {
                    (Some(si), Some(pi)) => si < pi,
                    _ => false,
                }
            }
        };
        let next = if take_server {
            server_only.next()
        } else {
            patched.next()
        };
        out.extend(next.map(|(_, item)| item));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "namespace": "default",
                "labels": {"app": "web"},
                "annotations": {"team": "a", "owner": "b"},
                "finalizers": ["a", "b"],
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                },
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "image": "nginx:1.24",
                                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                                "env": [
                                    {"name": "A", "value": "1"},
                                    {"name": "B", "value": "2"},
                                ],
                                "terminationMessagePath": "/dev/termination-log",
                            },
                            {"name": "sidecar", "image": "busybox"},
                        ],
                        "tolerations": [{"key": "x", "operator": "Exists"}],
                        "restartPolicy": "Always",
                    },
                },
            },
        })
    }

    fn deploy(patch: Value) -> Value {
        apply(&deployment(), &patch, "apps", "Deployment").unwrap()
    }

    fn containers(obj: &Value) -> &Vec<Value> {
        obj["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
    }

    fn names(list: &Value, key: &str) -> Vec<Value> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|i| i[key].clone())
            .collect()
    }

    #[test]
    fn second_apply_changes_image_with_set_element_order() {
        let patch = json!({
            "metadata": {"annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{}"
            }},
            "spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
                "containers": [{"image": "nginx:1.25", "name": "web"}],
            }}},
        });
        let out = deploy(patch);
        let c = containers(&out);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0]["image"], "nginx:1.25");
        assert_eq!(c[0]["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c[0]["env"].as_array().unwrap().len(), 2);
        assert_eq!(c[1]["name"], "sidecar");
        assert_eq!(out["metadata"]["annotations"]["team"], "a");
        assert!(out["spec"]["template"]["spec"]
            .get("$setElementOrder/containers")
            .is_none());
    }

    #[test]
    fn set_image_patch_merges_by_name() {
        let patch = json!({"spec":{"template":{"spec":{"containers":[
            {"image":"nginx:1.25","name":"web"}
        ]}}}});
        let out = deploy(patch);
        let c = containers(&out);
        assert_eq!(
            names(&out["spec"]["template"]["spec"]["containers"], "name"),
            [json!("web"), json!("sidecar")]
        );
        assert_eq!(c[0]["image"], "nginx:1.25");
        assert_eq!(
            c[0]["ports"],
            json!([{"containerPort": 80, "protocol": "TCP"}])
        );
        assert_eq!(c[1]["image"], "busybox");
    }

    #[test]
    fn env_var_removed_with_delete_directive() {
        let patch = json!({"spec":{"template":{"spec":{
            "$setElementOrder/containers": [{"name":"web"},{"name":"sidecar"}],
            "containers": [{
                "$setElementOrder/env": [{"name":"A"}],
                "env": [{"$patch":"delete","name":"B"}],
                "name": "web",
            }],
        }}}});
        let out = deploy(patch);
        assert_eq!(
            containers(&out)[0]["env"],
            json!([{"name":"A","value":"1"}])
        );
        assert_eq!(containers(&out)[0]["image"], "nginx:1.24");
    }

    #[test]
    fn env_var_added_in_requested_order() {
        let patch = json!({"spec":{"template":{"spec":{"containers":[{
            "$setElementOrder/env": [{"name":"A"},{"name":"C"},{"name":"B"}],
            "env": [{"name":"C","value":"3"}],
            "name": "web",
        }]}}}});
        let out = deploy(patch);
        assert_eq!(
            names(&containers(&out)[0]["env"], "name"),
            [json!("A"), json!("C"), json!("B")]
        );
    }

    #[test]
    fn adding_a_label_keeps_the_others() {
        let out = deploy(json!({"metadata":{"labels":{"tier":"frontend"}}}));
        assert_eq!(
            out["metadata"]["labels"],
            json!({"app":"web","tier":"frontend"})
        );
    }

    #[test]
    fn null_annotation_is_deleted() {
        let out = deploy(json!({"metadata":{"annotations":{"owner":null,"missing":null}}}));
        assert_eq!(out["metadata"]["annotations"], json!({"team":"a"}));
    }

    #[test]
    fn null_deletes_nested_fields_and_whole_maps() {
        let out = deploy(json!({"spec":{"replicas":null,"template":{"metadata":null}}}));
        assert!(out["spec"].get("replicas").is_none());
        assert!(out["spec"]["template"].get("metadata").is_none());
        assert_eq!(out["spec"]["selector"]["matchLabels"]["app"], "web");
    }

    #[test]
    fn retain_keys_switches_rolling_update_to_recreate() {
        let patch = json!({"spec":{"strategy":{
            "$retainKeys": ["type"],
            "rollingUpdate": null,
            "type": "Recreate",
        }}});
        let out = deploy(patch);
        assert_eq!(out["spec"]["strategy"], json!({"type":"Recreate"}));
    }

    #[test]
    fn retain_keys_rejects_unlisted_patch_keys() {
        let patch =
            json!({"spec":{"strategy":{"$retainKeys":["type"],"rollingUpdate":{"maxSurge":1}}}});
        let err = apply(&deployment(), &patch, "apps", "Deployment").unwrap_err();
        assert!(err.to_string().contains("$retainKeys"), "{err}");
    }

    #[test]
    fn volume_retain_keys_switch_source() {
        let pod = json!({"spec":{
            "containers":[{"name":"c","image":"x"}],
            "volumes":[
                {"name":"data","emptyDir":{}},
                {"name":"cache","emptyDir":{"medium":"Memory"}},
            ],
        }});
        let patch = json!({"spec":{
            "$setElementOrder/volumes":[{"name":"data"},{"name":"cache"}],
            "volumes":[{
                "$retainKeys":["configMap","name"],
                "configMap":{"name":"cfg"},
                "emptyDir":null,
                "name":"data",
            }],
        }});
        let out = apply(&pod, &patch, "", "Pod").unwrap();
        assert_eq!(
            out["spec"]["volumes"],
            json!([
                {"name":"data","configMap":{"name":"cfg"}},
                {"name":"cache","emptyDir":{"medium":"Memory"}},
            ])
        );
    }

    #[test]
    fn service_ports_merge_by_port() {
        let svc = json!({"spec":{"type":"ClusterIP","clusterIP":"10.0.0.1","ports":[
            {"name":"http","port":80,"targetPort":8080,"protocol":"TCP"},
        ]}});
        let patch = json!({"spec":{
            "$setElementOrder/ports":[{"port":80},{"port":443}],
            "ports":[{"port":80,"targetPort":9090},{"name":"https","port":443,"targetPort":8443}],
        }});
        let out = apply(&svc, &patch, "", "Service").unwrap();
        assert_eq!(
            out["spec"]["ports"],
            json!([
                {"name":"http","port":80,"targetPort":9090,"protocol":"TCP"},
                {"name":"https","port":443,"targetPort":8443},
            ])
        );
        assert_eq!(out["spec"]["clusterIP"], "10.0.0.1");
    }

    #[test]
    fn finalizers_are_unioned() {
        let out = deploy(json!({"metadata":{"finalizers":["b","c"]}}));
        // Without `$setElementOrder` patch items lead unless the live list
        // places a server-only item earlier (apimachinery's mergeSortedSlice).
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
        let out = deploy(json!({"metadata":{"finalizers":["c"]}}));
        assert_eq!(out["metadata"]["finalizers"], json!(["c", "a", "b"]));
    }

    #[test]
    fn finalizers_delete_from_primitive_list_with_order() {
        let obj = json!({"metadata":{"finalizers":["1","2","3"]}});
        let patch = json!({"metadata":{
            "$setElementOrder/finalizers":["1","2","4"],
            "$deleteFromPrimitiveList/finalizers":["3"],
            "finalizers":["4"],
        }});
        let out = apply(&obj, &patch, "", "ConfigMap").unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["1", "2", "4"]));
    }

    #[test]
    fn delete_from_missing_primitive_list_does_not_create_it() {
        let obj = json!({"metadata":{"name":"x"}});
        let patch = json!({"metadata":{"$deleteFromPrimitiveList/finalizers":["a"]}});
        let out = apply(&obj, &patch, "", "Pod").unwrap();
        assert_eq!(out, obj);
    }

    #[test]
    fn patch_replace_on_a_map() {
        let patch = json!({"spec":{"template":{"metadata":{"labels":{
            "$patch":"replace","app":"web2"
        }}}}});
        let out = deploy(patch);
        assert_eq!(
            out["spec"]["template"]["metadata"]["labels"],
            json!({"app":"web2"})
        );
    }

    #[test]
    fn patch_replace_on_a_list() {
        let patch = json!({"spec":{"template":{"spec":{"containers":[
            {"$patch":"replace"},
            {"name":"only","image":"alpine","args":null},
        ]}}}});
        let out = deploy(patch);
        assert_eq!(
            containers(&out),
            &vec![json!({"name":"only","image":"alpine"})]
        );
    }

    #[test]
    fn patch_delete_on_a_map_removes_it() {
        let out = deploy(json!({"spec":{"strategy":{"$patch":"delete"}}}));
        assert!(out["spec"].get("strategy").is_none());
        assert_eq!(out["spec"]["replicas"], 2);
    }

    #[test]
    fn atomic_lists_are_replaced() {
        let patch = json!({"spec":{"template":{"spec":{
            "tolerations":[{"key":"y","operator":"Exists"}],
            "containers":[{"name":"web","command":["sh"],"args":["-c","true"]}],
        }}}});
        let out = deploy(patch);
        assert_eq!(
            out["spec"]["template"]["spec"]["tolerations"],
            json!([{"key":"y","operator":"Exists"}])
        );
        let pod = json!({"spec":{"containers":[{"name":"c","command":["a","b"]}]}});
        let patch = json!({"spec":{"containers":[{"name":"c","command":["z"]}]}});
        let out = apply(&pod, &patch, "", "Pod").unwrap();
        assert_eq!(out["spec"]["containers"][0]["command"], json!(["z"]));
    }

    #[test]
    fn new_list_items_lead_without_set_element_order() {
        let patch =
            json!({"spec":{"template":{"spec":{"containers":[{"name":"log","image":"fluent"}]}}}});
        let out = deploy(patch);
        let order = names(&out["spec"]["template"]["spec"]["containers"], "name");
        assert_eq!(order, [json!("log"), json!("web"), json!("sidecar")]);
    }

    #[test]
    fn set_element_order_keeps_server_only_items_in_place() {
        // Mirrors apimachinery's "set elements order in a list with server-only items 2".
        let obj = json!({"spec":{"containers":[
            {"name":"1","other":"a"},{"name":"2","value":"2"},{"name":"9"},
            {"name":"3","value":"3"},{"name":"4","value":"4"},
        ]}});
        let patch = json!({"spec":{"$setElementOrder/containers":[
            {"name":"2"},{"name":"1"},{"name":"4"},{"name":"3"}
        ]}});
        let out = apply(&obj, &patch, "", "Pod").unwrap();
        assert_eq!(
            names(&out["spec"]["containers"], "name"),
            ["2", "1", "9", "4", "3"].map(Value::from)
        );
        assert_eq!(out["spec"]["containers"][1]["other"], "a");
    }

    #[test]
    fn set_element_order_must_agree_with_patch_list() {
        let obj = json!({"spec":{"containers":[{"name":"1"},{"name":"3"},{"name":"2"}]}});
        let patch = json!({"spec":{
            "$setElementOrder/containers":[{"name":"1"},{"name":"2"},{"name":"3"}],
            "containers":[{"name":"3","v":3},{"name":"1","v":1}],
        }});
        assert!(apply(&obj, &patch, "", "Pod").is_err());
    }

    #[test]
    fn missing_merge_key_is_an_error() {
        let patch = json!({"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}});
        let err = apply(&deployment(), &patch, "apps", "Deployment").unwrap_err();
        assert!(err.message().contains("merge key"), "{err}");
    }

    #[test]
    fn unknown_patch_directive_is_an_error() {
        let patch = json!({"metadata":{"labels":{"$patch":"explode"}}});
        assert!(apply(&deployment(), &patch, "apps", "Deployment").is_err());
    }

    #[test]
    fn new_values_are_stripped_of_nulls_and_directives() {
        let patch = json!({"spec":{"template":{"spec":{
            "containers":[{
                "name":"new",
                "image":"x",
                "workingDir":null,
                "$setElementOrder/env":[{"name":"E"}],
                "env":[{"name":"E","value":"1"},{"name":"F","$patch":"delete"}],
            }],
            "nodeSelector":{"$retainKeys":["disk"],"disk":"ssd","zone":null},
        }}}});
        let out = deploy(patch);
        assert_eq!(
            containers(&out)[0],
            json!({"name":"new","image":"x","env":[{"name":"E","value":"1"}]})
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["nodeSelector"],
            json!({"disk":"ssd"})
        );
    }

    #[test]
    fn cron_job_pod_spec_is_found_deep_down() {
        let cj = json!({"spec":{"schedule":"* * * * *","jobTemplate":{"spec":{"template":{"spec":{
            "containers":[{"name":"job","image":"a","env":[{"name":"X","value":"1"}]}],
        }}}}}});
        let patch = json!({"spec":{"jobTemplate":{"spec":{"template":{"spec":{
            "containers":[{"name":"job","env":[{"name":"Y","value":"2"}]}],
        }}}}}});
        let out = apply(&cj, &patch, "batch", "CronJob").unwrap();
        let c = &out["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["image"], "a");
        assert_eq!(names(&c["env"], "name"), [json!("Y"), json!("X")]);
    }

    #[test]
    fn status_conditions_and_owner_references_merge() {
        let rs = json!({
            "metadata":{"ownerReferences":[{"uid":"u1","kind":"Deployment","name":"web"}]},
            "status":{"conditions":[
                {"type":"Available","status":"True"},
                {"type":"Progressing","status":"True"},
            ]},
        });
        let patch = json!({
            "metadata":{"ownerReferences":[{"uid":"u1","controller":true}]},
            "status":{"conditions":[{"type":"Progressing","status":"False"}]},
        });
        let out = apply(&rs, &patch, "apps", "ReplicaSet").unwrap();
        assert_eq!(
            out["metadata"]["ownerReferences"],
            json!([{"uid":"u1","kind":"Deployment","name":"web","controller":true}])
        );
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type":"Available","status":"True"},{"type":"Progressing","status":"False"}])
        );
    }

    #[test]
    fn node_addresses_merge_and_taints_are_atomic() {
        let node = json!({
            "spec":{"taints":[{"key":"a","effect":"NoSchedule"}]},
            "status":{"addresses":[{"type":"InternalIP","address":"10.0.0.1"}]},
        });
        let patch = json!({
            "spec":{"taints":[{"key":"b","effect":"NoExecute"}]},
            "status":{"addresses":[{"type":"Hostname","address":"n1"}]},
        });
        let out = apply(&node, &patch, "", "Node").unwrap();
        assert_eq!(
            out["spec"]["taints"],
            json!([{"key":"b","effect":"NoExecute"}])
        );
        assert_eq!(out["status"]["addresses"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn unknown_kinds_use_json_merge_patch() {
        let obj = json!({"spec":{"items":[{"name":"a","v":1}],"keep":true,"drop":1}});
        let patch = json!({"spec":{
            "items":[{"name":"b"}],
            "drop":null,
            "extra":{"$patch":"replace","x":1,"y":null},
        }});
        let out = apply(&obj, &patch, "example.com", "Widget").unwrap();
        assert_eq!(
            out,
            json!({"spec":{"items":[{"name":"b"}],"keep":true,"extra":{"x":1}}})
        );
        // A custom resource named like a built-in kind gets no schema either.
        let patch = json!({"spec":{"template":{"spec":{"containers":[{"name":"web"}]}}}});
        let out = apply(&deployment(), &patch, "example.com", "Deployment").unwrap();
        assert_eq!(containers(&out), &vec![json!({"name":"web"})]);
    }

    #[test]
    fn duplicate_merge_keys_follow_apimachinery() {
        let obj = json!({"spec":{"containers":[
            {"name":"1"},{"name":"2","value":"dup1"},{"name":"3"},{"name":"2","value":"dup2"},{"name":"4"},
        ]}});
        let patch = json!({"spec":{"$setElementOrder/containers":[
            {"name":"2"},{"name":"1"},{"name":"4"},{"name":"3"},{"name":"2"}
        ]}});
        let out = apply(&obj, &patch, "", "Pod").unwrap();
        assert_eq!(
            out["spec"]["containers"],
            json!([
                {"name":"2","value":"dup1"},{"name":"2","value":"dup2"},
                {"name":"1"},{"name":"4"},{"name":"3"},
            ])
        );
    }

    #[test]
    fn numeric_merge_keys_match_across_representations() {
        let pod =
            json!({"spec":{"containers":[{"name":"c","ports":[{"containerPort":80,"name":"a"}]}]}});
        let patch = json!({"spec":{"containers":[{"name":"c","ports":[{"containerPort":80.0,"name":"b"}]}]}});
        let out = apply(&pod, &patch, "core", "Pod").unwrap();
        assert_eq!(
            out["spec"]["containers"][0]["ports"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(out["spec"]["containers"][0]["ports"][0]["name"], "b");
    }

    #[test]
    fn top_level_shapes() {
        assert!(apply(&json!({}), &json!([1]), "", "Pod").is_err());
        assert_eq!(
            apply(&Value::Null, &json!({"a":1}), "", "Pod").unwrap(),
            json!({"a":1})
        );
        assert_eq!(
            apply(&json!({"a":1}), &json!({"$patch":"delete"}), "", "Pod").unwrap(),
            json!({})
        );
    }
}
