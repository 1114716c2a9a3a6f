//! The verbs on objects: get, list, create, update, patch, delete,
//! deletecollection, and the `status`, `scale`, `binding` and `finalize`
//! subresources.

mod omitempty;

use std::sync::Arc;

use serde_json::{json, Value};

use kedge_config::object::AdmitError;
use kedge_config::selector::{FieldSelector, LabelSelector};

use super::allocator::{self, InUse};
use super::auth::{certificates, node, rbac};
use super::meta::{self, meta_mut, meta_str};
use super::registry::custom::{self, Refusal};
use super::registry::kinds::{Admission, OnCreate};
use super::registry::{self, Resource};
use super::request::{Query, ResourceRequest};
use super::status::{success_status, ApiError, ApiResult};
use super::{fieldmanager, strategic, ApiState};
use crate::store::{Decision, StoreError, Written};

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::from_store(e, "", "", "")
    }
}

/// What a write returns to the handler: the HTTP code and the object.
pub struct Outcome {
    /// 200 or 201 (or 202 for a deletion still in progress).
    pub code: u16,
    /// The resulting object.
    pub object: Value,
}

fn store_err<'a>(r: &'a Resource, name: &str) -> impl Fn(StoreError) -> ApiError + 'a {
    let name = name.to_string();
    move |e| ApiError::from_store(e, r.plural, r.group, &name)
}

fn name_of(req: &ResourceRequest) -> ApiResult<&str> {
    req.name
        .as_deref()
        .ok_or_else(|| ApiError::method_not_allowed("a name is required for this operation"))
}

/// Whether `generation` is kept for this kind (kinds whose spec is acted on
/// by controllers, and every custom resource).
fn tracks_generation(r: &Resource) -> bool {
    r.custom || registry::kinds::of(r).is_some_and(|k| k.generation)
}

// === reads ===

/// GET one object.
pub fn get(state: &ApiState, req: &ResourceRequest) -> ApiResult<Arc<Value>> {
    let name = name_of(req)?;
    let key = req.resource.key(req.namespace.as_deref(), name);
    let obj = state
        .cache
        .get(&key)
        .ok_or_else(|| ApiError::not_found(req.resource.plural, name))?;
    Ok(present(req.resource, obj))
}

/// [`present`] for an owned value.
pub fn present_value(r: &Resource, obj: Value) -> Value {
    custom::present(r, &obj).unwrap_or(obj)
}

/// A stored object as the requested version presents it (custom resources
/// are stored in their storage version).
pub fn present(r: &Resource, obj: Arc<Value>) -> Arc<Value> {
    match custom::present(r, &obj) {
        Some(converted) => Arc::new(converted),
        None => obj,
    }
}

/// Value of a selectable field of an object, or `None` if the field is not
/// supported for the kind (Kubernetes answers 400 for those).
pub fn field_value(r: &Resource, obj: &Value, field: &str) -> Option<Option<String>> {
    let s = |ptr: &str| obj.pointer(ptr).and_then(Value::as_str).map(str::to_string);
    let supported = r.selects(field);
    if !supported {
        return None;
    }
    let ptr = format!("/{}", field.replace('.', "/"));
    let value = match obj.pointer(&ptr) {
        Some(Value::String(v)) => Some(v.clone()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => None,
        // Unset fields select as their zero value.
        None => match field {
            "spec.hostNetwork" | "spec.unschedulable" => Some("false".into()),
            "source" => s("/source/component"),
            _ => Some(String::new()),
        },
    };
    Some(value)
}

/// Parsed list options.
pub struct ListFilter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl ListFilter {
    /// From `labelSelector` and `fieldSelector`.
    pub fn from_query(r: &Resource, q: &Query) -> ApiResult<Self> {
        let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("invalid field selector: {e}")))?;
        for req in fields.requirements() {
            let probe = json!({});
            if field_value(r, &probe, &req.field).is_none() {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {}",
                    req.field
                )));
            }
        }
        Ok(Self { labels, fields })
    }

    /// Whether an object passes both selectors.
    pub fn matches(&self, r: &Resource, obj: &Value) -> bool {
        self.labels.matches(&meta::labels(obj))
            && self.fields.matches(|f| field_value(r, obj, f).flatten())
    }
}

/// A page of a list: items, the revision, and the continue token.
pub struct Page {
    /// Matching objects.
    pub items: Vec<Arc<Value>>,
    /// Their committed JSON, where the cache has it (same order).
    pub raw: Vec<Option<Arc<Vec<u8>>>>,
    /// The revision of the snapshot.
    pub revision: u64,
    /// Token for the next page.
    pub continue_token: Option<String>,
    /// Items left after this page, if cut.
    pub remaining: Option<usize>,
}

/// LIST a collection with selectors and paging.
pub fn list(state: &ApiState, req: &ResourceRequest, q: &Query) -> ApiResult<Page> {
    use base64::Engine;
    let r = req.resource;
    let filter = ListFilter::from_query(r, q)?;
    let prefix = r.namespace_prefix(req.namespace.as_deref());
    let (revision, all) = state.cache.list_raw(&prefix);
    let start_after = match q.non_empty("continue") {
        Some(token) => {
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ApiError::bad_request("invalid continue token"))?;
            Some(raw)
        }
        None => None,
    };
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let mut items = Vec::new();
    let mut raw = Vec::new();
    let mut continue_token = None;
    let mut remaining = None;
    let mut matched_after = 0usize;
    for item in all.iter() {
        let (key, obj) = (&item.key, &item.object);
        if let Some(after) = &start_after {
            if key.as_str() <= after.as_str() {
                continue;
            }
        }
        if !filter.matches(r, obj) {
            continue;
        }
        if let Some(limit) = limit {
            if items.len() == limit {
                matched_after += 1;
                continue;
            }
        }
        match custom::present(r, obj) {
            Some(converted) => {
                items.push(Arc::new(converted));
                raw.push(None);
            }
            None => {
                items.push(obj.clone());
                raw.push(item.raw.clone());
            }
        }
        if limit == Some(items.len()) {
            continue_token =
                Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.as_bytes()));
        }
    }
    if matched_after == 0 {
        continue_token = None;
    } else {
        remaining = Some(matched_after);
    }
    Ok(Page {
        items,
        raw,
        revision,
        continue_token,
        remaining,
    })
}

/// The JSON list of a page as bytes: the envelope, then each item's
/// committed JSON copied as is.
pub fn list_bytes(r: &Resource, page: &Page) -> Vec<u8> {
    let mut metadata = json!({"resourceVersion": page.revision.to_string()});
    if let Some(c) = &page.continue_token {
        metadata["continue"] = json!(c);
    }
    if let Some(n) = page.remaining {
        metadata["remainingItemCount"] = json!(n);
    }
    let head = json!({
        "kind": format!("{}List", r.kind),
        "apiVersion": r.api_version(),
        "metadata": metadata,
    });
    let mut out = serde_json::to_vec(&head).unwrap_or_default();
    // Replace the closing brace with the items array.
    out.pop();
    out.extend_from_slice(b",\"items\":[");
    let total: usize = page.raw.iter().flatten().map(|b| b.len() + 1).sum();
    out.reserve(total + 2);
    for (i, (obj, raw)) in page.items.iter().zip(&page.raw).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match raw {
            Some(b) => out.extend_from_slice(b),
            None => out.extend_from_slice(&serde_json::to_vec(&**obj).unwrap_or_default()),
        }
    }
    out.extend_from_slice(b"]}");
    out
}

// === admission ===

fn admit_error(r: &Resource, name: &str, e: AdmitError) -> ApiError {
    match e {
        AdmitError::Invalid(errs) => ApiError::invalid(r.kind, r.group, name, &errs),
        AdmitError::Decode { path, message } => ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {}{}",
            r.kind,
            r.version,
            r.kind,
            if path.is_empty() {
                String::new()
            } else {
                format!("{path}: ")
            },
            message
        )),
    }
}

/// Decode, default and validate an object of any kind: the built-in kinds
/// through their typed forms, custom resources through their definition's
/// schema, definitions through apiextensions' rules.
fn admit(
    state: &ApiState,
    r: &Resource,
    name: &str,
    obj: Value,
    old: Option<&Value>,
    q: &Query,
) -> ApiResult<Value> {
    if r.custom {
        let version = state
            .registry
            .custom(r)
            .ok_or_else(|| ApiError::not_found(r.plural, name))?;
        let strict = q.get("fieldValidation") == Some("Strict");
        return custom::admit(&version, obj, old, strict).map_err(|e| match e {
            Refusal::Invalid(errs) => ApiError::invalid(r.kind, r.group, name, &errs),
            Refusal::UnknownFields(fields) => ApiError::bad_request(
                custom::schema::strict_decoding_error(&fields).unwrap_or_default(),
            ),
        });
    }
    // A kind written through another version than it is stored in is
    // converted first, then admitted as the stored version.
    let (r, obj) = match registry::conversion::to_storage(r, &obj) {
        Some((stored, converted)) => (stored, converted),
        None => (r, obj),
    };
    match admission(r) {
        Some(Admission::Typed(typed)) => typed.admit(obj).map_err(|e| admit_error(r, name, e)),
        Some(Admission::Rules { admit, .. }) => {
            admit(obj).map_err(|errs| ApiError::invalid(r.kind, r.group, name, &errs))
        }
        None => Ok(obj),
    }
}

/// How a built-in kind's objects are admitted.
fn admission(r: &Resource) -> Option<&'static Admission> {
    registry::kinds::of(r).map(|k| &k.admission)
}

/// Reject unknown fields when the client asked for strict validation.
fn check_fields(r: &Resource, obj: &Value, q: &Query) -> ApiResult<()> {
    if q.get("fieldValidation") != Some("Strict") {
        return Ok(());
    }
    let unknown = match admission(r) {
        Some(Admission::Typed(typed)) => typed.unknown_fields(obj),
        _ => Vec::new(),
    };
    if unknown.is_empty() {
        return Ok(());
    }
    let list = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect::<Vec<_>>()
        .join(", ");
    Err(ApiError::bad_request(format!(
        "strict decoding error: {list}"
    )))
}

/// Check apiVersion/kind of a body against the resource, filling them in when
/// absent.
fn check_type(
    r: &Resource,
    obj: &mut Value,
    expect_kind: &str,
    expect_version: &str,
) -> ApiResult<()> {
    match obj.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => obj["apiVersion"] = json!(expect_version),
        Some(v) if v == expect_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({expect_version})"
            )))
        }
    }
    match obj.get("kind").and_then(Value::as_str) {
        None | Some("") => obj["kind"] = json!(expect_kind),
        Some(k) if k == expect_kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({expect_kind}) for {}",
            r.plural
        )))
        }
    }
    Ok(())
}

/// Check a namespace from the URL against the body's and fill it in.
fn check_namespace(req: &ResourceRequest, obj: &mut Value) -> ApiResult<()> {
    let r = req.resource;
    let m = meta_mut(obj);
    if !r.namespaced {
        m.remove("namespace");
        return Ok(());
    }
    let url_ns = req
        .namespace
        .clone()
        .ok_or_else(|| ApiError::bad_request("a namespace is required for this resource"))?;
    match m.get("namespace").and_then(Value::as_str) {
        None | Some("") => {
            m.insert("namespace".into(), json!(url_ns));
        }
        Some(ns) if ns == url_ns => {}
        Some(_) => return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
    }
    Ok(())
}

/// The namespace must exist and not be terminating for new content.
fn check_namespace_open(state: &ApiState, r: &Resource, ns: Option<&str>) -> ApiResult<()> {
    let (true, Some(ns)) = (r.namespaced, ns) else {
        return Ok(());
    };
    let key = registry::builtin::find("", "v1", "namespaces")
        .expect("namespaces are served")
        .key(None, ns);
    match state.cache.get(&key) {
        None => Err(ApiError::not_found("namespaces", ns)),
        Some(n) if n.pointer("/metadata/deletionTimestamp").is_some() => {
            Err(ApiError::forbidden(format!(
                "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                r.plural,
                meta_str(&n, "name").unwrap_or(ns)
            )))
        }
        Some(_) => Ok(()),
    }
}

/// No new objects of a custom resource whose definition is being deleted.
fn check_definition_open(state: &ApiState, r: &Resource) -> ApiResult<()> {
    match state.registry.custom(r) {
        Some(v) if v.terminating => Err(ApiError::method_not_allowed(
            "create not allowed while custom resource definition is terminating",
        )),
        _ => Ok(()),
    }
}

/// Kind-specific work after validation: status reset on create, pod QoS,
/// Service address allocation, workload status in its Go encoding.
fn prepare(
    state: &ApiState,
    r: &Resource,
    in_use: Option<&InUse>,
    obj: &mut Value,
    old: Option<&Value>,
) -> ApiResult<()> {
    let name = meta_str(obj, "name").unwrap_or("").to_string();
    if old.is_none() {
        match registry::kinds::of(r).map(|k| &k.on_create) {
            Some(OnCreate::AsGiven) => {}
            Some(OnCreate::EmptyStatus) => obj["status"] = json!({}),
            Some(OnCreate::Status(status)) => obj["status"] = status(),
            Some(OnCreate::Prepare(prepare)) => prepare(state, obj)?,
            // A custom resource with a status subresource starts without
            // one: status is written through the subresource only.
            None if r.custom && r.has_status() => {
                if let Some(o) = obj.as_object_mut() {
                    o.remove("status");
                }
            }
            None => {}
        }
    }
    omitempty::normalize_meta(obj);
    omitempty::normalize_status(r.group, r.kind, obj);
    if let Some(in_use) = in_use {
        allocator::allocate(&state.cluster, obj, old, in_use)
            .map_err(|errs| ApiError::invalid(r.kind, r.group, &name, &errs))?;
    }
    Ok(())
}

/// For Services: hold the allocation lock and collect what other Services
/// use. Taken before the store's write lock (never inside it), and held until
/// the write is done so two Services cannot pick the same address.
fn service_addresses<'a>(
    state: &'a ApiState,
    r: &Resource,
    key: &str,
) -> Option<(parking_lot::MutexGuard<'a, ()>, InUse)> {
    if r.kind != "Service" {
        return None;
    }
    let guard = state.alloc.lock();
    let (_, services) = state.cache.list(&r.prefix());
    let in_use = InUse::from_services(services.iter().map(|(k, v)| (k.as_str(), &**v)), key);
    Some((guard, in_use))
}

// === create ===

/// POST a new object.
pub fn create(
    state: &ApiState,
    req: &ResourceRequest,
    q: &Query,
    obj: Value,
) -> ApiResult<Outcome> {
    create_inner(state, req, q, obj, true)
}

fn create_inner(
    state: &ApiState,
    req: &ResourceRequest,
    q: &Query,
    mut obj: Value,
    record: bool,
) -> ApiResult<Outcome> {
    let r = req.resource;
    check_type(r, &mut obj, r.kind, &r.api_version())?;
    check_namespace(req, &mut obj)?;
    check_fields(r, &obj, q)?;
    {
        let m = meta_mut(&mut obj);
        let has_name = m
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        if !has_name {
            match m.get("generateName").and_then(Value::as_str) {
                Some(g) if !g.is_empty() => {
                    let n = meta::generate_name(g);
                    m.insert("name".into(), json!(n));
                }
                _ => {}
            }
        }
    }
    let name = meta_str(&obj, "name").unwrap_or("").to_string();
    // System metadata first: defaulting of some kinds (Job selectors) needs
    // the uid.
    {
        let m = meta_mut(&mut obj);
        for k in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            m.remove(k);
        }
        m.insert("uid".into(), json!(meta::new_uid()));
        m.insert("creationTimestamp".into(), json!(meta::now()));
        if tracks_generation(r) {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
    }
    certificates::prepare_create(req, &mut obj);
    let is_pod = r.group.is_empty() && r.plural == "pods";
    let namespace = req.namespace.clone().unwrap_or_default();
    if is_pod {
        super::admission::limitranger::default_pod(state, &namespace, &mut obj);
    }
    let mut obj = admit(state, r, &name, obj, None, q)?;
    if is_pod {
        super::admission::limitranger::check_pod(state, &namespace, &name, &obj)?;
    }
    authorize_write(state, req, &name, Some(&obj), None)?;
    check_namespace_open(state, r, req.namespace.as_deref())?;
    check_definition_open(state, r)?;
    if record {
        let schema = custom_schema(state, r);
        fieldmanager::record_update(
            None,
            &mut obj,
            manager_of(q),
            r.group,
            r.kind,
            schema.as_ref(),
            &meta::now(),
        );
    }
    let key = r.key(req.namespace.as_deref(), &name);
    let addresses = service_addresses(state, r, &key);
    prepare(state, r, addresses.as_ref().map(|a| &a.1), &mut obj, None)?;
    if r.namespaced {
        let dry_run = q.get("dryRun") == Some("All");
        super::admission::resourcequota::charge(state, r, &namespace, &name, &obj, dry_run)?;
    }
    if q.get("dryRun") == Some("All") {
        return Ok(Outcome {
            code: 201,
            object: obj,
        });
    }
    // Moved out on the first decision; only etcd decides twice, and a
    // create never does (the key is absent or it is AlreadyExists).
    let mut obj = Some(obj);
    let written = state.cache.write(&key, |current| {
        if current.is_some() {
            return Err(StoreError::AlreadyExists);
        }
        obj.take().map(Decision::Put).ok_or(StoreError::Conflict)
    });
    let written = written.map_err(store_err(r, &name))?;
    Ok(Outcome {
        code: 201,
        object: (*written.object().expect("created")).clone(),
    })
}

// === update and patch ===

/// Which part of an object a write may change.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The object except status (for kinds with a status subresource).
    Main,
    /// Only status.
    Status,
}

/// The checks of a write that depend on who makes it and on the object:
/// RBAC's escalation prevention and NodeRestriction. `new` is absent for a
/// delete, `old` for a create.
fn authorize_write(
    state: &ApiState,
    req: &ResourceRequest,
    name: &str,
    new: Option<&Value>,
    old: Option<&Value>,
) -> ApiResult<()> {
    if let Some(new) = new {
        rbac::escalation::check(state, &req.user, req.resource, new, old)?;
        certificates::authorize(state, req, new, old)?;
    }
    node::admit(&req.user, req.resource, name, new, old)
}

/// Merge the writable part of `new` onto `old`, keeping system metadata.
fn merge_part(r: &Resource, part: Part, old: &Value, mut new: Value) -> Value {
    match part {
        Part::Status => {
            let mut out = old.clone();
            out["status"] = new.get("status").cloned().unwrap_or(json!({}));
            // Status writes may not touch the rest; metadata labels and
            // annotations do go through, as in Kubernetes.
            if let Some(m) = new.get("metadata") {
                for k in ["labels", "annotations"] {
                    if let Some(v) = m.get(k) {
                        out["metadata"][k] = v.clone();
                    }
                }
            }
            out
        }
        Part::Main => {
            if r.has_status() {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        if let Some(o) = new.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
            }
            let old_meta = old.get("metadata").cloned().unwrap_or(json!({}));
            let m = meta_mut(&mut new);
            for k in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "namespace",
                "name",
            ] {
                match old_meta.get(k) {
                    Some(v) => {
                        m.insert(k.into(), v.clone());
                    }
                    None => {
                        m.remove(k);
                    }
                }
            }
            new
        }
    }
}

/// Compute, admit and store the new version of an existing object. `change`
/// maps the current object to the desired one; it runs under the store's
/// write lock, so patches always apply to the latest version.
pub fn update_with<F>(
    state: &ApiState,
    req: &ResourceRequest,
    q: &Query,
    part: Part,
    change: F,
) -> ApiResult<Outcome>
where
    F: FnMut(&Value) -> ApiResult<Value>,
{
    update_with_inner(state, req, q, part, Writer::Client, change)
}

/// Who is writing, which decides the checks and bookkeeping of an update.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Writer {
    /// An ordinary update or patch: field ownership recorded, immutable
    /// fields enforced.
    Client,
    /// Server-side apply, which records ownership itself.
    Apply,
    /// The binding subresource: the one write allowed to set a pod's
    /// `spec.nodeName`.
    Binding,
}

fn update_with_inner<F>(
    state: &ApiState,
    req: &ResourceRequest,
    q: &Query,
    part: Part,
    writer: Writer,
    mut change: F,
) -> ApiResult<Outcome>
where
    F: FnMut(&Value) -> ApiResult<Value>,
{
    let r = req.resource;
    let name = name_of(req)?.to_string();
    let key = r.key(req.namespace.as_deref(), &name);
    let dry_run = q.get("dryRun") == Some("All");
    let mut dry_result = None;
    let addresses = service_addresses(state, r, &key);
    let written = state.cache.write(&key, |current| -> ApiResult<Decision> {
        let old = current.ok_or_else(|| ApiError::not_found(r.plural, &name))?;
        // Patches apply to the object as the requested version shows it
        // (a custom resource is stored in its storage version).
        let mut new = match custom::present(r, old) {
            Some(presented) => change(&presented)?,
            None => change(old)?,
        };
        check_type(r, &mut new, r.kind, &r.api_version())?;
        check_namespace(req, &mut new)?;
        if meta_str(&new, "name").is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta_str(&new, "name").unwrap_or("")
            )));
        }
        meta_mut(&mut new).insert("name".into(), json!(name));
        if let Some(rv) = meta_str(&new, "resourceVersion").filter(|s| !s.is_empty()) {
            if Some(rv) != meta_str(old, "resourceVersion") {
                return Err(ApiError::conflict(r.plural, r.group, &name));
            }
        }
        if let Some(uid) = meta_str(&new, "uid").filter(|s| !s.is_empty()) {
            if Some(uid) != meta_str(old, "uid") {
                return Err(ApiError::conflict(r.plural, r.group, &name));
            }
        }
        check_fields(r, &new, q)?;
        let mut new = merge_part(r, part, old, new);
        certificates::prepare_update(req, old, &mut new);
        if let (Some(Admission::Rules { prepare_update, .. }), Part::Main) = (admission(r), part) {
            prepare_update(old, &mut new);
        }
        if writer == Writer::Binding {
            // Binding sets the node and the PodScheduled condition in one
            // write, as the binding subresource does in Kubernetes.
            set_pod_scheduled(&mut new);
        }
        let mut new = admit(state, r, &name, new, Some(old), q)?;
        authorize_write(state, req, &name, Some(&new), Some(old))?;
        let errs = if writer == Writer::Binding {
            Vec::new()
        } else {
            match admission(r) {
                Some(Admission::Typed(typed)) => typed.validate_update(old, &new),
                Some(Admission::Rules {
                    validate_update, ..
                }) => validate_update(old, &new),
                None => Vec::new(),
            }
        };
        if !errs.is_empty() {
            return Err(ApiError::invalid(r.kind, r.group, &name, &errs));
        }
        prepare(
            state,
            r,
            addresses.as_ref().map(|a| &a.1),
            &mut new,
            Some(old),
        )?;
        if writer != Writer::Apply {
            let now = meta::now();
            let schema = custom_schema(state, r);
            fieldmanager::record_update(
                Some(old),
                &mut new,
                manager_of(q),
                r.group,
                r.kind,
                schema.as_ref(),
                &now,
            );
        }
        if tracks_generation(r) && meta::spec_part(&new) != meta::spec_part(old) {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta_mut(&mut new).insert("generation".into(), json!(g + 1));
        }
        // Unchanged apart from the resourceVersion: no write, no event.
        let mut cmp = new.clone();
        meta_mut(&mut cmp).insert(
            "resourceVersion".into(),
            old.pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(Value::Null),
        );
        if cmp == **old {
            return Ok(Decision::Keep);
        }
        // The last finalizer gone from an object being deleted: delete it.
        if new.pointer("/metadata/deletionTimestamp").is_some() && meta::finalizers(&new).is_empty()
        {
            if dry_run {
                dry_result = Some(new);
                return Ok(Decision::Keep);
            }
            return Ok(Decision::Delete);
        }
        if dry_run {
            dry_result = Some(new);
            return Ok(Decision::Keep);
        }
        Ok(Decision::Put(new))
    })?;
    if let Some(obj) = dry_result {
        return Ok(Outcome {
            code: 200,
            object: obj,
        });
    }
    Ok(Outcome {
        code: 200,
        object: (*written.object().expect("updated")).clone(),
    })
}

/// PUT a whole object (or its status).
pub fn update(
    state: &ApiState,
    req: &ResourceRequest,
    q: &Query,
    part: Part,
    obj: Value,
) -> ApiResult<Outcome> {
    update_with(state, req, q, part, move |_| Ok(obj.clone()))
}

/// Apply a patch document of the given Content-Type to `current`.
pub fn apply_patch(
    r: &Resource,
    content_type: &str,
    current: &Value,
    patch: &Value,
) -> ApiResult<Value> {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    match ct {
        "application/json-patch+json" => {
            let p: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            let mut doc = current.clone();
            json_patch::patch(&mut doc, &p)
                .map_err(|e| ApiError::bad_request(format!("the server rejected our request due to an error in our request: {e}")))?;
            Ok(doc)
        }
        "application/merge-patch+json" => {
            let mut doc = current.clone();
            json_patch::merge(&mut doc, patch);
            Ok(doc)
        }
        "application/strategic-merge-patch+json" if r.custom => Err(ApiError::unsupported_media_type(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        )),
        "application/strategic-merge-patch+json" => strategic::apply(current, patch, r.group, r.kind)
            .map_err(|e| ApiError::bad_request(e.to_string())),
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
            // Server-side apply: the applied configuration is merged into
            // the live object with the schema's merge keys.
            strategic::apply(current, patch, r.group, r.kind)
                .map_err(|e| ApiError::bad_request(e.message()))
        }
        other => Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other})"
        ))),
    }
}

/// PATCH an object or its status; server-side apply creates a missing object.
pub fn patch(
    state: &ApiState,
    req: &ResourceRequest,
    q: &Query,
    part: Part,
    content_type: &str,
    body: &[u8],
) -> ApiResult<Outcome> {
    let r = req.resource;
    let is_apply = content_type.starts_with("application/apply-patch");
    let patch: Value = if is_apply {
        serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?
    };
    let name = name_of(req)?.to_string();
    let key = r.key(req.namespace.as_deref(), &name);
    if is_apply {
        return server_side_apply(state, req, q, part, &key, &name, &patch);
    }
    let mut last_err = None;
    // A patch never carries a stale resourceVersion of its own unless the
    // client put one there, so it applies to whatever is current.
    for _ in 0..3 {
        let res = update_with(state, req, q, part, |current| {
            // Status patches too see the whole object, as in Kubernetes.
            let mut patched = apply_patch(r, content_type, current, &patch)?;
            meta_mut(&mut patched).remove("managedFields");
            if let Some(m) = current.pointer("/metadata/managedFields") {
                meta_mut(&mut patched).insert("managedFields".into(), m.clone());
            }
            if patch.pointer("/metadata/resourceVersion").is_none() {
                meta_mut(&mut patched).remove("resourceVersion");
            }
            Ok(patched)
        });
        match res {
            Err(e)
                if e.reason == "Conflict"
                    && patch.pointer("/metadata/resourceVersion").is_none() =>
            {
                last_err = Some(e)
            }
            other => return other,
        }
    }
    Err(last_err.unwrap_or_else(|| ApiError::internal("patch retries exhausted")))
}

/// Server-side apply: merge the applied configuration with field ownership
/// (`metadata.managedFields`); creates the object when it does not exist.
fn server_side_apply(
    state: &ApiState,
    req: &ResourceRequest,
    q: &Query,
    part: Part,
    key: &str,
    name: &str,
    applied: &Value,
) -> ApiResult<Outcome> {
    let r = req.resource;
    let manager = q.non_empty("fieldManager").ok_or_else(|| {
        ApiError::invalid(
            r.kind,
            r.group,
            name,
            &[kedge_config::validation::FieldError {
                kind: kedge_config::validation::FieldErrorKind::Required,
                field: "fieldManager".into(),
                value: None,
                detail: "is required for apply patch".into(),
            }],
        )
    })?;
    let force = q.flag("force");
    let schema = custom_schema(state, r);
    let apply_err = |e: fieldmanager::ApplyError| match e {
        fieldmanager::ApplyError::Conflicts(conflicts) => ApiError {
            code: 409,
            reason: "Conflict",
            message: fieldmanager::ApplyError::Conflicts(conflicts.clone()).message(),
            details: Some(json!({
                "causes": conflicts.iter().map(|c| json!({
                    "reason": "FieldManagerConflict",
                    "message": c.message(),
                    "field": c.field,
                })).collect::<Vec<_>>(),
            })),
        },
        fieldmanager::ApplyError::Invalid(m) => ApiError::bad_request(m),
    };
    if part == Part::Main && state.cache.get(key).is_none() {
        let mut applied = applied.clone();
        meta_mut(&mut applied).insert("name".into(), json!(name));
        let obj = fieldmanager::apply(
            None,
            &applied,
            manager,
            force,
            r.group,
            r.kind,
            schema.as_ref(),
            &meta::now(),
        )
        .map_err(apply_err)?;
        return create_inner(state, req, q, obj, false);
    }
    update_with_inner(state, req, q, part, Writer::Apply, |current| {
        let mut merged = fieldmanager::apply(
            Some(current),
            applied,
            manager,
            force,
            r.group,
            r.kind,
            schema.as_ref(),
            &meta::now(),
        )
        .map_err(apply_err)?;
        meta_mut(&mut merged).remove("resourceVersion");
        Ok(merged)
    })
}

/// A custom resource's structural schema, for the field manager's list types.
fn custom_schema(state: &ApiState, r: &Resource) -> Option<Value> {
    state.registry.custom(r).and_then(|v| v.schema.clone())
}

/// The field manager of a write: the `fieldManager` parameter, or the
/// client's name from its User-Agent as Kubernetes derives it.
fn manager_of(q: &Query) -> &str {
    q.non_empty("fieldManager").unwrap_or("unknown")
}

// === delete ===

/// DELETE one object, honouring finalizers and graceful pod deletion.
pub fn delete(
    state: &ApiState,
    req: &ResourceRequest,
    q: &Query,
    options: &Value,
) -> ApiResult<Outcome> {
    let r = req.resource;
    let name = name_of(req)?.to_string();
    let key = r.key(req.namespace.as_deref(), &name);
    let grace = options
        .get("gracePeriodSeconds")
        .and_then(Value::as_i64)
        .or_else(|| q.get("gracePeriodSeconds").and_then(|g| g.parse().ok()));
    let dry_run = q.get("dryRun") == Some("All")
        || options
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    let preconditions = options.get("preconditions").cloned().unwrap_or(json!({}));
    // Orphan and Foreground deletion hand the dependents to the garbage
    // collector through a finalizer; Background (the default) deletes the
    // owner at once and the collector removes dependents afterwards.
    let policy = options
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .or_else(|| q.get("propagationPolicy"))
        .map(str::to_string)
        .or_else(|| {
            (options.get("orphanDependents") == Some(&json!(true))).then(|| "Orphan".to_string())
        });
    let gc_finalizer = match policy.as_deref() {
        Some("Orphan") => Some("orphan"),
        Some("Foreground") => Some("foregroundDeletion"),
        Some("Background") | None => None,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "DeleteOptions.propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            )))
        }
    };
    let mut code = 200;
    let mut dry_result = None;
    let written = state.cache.write(&key, |current| -> ApiResult<Decision> {
        let old = current.ok_or_else(|| ApiError::not_found(r.plural, &name))?;
        authorize_write(state, req, &name, None, Some(old))?;
        if let Some(uid) = preconditions.get("uid").and_then(Value::as_str) {
            if Some(uid) != meta_str(old, "uid") {
                return Err(ApiError::conflict(r.plural, r.group, &name));
            }
        }
        if let Some(rv) = preconditions.get("resourceVersion").and_then(Value::as_str) {
            if Some(rv) != meta_str(old, "resourceVersion") {
                return Err(ApiError::conflict(r.plural, r.group, &name));
            }
        }
        let mut obj = (**old).clone();
        if let Some(f) = gc_finalizer {
            let mut list = meta::finalizers(&obj);
            if !list.iter().any(|x| x == f) {
                list.push(f.to_string());
                meta_mut(&mut obj).insert("finalizers".into(), json!(list));
            }
        }
        let already = obj.pointer("/metadata/deletionTimestamp").is_some();
        let has_finalizers = !meta::finalizers(&obj).is_empty()
            || (r.kind == "Namespace"
                && obj
                    .pointer("/spec/finalizers")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty()));
        // Pods on a node end through their kubelet: mark them and let it
        // finish after the grace period.
        let pod_grace = if r.kind == "Pod" {
            let bound = obj
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            let phase = obj
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("");
            let terminal = phase == "Succeeded" || phase == "Failed";
            let g = grace.unwrap_or_else(|| {
                obj.pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or(30)
            });
            (bound && !terminal && g > 0).then_some(g)
        } else {
            None
        };
        if has_finalizers || pod_grace.is_some() {
            if already && pod_grace.is_none() {
                // A repeated delete may only add a collector finalizer.
                return Ok(if obj == **old {
                    Decision::Keep
                } else {
                    Decision::Put(obj)
                });
            }
            let now = jiff::Timestamp::now();
            let g = pod_grace.unwrap_or(0);
            let m = meta_mut(&mut obj);
            if !already || pod_grace.is_some() {
                let at = now + jiff::SignedDuration::from_secs(g);
                m.insert("deletionTimestamp".into(), json!(meta::format_time(at)));
                m.insert("deletionGracePeriodSeconds".into(), json!(g));
            }
            if r.kind == "Namespace" {
                obj["status"]["phase"] = json!("Terminating");
            }
            code = 200;
            if dry_run {
                dry_result = Some(obj);
                return Ok(Decision::Keep);
            }
            return Ok(Decision::Put(obj));
        }
        if dry_run {
            dry_result = Some(obj);
            return Ok(Decision::Keep);
        }
        Ok(Decision::Delete)
    })?;
    if let Some(obj) = dry_result {
        return Ok(Outcome { code, object: obj });
    }
    let object = match written {
        Written::Changed(e) => (**e.object()).clone(),
        Written::Unchanged(o) => o.map(|o| (*o).clone()).unwrap_or(json!({})),
    };
    Ok(Outcome { code, object })
}

/// Delete (in the background) every object of `r` below `prefix` that is
/// not being deleted already, as the server's own lifecycles do when a
/// namespace or a definition goes; returns how many objects are still
/// there, those being deleted included.
pub fn delete_all_below(state: &ApiState, r: &'static Resource, prefix: &str) -> ApiResult<usize> {
    let (_, items) = state.cache.list(prefix);
    let q = Query::default();
    let remaining = items.len();
    for (_, obj) in items {
        if obj.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let req = ResourceRequest {
            resource: r,
            namespace: meta_str(&obj, "namespace").map(str::to_string),
            name: meta_str(&obj, "name").map(str::to_string),
            subresource: None,
            legacy_watch: false,
            user: crate::apiserver::auth::authn::UserInfo::apiserver(),
        };
        match delete(state, &req, &q, &json!({"propagationPolicy": "Background"})) {
            Ok(_) => {}
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(remaining)
}

/// DELETE a collection: every object matching the selectors.
pub fn delete_collection(
    state: &ApiState,
    req: &ResourceRequest,
    q: &Query,
    options: &Value,
) -> ApiResult<Value> {
    let page = list(state, req, q)?;
    let mut items = Vec::new();
    for obj in page.items {
        let Some(name) = meta_str(&obj, "name") else {
            continue;
        };
        let one = ResourceRequest {
            resource: req.resource,
            namespace: meta_str(&obj, "namespace").map(str::to_string),
            name: Some(name.to_string()),
            subresource: None,
            legacy_watch: false,
            user: req.user.clone(),
        };
        match delete(state, &one, q, options) {
            Ok(o) => items.push(o.object),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let r = req.resource;
    Ok(json!({
        "kind": format!("{}List", r.kind),
        "apiVersion": r.api_version(),
        "metadata": {"resourceVersion": state.cache.revision().to_string()},
        "items": items,
    }))
}

// === subresources ===

/// The autoscaling/v1 Scale of a scalable object.
pub fn scale_of(state: &ApiState, r: &Resource, obj: &Value) -> Value {
    let m = obj.get("metadata").cloned().unwrap_or(json!({}));
    let (spec_replicas, status_replicas, selector) = match scale_paths(state, r) {
        // A custom resource says where its replicas and selector (a
        // string) are.
        Some(p) => (
            custom::read_path(obj, &p.spec_replicas).cloned(),
            custom::read_path(obj, &p.status_replicas).cloned(),
            p.label_selector
                .as_deref()
                .and_then(|s| custom::read_path(obj, s))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        ),
        None => (
            obj.pointer("/spec/replicas").cloned(),
            obj.pointer("/status/replicas").cloned(),
            obj.pointer("/spec/selector")
                .map(|s| match r.kind {
                    // A plain label map, not a LabelSelector.
                    "ReplicationController" => selector_string(&json!({ "matchLabels": s })),
                    _ => selector_string(s),
                })
                .unwrap_or_default(),
        ),
    };
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m.get("name"),
            "namespace": m.get("namespace"),
            "uid": m.get("uid"),
            "resourceVersion": m.get("resourceVersion"),
            "creationTimestamp": m.get("creationTimestamp"),
        },
        "spec": {"replicas": spec_replicas.unwrap_or(json!(0))},
        "status": {
            "replicas": status_replicas.unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

/// Where a custom resource's scale subresource reads and writes.
fn scale_paths(state: &ApiState, r: &Resource) -> Option<custom::ScalePaths> {
    state.registry.custom(r).and_then(|v| v.scale.clone())
}

/// A metav1.LabelSelector in its string form (`app=web,tier in (a,b)`).
fn selector_string(sel: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            parts.push(format!("{k}={}", v.as_str().unwrap_or("")));
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                "In" => parts.push(format!("{key} in ({})", values.join(","))),
                "NotIn" => parts.push(format!("{key} notin ({})", values.join(","))),
                "Exists" => parts.push(key.to_string()),
                "DoesNotExist" => parts.push(format!("!{key}")),
                _ => {}
            }
        }
    }
    parts.join(",")
}

/// Write a new Scale: the replicas go into the object's spec.
pub fn update_scale<F>(
    state: &ApiState,
    req: &ResourceRequest,
    q: &Query,
    mut change: F,
) -> ApiResult<Value>
where
    F: FnMut(&Value) -> ApiResult<Value>,
{
    let r = req.resource;
    let name = name_of(req)?.to_string();
    let out = update_with(state, req, q, Part::Main, |current| {
        let scale = change(&scale_of(state, r, current))?;
        if let Some(rv) = scale
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
        {
            if !rv.is_empty() && Some(rv) != meta_str(current, "resourceVersion") {
                return Err(ApiError::conflict(r.plural, r.group, &name));
            }
        }
        let replicas = scale
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if replicas < 0 {
            return Err(ApiError::invalid(
                "Scale",
                "autoscaling",
                &name,
                &[kedge_config::validation::FieldError {
                    kind: kedge_config::validation::FieldErrorKind::Invalid,
                    field: "spec.replicas".into(),
                    value: Some(replicas.to_string()),
                    detail: "must be greater than or equal to 0".into(),
                }],
            ));
        }
        let mut new = current.clone();
        match scale_paths(state, r) {
            Some(p) => custom::write_path(&mut new, &p.spec_replicas, json!(replicas)),
            None => new["spec"]["replicas"] = json!(replicas),
        }
        meta_mut(&mut new).remove("resourceVersion");
        Ok(new)
    })?;
    Ok(scale_of(state, r, &out.object))
}

fn set_pod_scheduled(pod: &mut Value) {
    let mut conds: Vec<Value> = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    conds.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
    conds.push(json!({
        "type": "PodScheduled",
        "status": "True",
        "lastProbeTime": null,
        "lastTransitionTime": meta::now(),
    }));
    if !pod.get("status").is_some_and(Value::is_object) {
        pod["status"] = json!({});
    }
    pod["status"]["conditions"] = json!(conds);
}

/// POST pods/<name>/binding: assign the pod to a node.
pub fn bind(
    state: &ApiState,
    req: &ResourceRequest,
    q: &Query,
    binding: &Value,
) -> ApiResult<Value> {
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("binding target name is required"))?
        .to_string();
    let name = name_of(req)?.to_string();
    update_with_inner(state, req, q, Part::Main, Writer::Binding, |current| {
        if let Some(existing) = current
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            return Err(ApiError {
                code: 409,
                reason: "Conflict",
                message: format!("Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is already assigned to node \"{existing}\""),
                details: None,
            });
        }
        if current.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(ApiError::conflict("pods/binding", "", &name));
        }
        let mut new = current.clone();
        new["spec"]["nodeName"] = json!(node);
        meta_mut(&mut new).remove("resourceVersion");
        Ok(new)
    })?;
    Ok(success_status(json!({})))
}

/// PUT namespaces/<name>/finalize: replace `spec.finalizers`.
pub fn finalize_namespace(
    state: &ApiState,
    req: &ResourceRequest,
    q: &Query,
    body: Value,
) -> ApiResult<Outcome> {
    let finalizers = body
        .pointer("/spec/finalizers")
        .cloned()
        .unwrap_or(json!([]));
    let r = req.resource;
    let name = name_of(req)?.to_string();
    let key = r.key(None, &name);
    let _ = q;
    let written = state.cache.write(&key, |current| -> ApiResult<Decision> {
        let old = current.ok_or_else(|| ApiError::not_found(r.plural, &name))?;
        let mut new = (**old).clone();
        new["spec"]["finalizers"] = finalizers.clone();
        let empty = new["spec"]["finalizers"]
            .as_array()
            .is_none_or(|a| a.is_empty());
        if empty
            && new.pointer("/metadata/deletionTimestamp").is_some()
            && meta::finalizers(&new).is_empty()
        {
            return Ok(Decision::Delete);
        }
        Ok(Decision::Put(new))
    })?;
    Ok(Outcome {
        code: 200,
        object: written.object().map(|o| (*o).clone()).unwrap_or(json!({})),
    })
}

/// The numeric resourceVersion a request names, if any.
pub fn requested_revision(q: &Query) -> ApiResult<Option<u64>> {
    match q.non_empty("resourceVersion") {
        None => Ok(None),
        Some(rv) => rv
            .parse::<u64>()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}"))),
    }
}
