//! `apiextensions.k8s.io/v1` CustomResourceDefinition defaulting, validation and the status the
//! naming and establishing controllers give it, worded as kube-apiserver words them.
//!
//! kube-apiserver validates the *internal* form of a CRD, so paths and values follow it:
//! per-version `subresources` identical in every version are checked at `spec.subresources`,
//! the webhook client config at `spec.conversion.webhookClientConfig`, `spec.version` (the first
//! version's name) is checked again, and struct values render as Go's `json.Marshal` of
//! internal types (`{"Name":"v1","Served":true,…}`). Schema and printer-column checks live in
//! other modules.

use kedge_config::validation::{go_quote, is_dns1035_label, is_dns1123_subdomain, FieldError};
use serde_json::{json, Map, Value};

static NULL: Value = Value::Null;

/// `v[k1][k2]…`, or null when any step is missing or not an object.
fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| v.get(k).unwrap_or(&NULL))
}

/// A string field, empty when absent or not a string (Go's zero value).
fn st<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).as_str().unwrap_or("")
}

fn arr(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn strs(v: &Value) -> Vec<&str> {
    arr(v).iter().map(|x| x.as_str().unwrap_or("")).collect()
}

fn truthy(v: &Value) -> bool {
    v.as_bool().unwrap_or(false)
}

/// Go treats an absent pointer and JSON `null` alike.
fn present(v: &Value) -> bool {
    !v.is_null()
}

/// Fills what `SetObjectDefaults_CustomResourceDefinition` fills (v1 `defaults.go`).
pub fn apply_defaults(crd: &mut Value) {
    let Some(obj) = crd.as_object_mut() else {
        return;
    };
    let spec = obj.entry("spec").or_insert_with(|| json!({}));
    if let Some(spec) = spec.as_object_mut() {
        let names = spec.entry("names").or_insert_with(|| json!({}));
        if let Some(names) = names.as_object_mut() {
            let kind = names
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if names
                .get("singular")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                names.insert("singular".into(), Value::String(kind.to_lowercase()));
            }
            if names
                .get("listKind")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
                && !kind.is_empty()
            {
                names.insert("listKind".into(), Value::String(format!("{kind}List")));
            }
        }
        if spec.get("conversion").is_none_or(Value::is_null) {
            spec.insert("conversion".into(), json!({"strategy": "None"}));
        }
        if let Some(svc) = spec
            .get_mut("conversion")
            .and_then(|c| c.pointer_mut("/webhook/clientConfig/service"))
            .and_then(Value::as_object_mut)
        {
            svc.entry("port").or_insert(json!(443));
        }
    }
    let storage = storage_version(&obj["spec"]).map(str::to_string);
    let status = obj.entry("status").or_insert_with(|| json!({}));
    if let (Some(status), Some(v)) = (status.as_object_mut(), storage) {
        if strs(status.get("storedVersions").unwrap_or(&NULL)).is_empty() {
            status.insert("storedVersions".into(), json!([v]));
        }
    }
}

fn storage_version(spec: &Value) -> Option<&str> {
    arr(at(spec, &["versions"]))
        .iter()
        .find(|v| truthy(at(v, &["storage"])))
        .map(|v| st(v, &["name"]))
}

/// What the registry does before validating a create: status reset, storage version recorded.
pub fn prepare_for_create(crd: &mut Value) {
    let Some(obj) = crd.as_object_mut() else {
        return;
    };
    let stored: Vec<Value> = obj
        .get("spec")
        .and_then(storage_version)
        .map(|v| vec![json!(v)])
        .unwrap_or_default();
    let mut status = Map::new();
    if !stored.is_empty() {
        status.insert("storedVersions".into(), Value::Array(stored));
    }
    obj.insert("status".into(), Value::Object(status));
}

/// What the registry does before validating an update: the old status is kept and the new
/// storage version is added to `storedVersions`.
pub fn prepare_for_update(old: &Value, new: &mut Value) {
    let Some(obj) = new.as_object_mut() else {
        return;
    };
    let mut status = at(old, &["status"]).clone();
    if !status.is_object() {
        status = json!({});
    }
    if let Some(v) = obj.get("spec").and_then(storage_version) {
        if !strs(at(&status, &["storedVersions"])).contains(&v) {
            let mut sv: Vec<Value> = arr(at(&status, &["storedVersions"])).to_vec();
            sv.push(json!(v));
            status["storedVersions"] = Value::Array(sv);
        }
    }
    obj.insert("status".into(), status);
}

/// Options that differ between create and update (`validationOptions`).
struct Opts {
    require_schema: bool,
    require_recognized_review_version: bool,
}

/// `ValidateCustomResourceDefinition`: run after [`apply_defaults`] and [`prepare_for_create`].
pub fn validate(crd: &Value) -> Vec<FieldError> {
    let mut errs = validate_meta(crd);
    let opts = Opts {
        require_schema: true,
        require_recognized_review_version: true,
    };
    errs.extend(validate_spec(at(crd, &["spec"]), &opts));
    errs.extend(validate_status(crd));
    errs.extend(validate_api_approval(crd, None));
    errs.extend(validate_preserve_unknown_fields(crd, None));
    errs
}

/// `ValidateCustomResourceDefinitionUpdate`: run after [`prepare_for_update`].
pub fn validate_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let (name, old_name) = (
        st(new, &["metadata", "name"]),
        st(old, &["metadata", "name"]),
    );
    if name != old_name {
        errs.push(FieldError::invalid_str(
            "metadata.name",
            name,
            "field is immutable",
        ));
    }
    let old_spec = at(old, &["spec"]);
    let old_reviews = strs(at(
        old_spec,
        &["conversion", "webhook", "conversionReviewVersions"],
    ));
    let opts = Opts {
        require_schema: versions_all_have_schema(old_spec),
        require_recognized_review_version: old_reviews.is_empty()
            || old_reviews.iter().any(|v| *v == "v1" || *v == "v1beta1"),
    };
    let spec = at(new, &["spec"]);
    errs.extend(validate_spec(spec, &opts));
    if condition_true(old, "Established") {
        for f in [&["scope"][..], &["names", "kind"]] {
            errs.extend(immutable(spec, old_spec, f));
        }
    }
    for f in [&["group"][..], &["names", "plural"]] {
        errs.extend(immutable(spec, old_spec, f));
    }
    errs.extend(validate_status(new));
    errs.extend(validate_api_approval(new, Some(old)));
    errs.extend(validate_preserve_unknown_fields(new, Some(old)));
    errs
}

fn immutable(spec: &Value, old_spec: &Value, f: &[&str]) -> Option<FieldError> {
    let (new, old) = (st(spec, f), st(old_spec, f));
    (new != old).then(|| {
        FieldError::invalid(
            format!("spec.{}", f.join(".")),
            gj_str(new),
            "field is immutable",
        )
    })
}

fn versions_all_have_schema(spec: &Value) -> bool {
    arr(at(spec, &["versions"]))
        .iter()
        .all(|v| present(at(v, &["schema", "openAPIV3Schema"])))
}

fn condition_true(crd: &Value, ty: &str) -> bool {
    arr(at(crd, &["status", "conditions"]))
        .iter()
        .find(|c| st(c, &["type"]) == ty)
        .is_some_and(|c| st(c, &["status"]) == "True")
}

/// The object-meta part that depends on the CRD: name format and `<plural>.<group>`.
fn validate_meta(crd: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let required = format!(
        "{}.{}",
        st(crd, &["spec", "names", "plural"]),
        st(crd, &["spec", "group"])
    );
    let check = |name: &str, prefix: bool| {
        let masked = match name.strip_suffix('-') {
            Some(stem) if prefix && name.len() > 1 => format!("{stem}a"),
            _ => name.to_string(),
        };
        let mut msgs = is_dns1123_subdomain(&masked);
        if name != required {
            msgs.push("must be spec.names.plural+\".\"+spec.group".to_string());
        }
        msgs
    };
    let generate = st(crd, &["metadata", "generateName"]);
    if !generate.is_empty() {
        for m in check(generate, true) {
            errs.push(FieldError::invalid_str(
                "metadata.generateName",
                generate,
                m,
            ));
        }
    }
    let name = st(crd, &["metadata", "name"]);
    if name.is_empty() {
        if generate.is_empty() {
            errs.push(FieldError::required(
                "metadata.name",
                "name or generateName is required",
            ));
        }
    } else {
        for m in check(name, false) {
            errs.push(FieldError::invalid_str("metadata.name", name, m));
        }
    }
    if !st(crd, &["metadata", "namespace"]).is_empty() {
        errs.push(FieldError::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }
    errs
}

fn dns1035(path: String, value: &str, errs: &mut Vec<FieldError>) {
    let msgs = is_dns1035_label(value);
    if !msgs.is_empty() {
        errs.push(FieldError::invalid_str(path, value, msgs.join(",")));
    }
}

fn validate_spec(spec: &Value, opts: &Opts) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let group = st(spec, &["group"]);
    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    } else if let msgs @ [_, ..] = is_dns1123_subdomain(group).as_slice() {
        errs.push(FieldError::invalid_str("spec.group", group, msgs.join(",")));
    } else if !group.contains('.') {
        errs.push(FieldError::invalid_str(
            "spec.group",
            group,
            "should be a domain with at least one dot",
        ));
    }
    match st(spec, &["scope"]) {
        "" => errs.push(FieldError::required("spec.scope", "")),
        "Cluster" | "Namespaced" => {}
        s => errs.push(FieldError::not_supported(
            "spec.scope",
            s,
            &["Cluster", "Namespaced"],
        )),
    }
    let versions = arr(at(spec, &["versions"]));
    let preserve = truthy(at(spec, &["preserveUnknownFields"]));
    // v1 -> internal conversion hoists per-version values identical in every version.
    let hoisted = |k: &str| {
        versions
            .iter()
            .all(|v| at(v, &[k]) == at(&versions[0], &[k]))
    };
    let (schema_top, sub_top) = (hoisted("schema"), hoisted("subresources"));
    let (cols_top, sel_top) = (
        hoisted("additionalPrinterColumns"),
        hoisted("selectableFields"),
    );
    let top_schema = !versions.is_empty()
        && schema_top
        && present(at(&versions[0], &["schema", "openAPIV3Schema"]));
    if !top_schema && (opts.require_schema || !preserve) {
        for (i, v) in versions.iter().enumerate() {
            if present(at(v, &["schema", "openAPIV3Schema"])) {
                continue;
            }
            let p = format!("spec.versions[{i}].schema.openAPIV3Schema");
            if opts.require_schema {
                errs.push(FieldError::required(p, ""));
            } else if truthy(at(v, &["served"])) {
                errs.push(FieldError::required(
                    p,
                    "because otherwise all fields are pruned",
                ));
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    let mut unique = true;
    for (i, v) in versions.iter().enumerate() {
        let name = st(v, &["name"]);
        unique &= seen.insert(name);
        dns1035(format!("spec.versions[{i}].name"), name, &mut errs);
        let warning = at(v, &["deprecationWarning"]);
        for m in deprecation_warning_errors(truthy(at(v, &["deprecated"])), warning.as_str()) {
            errs.push(FieldError::invalid(
                format!("spec.versions[{i}].deprecationWarning"),
                gj(warning),
                m,
            ));
        }
        if !sub_top {
            errs.extend(validate_subresources(
                at(v, &["subresources"]),
                &format!("spec.versions[{i}].subresources"),
            ));
        }
    }
    let storage_count = versions
        .iter()
        .filter(|v| truthy(at(v, &["storage"])))
        .count();
    let rendered = || render_versions(versions, [schema_top, sub_top, cols_top, sel_top]);
    if !unique {
        errs.push(FieldError::invalid(
            "spec.versions",
            rendered(),
            "must contain unique version names",
        ));
    }
    if storage_count != 1 {
        errs.push(FieldError::invalid(
            "spec.versions",
            rendered(),
            "must have exactly one version marked as storage version",
        ));
    }
    if let Some(first) = versions
        .first()
        .map(|v| st(v, &["name"]))
        .filter(|n| !n.is_empty())
    {
        dns1035("spec.version".into(), first, &mut errs);
    }
    for f in ["plural", "singular", "kind", "listKind"] {
        if st(spec, &["names", f]).is_empty() {
            errs.push(FieldError::required(format!("spec.names.{f}"), ""));
        }
    }
    errs.extend(validate_names(at(spec, &["names"]), "spec.names"));
    if sub_top && !versions.is_empty() {
        errs.extend(validate_subresources(
            at(&versions[0], &["subresources"]),
            "spec.subresources",
        ));
    }
    let conversion = at(spec, &["conversion"]);
    let strategy = st(conversion, &["strategy"]);
    if present(conversion) && strategy != "None" && preserve {
        errs.push(FieldError::invalid(
            "spec.conversion.strategy",
            gj_str(strategy),
            "must be None if spec.preserveUnknownFields is true",
        ));
    }
    if present(conversion) {
        errs.extend(validate_conversion(
            conversion,
            opts.require_recognized_review_version,
        ));
    }
    errs
}

/// `validateDeprecationWarning`; Go's `unicode.IsPrint` approximated by control, format and
/// non-ASCII space characters.
fn deprecation_warning_errors(deprecated: bool, warning: Option<&str>) -> Vec<String> {
    let Some(w) = warning else { return vec![] };
    if !deprecated {
        return vec!["can only be set for deprecated versions".into()];
    }
    let mut out = Vec::new();
    if w.len() > 256 {
        out.push("must be <= 256 characters long".into());
    }
    if w.is_empty() {
        out.push("must not be an empty string".into());
    }
    let unprintable = |c: char| {
        c.is_control()
            || (c.is_whitespace() && c != ' ')
            || matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{2060}'..='\u{2064}' | '\u{feff}')
    };
    if let Some((i, _)) = w.char_indices().find(|&(_, c)| unprintable(c)) {
        out.push(format!("must only contain printable UTF-8 characters; non-printable character found at index {i}"));
    }
    out
}

/// `ValidateCustomResourceDefinitionNames`, for `spec.names` and `status.acceptedNames`.
fn validate_names(names: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for f in ["plural", "singular"] {
        let v = st(names, &[f]);
        if !v.is_empty() {
            dns1035(format!("{path}.{f}"), v, &mut errs);
        }
    }
    for f in ["kind", "listKind"] {
        let v = st(names, &[f]);
        let msgs = is_dns1035_label(&v.to_lowercase());
        if !v.is_empty() && !msgs.is_empty() {
            let m = format!(
                "may have mixed case, but should otherwise match: {}",
                msgs.join(",")
            );
            errs.push(FieldError::invalid_str(format!("{path}.{f}"), v, m));
        }
    }
    for (i, s) in strs(at(names, &["shortNames"])).into_iter().enumerate() {
        dns1035(format!("{path}.shortNames[{i}]"), s, &mut errs);
    }
    let (kind, list_kind) = (st(names, &["kind"]), st(names, &["listKind"]));
    if !kind.is_empty() && kind == list_kind {
        errs.push(FieldError::invalid_str(
            format!("{path}.listKind"),
            list_kind,
            "kind and listKind may not be the same",
        ));
    }
    for (i, c) in strs(at(names, &["categories"])).into_iter().enumerate() {
        dns1035(format!("{path}.categories[{i}]"), c, &mut errs);
    }
    errs
}

/// `ValidateCustomResourceDefinitionSubresources`: the scale paths.
fn validate_subresources(sub: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let scale = at(sub, &["scale"]);
    if !present(scale) {
        return errs;
    }
    for (f, prefix) in [
        ("specReplicasPath", ".spec."),
        ("statusReplicasPath", ".status."),
    ] {
        let p = format!("{path}.scale.{f}");
        let v = st(scale, &[f]);
        if v.is_empty() {
            errs.push(FieldError::required(p, ""));
        } else if !v.starts_with('.') {
            errs.push(FieldError::invalid_str(
                p,
                v,
                "must be a simple json path starting with .",
            ));
        } else if !v.starts_with(prefix) {
            let under = if prefix == ".spec." {
                ".spec"
            } else {
                ".status"
            };
            errs.push(FieldError::invalid_str(
                p,
                v,
                format!("should be a json path under {under}"),
            ));
        }
    }
    let v = st(scale, &["labelSelectorPath"]);
    let p = format!("{path}.scale.labelSelectorPath");
    if v.is_empty() {
    } else if !v.starts_with('.') {
        errs.push(FieldError::invalid_str(
            p,
            v,
            "must be a simple json path starting with .",
        ));
    } else if !v.starts_with(".spec.") && !v.starts_with(".status.") {
        errs.push(FieldError::invalid(
            p,
            gj_str(v),
            "should be a json path under either .spec or .status",
        ));
    }
    errs
}

/// `validateCustomResourceConversion` on the internal form (`webhookClientConfig`,
/// `conversionReviewVersions` directly under `spec.conversion`).
fn validate_conversion(conv: &Value, require_recognized: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let strategy = st(conv, &["strategy"]);
    match strategy {
        "" => errs.push(FieldError::required("spec.conversion.strategy", "")),
        "None" | "Webhook" => {}
        s => errs.push(FieldError::not_supported(
            "spec.conversion.strategy",
            s,
            &["None", "Webhook"],
        )),
    }
    let cc = at(conv, &["webhook", "clientConfig"]);
    let reviews = at(conv, &["webhook", "conversionReviewVersions"]);
    let ccp = "spec.conversion.webhookClientConfig";
    if strategy != "Webhook" {
        if present(cc) {
            errs.push(FieldError::forbidden(
                ccp,
                "should not be set when strategy is not set to Webhook",
            ));
        }
        if !arr(reviews).is_empty() {
            errs.push(FieldError::forbidden(
                "spec.conversion.conversionReviewVersions",
                "should not be set when strategy is not set to Webhook",
            ));
        }
        return errs;
    }
    let (url, svc) = (at(cc, &["url"]), at(cc, &["service"]));
    if !present(cc) {
        errs.push(FieldError::required(
            ccp,
            "required when strategy is set to Webhook",
        ));
    } else if present(url) == present(svc) {
        errs.push(FieldError::required(
            ccp,
            "exactly one of url or service is required",
        ));
    } else if let Some(u) = url.as_str() {
        errs.extend(validate_webhook_url(&format!("{ccp}.url"), u));
    } else if present(svc) {
        let p = format!("{ccp}.service");
        // kube-apiserver passes name and namespace swapped, so each is reported as the other.
        if st(svc, &["namespace"]).is_empty() {
            errs.push(FieldError::required(format!("{p}.name"), ""));
        }
        if st(svc, &["name"]).is_empty() {
            errs.push(FieldError::required(format!("{p}.namespace"), ""));
        }
        let port = at(svc, &["port"]).as_i64().unwrap_or(0);
        if !(1..=65535).contains(&port) {
            errs.push(FieldError::invalid_int(
                format!("{p}.port"),
                port,
                "port is not valid: must be between 1 and 65535, inclusive",
            ));
        }
        if let Some(path) = at(svc, &["path"]).as_str() {
            errs.extend(validate_service_path(&format!("{p}.path"), path));
        }
    }
    let rp = "spec.conversion.conversionReviewVersions";
    let list = strs(reviews);
    if list.is_empty() {
        errs.push(FieldError::required(rp, ""));
        return errs;
    }
    let mut seen = std::collections::HashSet::new();
    for (i, v) in list.iter().enumerate() {
        if !seen.insert(*v) {
            errs.push(FieldError::invalid_str(
                format!("{rp}[{i}]"),
                v,
                "duplicate version",
            ));
            continue;
        }
        for m in is_dns1035_label(v) {
            errs.push(FieldError::invalid_str(format!("{rp}[{i}]"), v, m));
        }
    }
    if require_recognized && !list.iter().any(|v| *v == "v1" || *v == "v1beta1") {
        errs.push(FieldError::invalid(
            rp,
            gj(reviews),
            "must include at least one of v1, v1beta1",
        ));
    }
    errs
}

/// `webhook.ValidateWebhookURL` with https forced, on a hand-rolled subset of Go's `url.Parse`.
fn validate_webhook_url(p: &str, raw: &str) -> Vec<FieldError> {
    const FORM: &str = "; desired format: https://host[/path]";
    if raw.starts_with(':') {
        let m = format!(
            "url must be a valid URL: parse {}: missing protocol scheme{FORM}",
            go_quote(raw)
        );
        return vec![FieldError::required(p, m)];
    }
    let (rest, fragment) = raw.split_once('#').unwrap_or((raw, ""));
    let (scheme, rest) = match rest.split_once(':') {
        Some((s, r))
            if s.starts_with(|c: char| c.is_ascii_alphabetic())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            (s.to_ascii_lowercase(), r)
        }
        _ => (String::new(), rest),
    };
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (mut host, mut user) = ("", None);
    if let Some(auth) = rest.strip_prefix("//") {
        let auth = auth.split('/').next().unwrap_or("");
        match auth.rsplit_once('@') {
            Some((u, h)) => (user, host) = (Some(u), h),
            None => host = auth,
        }
    }
    let mut errs = Vec::new();
    if scheme != "https" {
        errs.push(FieldError::invalid_str(
            p,
            &scheme,
            format!("'https' is the only allowed URL scheme{FORM}"),
        ));
    }
    if host.is_empty() {
        errs.push(FieldError::invalid_str(
            p,
            host,
            format!("host must be specified{FORM}"),
        ));
    }
    if let Some(u) = user {
        errs.push(FieldError::invalid_str(
            p,
            u,
            "user information is not permitted in the URL",
        ));
    }
    if !fragment.is_empty() {
        errs.push(FieldError::invalid_str(
            p,
            fragment,
            "fragments are not permitted in the URL",
        ));
    }
    if !query.is_empty() {
        errs.push(FieldError::invalid_str(
            p,
            query,
            "query parameters are not permitted in the URL",
        ));
    }
    errs
}

/// The path part of `webhook.ValidateWebhookService`.
fn validate_service_path(p: &str, path: &str) -> Vec<FieldError> {
    if path.is_empty() || path == "/" {
        return vec![];
    }
    if path == "//" {
        return vec![FieldError::invalid_str(
            p,
            path,
            "segment[0] may not be empty",
        )];
    }
    let mut errs = Vec::new();
    if !path.starts_with('/') {
        errs.push(FieldError::invalid_str(p, path, "must start with a '/'"));
    }
    let mut check = path.get(1..).unwrap_or("");
    check = check.strip_suffix('/').unwrap_or(check);
    for (i, step) in check.split('/').enumerate() {
        if step.is_empty() {
            errs.push(FieldError::invalid_str(
                p,
                path,
                format!("segment[{i}] may not be empty"),
            ));
            continue;
        }
        for m in is_dns1123_subdomain(step) {
            errs.push(FieldError::invalid_str(
                p,
                path,
                format!("segment[{i}]: {m}"),
            ));
        }
    }
    errs
}

/// Accepted names and stored versions (`ValidateCustomResourceDefinitionStatus` and
/// `ValidateCustomResourceDefinitionStoredVersions`).
fn validate_status(crd: &Value) -> Vec<FieldError> {
    let mut errs = validate_names(
        at(crd, &["status", "acceptedNames"]),
        "status.acceptedNames",
    );
    let p = "status.storedVersions";
    let stored_v = at(crd, &["status", "storedVersions"]);
    let stored = strs(stored_v);
    if stored.is_empty() {
        errs.push(FieldError::invalid(
            p,
            gj(stored_v),
            "must have at least one stored version",
        ));
        return errs;
    }
    let versions = arr(at(crd, &["spec", "versions"]));
    let names: Vec<&str> = versions.iter().map(|v| st(v, &["name"])).collect();
    for v in versions.iter().filter(|v| truthy(at(v, &["storage"]))) {
        let name = st(v, &["name"]);
        if !stored.contains(&name) {
            errs.push(FieldError::invalid(
                p,
                gj(stored_v),
                format!("must have the storage version {name}"),
            ));
        }
    }
    let mut missing: Vec<(usize, &str)> = Vec::new();
    for (i, v) in stored.iter().enumerate() {
        if !names.contains(v) {
            missing.retain(|(_, m)| m != v);
            missing.push((i, v));
        }
    }
    missing.sort();
    for (i, v) in missing {
        let m = format!("missing from spec.versions; {v} was previously a storage version, and must remain in spec.versions until a storage migration ensures no data remains persisted in {v} and removes {v} from status.storedVersions");
        errs.push(FieldError::invalid_str(format!("{p}[{i}]"), v, m));
    }
    errs
}

const APPROVAL: &str = "api-approved.kubernetes.io";

/// `apihelpers.GetAPIApprovalState`: (state, reason); 0 invalid, 1 approved, 2 bypassed, 3 missing.
fn approval_state(crd: &Value) -> (u8, String) {
    let a = st(crd, &["metadata", "annotations", APPROVAL]);
    let is_url = a.split_once("://").is_some_and(|(s, r)| {
        s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            && !r.split(['/', '?', '#']).next().unwrap_or("").is_empty()
    });
    if a.is_empty() {
        (3, format!("protected groups must have approval annotation {}, see https://github.com/kubernetes/enhancements/pull/1111", go_quote(APPROVAL)))
    } else if a.starts_with("unapproved") {
        (2, format!("not approved: {}", go_quote(a)))
    } else if is_url {
        (1, format!("approved in {a}"))
    } else {
        (0, format!("protected groups must have approval annotation {} with either a URL or a reason starting with \"unapproved\", see https://github.com/kubernetes/enhancements/pull/1111", go_quote(APPROVAL)))
    }
}

/// Groups under `k8s.io` / `kubernetes.io` need the API-approval annotation.
fn validate_api_approval(crd: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let g = st(crd, &["spec", "group"]);
    let protected = ["k8s.io", "kubernetes.io"]
        .iter()
        .any(|d| g == *d || g.ends_with(&format!(".{d}")));
    if !protected {
        return vec![];
    }
    let (state, reason) = approval_state(crd);
    if old.is_some_and(|o| approval_state(o).0 == state) {
        return vec![];
    }
    let p = format!("metadata.annotations[{APPROVAL}]");
    match state {
        3 => vec![FieldError::required(p, reason)],
        0 => vec![FieldError::invalid_str(
            p,
            st(crd, &["metadata", "annotations", APPROVAL]),
            reason,
        )],
        _ => vec![],
    }
}

fn validate_preserve_unknown_fields(crd: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let set = |c: &Value| truthy(at(c, &["spec", "preserveUnknownFields"]));
    if old.is_some_and(set) || !set(crd) {
        return vec![];
    }
    vec![FieldError::invalid("spec.preserveUnknownFields", "true", "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead")]
}

/// A string as Go's `encoding/json` writes it (HTML-safe escapes included).
fn gj_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || "<>&\u{2028}\u{2029}".contains(c) => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A float as Go's `encoding/json` writes it (`1e+21`, `1e-7`, otherwise plain).
fn gj_num(n: &serde_json::Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() => {
            let a = f.abs();
            if a != 0.0 && !(1e-6..1e21).contains(&a) {
                let s = format!("{f:e}");
                match s.split_once('e') {
                    Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
                    _ => s,
                }
            } else if f.fract() == 0.0 && a < 1e15 {
                format!("{}", f as i64)
            } else {
                format!("{f}")
            }
        }
        _ => n.to_string(),
    }
}

/// Any JSON value as Go's `json.Marshal` of the decoded value writes it (sorted keys).
fn gj(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => gj_num(n),
        Value::String(s) => gj_str(s),
        Value::Array(a) => format!("[{}]", a.iter().map(gj).collect::<Vec<_>>().join(",")),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let body: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", gj_str(k), gj(&m[*k])))
                .collect();
            format!("{{{}}}", body.join(","))
        }
    }
}

/// Renders a Go struct (field name, value) list as `json.Marshal` does for untagged fields.
fn obj(fields: &[(&str, String)]) -> String {
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", body.join(","))
}

fn opt_str(v: &Value) -> String {
    v.as_str().map(gj_str).unwrap_or_else(|| "null".into())
}

fn opt_list(v: &Value, f: impl Fn(&Value) -> String) -> String {
    match v.as_array() {
        Some(a) => format!("[{}]", a.iter().map(f).collect::<Vec<_>>().join(",")),
        None => "null".into(),
    }
}

fn opt_num(v: &Value) -> String {
    match v {
        Value::Number(n) => gj_num(n),
        _ => "null".into(),
    }
}

/// The internal `[]CustomResourceDefinitionVersion` as `json.Marshal` writes it; hoisted
/// fields (schema, subresources, columns, selectable fields) are nil per version.
fn render_versions(versions: &[Value], hoisted: [bool; 4]) -> String {
    opt_list(&Value::Array(versions.to_vec()), |v| {
        let sub = at(v, &["subresources"]);
        let scale = at(sub, &["scale"]);
        let sub_s = if hoisted[1] || !present(sub) {
            "null".into()
        } else {
            let status = if present(at(sub, &["status"])) {
                "{}"
            } else {
                "null"
            };
            let scale_s = if present(scale) {
                obj(&[
                    ("SpecReplicasPath", gj_str(st(scale, &["specReplicasPath"]))),
                    (
                        "StatusReplicasPath",
                        gj_str(st(scale, &["statusReplicasPath"])),
                    ),
                    (
                        "LabelSelectorPath",
                        opt_str(at(scale, &["labelSelectorPath"])),
                    ),
                ])
            } else {
                "null".into()
            };
            obj(&[("Status", status.into()), ("Scale", scale_s)])
        };
        let schema = at(v, &["schema"]);
        let schema_s = if hoisted[0] || !present(schema) {
            "null".into()
        } else {
            obj(&[("OpenAPIV3Schema", props(at(schema, &["openAPIV3Schema"])))])
        };
        let cols = |c: &Value| {
            obj(&[
                ("Name", gj_str(st(c, &["name"]))),
                ("Type", gj_str(st(c, &["type"]))),
                ("Format", gj_str(st(c, &["format"]))),
                ("Description", gj_str(st(c, &["description"]))),
                (
                    "Priority",
                    at(c, &["priority"]).as_i64().unwrap_or(0).to_string(),
                ),
                ("JSONPath", gj_str(st(c, &["jsonPath"]))),
            ])
        };
        let sel = |c: &Value| obj(&[("JSONPath", gj_str(st(c, &["jsonPath"])))]);
        let b = |k: &str| truthy(at(v, &[k])).to_string();
        obj(&[
            ("Name", gj_str(st(v, &["name"]))),
            ("Served", b("served")),
            ("Storage", b("storage")),
            ("Deprecated", b("deprecated")),
            (
                "DeprecationWarning",
                opt_str(at(v, &["deprecationWarning"])),
            ),
            ("Schema", schema_s),
            ("Subresources", sub_s),
            (
                "AdditionalPrinterColumns",
                if hoisted[2] {
                    "null".into()
                } else {
                    opt_list(at(v, &["additionalPrinterColumns"]), cols)
                },
            ),
            (
                "SelectableFields",
                if hoisted[3] {
                    "null".into()
                } else {
                    opt_list(at(v, &["selectableFields"]), sel)
                },
            ),
        ])
    })
}

/// How a `JSONSchemaProps` field renders.
#[derive(Clone, Copy)]
enum K {
    Str,
    Bool,
    OptStr,
    OptBool,
    Num,
    Json,
    Schema,
    Schemas,
    SchemaMap,
    OrBool,
    Items,
    Deps,
    Docs,
    Rules,
    Strs,
    Jsons,
}

/// Internal `JSONSchemaProps` fields in declaration order: (Go name, v1 JSON key, kind).
const PROPS: &[(&str, &str, K)] = &[
    ("ID", "id", K::Str),
    ("Schema", "$schema", K::Str),
    ("Ref", "$ref", K::OptStr),
    ("Description", "description", K::Str),
    ("Type", "type", K::Str),
    ("Nullable", "nullable", K::Bool),
    ("Format", "format", K::Str),
    ("Title", "title", K::Str),
    ("Default", "default", K::Json),
    ("Maximum", "maximum", K::Num),
    ("ExclusiveMaximum", "exclusiveMaximum", K::Bool),
    ("Minimum", "minimum", K::Num),
    ("ExclusiveMinimum", "exclusiveMinimum", K::Bool),
    ("MaxLength", "maxLength", K::Num),
    ("MinLength", "minLength", K::Num),
    ("Pattern", "pattern", K::Str),
    ("MaxItems", "maxItems", K::Num),
    ("MinItems", "minItems", K::Num),
    ("UniqueItems", "uniqueItems", K::Bool),
    ("MultipleOf", "multipleOf", K::Num),
    ("Enum", "enum", K::Jsons),
    ("MaxProperties", "maxProperties", K::Num),
    ("MinProperties", "minProperties", K::Num),
    ("Required", "required", K::Strs),
    ("Items", "items", K::Items),
    ("AllOf", "allOf", K::Schemas),
    ("OneOf", "oneOf", K::Schemas),
    ("AnyOf", "anyOf", K::Schemas),
    ("Not", "not", K::Schema),
    ("Properties", "properties", K::SchemaMap),
    ("AdditionalProperties", "additionalProperties", K::OrBool),
    ("PatternProperties", "patternProperties", K::SchemaMap),
    ("Dependencies", "dependencies", K::Deps),
    ("AdditionalItems", "additionalItems", K::OrBool),
    ("Definitions", "definitions", K::SchemaMap),
    ("ExternalDocs", "externalDocs", K::Docs),
    ("Example", "example", K::Json),
    (
        "XPreserveUnknownFields",
        "x-kubernetes-preserve-unknown-fields",
        K::OptBool,
    ),
    (
        "XEmbeddedResource",
        "x-kubernetes-embedded-resource",
        K::Bool,
    ),
    ("XIntOrString", "x-kubernetes-int-or-string", K::Bool),
    ("XListMapKeys", "x-kubernetes-list-map-keys", K::Strs),
    ("XListType", "x-kubernetes-list-type", K::OptStr),
    ("XMapType", "x-kubernetes-map-type", K::OptStr),
    ("XValidations", "x-kubernetes-validations", K::Rules),
];

fn opt_bool(v: &Value) -> String {
    v.as_bool().map_or_else(|| "null".into(), |b| b.to_string())
}

/// A string-keyed map with sorted keys, values rendered by `f`; null when absent.
fn map_of(v: &Value, f: fn(&Value) -> String) -> String {
    let Some(m) = v.as_object() else {
        return "null".into();
    };
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    let body: Vec<String> = keys
        .iter()
        .map(|k| format!("{}:{}", gj_str(k), f(&m[*k])))
        .collect();
    format!("{{{}}}", body.join(","))
}

fn dep(v: &Value) -> String {
    match v {
        Value::Array(_) => obj(&[
            ("Schema", "null".into()),
            ("Property", opt_list(v, opt_str)),
        ]),
        _ => obj(&[("Schema", props(v)), ("Property", "null".into())]),
    }
}

fn rule(r: &Value) -> String {
    let f = |k: &str| gj_str(st(r, &[k]));
    obj(&[
        ("Rule", f("rule")),
        ("Message", f("message")),
        ("MessageExpression", f("messageExpression")),
        ("Reason", opt_str(at(r, &["reason"]))),
        ("FieldPath", f("fieldPath")),
        ("OptionalOldSelf", opt_bool(at(r, &["optionalOldSelf"]))),
    ])
}

/// The internal `JSONSchemaProps` as `json.Marshal` writes it (every field, Go names).
fn props(s: &Value) -> String {
    if !s.is_object() {
        return "null".into();
    }
    let fields: Vec<(&str, String)> = PROPS
        .iter()
        .map(|&(name, key, kind)| {
            let v = at(s, &[key]);
            let out = match kind {
                K::Str => gj_str(v.as_str().unwrap_or("")),
                K::Bool => truthy(v).to_string(),
                K::OptStr => opt_str(v),
                K::OptBool => opt_bool(v),
                K::Num => opt_num(v),
                K::Json => gj(v),
                K::Schema => props(v),
                K::Schemas => opt_list(v, props),
                K::SchemaMap => map_of(v, props),
                K::Deps => map_of(v, dep),
                K::Rules => opt_list(v, rule),
                K::Strs => opt_list(v, opt_str),
                K::Jsons => opt_list(v, gj),
                K::OrBool => match v {
                    Value::Bool(a) => obj(&[("Allows", a.to_string()), ("Schema", "null".into())]),
                    Value::Object(_) => obj(&[("Allows", "true".into()), ("Schema", props(v))]),
                    _ => "null".into(),
                },
                K::Items => match v {
                    Value::Object(_) => {
                        obj(&[("Schema", props(v)), ("JSONSchemas", "null".into())])
                    }
                    Value::Array(_) => obj(&[
                        ("Schema", "null".into()),
                        ("JSONSchemas", opt_list(v, props)),
                    ]),
                    _ => "null".into(),
                },
                K::Docs if present(v) => obj(&[
                    ("Description", gj_str(st(v, &["description"]))),
                    ("URL", gj_str(st(v, &["url"]))),
                ]),
                K::Docs => "null".into(),
            };
            (name, out)
        })
        .collect();
    obj(&fields)
}

/// A condition as `SetCRDCondition` leaves it: the old transition time survives when the status
/// does not change.
fn set_condition(
    conds: &mut Vec<Value>,
    ty: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &str,
) {
    let mut c = json!({"type": ty, "status": status, "lastTransitionTime": now});
    if !reason.is_empty() {
        c["reason"] = json!(reason);
    }
    if !message.is_empty() {
        c["message"] = json!(message);
    }
    match conds.iter_mut().find(|c| st(c, &["type"]) == ty) {
        Some(old) => {
            let keep =
                st(old, &["status"]) == status && !st(old, &["lastTransitionTime"]).is_empty();
            if keep {
                c["lastTransitionTime"] = old["lastTransitionTime"].clone();
            }
            *old = c;
        }
        None => conds.push(c),
    }
}

/// `equalToAcceptedOrFresh`.
fn fresh(requested: &str, accepted: &str, used: &[&str]) -> Result<(), String> {
    if requested == accepted || !used.contains(&requested) {
        Ok(())
    } else {
        Err(format!("{} is already in use", go_quote(requested)))
    }
}

/// The naming controller's `calculateNamesAndConditions` followed, when `establish` is set and
/// the names are accepted, by the establishing controller.
fn naming_status(
    crd: &Value,
    resources: &[&str],
    kinds: &[&str],
    now: &str,
    establish: bool,
) -> Value {
    let mut crd = crd.clone();
    apply_defaults(&mut crd);
    let req = at(&crd, &["spec", "names"]).clone();
    let acc = at(&crd, &["status", "acceptedNames"]).clone();
    let mut names = acc.as_object().cloned().unwrap_or_default();
    let mut conflict: Option<(&str, String)> = None;
    for (f, reason, used) in [
        ("plural", "PluralConflict", resources),
        ("singular", "SingularConflict", resources),
    ] {
        match fresh(st(&req, &[f]), st(&acc, &[f]), used) {
            Ok(()) => drop(names.insert(f.into(), json!(st(&req, &[f])))),
            Err(m) => conflict = Some((reason, m)),
        }
    }
    let (req_short, acc_short) = (
        strs(at(&req, &["shortNames"])),
        strs(at(&acc, &["shortNames"])),
    );
    if req_short != acc_short {
        let mut msgs: Vec<String> = Vec::new();
        for s in req_short.iter().filter(|s| !acc_short.contains(s)) {
            if let Err(m) = fresh(s, "", resources) {
                if !msgs.contains(&m) {
                    msgs.push(m);
                }
            }
        }
        match msgs.len() {
            0 => drop(names.insert("shortNames".into(), at(&req, &["shortNames"]).clone())),
            1 => conflict = Some(("ShortNamesConflict", msgs.remove(0))),
            _ => conflict = Some(("ShortNamesConflict", format!("[{}]", msgs.join(", ")))),
        }
    }
    for (f, reason) in [("kind", "KindConflict"), ("listKind", "ListKindConflict")] {
        match fresh(st(&req, &[f]), st(&acc, &[f]), kinds) {
            Ok(()) => drop(names.insert(f.into(), json!(st(&req, &[f])))),
            Err(m) => conflict = Some((reason, m)),
        }
    }
    match at(&req, &["categories"]) {
        Value::Null => drop(names.remove("categories")),
        c => drop(names.insert("categories".into(), c.clone())),
    }
    names.retain(|k, v| {
        !(k != "plural" && k != "kind" && (v.is_null() || v == "" || v == &json!([])))
    });
    let mut status = crd["status"].as_object().cloned().unwrap_or_default();
    let mut conds: Vec<Value> = arr(status.get("conditions").unwrap_or(&NULL)).to_vec();
    let accepted = conflict.is_none();
    match &conflict {
        Some((reason, m)) => set_condition(&mut conds, "NamesAccepted", "False", reason, m, now),
        None => set_condition(
            &mut conds,
            "NamesAccepted",
            "True",
            "NoConflicts",
            "no conflicts found",
            now,
        ),
    }
    let old_est = conds
        .iter()
        .find(|c| st(c, &["type"]) == "Established")
        .cloned();
    let est_true = old_est
        .as_ref()
        .is_some_and(|c| st(c, &["status"]) == "True");
    if accepted && !est_true {
        set_condition(
            &mut conds,
            "Established",
            "False",
            "Installing",
            "the initial names have been accepted",
            now,
        );
        if establish {
            set_condition(
                &mut conds,
                "Established",
                "True",
                "InitialNamesAccepted",
                "the initial names have been accepted",
                now,
            );
        }
    } else if old_est.is_none() {
        set_condition(
            &mut conds,
            "Established",
            "False",
            "NotAccepted",
            "not all names are accepted",
            now,
        );
    }
    status.insert("conditions".into(), Value::Array(conds));
    status.insert("acceptedNames".into(), Value::Object(names));
    let mut stored: Vec<Value> = arr(status.get("storedVersions").unwrap_or(&NULL)).to_vec();
    if let Some(v) = storage_version(&crd["spec"]) {
        if !stored.iter().any(|s| s == v) {
            stored.push(json!(v));
        }
    }
    status.insert("storedVersions".into(), Value::Array(stored));
    Value::Object(status)
}

/// The status once the naming and establishing controllers have run on a CRD whose names
/// are free: NamesAccepted and Established True, acceptedNames = spec.names.
pub fn established_status(crd: &Value, now: &str) -> Value {
    naming_status(crd, &[], &[], now, true)
}

/// The status the naming controller leaves on a CRD whose names clash with names accepted for
/// other CRDs of its group: `taken_resources` are their plurals, singulars and short names,
/// `taken_kinds` their kinds and list kinds. NamesAccepted is False with the last clash found
/// (plural, singular, short names, kind, list kind) as reason; only the free names are accepted.
pub fn conflicting_status(
    crd: &Value,
    taken_resources: &[&str],
    taken_kinds: &[&str],
    now: &str,
) -> Value {
    naming_status(crd, taken_resources, taken_kinds, now, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DNS1035: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name' or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "foos.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "foos", "kind": "Foo"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object"}}}]}
        })
    }

    /// Defaults, create preparation and validation, as the registry runs them.
    fn create(mut c: Value) -> Vec<String> {
        apply_defaults(&mut c);
        prepare_for_create(&mut c);
        validate(&c).iter().map(ToString::to_string).collect()
    }

    fn with(f: impl FnOnce(&mut Value)) -> Vec<String> {
        let mut c = crd();
        f(&mut c);
        create(c)
    }

    fn update(old: &Value, f: impl FnOnce(&mut Value)) -> Vec<String> {
        let mut new = old.clone();
        f(&mut new);
        apply_defaults(&mut new);
        prepare_for_update(old, &mut new);
        validate_update(old, &new)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn defaults() {
        let mut c = crd();
        apply_defaults(&mut c);
        assert_eq!(
            c["spec"]["names"],
            json!({"plural": "foos", "singular": "foo", "kind": "Foo", "listKind": "FooList"})
        );
        assert_eq!(c["spec"]["conversion"], json!({"strategy": "None"}));
        assert_eq!(c["status"]["storedVersions"], json!(["v1"]));
        assert_eq!(c["spec"]["versions"][0]["served"], json!(true));
        let mut w = crd();
        w["spec"]["conversion"] = json!({"strategy": "Webhook", "webhook": {"clientConfig": {"service": {"name": "s", "namespace": "n"}}}});
        apply_defaults(&mut w);
        assert_eq!(
            w["spec"]["conversion"]["webhook"]["clientConfig"]["service"]["port"],
            json!(443)
        );
        assert!(create(crd()).is_empty());
    }

    #[test]
    fn metadata_name() {
        assert_eq!(with(|c| c["metadata"]["name"] = json!("bars.example.com")), vec![
            "metadata.name: Invalid value: \"bars.example.com\": must be spec.names.plural+\".\"+spec.group"]);
        assert_eq!(
            with(|c| c["metadata"]["namespace"] = json!("default")),
            vec!["metadata.namespace: Forbidden: not allowed on this type"]
        );
    }

    #[test]
    fn group_and_scope() {
        assert_eq!(
            with(|c| {
                c["spec"]["group"] = json!("example");
                c["metadata"]["name"] = json!("foos.example");
            }),
            vec![
                "spec.group: Invalid value: \"example\": should be a domain with at least one dot"
            ]
        );
        let e = with(|c| c["spec"]["group"] = json!(""));
        assert!(
            e.contains(&"spec.group: Required value".to_string()),
            "{e:?}"
        );
        assert_eq!(with(|c| c["spec"]["scope"] = json!("Global")), vec![
            "spec.scope: Unsupported value: \"Global\": supported values: \"Cluster\", \"Namespaced\""]);
        assert_eq!(
            with(|c| c["spec"]
                .as_object_mut()
                .unwrap()
                .remove("scope")
                .map(drop)
                .unwrap_or(())),
            vec!["spec.scope: Required value"]
        );
    }

    #[test]
    fn versions() {
        let v = r#"[{"Name":"v1","Served":true,"Storage":false,"Deprecated":false,"DeprecationWarning":null,"Schema":null,"Subresources":null,"AdditionalPrinterColumns":null,"SelectableFields":null}]"#;
        assert_eq!(with(|c| c["spec"]["versions"][0]["storage"] = json!(false)), vec![
            format!("spec.versions: Invalid value: {v}: must have exactly one version marked as storage version"),
            "status.storedVersions: Invalid value: null: must have at least one stored version".into()]);
        let e = with(|c| c["spec"]["versions"][0]["name"] = json!("V1"));
        assert_eq!(
            e,
            vec![
                format!("spec.versions[0].name: Invalid value: \"V1\": {DNS1035}"),
                format!("spec.version: Invalid value: \"V1\": {DNS1035}")
            ]
        );
        let e = with(|c| {
            let v0 = c["spec"]["versions"][0].clone();
            c["spec"]["versions"] = json!([v0, {"name": "v1", "served": true, "storage": false, "schema": {"openAPIV3Schema": {"type": "string"}}}]);
        });
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("spec.versions: Invalid value: [{\"Name\":\"v1\",\"Served\":true,\"Storage\":true,\"Deprecated\":false,\"DeprecationWarning\":null,\"Schema\":{\"OpenAPIV3Schema\":{\"ID\":\"\",\"Schema\":\"\",\"Ref\":null,\"Description\":\"\",\"Type\":\"object\","), "{e:?}");
        assert!(e[0].ends_with("\"XValidations\":null}},\"Subresources\":null,\"AdditionalPrinterColumns\":null,\"SelectableFields\":null}]: must contain unique version names"), "{e:?}");
        assert_eq!(
            with(|c| c["spec"]["versions"][0]
                .as_object_mut()
                .unwrap()
                .remove("schema")
                .map(drop)
                .unwrap_or(())),
            vec!["spec.versions[0].schema.openAPIV3Schema: Required value"]
        );
        assert_eq!(with(|c| c["spec"]["versions"][0]["deprecationWarning"] = json!("old")), vec![
            "spec.versions[0].deprecationWarning: Invalid value: \"old\": can only be set for deprecated versions"]);
        assert_eq!(with(|c| {
            c["spec"]["versions"][0]["deprecated"] = json!(true);
            c["spec"]["versions"][0]["deprecationWarning"] = json!("a\tb");
        }), vec!["spec.versions[0].deprecationWarning: Invalid value: \"a\\tb\": must only contain printable UTF-8 characters; non-printable character found at index 1"]);
    }

    #[test]
    fn names() {
        assert_eq!(with(|c| {
            c["spec"]["names"] = json!({"plural": "foos", "singular": "Foo", "kind": "Foo_x", "listKind": "Foo_x", "shortNames": ["f", "F"], "categories": ["all", "-x"]});
        }), vec![
            format!("spec.names.singular: Invalid value: \"Foo\": {DNS1035}"),
            format!("spec.names.kind: Invalid value: \"Foo_x\": may have mixed case, but should otherwise match: {DNS1035}"),
            format!("spec.names.listKind: Invalid value: \"Foo_x\": may have mixed case, but should otherwise match: {DNS1035}"),
            format!("spec.names.shortNames[1]: Invalid value: \"F\": {DNS1035}"),
            "spec.names.listKind: Invalid value: \"Foo_x\": kind and listKind may not be the same".into(),
            format!("spec.names.categories[1]: Invalid value: \"-x\": {DNS1035}"),
        ]);
        let e = with(|c| c["spec"]["names"] = json!({}));
        for f in ["plural", "singular", "kind", "listKind"] {
            assert!(
                e.contains(&format!("spec.names.{f}: Required value")),
                "{e:?}"
            );
        }
    }

    #[test]
    fn scale() {
        let e = with(|c| {
            c["spec"]["versions"][0]["subresources"] =
                json!({"scale": {"specReplicasPath": "spec.replicas", "labelSelectorPath": ".x"}})
        });
        assert_eq!(e, vec![
            "spec.subresources.scale.specReplicasPath: Invalid value: \"spec.replicas\": must be a simple json path starting with .",
            "spec.subresources.scale.statusReplicasPath: Required value",
            "spec.subresources.scale.labelSelectorPath: Invalid value: \".x\": should be a json path under either .spec or .status"]);
        let e = with(|c| {
            let mut v2 = c["spec"]["versions"][0].clone();
            v2["name"] = json!("v2");
            v2["storage"] = json!(false);
            v2["subresources"] = json!({"scale": {"specReplicasPath": ".status.r", "statusReplicasPath": ".spec.r"}});
            c["spec"]["versions"].as_array_mut().unwrap().push(v2);
        });
        assert_eq!(e, vec![
            "spec.versions[1].subresources.scale.specReplicasPath: Invalid value: \".status.r\": should be a json path under .spec",
            "spec.versions[1].subresources.scale.statusReplicasPath: Invalid value: \".spec.r\": should be a json path under .status"]);
    }

    #[test]
    fn conversion() {
        assert_eq!(with(|c| c["spec"]["conversion"] = json!({"strategy": "Magic"})), vec![
            "spec.conversion.strategy: Unsupported value: \"Magic\": supported values: \"None\", \"Webhook\""]);
        assert_eq!(with(|c| c["spec"]["conversion"] = json!({"strategy": "Webhook"})), vec![
            "spec.conversion.webhookClientConfig: Required value: required when strategy is set to Webhook",
            "spec.conversion.conversionReviewVersions: Required value"]);
        assert_eq!(with(|c| c["spec"]["conversion"] = json!({"strategy": "Webhook", "webhook": {"clientConfig": {"url": "http://h/x?q=1"}, "conversionReviewVersions": ["v2", "v2"]}})), vec![
            "spec.conversion.webhookClientConfig.url: Invalid value: \"http\": 'https' is the only allowed URL scheme; desired format: https://host[/path]",
            "spec.conversion.webhookClientConfig.url: Invalid value: \"q=1\": query parameters are not permitted in the URL",
            "spec.conversion.conversionReviewVersions[1]: Invalid value: \"v2\": duplicate version",
            "spec.conversion.conversionReviewVersions: Invalid value: [\"v2\",\"v2\"]: must include at least one of v1, v1beta1"]);
        assert_eq!(with(|c| c["spec"]["conversion"] = json!({"strategy": "Webhook", "webhook": {"clientConfig": {"service": {"namespace": "n", "port": 0, "path": "/a//"}}, "conversionReviewVersions": ["v1"]}})), vec![
            "spec.conversion.webhookClientConfig.service.namespace: Required value",
            "spec.conversion.webhookClientConfig.service.port: Invalid value: 0: port is not valid: must be between 1 and 65535, inclusive",
            "spec.conversion.webhookClientConfig.service.path: Invalid value: \"/a//\": segment[1] may not be empty"]);
        assert_eq!(with(|c| c["spec"]["conversion"] = json!({"strategy": "None", "webhook": {"clientConfig": {"url": "https://h"}, "conversionReviewVersions": ["v1"]}})), vec![
            "spec.conversion.webhookClientConfig: Forbidden: should not be set when strategy is not set to Webhook",
            "spec.conversion.conversionReviewVersions: Forbidden: should not be set when strategy is not set to Webhook"]);
        assert!(with(|c| c["spec"]["conversion"] = json!({"strategy": "Webhook", "webhook": {"clientConfig": {"url": "https://h/convert"}, "conversionReviewVersions": ["v1"]}})).is_empty());
    }

    #[test]
    fn preserve_unknown_fields_and_approval() {
        assert_eq!(with(|c| c["spec"]["preserveUnknownFields"] = json!(true)), vec![
            "spec.preserveUnknownFields: Invalid value: true: cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead"]);
        let k8s = |c: &mut Value| {
            c["spec"]["group"] = json!("x.k8s.io");
            c["metadata"]["name"] = json!("foos.x.k8s.io");
        };
        assert_eq!(with(k8s), vec![
            "metadata.annotations[api-approved.kubernetes.io]: Required value: protected groups must have approval annotation \"api-approved.kubernetes.io\", see https://github.com/kubernetes/enhancements/pull/1111"]);
        assert!(with(|c| {
            k8s(c);
            c["metadata"]["annotations"] = json!({"api-approved.kubernetes.io": "https://github.com/kubernetes/kubernetes/pull/1"});
        }).is_empty());
    }

    #[test]
    fn updates() {
        let mut old = crd();
        apply_defaults(&mut old);
        prepare_for_create(&mut old);
        assert!(update(&old, |_| {}).is_empty());
        // The name format is checked on create only, so only immutability fails here.
        assert_eq!(
            update(&old, |n| n["spec"]["group"] = json!("other.com")),
            vec!["spec.group: Invalid value: \"other.com\": field is immutable"]
        );
        assert_eq!(
            update(&old, |n| n["spec"]["names"]["plural"] = json!("bars")),
            vec!["spec.names.plural: Invalid value: \"bars\": field is immutable"]
        );
        // Scope and kind are frozen only once the CRD is established.
        assert!(update(&old, |n| n["spec"]["scope"] = json!("Cluster")).is_empty());
        old["status"] = established_status(&old, "2024-01-01T00:00:00Z");
        assert_eq!(
            update(&old, |n| {
                n["spec"]["scope"] = json!("Cluster");
                n["spec"]["names"]["kind"] = json!("Bar");
                n["spec"]["names"]["listKind"] = json!("BarList");
            }),
            vec![
                "spec.scope: Invalid value: \"Cluster\": field is immutable",
                "spec.names.kind: Invalid value: \"Bar\": field is immutable"
            ]
        );
        // Replacing the stored version v1 by v2 leaves v1 in storedVersions.
        assert_eq!(update(&old, |n| n["spec"]["versions"][0]["name"] = json!("v2")), vec![
            "status.storedVersions[0]: Invalid value: \"v1\": missing from spec.versions; v1 was previously a storage version, and must remain in spec.versions until a storage migration ensures no data remains persisted in v1 and removes v1 from status.storedVersions"]);
        let mut renamed = old.clone();
        renamed["metadata"]["name"] = json!("x.example.com");
        assert_eq!(
            validate_update(&old, &renamed)[0].to_string(),
            "metadata.name: Invalid value: \"x.example.com\": field is immutable"
        );
    }

    #[test]
    fn established() {
        let s = established_status(&crd(), "2024-01-01T00:00:00Z");
        assert_eq!(
            s,
            json!({
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z", "reason": "NoConflicts", "message": "no conflicts found"},
                {"type": "Established", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}],
            "acceptedNames": {"plural": "foos", "singular": "foo", "kind": "Foo", "listKind": "FooList"},
            "storedVersions": ["v1"]})
        );
        let mut c = crd();
        c["status"] = s;
        let again = established_status(&c, "2025-01-01T00:00:00Z");
        assert_eq!(
            again["conditions"][0]["lastTransitionTime"],
            "2024-01-01T00:00:00Z"
        );
        assert_eq!(
            again["conditions"][1]["lastTransitionTime"],
            "2024-01-01T00:00:00Z"
        );
    }

    #[test]
    fn conflicting() {
        let s = conflicting_status(&crd(), &["foos"], &[], "t");
        assert_eq!(
            s["conditions"],
            json!([
            {"type": "NamesAccepted", "status": "False", "lastTransitionTime": "t", "reason": "PluralConflict", "message": "\"foos\" is already in use"},
            {"type": "Established", "status": "False", "lastTransitionTime": "t", "reason": "NotAccepted", "message": "not all names are accepted"}])
        );
        assert_eq!(
            s["acceptedNames"],
            json!({"singular": "foo", "kind": "Foo", "listKind": "FooList"})
        );
        let mut c = crd();
        c["spec"]["names"]["shortNames"] = json!(["f", "g"]);
        let s = conflicting_status(&c, &["f", "g"], &["FooList"], "t");
        assert_eq!(s["conditions"][0]["reason"], "ListKindConflict");
        assert_eq!(
            s["conditions"][0]["message"],
            "\"FooList\" is already in use"
        );
        let s = conflicting_status(&c, &["f", "g"], &[], "t");
        assert_eq!(
            s["conditions"][0]["message"],
            "[\"f\" is already in use, \"g\" is already in use]"
        );
    }

    #[test]
    fn garbage() {
        for g in [
            json!(null),
            json!("x"),
            json!([1]),
            json!({"spec": 5, "metadata": [], "status": "x"}),
            json!({"spec": {"versions": [null, 3, {"name": 7, "subresources": {"scale": 1}}], "names": [], "conversion": {"strategy": "Webhook", "webhook": {"clientConfig": {"service": 1, "url": ":"}}}}}),
            json!({"spec": {"versions": {"a": 1}, "conversion": {"strategy": "Webhook", "webhook": {"clientConfig": {"url": "\u{1}@#?"}}}}}),
        ] {
            let mut c = g.clone();
            apply_defaults(&mut c);
            prepare_for_create(&mut c);
            let _ = validate(&c);
            let _ = validate(&g);
            let _ = validate_update(&g, &c);
            let _ = established_status(&g, "t");
            let _ = conflicting_status(&g, &[""], &[""], "t");
            prepare_for_update(&g, &mut c);
        }
        assert!(!validate(&json!(null)).is_empty());
    }
}
