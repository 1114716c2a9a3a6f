//! Server-side apply and field ownership (`metadata.managedFields`).
//!
//! Follows Kubernetes' structured-merge-diff and the apiserver fieldmanager:
//! every write records which manager owns which fields as a set of field paths,
//! stored in the `FieldsV1` encoding; an apply merges a partial object, removes
//! the fields its manager stopped applying (unless someone else owns them) and
//! refuses to change fields other managers own unless forced.
//!
//! Field sets need a schema: whether an object is a struct (its fields are only
//! owned through their leaves), a granular map (every key is owned), or atomic
//! (owned as a whole), and whether a list is atomic, a set of primitives or a
//! map keyed by some of its items' fields. The built-in kinds are described by
//! the generated API table (`registry::generated`, the markers of the pinned
//! Kubernetes types, as kube-apiserver's OpenAPI type converter reads them);
//! kinds without a schema (custom resources) get ObjectMeta for their metadata
//! and, elsewhere, granular maps and atomic lists, as Kubernetes' deduced
//! schema does.
//!
//! Behaviour carried over from the apiserver wrappers: `apiVersion`, `kind`,
//! `status` and the server-owned metadata fields are never owned; the first
//! apply to an object without managed fields hands its existing fields to
//! `before-first-apply`; updates to existing untracked objects stay untracked;
//! at most ten update entries are kept (older ones merge into
//! `ancient-changes`); and `kubectl` may take over fields recorded in the
//! client-side apply annotation, which it keeps up to date.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::ops::Bound;

use serde_json::{json, Map, Value};

use crate::apiserver::registry::generated::{self, Field, Type};
use crate::apiserver::registry::kinds;

const APPLY: &str = "Apply";
const UPDATE: &str = "Update";
const FIELDS_V1: &str = "FieldsV1";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Owner of whatever an untracked object held when it was first applied to.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";
/// Bucket for the oldest update entries once there are too many.
const ANCIENT_CHANGES: &str = "ancient-changes";
const MAX_UPDATE_MANAGERS: usize = 10;
/// Only this manager may take over fields from the client-side apply annotation.
const KUBECTL: &str = "kubectl";

/// Why an apply was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyError {
    /// Fields the apply would change belong to other managers (HTTP 409).
    Conflicts(Vec<Conflict>),
    /// The applied object cannot be applied (HTTP 400).
    Invalid(String),
}

/// One field the apply would change that another manager owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// Name of the owning manager.
    pub manager: String,
    /// The field as Kubernetes prints it, e.g. `.spec.replicas`.
    pub field: String,
    /// The owner as Kubernetes prints it: quoted name, subresource, API version.
    owner: String,
}

impl Conflict {
    /// The `message` of the matching `FieldManagerConflict` status cause.
    pub fn message(&self) -> String {
        format!("conflict with {}", self.owner)
    }
}

impl ApplyError {
    /// The status message Kubernetes answers with.
    pub fn message(&self) -> String {
        match self {
            ApplyError::Invalid(message) => message.clone(),
            ApplyError::Conflicts(conflicts) if conflicts.len() == 1 => format!(
                "Apply failed with 1 conflict: {}: {}",
                conflicts[0].message(),
                conflicts[0].field
            ),
            ApplyError::Conflicts(conflicts) => {
                // Conflicts are sorted by owner, so each owner's fields are adjacent.
                let mut lines = Vec::new();
                let mut owner: Option<&str> = None;
                for conflict in conflicts {
                    if owner != Some(conflict.owner.as_str()) {
                        owner = Some(conflict.owner.as_str());
                        lines.push(format!("conflicts with {}:", conflict.owner));
                    }
                    lines.push(format!("- {}", conflict.field));
                }
                format!(
                    "Apply failed with {} conflicts: {}",
                    conflicts.len(),
                    lines.join("\n")
                )
            }
        }
    }
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for ApplyError {}

/// Server-side apply of `applied` (the user's partial object, JSON) by `manager` onto `live`
/// (None when the object does not exist yet; then the result is the applied object).
/// Returns the merged object with metadata.managedFields updated (an entry per manager+operation
/// with apiVersion, fieldsType "FieldsV1", fieldsV1 in Kubernetes' encoding and `time`).
/// Fields the manager applied before but omits now are removed from the object unless another
/// manager also owns them. Conflicts: a field applied with a different value that another
/// manager owns → Err(Conflicts) unless `force` (then ownership moves to `manager`).
#[allow(clippy::too_many_arguments)]
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    group: &str,
    kind: &str,
    custom: Option<&Value>,
    now: &str,
) -> Result<Value, ApplyError> {
    let schema = Schema::new(group, kind).with_custom(custom);
    let api_version = validate_applied(applied, kind)?;
    let config_set = schema.field_set(applied, true).map_err(|e| {
        ApplyError::Invalid(format!(
            "failed to create typed patch object ({api_version}, Kind={kind}): {e}"
        ))
    })?;
    // Status is reset by the registry and never owned; metadata.name and friends
    // stay in the set until the end so that pruning keeps metadata alive.
    let config_set = without_subtrees(config_set, &[&["status"], &["metadata", "managedFields"]]);

    let (live_obj, mut entries) = match live {
        Some(live) => {
            let entries = decode_entries(live).map_err(|e| {
                ApplyError::Invalid(format!("failed to decode managed fields: {e}"))
            })?;
            (without_managed_fields(live), entries)
        }
        None => (json!({}), Vec::new()),
    };
    if live.is_some() && entries.is_empty() {
        let version = str_field(&live_obj, "apiVersion").unwrap_or(&api_version);
        let id = Id::update(BEFORE_FIRST_APPLY, version);
        let empty = schema.skeleton(&live_obj);
        schema.record(&empty, &live_obj, id, version, now, &mut entries);
    }

    let applier = Entry {
        id: Id::apply(manager),
        api_version: api_version.clone(),
        time: None,
        set: config_set,
    };
    let id = &applier.id;
    let previous_time = entries
        .iter()
        .find(|e| e.id == *id)
        .and_then(|e| e.time.clone());
    let attempt =
        |force: bool| schema.try_apply(&live_obj, applied, &applier, entries.clone(), force);
    let (merged, mut entries) = match attempt(force) {
        Ok(done) => done,
        Err(conflicts) => {
            let allowed = if manager == KUBECTL {
                schema.allowed_by_last_applied(&live_obj, &api_version)
            } else {
                None
            };
            match allowed {
                Some(allowed) if conflicts.iter().all(|(_, path)| allowed.contains(path)) => {
                    attempt(true).map_err(conflict_error)?
                }
                Some(allowed) => {
                    let left = conflicts
                        .into_iter()
                        .filter(|(_, path)| !allowed.contains(path))
                        .collect();
                    return Err(conflict_error(left));
                }
                None => return Err(conflict_error(conflicts)),
            }
        }
    };

    let changed = merged != live_obj;
    if let Some(entry) = entries.iter_mut().find(|e| e.id == *id) {
        // A no-op apply keeps its old timestamp, so that re-applying changes nothing.
        entry.time = match previous_time {
            Some(time) if !changed => Some(time),
            _ => Some(now.to_string()),
        };
    }
    let mut result = merged;
    if manager == KUBECTL {
        update_last_applied(&mut result, applied);
    }
    finish_entries(&mut entries);
    encode_entries(&mut result, &entries);
    Ok(result)
}

/// Record an ordinary write (create/update/patch by `manager`, operation "Update"): fields whose
/// value changed or appeared between `old` and `new` become owned by `manager` (taken from other
/// owners' sets); removed fields leave every set. Updates `new`'s metadata.managedFields in place.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    group: &str,
    kind: &str,
    custom: Option<&Value>,
    now: &str,
) {
    if !new.is_object() {
        return;
    }
    let schema = Schema::new(group, kind).with_custom(custom);
    let requested = new.pointer("/metadata/managedFields");
    let mut entries = if is_reset(requested) {
        Vec::new()
    } else {
        // Clients that do not know about managed fields send none (or stale
        // ones that fail to decode); the stored entries then carry over.
        match decode_entries(new) {
            Ok(entries) if !entries.is_empty() => entries,
            _ => old
                .and_then(|old| decode_entries(old).ok())
                .unwrap_or_default(),
        }
    };
    remove_managed_fields(new);
    if entries.is_empty() && old.is_some() {
        // Kubernetes only starts tracking existing objects on their first apply.
        return;
    }
    let old_obj = match old {
        Some(old) => without_managed_fields(old),
        None => schema.skeleton(new),
    };
    let version = str_field(new, "apiVersion")
        .map(str::to_string)
        .unwrap_or_else(|| default_api_version(group));
    let id = Id::update(manager, &version);
    schema.record(&old_obj, new, id, &version, now, &mut entries);
    finish_entries(&mut entries);
    encode_entries(new, &entries);
}

// ---------------------------------------------------------------------------
// Field paths and sets.

/// One step of a field path, as structured-merge-diff's `PathElement`.
#[derive(Clone, Debug)]
enum Pe {
    /// A struct field or map key: `f:name`.
    Field(String),
    /// A keyed list item, key fields sorted by name: `k:{"name":"web"}`.
    Key(Vec<(String, Value)>),
    /// An item of a set of primitives: `v:"x"`.
    Value(Value),
    /// An item of an atomic list (never produced here, but decodable): `i:0`.
    Index(usize),
}

type Path = Vec<Pe>;
type Set = BTreeSet<Path>;

impl Pe {
    fn rank(&self) -> u8 {
        match self {
            Pe::Field(_) => 0,
            Pe::Key(_) => 1,
            Pe::Value(_) => 2,
            Pe::Index(_) => 3,
        }
    }

    /// The key of this element in a `FieldsV1` object.
    fn encode(&self) -> String {
        match self {
            Pe::Field(name) => format!("f:{name}"),
            Pe::Key(fields) => {
                let fields: Vec<String> = fields
                    .iter()
                    .map(|(name, value)| format!("{}:{}", Value::from(name.as_str()), value))
                    .collect();
                format!("k:{{{}}}", fields.join(","))
            }
            Pe::Value(value) => format!("v:{value}"),
            Pe::Index(index) => format!("i:{index}"),
        }
    }

    fn parse(text: &str) -> Option<Pe> {
        let (prefix, rest) = text.split_at_checked(2)?;
        match prefix {
            "f:" => Some(Pe::Field(rest.to_string())),
            "k:" => match serde_json::from_str::<Value>(rest).ok()? {
                Value::Object(map) => {
                    let mut fields: Vec<(String, Value)> = map.into_iter().collect();
                    fields.sort_by(|a, b| a.0.cmp(&b.0));
                    Some(Pe::Key(fields))
                }
                _ => None,
            },
            "v:" => serde_json::from_str(rest).ok().map(Pe::Value),
            "i:" => rest.parse().ok().map(Pe::Index),
            _ => None,
        }
    }

    /// The element as conflict messages print it: `.name`, `[name="web"]`, `[=x]`, `[0]`.
    fn display(&self) -> String {
        match self {
            Pe::Field(name) => format!(".{name}"),
            Pe::Key(fields) => {
                let fields: Vec<String> = fields
                    .iter()
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect();
                format!("[{}]", fields.join(","))
            }
            Pe::Value(value) => format!("[={value}]"),
            Pe::Index(index) => format!("[{index}]"),
        }
    }
}

impl Ord for Pe {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank()
            .cmp(&other.rank())
            .then_with(|| match (self, other) {
                (Pe::Field(a), Pe::Field(b)) => a.cmp(b),
                (Pe::Key(a), Pe::Key(b)) => {
                    for ((na, va), (nb, vb)) in a.iter().zip(b) {
                        let order = na.cmp(nb).then_with(|| cmp_values(va, vb));
                        if order != Ordering::Equal {
                            return order;
                        }
                    }
                    a.len().cmp(&b.len())
                }
                (Pe::Value(a), Pe::Value(b)) => cmp_values(a, b),
                (Pe::Index(a), Pe::Index(b)) => a.cmp(b),
                _ => Ordering::Equal,
            })
    }
}

impl PartialOrd for Pe {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Pe {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Pe {}

/// A total order on JSON values, numeric for numbers; equal exactly when `==` holds.
fn cmp_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            Value::Array(_) => 4,
            Value::Object(_) => 5,
        }
    }
    rank(a).cmp(&rank(b)).then_with(|| match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => {
            let (fx, fy) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            fx.partial_cmp(&fy)
                .unwrap_or(Ordering::Equal)
                .then_with(|| x.to_string().cmp(&y.to_string()))
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (i, j) in x.iter().zip(y) {
                let order = cmp_values(i, j);
                if order != Ordering::Equal {
                    return order;
                }
            }
            x.len().cmp(&y.len())
        }
        _ => a.to_string().cmp(&b.to_string()),
    })
}

fn path_string(path: &[Pe]) -> String {
    path.iter().map(Pe::display).collect()
}

/// Whether `set` holds `path` or anything below it.
fn has_under(set: &Set, path: &[Pe]) -> bool {
    set.range::<[Pe], _>((Bound::Included(path), Bound::Unbounded))
        .next()
        .is_some_and(|p| p.starts_with(path))
}

fn field_path(names: &[&str]) -> Path {
    names.iter().map(|n| Pe::Field(n.to_string())).collect()
}

fn without_subtrees(mut set: Set, prefixes: &[&[&str]]) -> Set {
    let prefixes: Vec<Path> = prefixes.iter().map(|p| field_path(p)).collect();
    set.retain(|p| !prefixes.iter().any(|prefix| p.starts_with(prefix)));
    set
}

/// Drops what Kubernetes never tracks: type meta, server-owned metadata and status.
fn strip(set: Set) -> Set {
    const EXACT: &[&[&str]] = &[
        &["apiVersion"],
        &["kind"],
        &["metadata"],
        &["metadata", "name"],
        &["metadata", "namespace"],
        &["metadata", "creationTimestamp"],
        &["metadata", "selfLink"],
        &["metadata", "uid"],
        &["metadata", "clusterName"],
        &["metadata", "generation"],
        &["metadata", "managedFields"],
        &["metadata", "resourceVersion"],
    ];
    let mut set = without_subtrees(set, &[&["status"], &["metadata", "managedFields"]]);
    for path in EXACT {
        set.remove(&field_path(path));
    }
    set
}

/// Order in which structured-merge-diff iterates a set: at each level the
/// members ending there come before the paths that go deeper.
fn iteration_order(a: &[Pe], b: &[Pe]) -> Ordering {
    let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    match (a.len() - common, b.len() - common) {
        (0, 0) => Ordering::Equal,
        (0, _) => Ordering::Less,
        (_, 0) => Ordering::Greater,
        (1, 1) => a[common].cmp(&b[common]),
        (1, _) => Ordering::Less,
        (_, 1) => Ordering::Greater,
        _ => a[common].cmp(&b[common]),
    }
}

/// Encodes a set as a `FieldsV1` object: `{}` for a member without children,
/// and `".": {}` for a member that also has children.
fn set_to_fields(set: &Set) -> Value {
    #[derive(Default)]
    struct Node {
        member: bool,
        children: BTreeMap<Pe, Node>,
    }
    fn render(node: &Node, top: bool) -> Value {
        let mut out = Map::new();
        if !top && node.member && !node.children.is_empty() {
            out.insert(".".to_string(), json!({}));
        }
        for (pe, child) in &node.children {
            out.insert(pe.encode(), render(child, false));
        }
        Value::Object(out)
    }
    let mut root = Node::default();
    for path in set {
        let mut node = &mut root;
        for pe in path {
            node = node.children.entry(pe.clone()).or_default();
        }
        node.member = true;
    }
    render(&root, true)
}

fn fields_to_set(fields: &Value) -> Result<Set, String> {
    fn walk(value: &Value, path: &mut Path, set: &mut Set) -> Result<(), String> {
        let map = value.as_object().ok_or("expected an object")?;
        for (key, child) in map {
            if key == "." {
                if !path.is_empty() {
                    set.insert(path.clone());
                }
                continue;
            }
            let pe = Pe::parse(key).ok_or_else(|| format!("invalid path element {key:?}"))?;
            path.push(pe);
            match child.as_object() {
                Some(inner) if inner.is_empty() => {
                    set.insert(path.clone());
                }
                _ => walk(child, path, set)?,
            }
            path.pop();
        }
        Ok(())
    }
    let mut set = Set::new();
    walk(fields, &mut Vec::new(), &mut set)?;
    Ok(set)
}

// ---------------------------------------------------------------------------
// Schema.

/// How a list's items are identified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ListKind {
    /// Replaced and owned as a whole.
    Atomic,
    /// Primitives, each owned on its own (`v:`).
    Set,
    /// Objects keyed by these fields (`k:`); `item` is their type, for key defaults.
    Map {
        keys: &'static [&'static str],
        item: Option<&'static str>,
    },
}

/// How an object's keys are owned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ObjKind {
    /// Declared fields: owned only through their leaves.
    Struct,
    /// Arbitrary keys: every key is owned.
    Map,
    /// Replaced and owned as a whole.
    Atomic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Scalar,
    Object(ObjKind),
    List(ListKind),
}

/// Custom resources have no generated type, but their metadata is ObjectMeta.
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// Key fields whose OpenAPI schema has a default (`+default="TCP"`), so items
/// may omit them: (item type, key, default). The generated table carries no
/// defaults, and these are the only defaulted keys of the served types.
const KEY_DEFAULTS: &[(&str, &str, &str)] = &[
    ("io.k8s.api.core.v1.ContainerPort", "protocol", "TCP"),
    ("io.k8s.api.core.v1.ServicePort", "protocol", "TCP"),
];

/// What the schema says about the value at a path.
#[derive(Clone, Copy, Debug)]
enum Node {
    /// No schema (custom resources, fields the table lacks): deduced from the
    /// value, granular maps and atomic lists.
    Deduced,
    /// A scalar; whatever it holds is one leaf.
    Scalar,
    /// A value of a message type.
    Type(&'static Type),
    /// The value of a list or map field; its items or values follow `shape`.
    Field(&'static Field),
    /// A custom resource's list its schema keys (`x-kubernetes-list-type:
    /// map`) by these fields.
    CustomMapList(&'static [&'static str]),
    /// A custom resource's list its schema makes a set.
    CustomSet,
    /// An object its schema gives properties: a struct, each field owned
    /// through its leaves.
    CustomStruct,
}

impl Node {
    /// The node of an item, map value or message-typed field of this shape.
    fn element(shape: generated::Shape) -> Node {
        match shape.message() {
            Some(name) => generated::find(name).map_or(Node::Deduced, Node::Type),
            None => Node::Scalar,
        }
    }

    fn child(self, pe: &Pe) -> Node {
        match (self, pe) {
            (Node::Type(ty), Pe::Field(name)) if !ty.custom_json => match ty.field(name) {
                Some(f) if f.shape.is_list() || f.shape.is_map() => Node::Field(f),
                Some(f) => Node::element(f.shape),
                None => Node::Deduced,
            },
            (Node::Field(f), Pe::Field(_)) if f.shape.is_map() => Node::element(f.shape),
            (Node::Field(f), Pe::Key(_) | Pe::Value(_) | Pe::Index(_)) if f.shape.is_list() => {
                Node::element(f.shape)
            }
            // A value of the wrong type has no schema below it.
            _ => Node::Deduced,
        }
    }

    /// A scalar leaf in JSON whatever it looks like (Quantity, Time, IntOrString...).
    fn is_leaf(self) -> bool {
        matches!(self, Node::Type(ty) if ty.custom_json)
    }

    /// How an object at this node owns its keys (not for the root).
    fn obj_kind(self) -> ObjKind {
        match self {
            Node::Deduced => ObjKind::Map,
            Node::Type(ty)
                if ty.custom_json || ty.struct_type == "atomic" || ty.map_type == "atomic" =>
            {
                ObjKind::Atomic
            }
            Node::Type(_) | Node::CustomStruct => ObjKind::Struct,
            Node::Field(f) if f.shape.is_map() && f.map_type != "atomic" => ObjKind::Map,
            Node::Field(_) | Node::Scalar | Node::CustomMapList(_) | Node::CustomSet => {
                ObjKind::Atomic
            }
        }
    }

    /// How a list at this node identifies its items.
    fn list_kind(self) -> ListKind {
        match self {
            Node::Field(f) if f.shape.is_list() => match f.list {
                generated::ListType::Map(keys) => ListKind::Map {
                    keys,
                    item: f.shape.message(),
                },
                generated::ListType::Set => ListKind::Set,
                _ => ListKind::Atomic,
            },
            Node::CustomMapList(keys) => ListKind::Map { keys, item: None },
            Node::CustomSet => ListKind::Set,
            _ => ListKind::Atomic,
        }
    }
}

/// The node at `path` of a custom resource's structural schema: its lists
/// keyed (`x-kubernetes-list-type: map`) or sets, its atomic maps
/// (`x-kubernetes-map-type: atomic`), everything else deduced.
fn custom_node(schema: &Value, path: &[Pe]) -> Node {
    let mut at = schema;
    for pe in path {
        let next = match pe {
            Pe::Field(name) => at
                .get("properties")
                .and_then(|p| p.get(name.as_str()))
                .or_else(|| at.get("additionalProperties").filter(|s| s.is_object())),
            _ => at.get("items"),
        };
        match next {
            Some(s) => at = s,
            None => return Node::Deduced,
        }
    }
    let ext = |k: &str| at.get(k).and_then(Value::as_str);
    match (
        at.get("type").and_then(Value::as_str),
        ext("x-kubernetes-list-type"),
    ) {
        (Some("array"), Some("map")) => {
            let keys: Vec<&'static str> = at
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|k| {
                    k.iter()
                        .filter_map(Value::as_str)
                        .map(crate::apiserver::registry::custom::intern)
                        .collect()
                })
                .unwrap_or_default();
            if keys.is_empty() {
                Node::Deduced
            } else {
                Node::CustomMapList(crate::apiserver::registry::custom::intern_keys(keys))
            }
        }
        (Some("array"), Some("set")) => Node::CustomSet,
        (Some("object"), _) if ext("x-kubernetes-map-type") == Some("atomic") => Node::Scalar,
        (Some("object"), _) if at.get("properties").is_some() => Node::CustomStruct,
        _ => Node::Deduced,
    }
}

/// The schema of one kind, from the generated API table.
struct Schema {
    /// The kind's type; `Deduced` for kinds the table lacks.
    root: Node,
    /// A custom resource's structural schema (its list and map types).
    custom: Option<Value>,
    /// Where the kind embeds a PodSpec (for the typed empty object).
    pod_spec: &'static str,
}

/// What comparing two objects found: leaves and whole subtrees.
#[derive(Default)]
struct Diff {
    added: Set,
    modified: Set,
    removed: Set,
}

impl Schema {
    fn new(group: &str, kind: &str) -> Schema {
        let group = if group == "core" { "" } else { group };
        Schema {
            root: kinds::type_name(group, kind)
                .and_then(generated::find)
                .map_or(Node::Deduced, Node::Type),
            pod_spec: kinds::find(group, kind).map_or("", |k| k.pod_spec),
            custom: None,
        }
    }

    /// With a custom resource's schema, whose list types it follows.
    fn with_custom(mut self, schema: Option<&Value>) -> Schema {
        self.custom = schema.cloned();
        self
    }

    /// The schema of the value at `path`.
    fn node(&self, path: &[Pe]) -> Node {
        let Some((first, rest)) = path.split_first() else {
            return self.root;
        };
        let top = match (self.root, first) {
            (Node::Deduced, Pe::Field(name)) if name == "metadata" => {
                generated::find(OBJECT_META).map_or(Node::Deduced, Node::Type)
            }
            (root, pe) => match &self.custom {
                Some(schema) => return custom_node(schema, path),
                None => root.child(pe),
            },
        };
        rest.iter().fold(top, |node, pe| node.child(pe))
    }

    fn obj_kind(&self, path: &[Pe]) -> ObjKind {
        if path.is_empty() {
            // Every object's top level is a struct, typed or not.
            return ObjKind::Struct;
        }
        self.node(path).obj_kind()
    }

    fn list_kind(&self, path: &[Pe]) -> ListKind {
        self.node(path).list_kind()
    }

    fn shape(&self, path: &[Pe], value: &Value) -> Shape {
        let node = self.node(path);
        match value {
            _ if node.is_leaf() => Shape::Scalar,
            Value::Object(_) if path.is_empty() => Shape::Object(ObjKind::Struct),
            Value::Object(_) => Shape::Object(node.obj_kind()),
            Value::Array(_) => Shape::List(node.list_kind()),
            _ => Shape::Scalar,
        }
    }

    /// Path elements of a non-atomic list's items (duplicates included).
    fn item_pes(&self, kind: ListKind, items: &[Value], path: &[Pe]) -> Result<Vec<Pe>, String> {
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match kind {
                ListKind::Map { keys, item: ty } => {
                    let object = item.as_object().ok_or_else(|| {
                        format!("{}: element {i}: expected an object", path_string(path))
                    })?;
                    let mut fields = Vec::new();
                    for key in keys {
                        let value = match object.get(*key).filter(|v| !v.is_null()) {
                            Some(value) => value.clone(),
                            None => KEY_DEFAULTS
                                .iter()
                                .find(|(t, k, _)| Some(*t) == ty && k == key)
                                .map(|(_, _, default)| Value::from(*default))
                                .ok_or_else(|| {
                                    format!(
                                        "{}: element {i}: associative list with keys has an \
                                         element that omits key field {key:?} (and doesn't \
                                         have default value)",
                                        path_string(path)
                                    )
                                })?,
                        };
                        fields.push((key.to_string(), value));
                    }
                    fields.sort_by(|a, b| a.0.cmp(&b.0));
                    Ok(Pe::Key(fields))
                }
                ListKind::Set => Ok(Pe::Value(item.clone())),
                ListKind::Atomic => Ok(Pe::Index(i)),
            })
            .collect()
    }

    /// The fields `value` sets, as structured-merge-diff's `ToFieldSet`. With
    /// `strict`, malformed keyed lists are errors; otherwise they count as atomic.
    fn field_set(&self, value: &Value, strict: bool) -> Result<Set, String> {
        let mut set = Set::new();
        self.collect(value, &mut Vec::new(), strict, &mut set)?;
        Ok(set)
    }

    fn collect(
        &self,
        value: &Value,
        path: &mut Path,
        strict: bool,
        out: &mut Set,
    ) -> Result<(), String> {
        match (self.shape(path, value), value) {
            (Shape::Object(kind @ (ObjKind::Struct | ObjKind::Map)), Value::Object(map)) => {
                for (key, child) in map {
                    path.push(Pe::Field(key.clone()));
                    self.collect(child, path, strict, out)?;
                    // Struct fields are owned through their leaves unless empty.
                    let empty = child.is_null() || child.as_object().is_some_and(Map::is_empty);
                    if kind == ObjKind::Map || empty {
                        out.insert(path.clone());
                    }
                    path.pop();
                }
            }
            (Shape::List(kind @ (ListKind::Set | ListKind::Map { .. })), Value::Array(items)) => {
                let pes = self.item_pes(kind, items, path).and_then(|pes| {
                    let mut seen = BTreeSet::new();
                    match pes.iter().find(|pe| !seen.insert(*pe)) {
                        Some(pe) if strict => Err(format!(
                            "{}: duplicate entries for key {}",
                            path_string(path),
                            pe.display()
                        )),
                        _ => Ok(pes),
                    }
                });
                match pes {
                    Ok(pes) => {
                        for (pe, item) in pes.into_iter().zip(items) {
                            path.push(pe);
                            self.collect(item, path, strict, out)?;
                            out.insert(path.clone());
                            path.pop();
                        }
                    }
                    Err(e) if strict => return Err(e),
                    Err(_) => {
                        out.insert(path.clone());
                    }
                }
            }
            _ => {
                if !path.is_empty() {
                    out.insert(path.clone());
                }
            }
        }
        Ok(())
    }

    /// Adds struct fields leading to members as members themselves, so that
    /// pruning can tell which structs someone still has an interest in.
    fn ensure_named_fields(&self, set: &Set) -> Set {
        let mut out = set.clone();
        for path in set {
            for end in 1..path.len() {
                let parent = &path[..end - 1];
                if matches!(path[end - 1], Pe::Field(_)) && self.obj_kind(parent) == ObjKind::Struct
                {
                    out.insert(path[..end].to_vec());
                }
            }
        }
        out
    }

    /// Compares two objects, ignoring status and managed fields.
    fn diff(&self, old: &Value, new: &Value) -> Diff {
        let mut diff = Diff::default();
        self.compare(Some(old), Some(new), &mut Vec::new(), &mut diff);
        let ignored: &[&[&str]] = &[&["status"], &["metadata", "managedFields"]];
        Diff {
            added: without_subtrees(diff.added, ignored),
            modified: without_subtrees(diff.modified, ignored),
            removed: without_subtrees(diff.removed, ignored),
        }
    }

    fn compare(&self, lhs: Option<&Value>, rhs: Option<&Value>, path: &mut Path, d: &mut Diff) {
        let shape_of = |v: Option<&Value>| v.filter(|v| !v.is_null()).map(|v| self.shape(path, v));
        // Null matches either container type: it is an empty one.
        let shape = match (shape_of(lhs), shape_of(rhs)) {
            (Some(a), Some(b)) if a != b => None,
            (a, b) => b.or(a),
        };
        let empty = |v: Option<&Value>| match v {
            None | Some(Value::Null) => true,
            Some(Value::Object(m)) => m.is_empty(),
            Some(Value::Array(a)) => a.is_empty(),
            _ => false,
        };
        // Empty containers on both sides compare as leaves, keeping null and {} apart.
        let descended = !(empty(lhs) && empty(rhs))
            && match shape {
                Some(Shape::Object(ObjKind::Struct | ObjKind::Map)) => {
                    self.compare_maps(lhs, rhs, path, d);
                    true
                }
                Some(Shape::List(kind @ (ListKind::Set | ListKind::Map { .. }))) => {
                    self.compare_lists(kind, lhs, rhs, path, d)
                }
                _ => false,
            };
        if descended {
            if !path.is_empty() {
                if lhs.is_none() {
                    d.added.insert(path.clone());
                } else if rhs.is_none() {
                    d.removed.insert(path.clone());
                }
            }
            return;
        }
        match (lhs, rhs) {
            (None, Some(_)) => {
                d.added.insert(path.clone());
            }
            (Some(_), None) => {
                d.removed.insert(path.clone());
            }
            (Some(a), Some(b)) if a != b => {
                d.modified.insert(path.clone());
            }
            _ => {}
        }
    }

    fn compare_maps(
        &self,
        lhs: Option<&Value>,
        rhs: Option<&Value>,
        path: &mut Path,
        d: &mut Diff,
    ) {
        let empty = Map::new();
        let l = lhs.and_then(Value::as_object).unwrap_or(&empty);
        let r = rhs.and_then(Value::as_object).unwrap_or(&empty);
        let keys: BTreeSet<&String> = l.keys().chain(r.keys()).collect();
        for key in keys {
            path.push(Pe::Field(key.clone()));
            self.compare(l.get(key), r.get(key), path, d);
            path.pop();
        }
    }

    /// Compares keyed or set items; false when the items cannot be keyed.
    fn compare_lists(
        &self,
        kind: ListKind,
        lhs: Option<&Value>,
        rhs: Option<&Value>,
        path: &mut Path,
        d: &mut Diff,
    ) -> bool {
        let items = |v: Option<&Value>| -> Result<BTreeMap<Pe, Value>, String> {
            let list = v
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let pes = self.item_pes(kind, list, path)?;
            let mut out = BTreeMap::new();
            for (pe, item) in pes.into_iter().zip(list) {
                // Later duplicates are ignored, as structured-merge-diff does.
                out.entry(pe).or_insert_with(|| item.clone());
            }
            Ok(out)
        };
        let (Ok(l), Ok(r)) = (items(lhs), items(rhs)) else {
            return false;
        };
        let pes: BTreeSet<&Pe> = l.keys().chain(r.keys()).collect();
        for pe in pes {
            path.push(pe.clone());
            self.compare(l.get(pe), r.get(pe), path, d);
            path.pop();
        }
        true
    }

    /// Merges `rhs` (applied configuration) into `lhs`; None deletes the field.
    fn merge(&self, lhs: Option<&Value>, rhs: &Value, path: &mut Path) -> Option<Value> {
        if rhs.is_null() {
            return None;
        }
        let Some(lhs) = lhs.filter(|v| !v.is_null()) else {
            return Some(without_nulls(rhs));
        };
        let shape = self.shape(path, rhs);
        if self.shape(path, lhs) != shape {
            return Some(without_nulls(rhs));
        }
        match (shape, lhs, rhs) {
            (Shape::Object(ObjKind::Struct | ObjKind::Map), Value::Object(l), Value::Object(r)) => {
                let mut out = l.clone();
                for (key, value) in r {
                    path.push(Pe::Field(key.clone()));
                    match self.merge(out.get(key), value, path) {
                        Some(merged) => out.insert(key.clone(), merged),
                        None => out.remove(key),
                    };
                    path.pop();
                }
                Some(Value::Object(out))
            }
            (
                Shape::List(kind @ (ListKind::Set | ListKind::Map { .. })),
                Value::Array(l),
                Value::Array(r),
            ) => Some(
                self.merge_lists(kind, l, r, path)
                    .map_or_else(|| without_nulls(rhs), Value::Array),
            ),
            _ => Some(without_nulls(rhs)),
        }
    }

    /// Merges keyed items. Order: live items stay where they are, applied items
    /// not yet live follow the applied order, and shared items take the applied
    /// order when the two disagree (structured-merge-diff's rule).
    fn merge_lists(
        &self,
        kind: ListKind,
        lhs: &[Value],
        rhs: &[Value],
        path: &mut Path,
    ) -> Option<Vec<Value>> {
        let index = |items: &[Value]| -> Option<(Vec<Pe>, BTreeMap<Pe, Value>)> {
            let pes = self.item_pes(kind, items, path).ok()?;
            let mut order = Vec::new();
            let mut found = BTreeMap::new();
            for (pe, item) in pes.into_iter().zip(items) {
                if !found.contains_key(&pe) {
                    found.insert(pe.clone(), item.clone());
                    order.push(pe);
                }
            }
            Some((order, found))
        };
        let (l_order, l_items) = index(lhs)?;
        let (r_order, r_items) = index(rhs)?;
        let mut shared: VecDeque<&Pe> = r_order
            .iter()
            .filter(|pe| l_items.contains_key(pe))
            .collect();
        let mut next_shared = shared.pop_front();
        let mut out = Vec::new();
        let (mut li, mut ri) = (0, 0);
        let mut push = |pe: &Pe, l: Option<&Value>, r: Option<&Value>, path: &mut Path| {
            path.push(pe.clone());
            let merged = match r {
                Some(r) => self.merge(l, r, path),
                None => l.cloned(),
            };
            path.pop();
            out.extend(merged);
        };
        while li < l_order.len() || ri < r_order.len() {
            if li < l_order.len() && ri < r_order.len() {
                let pe = &l_order[li];
                if *pe == r_order[ri] {
                    push(pe, l_items.get(pe), r_items.get(pe), path);
                    li += 1;
                    ri += 1;
                    next_shared = shared.pop_front();
                    continue;
                }
                if r_items.contains_key(pe) && next_shared.is_some_and(|s| s != pe) {
                    // Shared, but the applied order places it later.
                    li += 1;
                    continue;
                }
            }
            if li < l_order.len() && !r_items.contains_key(&l_order[li]) {
                let pe = &l_order[li];
                push(pe, l_items.get(pe), None, path);
                li += 1;
                continue;
            }
            if ri < r_order.len() {
                let pe = &r_order[ri];
                push(pe, l_items.get(pe), r_items.get(pe), path);
                ri += 1;
                if next_shared == Some(pe) {
                    next_shared = shared.pop_front();
                }
                continue;
            }
            // Only a shared live item already merged at its applied position is left.
            li += 1;
        }
        Some(out)
    }

    /// Removes every field and item of `set` from `value`.
    fn remove(&self, value: &mut Value, path: &mut Path, set: &Set) {
        match value {
            Value::Object(map) => {
                let keys: Vec<String> = map.keys().cloned().collect();
                for key in keys {
                    path.push(Pe::Field(key.clone()));
                    if set.contains(path) {
                        map.remove(&key);
                    } else if has_under(set, path) {
                        if let Some(child) = map.get_mut(&key) {
                            self.remove(child, path, set);
                        }
                    }
                    path.pop();
                }
            }
            Value::Array(items) => {
                let kind = self.list_kind(path);
                if kind == ListKind::Atomic {
                    return;
                }
                let Ok(pes) = self.item_pes(kind, items, path) else {
                    return;
                };
                let mut kept = Vec::new();
                for (pe, mut item) in pes.into_iter().zip(items.drain(..)) {
                    path.push(pe);
                    if !set.contains(path) {
                        if has_under(set, path) {
                            self.remove(&mut item, path, set);
                        }
                        kept.push(item);
                    }
                    path.pop();
                }
                *items = kept;
            }
            _ => {}
        }
    }

    /// What the typed empty object of this kind holds: its non-pointer structs,
    /// which therefore never count as added by a create.
    fn skeleton(&self, new: &Value) -> Value {
        fn seed(out: &mut Map<String, Value>, src: &Map<String, Value>, segments: &[&str]) {
            let Some((first, rest)) = segments.split_first() else {
                if src.contains_key("containers") {
                    out.insert("containers".to_string(), Value::Null);
                }
                return;
            };
            let Some(Value::Object(inner)) = src.get(*first) else {
                return;
            };
            let slot = out.entry(first.to_string()).or_insert_with(|| json!({}));
            if let Value::Object(slot) = slot {
                if *first == "template" && inner.contains_key("metadata") {
                    slot.insert("metadata".to_string(), json!({}));
                }
                seed(slot, inner, rest);
            }
        }
        let mut out = Map::new();
        let Some(src) = new.as_object() else {
            return Value::Object(out);
        };
        for field in ["metadata", "spec"] {
            if src.get(field).is_some_and(Value::is_object) {
                out.insert(field.to_string(), json!({}));
            }
        }
        if let (Some(Value::Object(spec)), Some(Value::Object(src_spec))) =
            (out.get_mut("spec"), src.get("spec"))
        {
            for field in ["strategy", "updateStrategy"] {
                if src_spec.get(field).is_some_and(Value::is_object) {
                    spec.insert(field.to_string(), json!({}));
                }
            }
        }
        if !self.pod_spec.is_empty() {
            let segments: Vec<&str> = self.pod_spec.split('.').collect();
            seed(&mut out, src, &segments);
        }
        Value::Object(out)
    }

    /// Records an update from `old` to `new` by `id`: what changed or appeared
    /// moves to `id`, what disappeared leaves every set.
    fn record(
        &self,
        old: &Value,
        new: &Value,
        id: Id,
        api_version: &str,
        now: &str,
        entries: &mut Vec<Entry>,
    ) {
        let diff = self.diff(old, new);
        let changed: Set = diff.added.union(&diff.modified).cloned().collect();
        for entry in entries.iter_mut() {
            entry
                .set
                .retain(|p| !changed.contains(p) && !diff.removed.contains(p));
        }
        entries.retain(|e| !e.set.is_empty());
        let changed = strip(changed);
        if changed.is_empty() {
            return;
        }
        match entries.iter_mut().find(|e| e.id == id) {
            Some(entry) => {
                entry.set.extend(changed);
                entry.api_version = api_version.to_string();
                entry.time = Some(now.to_string());
            }
            None => entries.push(Entry {
                id,
                api_version: api_version.to_string(),
                time: Some(now.to_string()),
                set: changed,
            }),
        }
    }

    /// One apply attempt: the merged and pruned object with the new entries,
    /// or the fields other managers own that it would change.
    fn try_apply(
        &self,
        live: &Value,
        applied: &Value,
        applier: &Entry,
        mut entries: Vec<Entry>,
        force: bool,
    ) -> Result<(Value, Vec<Entry>), Vec<Taken>> {
        let id = &applier.id;
        let mut merged = self
            .merge(Some(live), applied, &mut Vec::new())
            .unwrap_or_else(|| live.clone());
        let last = entries.iter().find(|e| e.id == *id).map(|e| e.set.clone());
        entries.retain(|e| e.id != *id);
        entries.push(applier.clone());

        // Remove what the manager applied last time and nobody, including its
        // new configuration, claims any more.
        if let Some(last) = last.filter(|s| !s.is_empty()) {
            let managed: Set = entries.iter().flat_map(|e| e.set.iter().cloned()).collect();
            let managed = self.ensure_named_fields(&managed);
            let last = self.ensure_named_fields(&last);
            let present = self.field_set(&merged, false).unwrap_or_default();
            let present = self.ensure_named_fields(&present);
            let doomed: Set = present
                .intersection(&last)
                .filter(|p| !managed.contains(*p))
                .cloned()
                .collect();
            if !doomed.is_empty() {
                self.remove(&mut merged, &mut Vec::new(), &doomed);
            }
        }

        let diff = self.diff(live, &merged);
        let mut conflicts = Vec::new();
        for entry in entries.iter_mut().filter(|e| e.id != *id) {
            let taken: Set = entry
                .set
                .iter()
                .filter(|p| diff.added.contains(*p) || diff.modified.contains(*p))
                .cloned()
                .collect();
            conflicts.extend(taken.iter().map(|p| (entry.id.clone(), p.clone())));
            entry
                .set
                .retain(|p| !taken.contains(p) && !diff.removed.contains(p));
        }
        if !force && !conflicts.is_empty() {
            return Err(conflicts);
        }
        for entry in &mut entries {
            entry.set = strip(std::mem::take(&mut entry.set));
        }
        entries.retain(|e| !e.set.is_empty());
        Ok((merged, entries))
    }

    /// Fields recorded in the client-side apply annotation that still hold the
    /// recorded values; `kubectl` may take those over without conflict.
    fn allowed_by_last_applied(&self, live: &Value, api_version: &str) -> Option<Set> {
        let text = live
            .pointer("/metadata/annotations")?
            .get(LAST_APPLIED)?
            .as_str()?;
        let last: Value = serde_json::from_str(text).ok()?;
        if str_field(&last, "apiVersion") != Some(api_version) {
            return None;
        }
        let set = self.field_set(&last, false).ok()?;
        let diff = self.diff(&last, live);
        Some(
            set.into_iter()
                .filter(|p| {
                    !diff.modified.contains(p)
                        && !diff.added.contains(p)
                        && !diff.removed.contains(p)
                })
                .collect(),
        )
    }
}

fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------
// Managed-fields entries.

/// What identifies an entry: appliers are one entry whatever API version they
/// use, updaters get one per version.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Id {
    manager: String,
    operation: String,
    /// Empty for appliers.
    api_version: String,
    subresource: String,
}

impl Id {
    fn apply(manager: &str) -> Id {
        Id {
            manager: manager.to_string(),
            operation: APPLY.to_string(),
            api_version: String::new(),
            subresource: String::new(),
        }
    }

    fn update(manager: &str, api_version: &str) -> Id {
        Id {
            manager: manager.to_string(),
            operation: UPDATE.to_string(),
            api_version: api_version.to_string(),
            subresource: String::new(),
        }
    }

    /// The owner as conflict messages print it.
    fn printed(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            out.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == UPDATE {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }
}

/// A field another manager owns that an apply changes.
type Taken = (Id, Path);

#[derive(Clone, Debug)]
struct Entry {
    id: Id,
    api_version: String,
    time: Option<String>,
    set: Set,
}

fn str_field<'a>(value: &'a Value, field: &str) -> Option<&'a str> {
    value
        .get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn default_api_version(group: &str) -> String {
    if group.is_empty() || group == "core" {
        "v1".to_string()
    } else {
        format!("{group}/v1")
    }
}

/// `[]` and `[{}]` are how clients ask for managed fields to be cleared.
fn is_reset(managed: Option<&Value>) -> bool {
    match managed.and_then(Value::as_array).map(Vec::as_slice) {
        Some([]) => true,
        Some([only]) => only.as_object().is_some_and(Map::is_empty),
        _ => false,
    }
}

fn decode_entries(object: &Value) -> Result<Vec<Entry>, String> {
    let Some(list) = object.pointer("/metadata/managedFields") else {
        return Ok(Vec::new());
    };
    if list.is_null() {
        return Ok(Vec::new());
    }
    let list = list.as_array().ok_or("managedFields must be a list")?;
    let mut entries: Vec<Entry> = Vec::new();
    for raw in list {
        let text = |field: &str| raw.get(field).and_then(Value::as_str).unwrap_or("");
        let operation = text("operation");
        if operation != APPLY && operation != UPDATE {
            return Err(format!("unknown operation {operation:?}"));
        }
        if text("fieldsType") != FIELDS_V1 {
            return Err(format!("unsupported fieldsType {:?}", text("fieldsType")));
        }
        let set = match raw.get("fieldsV1") {
            Some(fields) => fields_to_set(fields)?,
            None => Set::new(),
        };
        let id = Id {
            manager: text("manager").to_string(),
            operation: operation.to_string(),
            api_version: if operation == APPLY {
                String::new()
            } else {
                text("apiVersion").to_string()
            },
            subresource: text("subresource").to_string(),
        };
        let time = raw.get("time").and_then(Value::as_str).map(str::to_string);
        match entries.iter_mut().find(|e| e.id == id) {
            Some(entry) => entry.set.extend(set),
            None => entries.push(Entry {
                id,
                api_version: text("apiVersion").to_string(),
                time,
                set,
            }),
        }
    }
    Ok(entries)
}

/// Caps the update entries and sorts everything as Kubernetes stores it.
fn finish_entries(entries: &mut Vec<Entry>) {
    cap_update_entries(entries);
    entries.sort_by(|a, b| {
        a.id.operation
            .cmp(&b.id.operation)
            .then_with(|| a.time.cmp(&b.time))
            .then_with(|| a.id.manager.cmp(&b.id.manager))
            .then_with(|| a.api_version.cmp(&b.api_version))
            .then_with(|| a.id.subresource.cmp(&b.id.subresource))
    });
}

/// Keeps at most [`MAX_UPDATE_MANAGERS`] update entries by merging the oldest
/// ones, per API version, into an `ancient-changes` entry.
fn cap_update_entries(entries: &mut Vec<Entry>) {
    let mut updaters: Vec<usize> = (0..entries.len())
        .filter(|&i| entries[i].id.operation == UPDATE)
        .collect();
    if updaters.len() <= MAX_UPDATE_MANAGERS {
        return;
    }
    updaters.sort_by(|&a, &b| {
        entries[a]
            .time
            .cmp(&entries[b].time)
            .then_with(|| entries[a].id.cmp(&entries[b].id))
    });
    let mut first_of_version: BTreeMap<String, usize> = BTreeMap::new();
    let mut merged_away = BTreeSet::new();
    let mut remaining = updaters.len();
    for &i in &updaters {
        if remaining <= MAX_UPDATE_MANAGERS {
            break;
        }
        let version = entries[i].api_version.clone();
        let Some(&first) = first_of_version.get(&version) else {
            first_of_version.insert(version, i);
            continue;
        };
        let bucket_id = Id::update(ANCIENT_CHANGES, &version);
        let bucket = match entries.iter().position(|e| e.id == bucket_id) {
            Some(bucket) => bucket,
            None => {
                entries[first].id = bucket_id;
                first
            }
        };
        let set = entries[i].set.clone();
        entries[bucket].set.extend(set);
        // The bucket is as recent as the newest update merged into it.
        entries[bucket].time = entries[i].time.clone();
        merged_away.insert(i);
        remaining -= 1;
    }
    let mut index = 0;
    entries.retain(|_| {
        index += 1;
        !merged_away.contains(&(index - 1))
    });
}

fn encode_entries(object: &mut Value, entries: &[Entry]) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    if entries.is_empty() {
        if let Some(Value::Object(meta)) = map.get_mut("metadata") {
            meta.remove("managedFields");
        }
        return;
    }
    let list: Vec<Value> = entries
        .iter()
        .map(|entry| {
            let mut out = Map::new();
            out.insert("manager".into(), entry.id.manager.clone().into());
            out.insert("operation".into(), entry.id.operation.clone().into());
            out.insert("apiVersion".into(), entry.api_version.clone().into());
            if let Some(time) = &entry.time {
                out.insert("time".into(), time.clone().into());
            }
            out.insert("fieldsType".into(), FIELDS_V1.into());
            out.insert("fieldsV1".into(), set_to_fields(&entry.set));
            if !entry.id.subresource.is_empty() {
                out.insert("subresource".into(), entry.id.subresource.clone().into());
            }
            Value::Object(out)
        })
        .collect();
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if let Value::Object(meta) = meta {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

fn remove_managed_fields(object: &mut Value) {
    if let Some(Value::Object(meta)) = object.get_mut("metadata") {
        meta.remove("managedFields");
    }
}

fn without_managed_fields(object: &Value) -> Value {
    let mut object = object.clone();
    remove_managed_fields(&mut object);
    object
}

/// Checks what apply requires of the applied object; returns its apiVersion.
fn validate_applied(applied: &Value, kind: &str) -> Result<String, ApplyError> {
    let invalid = |m: String| Err(ApplyError::Invalid(m));
    if !applied.is_object() {
        return invalid("the apply patch must be a JSON object".into());
    }
    if let Some(managed) = applied.pointer("/metadata/managedFields") {
        if !managed.is_null() {
            return invalid("metadata.managedFields must be nil".into());
        }
    }
    let Some(api_version) = str_field(applied, "apiVersion") else {
        return invalid("apiVersion must be set in the apply patch".into());
    };
    match str_field(applied, "kind") {
        Some(k) if k == kind => Ok(api_version.to_string()),
        Some(k) => invalid(format!(
            "the kind in the apply patch ({k}) does not match the expected kind ({kind})"
        )),
        None => invalid("kind must be set in the apply patch".into()),
    }
}

fn conflict_error(mut conflicts: Vec<Taken>) -> ApplyError {
    conflicts.sort_by(|(ia, pa), (ib, pb)| ia.cmp(ib).then_with(|| iteration_order(pa, pb)));
    ApplyError::Conflicts(
        conflicts
            .into_iter()
            .map(|(id, path)| Conflict {
                manager: id.manager.clone(),
                field: path_string(&path),
                owner: id.printed(),
            })
            .collect(),
    )
}

/// Keeps the client-side apply annotation in step with what `kubectl` applies
/// server-side, so that a later client-side apply computes the right patch.
fn update_last_applied(object: &mut Value, applied: &Value) {
    let Some(Value::Object(annotations)) = object.pointer_mut("/metadata/annotations") else {
        return;
    };
    if !annotations.contains_key(LAST_APPLIED) {
        return;
    }
    let mut recorded = applied.clone();
    if let Some(Value::Object(own)) = recorded.pointer_mut("/metadata/annotations") {
        own.remove(LAST_APPLIED);
    }
    let text = format!("{recorded}\n");
    annotations.insert(LAST_APPLIED.to_string(), Value::String(text));
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: &str = "2025-01-01T00:00:00Z";
    const T1: &str = "2025-01-01T00:01:00Z";
    const T2: &str = "2025-01-01T00:02:00Z";

    fn deployment(replicas: i64) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "web",
                        "image": "nginx:1.27",
                        "ports": [{"containerPort": 80}]
                    }]}
                }
            }
        })
    }

    fn apply_deploy(
        live: Option<&Value>,
        applied: &Value,
        manager: &str,
        force: bool,
    ) -> Result<Value, ApplyError> {
        apply_deploy_at(live, applied, manager, force, T1)
    }

    fn apply_deploy_at(
        live: Option<&Value>,
        applied: &Value,
        manager: &str,
        force: bool,
        now: &str,
    ) -> Result<Value, ApplyError> {
        apply(
            live,
            applied,
            manager,
            force,
            "apps",
            "Deployment",
            None,
            now,
        )
    }

    fn entries(object: &Value) -> Vec<Value> {
        object["metadata"]["managedFields"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn entry<'a>(object: &'a Value, manager: &str, operation: &str) -> &'a Value {
        object["metadata"]["managedFields"]
            .as_array()
            .and_then(|l| {
                l.iter()
                    .find(|e| e["manager"] == manager && e["operation"] == operation)
            })
            .unwrap_or_else(|| panic!("no {operation} entry for {manager} in {object}"))
    }

    #[test]
    fn first_apply_creates_ownership() {
        let out = apply_deploy(None, &deployment(2), "mgr", false).unwrap();
        let list = entries(&out);
        assert_eq!(list.len(), 1);
        let e = &list[0];
        assert_eq!(e["manager"], "mgr");
        assert_eq!(e["operation"], "Apply");
        assert_eq!(e["apiVersion"], "apps/v1");
        assert_eq!(e["fieldsType"], "FieldsV1");
        assert_eq!(e["time"], T1);
        assert_eq!(out["spec"]["replicas"], 2);
        assert_eq!(out["metadata"]["name"], "web");
    }

    #[test]
    fn deployment_fields_v1_matches_kubernetes() {
        let out = apply_deploy(None, &deployment(2), "mgr", false).unwrap();
        let expected = json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {
                        ".": {},
                        "f:image": {},
                        "f:name": {},
                        "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                            ".": {},
                            "f:containerPort": {}
                        }}
                    }}}
                }
            }
        });
        assert_eq!(entry(&out, "mgr", "Apply")["fieldsV1"], expected);
    }

    #[test]
    fn reapplying_the_same_object_is_a_no_op() {
        let first = apply_deploy(None, &deployment(2), "mgr", false).unwrap();
        let again = apply_deploy_at(Some(&first), &deployment(2), "mgr", false, T2).unwrap();
        assert_eq!(again, first);
    }

    #[test]
    fn omitted_fields_are_removed() {
        let first = apply_deploy(None, &deployment(2), "mgr", false).unwrap();
        let mut smaller = deployment(2);
        smaller["spec"].as_object_mut().unwrap().remove("replicas");
        smaller["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("labels");
        let out = apply_deploy_at(Some(&first), &smaller, "mgr", false, T2).unwrap();
        assert!(out["spec"].get("replicas").is_none());
        assert!(out["metadata"].get("labels").is_none());
        assert_eq!(out["metadata"]["name"], "web");
        let fields = &entry(&out, "mgr", "Apply")["fieldsV1"];
        assert!(fields["f:spec"].get("f:replicas").is_none());
        assert_eq!(entry(&out, "mgr", "Apply")["time"], T2);
    }

    #[test]
    fn omitted_fields_owned_by_others_stay() {
        let first = apply_deploy(None, &deployment(2), "a", false).unwrap();
        // Same value from another manager: shared ownership, no conflict.
        let shared = apply_deploy(Some(&first), &deployment(2), "b", false).unwrap();
        let mut smaller = deployment(2);
        smaller["spec"].as_object_mut().unwrap().remove("replicas");
        let out = apply_deploy_at(Some(&shared), &smaller, "a", false, T2).unwrap();
        assert_eq!(out["spec"]["replicas"], 2);
        assert!(entry(&out, "b", "Apply")["fieldsV1"]["f:spec"]["f:replicas"].is_object());
    }

    #[test]
    fn conflicting_apply_fails_with_kubernetes_message() {
        let first = apply_deploy(None, &deployment(2), "a", false).unwrap();
        let err = apply_deploy(Some(&first), &deployment(3), "b", false).unwrap_err();
        assert_eq!(
            err.message(),
            "Apply failed with 1 conflict: conflict with \"a\": .spec.replicas"
        );
        let ApplyError::Conflicts(conflicts) = &err else {
            panic!("expected conflicts");
        };
        assert_eq!(conflicts[0].manager, "a");
        assert_eq!(conflicts[0].field, ".spec.replicas");
        assert_eq!(conflicts[0].message(), "conflict with \"a\"");
    }

    #[test]
    fn conflict_with_an_updater_names_its_api_version() {
        let mut created = deployment(2);
        record_update(
            None,
            &mut created,
            "kubectl-client-side-apply",
            "apps",
            "Deployment",
            None,
            T0,
        );
        let err = apply_deploy(Some(&created), &deployment(3), "ssa", false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
        );
    }

    #[test]
    fn several_conflicts_are_grouped_by_manager() {
        let first = apply_deploy(None, &deployment(2), "a", false).unwrap();
        let mut changed = deployment(3);
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        let err = apply_deploy(Some(&first), &changed, "b", false).unwrap_err();
        assert_eq!(
            err.message(),
            "Apply failed with 2 conflicts: conflicts with \"a\":\n- .spec.replicas\n- .spec.template.spec.containers[name=\"web\"].image"
        );
    }

    #[test]
    fn force_takes_ownership() {
        let first = apply_deploy(None, &deployment(2), "a", false).unwrap();
        let out = apply_deploy(Some(&first), &deployment(3), "b", true).unwrap();
        assert_eq!(out["spec"]["replicas"], 3);
        assert!(entry(&out, "b", "Apply")["fieldsV1"]["f:spec"]["f:replicas"].is_object());
        assert!(entry(&out, "a", "Apply")["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_none());
        // "a" no longer owns replicas, so dropping it removes nothing of "b"'s.
        let mut smaller = deployment(2);
        smaller["spec"].as_object_mut().unwrap().remove("replicas");
        let again = apply_deploy_at(Some(&out), &smaller, "a", false, T2).unwrap();
        assert_eq!(again["spec"]["replicas"], 3);
    }

    #[test]
    fn managers_of_different_containers_coexist() {
        let first = apply_deploy(None, &deployment(2), "a", false).unwrap();
        let sidecar = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"template": {"spec": {"containers": [
                {"name": "sidecar", "image": "envoy:1"}
            ]}}}
        });
        let both = apply_deploy(Some(&first), &sidecar, "b", false).unwrap();
        let names: Vec<&Value> = both["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["name"])
            .collect();
        assert_eq!(names, [&json!("web"), &json!("sidecar")]);
        assert!(
            entry(&both, "b", "Apply")["fieldsV1"]["f:spec"]["f:template"]["f:spec"]
                ["f:containers"]["k:{\"name\":\"sidecar\"}"]
                .is_object()
        );
        // "a" re-applies without knowing about the sidecar: it stays.
        let again = apply_deploy_at(Some(&both), &deployment(2), "a", false, T2).unwrap();
        assert_eq!(
            again["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        // "b" drops its container: only the sidecar goes.
        let mut empty = sidecar.clone();
        empty["spec"]["template"]["spec"]["containers"] = json!([]);
        let dropped = apply_deploy_at(Some(&again), &empty, "b", false, T2).unwrap();
        let containers = dropped["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap();
        assert_eq!(containers.len(), 1);
        assert_eq!(containers[0]["name"], "web");
    }

    #[test]
    fn scale_then_apply_with_other_replicas_conflicts() {
        let first = apply_deploy(None, &deployment(2), "mgr", false).unwrap();
        let mut scaled = first.clone();
        scaled["spec"]["replicas"] = json!(5);
        record_update(
            Some(&first),
            &mut scaled,
            "kubectl",
            "apps",
            "Deployment",
            None,
            T2,
        );
        let updater = entry(&scaled, "kubectl", "Update");
        assert_eq!(updater["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
        assert_eq!(updater["time"], T2);
        assert!(entry(&scaled, "mgr", "Apply")["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_none());
        let err = apply_deploy(Some(&scaled), &deployment(3), "mgr", false).unwrap_err();
        assert_eq!(
            err.message(),
            "Apply failed with 1 conflict: conflict with \"kubectl\" using apps/v1: .spec.replicas"
        );
        // Applying the scaled value is fine and shares ownership.
        let ok = apply_deploy(Some(&scaled), &deployment(5), "mgr", false).unwrap();
        assert_eq!(ok["spec"]["replicas"], 5);
    }

    #[test]
    fn create_records_added_maps_with_dot() {
        let mut cm = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c", "labels": {"a": "1"}},
            "data": {"k": "v"}
        });
        record_update(None, &mut cm, "kubectl-create", "", "ConfigMap", None, T0);
        let e = entry(&cm, "kubectl-create", "Update");
        assert_eq!(e["apiVersion"], "v1");
        assert_eq!(
            e["fieldsV1"],
            json!({
                "f:data": {".": {}, "f:k": {}},
                "f:metadata": {"f:labels": {".": {}, "f:a": {}}}
            })
        );
    }

    #[test]
    fn update_moves_and_drops_fields() {
        let mut cm = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c"},
            "data": {"a": "1", "b": "2"}
        });
        record_update(None, &mut cm, "one", "", "ConfigMap", None, T0);
        let mut next = cm.clone();
        next["data"] = json!({"a": "changed"});
        record_update(Some(&cm), &mut next, "two", "", "ConfigMap", None, T1);
        assert_eq!(
            entry(&next, "one", "Update")["fieldsV1"],
            json!({"f:data": {}})
        );
        assert_eq!(
            entry(&next, "two", "Update")["fieldsV1"],
            json!({"f:data": {"f:a": {}}})
        );
        // A write that changes nothing leaves the entries alone.
        let mut same = next.clone();
        record_update(Some(&next), &mut same, "three", "", "ConfigMap", None, T2);
        assert_eq!(same, next);
    }

    #[test]
    fn untracked_objects_stay_untracked_until_applied() {
        let old = deployment(2);
        let mut new = deployment(3);
        record_update(
            Some(&old),
            &mut new,
            "kubectl",
            "apps",
            "Deployment",
            None,
            T1,
        );
        assert!(new["metadata"].get("managedFields").is_none());
        // The first apply hands the existing fields to before-first-apply.
        let err = apply_deploy(Some(&new), &deployment(4), "mgr", false).unwrap_err();
        assert_eq!(
            err.message(),
            "Apply failed with 1 conflict: conflict with \"before-first-apply\" using apps/v1: .spec.replicas"
        );
        let out = apply_deploy(Some(&new), &deployment(3), "mgr", false).unwrap();
        assert!(
            entry(&out, "before-first-apply", "Update")["fieldsV1"]["f:spec"]["f:replicas"]
                .is_object()
        );
    }

    #[test]
    fn managed_fields_reset_by_empty_list() {
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
        record_update(None, &mut cm, "one", "", "ConfigMap", None, T0);
        let mut next = cm.clone();
        next["metadata"]["managedFields"] = json!([]);
        record_update(Some(&cm), &mut next, "two", "", "ConfigMap", None, T1);
        assert!(next["metadata"].get("managedFields").is_none());
    }

    #[test]
    fn finalizers_are_a_set() {
        let cm = |finalizers: Value| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "c", "finalizers": finalizers}})
        };
        let first = apply(
            None,
            &cm(json!(["a/x", "b/y"])),
            "m",
            false,
            "",
            "ConfigMap",
            None,
            T0,
        )
        .unwrap();
        assert_eq!(
            entry(&first, "m", "Apply")["fieldsV1"],
            json!({"f:metadata": {"f:finalizers": {"v:\"a/x\"": {}, "v:\"b/y\"": {}}}})
        );
        let other = apply(
            Some(&first),
            &cm(json!(["c/z"])),
            "n",
            false,
            "",
            "ConfigMap",
            None,
            T1,
        )
        .unwrap();
        assert_eq!(
            other["metadata"]["finalizers"],
            json!(["a/x", "b/y", "c/z"])
        );
        let fewer = apply(
            Some(&other),
            &cm(json!(["a/x"])),
            "m",
            false,
            "",
            "ConfigMap",
            None,
            T2,
        )
        .unwrap();
        assert_eq!(fewer["metadata"]["finalizers"], json!(["a/x", "c/z"]));
    }

    #[test]
    fn service_ports_are_keyed_by_port_and_protocol() {
        let svc = json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
        });
        let out = apply(None, &svc, "m", false, "", "Service", None, T0).unwrap();
        assert_eq!(
            entry(&out, "m", "Apply")["fieldsV1"],
            json!({"f:spec": {
                "f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:targetPort": {}}},
                // ServiceSpec.selector is `+mapType=atomic`: owned as a whole.
                "f:selector": {}
            }})
        );
    }

    #[test]
    fn invalid_applied_objects_are_rejected() {
        let mut missing = deployment(1);
        missing["spec"]["template"]["spec"]["containers"] = json!([{"image": "x"}]);
        let err = apply_deploy(None, &missing, "m", false).unwrap_err();
        assert_eq!(
            err.message(),
            "failed to create typed patch object (apps/v1, Kind=Deployment): .spec.template.spec.containers: element 0: associative list with keys has an element that omits key field \"name\" (and doesn't have default value)"
        );
        let mut dup = deployment(1);
        dup["spec"]["template"]["spec"]["containers"] = json!([{"name": "a"}, {"name": "a"}]);
        let err = apply_deploy(None, &dup, "m", false).unwrap_err();
        assert!(
            err.message()
                .ends_with("duplicate entries for key [name=\"a\"]"),
            "{err}"
        );
        let mut managed = deployment(1);
        managed["metadata"]["managedFields"] = json!([{"manager": "x"}]);
        assert_eq!(
            apply_deploy(None, &managed, "m", false).unwrap_err(),
            ApplyError::Invalid("metadata.managedFields must be nil".into())
        );
        let mut wrong = deployment(1);
        wrong["kind"] = json!("StatefulSet");
        assert!(matches!(
            apply_deploy(None, &wrong, "m", false),
            Err(ApplyError::Invalid(_))
        ));
    }

    #[test]
    fn kubectl_takes_over_client_side_applied_fields() {
        let mut created = deployment(2);
        let annotation = format!("{}\n", deployment(2));
        created["metadata"]["annotations"] = json!({ LAST_APPLIED: annotation });
        record_update(
            None,
            &mut created,
            "kubectl-client-side-apply",
            "apps",
            "Deployment",
            None,
            T0,
        );
        // Another manager still conflicts.
        assert!(apply_deploy(Some(&created), &deployment(3), "other", false).is_err());
        // kubectl migrating to server-side apply does not.
        let out = apply_deploy(Some(&created), &deployment(3), "kubectl", false).unwrap();
        assert_eq!(out["spec"]["replicas"], 3);
        let recorded: Value = serde_json::from_str(
            out["metadata"]["annotations"][LAST_APPLIED]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(recorded["spec"]["replicas"], 3);
    }

    #[test]
    fn fields_v1_round_trips() {
        let fields = json!({
            "f:metadata": {"f:finalizers": {".": {}, "v:\"x\"": {}}},
            "f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}}}, "f:x": {"i:0": {}}}
        });
        let set = fields_to_set(&fields).unwrap();
        assert_eq!(set_to_fields(&set), fields);
        assert!(fields_to_set(&json!({"bogus": {}})).is_err());
    }

    #[test]
    fn update_entries_are_capped() {
        let mut cm =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}});
        record_update(
            None,
            &mut cm,
            "creator",
            "",
            "ConfigMap",
            None,
            "2025-01-01T00:00:00Z",
        );
        for i in 0..12 {
            let mut next = cm.clone();
            next["data"][format!("k{i}")] = json!("v");
            record_update(
                Some(&cm),
                &mut next,
                &format!("m{i:02}"),
                "",
                "ConfigMap",
                None,
                &format!("2025-01-01T01:{i:02}:00Z"),
            );
            cm = next;
        }
        let list = entries(&cm);
        assert_eq!(list.len(), 10);
        let ancient = entry(&cm, "ancient-changes", "Update");
        assert!(ancient["fieldsV1"]["f:data"]["f:k0"].is_object());
        assert!(ancient["fieldsV1"]["f:data"]["f:k1"].is_object());
    }

    #[test]
    fn custom_resources_use_deduced_maps() {
        let cr = json!({"apiVersion": "ex.com/v1", "kind": "Widget", "metadata": {"name": "w"},
                        "spec": {"size": 1, "tags": ["a"], "nested": {"x": 1}}});
        let out = apply(None, &cr, "m", false, "ex.com", "Widget", None, T0).unwrap();
        assert_eq!(
            entry(&out, "m", "Apply")["fieldsV1"],
            json!({"f:spec": {"f:nested": {".": {}, "f:x": {}}, "f:size": {}, "f:tags": {}}})
        );
    }

    /// The field set of a whole object, status included.
    fn fields_of(group: &str, kind: &str, object: &Value) -> Value {
        set_to_fields(&Schema::new(group, kind).field_set(object, true).unwrap())
    }

    #[test]
    fn custom_resources_follow_their_schemas_list_types() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "listeners": {"type": "array", "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {
                    "name": {"type": "string"}, "port": {"type": "integer"}}}},
            "hosts": {"type": "array", "x-kubernetes-list-type": "set",
                "items": {"type": "string"}},
            "selector": {"type": "object", "x-kubernetes-map-type": "atomic",
                "additionalProperties": {"type": "string"}},
            "args": {"type": "array", "items": {"type": "string"}}}}}});
        let obj = json!({"apiVersion": "example.com/v1", "kind": "Gateway",
            "metadata": {"name": "g", "finalizers": ["a"]},
            "spec": {"listeners": [{"name": "http", "port": 80}], "hosts": ["a.example"],
                     "selector": {"app": "web"}, "args": ["-v"]}});
        let fields = set_to_fields(
            &Schema::new("example.com", "Gateway")
                .with_custom(Some(&schema))
                .field_set(&obj, true)
                .unwrap(),
        );
        assert_eq!(
            fields["f:spec"],
            json!({
                "f:listeners": {"k:{\"name\":\"http\"}": {".": {}, "f:name": {}, "f:port": {}}},
                "f:hosts": {"v:\"a.example\"": {}},
                "f:selector": {},
                "f:args": {},
            })
        );
        assert_eq!(fields["f:metadata"]["f:finalizers"], json!({"v:\"a\"": {}}));
    }

    #[test]
    fn pod_ips_are_keyed_by_ip() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                         "status": {"podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]}});
        assert_eq!(
            fields_of("", "Pod", &pod)["f:status"]["f:podIPs"],
            json!({
                "k:{\"ip\":\"10.0.0.1\"}": {".": {}, "f:ip": {}},
                "k:{\"ip\":\"fd00::1\"}": {".": {}, "f:ip": {}}
            })
        );
    }

    #[test]
    fn node_addresses_are_keyed_by_type() {
        let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"},
        "status": {"addresses": [
            {"type": "InternalIP", "address": "10.0.0.2"},
            {"type": "Hostname", "address": "n"}
        ]}});
        assert_eq!(
            fields_of("", "Node", &node)["f:status"]["f:addresses"],
            json!({
                "k:{\"type\":\"Hostname\"}": {".": {}, "f:address": {}, "f:type": {}},
                "k:{\"type\":\"InternalIP\"}": {".": {}, "f:address": {}, "f:type": {}}
            })
        );
    }

    #[test]
    fn container_resource_claims_are_keyed_by_name() {
        let mut applied = deployment(1);
        applied["spec"]["template"]["spec"]["containers"][0]["resources"] =
            json!({"claims": [{"name": "gpu"}], "limits": {"cpu": "1"}});
        let out = apply_deploy(None, &applied, "m", false).unwrap();
        let container = &entry(&out, "m", "Apply")["fieldsV1"]["f:spec"]["f:template"]["f:spec"]
            ["f:containers"]["k:{\"name\":\"web\"}"];
        assert_eq!(
            container["f:resources"],
            json!({
                "f:claims": {"k:{\"name\":\"gpu\"}": {".": {}, "f:name": {}}},
                "f:limits": {"f:cpu": {}}
            })
        );
    }

    #[test]
    fn template_labels_are_a_granular_map() {
        let first = apply_deploy(None, &deployment(2), "a", false).unwrap();
        let mut tier = deployment(2);
        tier["spec"]["template"]["metadata"]["labels"] = json!({"tier": "front"});
        tier["spec"].as_object_mut().unwrap().remove("replicas");
        let both = apply_deploy(Some(&first), &tier, "b", false).unwrap();
        assert_eq!(
            both["spec"]["template"]["metadata"]["labels"],
            json!({"app": "web", "tier": "front"})
        );
        assert_eq!(
            entry(&both, "b", "Apply")["fieldsV1"]["f:spec"]["f:template"]["f:metadata"],
            json!({"f:labels": {"f:tier": {}}})
        );
        // Each key has its own owner: changing "a"'s key conflicts with "a" alone.
        tier["spec"]["template"]["metadata"]["labels"]["app"] = json!("other");
        let err = apply_deploy(Some(&both), &tier, "b", false).unwrap_err();
        assert_eq!(
            err.message(),
            "Apply failed with 1 conflict: conflict with \"a\": .spec.template.metadata.labels.app"
        );
    }

    #[test]
    fn job_conditions_are_atomic() {
        let conditions = json!([{"type": "Complete", "status": "True"}]);
        let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
                         "status": {"conditions": conditions}});
        // JobStatus.conditions is `+listType=atomic`, unlike most conditions.
        assert_eq!(
            fields_of("batch", "Job", &job)["f:status"],
            json!({"f:conditions": {}})
        );
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                            "metadata": {"name": "d"}, "status": {"conditions": conditions}});
        assert_eq!(
            fields_of("apps", "Deployment", &deploy)["f:status"]["f:conditions"],
            json!({"k:{\"type\":\"Complete\"}": {".": {}, "f:status": {}, "f:type": {}}})
        );
        // Merging replaces the whole list rather than merging by type.
        let schema = Schema::new("batch", "Job");
        let failed = json!({"status": {"conditions": [{"type": "Failed", "status": "True"}]}});
        let merged = schema.merge(Some(&job), &failed, &mut Vec::new()).unwrap();
        assert_eq!(
            merged["status"]["conditions"],
            failed["status"]["conditions"]
        );
    }
}
