//! What kube-apiserver does with a CustomResourceDefinition's structural schema
//! (`spec.versions[*].schema.openAPIV3Schema`) when a custom object is written:
//! pruning, dropping of non-nullable nulls, defaulting and validation, plus the structural
//! checks on the schema itself.
//!
//! The wording follows kube-openapi's validator as apiextensions-apiserver converts it to
//! field errors: paths are dotted (`spec.items[0].name`; entries of an `additionalProperties`
//! map are `spec.labels.foo`, except in list-type errors, which use `spec.labels[foo]`), and
//! errors about a combinator (`anyOf`, `oneOf`, `allOf`, `not`) have an empty field as they do
//! in Kubernetes. Schemas come from users, so nothing here panics on a malformed schema: what
//! is not of the expected JSON type is ignored.

use std::collections::HashMap;

use kedge_config::validation::{go_quote, FieldError};
use regex::Regex;
use serde_json::{Map, Value};

/// Errors of `obj` against `schema`, rooted at the object (`spec.replicas`). The root's
/// `apiVersion`, `kind` and `metadata` are not validated: the API server checks them itself.
pub fn validate(schema: &Value, obj: &Value) -> Vec<FieldError> {
    let mut v = Validator::default();
    let mut errs = v.node(schema, obj, "", true);
    list_types_object(schema, obj, "", &mut errs);
    errs
}

/// Drops non-nullable nulls that have no default, then fills in `default`s, in the order the
/// API server's decoder does.
pub fn apply_defaults(schema: &Value, obj: &mut Value) {
    prune_nulls(Some(schema), obj);
    default(schema, obj);
}

/// Removes fields the schema does not declare and returns their paths, sorted
/// (`spec.foo`, `spec.items[0].bar`). The root's `apiVersion`, `kind` and `metadata` are
/// kept, as are those of `x-kubernetes-embedded-resource` objects.
pub fn prune(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut root = schema.as_object().cloned().unwrap_or_default();
    root.insert("x-kubernetes-embedded-resource".into(), Value::Bool(true));
    let mut out = Vec::new();
    prune_value(obj, Some(&Value::Object(root)), "", &mut out);
    out.sort();
    out
}

/// The strings kube-apiserver reports for pruned fields: one `unknown field "spec.foo"` per
/// path, the warnings of `fieldValidation=Warn` and the parts of the `Strict` error.
fn unknown_field_errors(paths: &[String]) -> Vec<String> {
    paths
        .iter()
        .map(|p| format!("unknown field \"{p}\""))
        .collect()
}

/// The message of the `fieldValidation=Strict` BadRequest for the pruned `paths`
/// (`strict decoding error: unknown field "spec.a", unknown field "spec.b"`), or `None`.
pub fn strict_decoding_error(paths: &[String]) -> Option<String> {
    if paths.is_empty() {
        return None;
    }
    Some(format!(
        "strict decoding error: {}",
        unknown_field_errors(paths).join(", ")
    ))
}

/// Checks that a CRD version's schema is structural and that the OpenAPI features
/// Kubernetes forbids in CRDs are absent. `path` is the schema's field path, e.g.
/// `spec.versions[0].schema.openAPIV3Schema`.
pub fn validate_structural(schema: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if flag(schema, "nullable") {
        errs.push(FieldError::forbidden(
            format!("{path}.nullable"),
            "nullable cannot be true at the root",
        ));
    }
    let mut structural = Vec::new();
    invariants(schema, Level::Root, path, &mut structural);
    if let Some(m) = schema.as_object() {
        completeness(m, Some(m), path, path, &mut structural);
    }
    // Kubernetes sorts these by their whole text.
    structural.sort_by_key(|e| e.to_string());
    errs.extend(structural);
    openapi_checks(schema, path, &mut errs);
    errs
}

// ---------------------------------------------------------------------------------------
// Schema access helpers: every accessor tolerates any JSON.

fn get<'a>(s: &'a Value, k: &str) -> Option<&'a Value> {
    s.as_object().and_then(|m| m.get(k))
}

fn flag(s: &Value, k: &str) -> bool {
    get(s, k).and_then(Value::as_bool).unwrap_or(false)
}

fn str_of<'a>(s: &'a Value, k: &str) -> &'a str {
    get(s, k).and_then(Value::as_str).unwrap_or("")
}

fn props(s: &Value) -> Option<&Map<String, Value>> {
    get(s, "properties").and_then(Value::as_object)
}

fn items_schema(s: &Value) -> Option<&Value> {
    get(s, "items").filter(|v| v.is_object())
}

/// The schema of `additionalProperties` values: `Some(None)` for `true`/`false` (no schema).
fn additional(s: &Value) -> Option<Option<&Value>> {
    match get(s, "additionalProperties")? {
        v @ Value::Object(_) => Some(Some(v)),
        Value::Bool(_) => Some(None),
        _ => None,
    }
}

fn additional_forbidden(s: &Value) -> bool {
    matches!(get(s, "additionalProperties"), Some(Value::Bool(false)))
}

fn has_default(s: Option<&Value>) -> bool {
    s.and_then(|s| get(s, "default"))
        .is_some_and(|d| !d.is_null())
}

fn nullable(s: Option<&Value>) -> bool {
    s.is_some_and(|s| flag(s, "nullable"))
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

fn num(s: &Value, k: &str) -> Option<f64> {
    get(s, k).and_then(Value::as_f64)
}

/// `minItems`/`maxItems` or `minProperties`/`maxProperties`: kube-openapi's
/// "should have at least" below, "Too many" above.
fn check_size(
    s: &Value,
    (min_key, max_key, unit): (&str, &str, &str),
    size: usize,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let n = size as i64;
    if let Some(min) = count(s, min_key) {
        if n < min {
            errs.push(FieldError::invalid(
                path,
                n.to_string(),
                format!("{path} in body should have at least {min} {unit}"),
            ));
        }
    }
    if let Some(max) = count(s, max_key) {
        if n > max {
            errs.push(FieldError::too_many(
                path,
                size,
                usize::try_from(max).unwrap_or(0),
            ));
        }
    }
}

fn count(s: &Value, k: &str) -> Option<i64> {
    get(s, k).and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
}

// ---------------------------------------------------------------------------------------
// Rendering values as Go prints them in field errors.

/// A JSON integer is an int64 in Kubernetes' unstructured objects; anything else is a float64.
fn as_int(n: &serde_json::Number) -> Option<i64> {
    n.as_i64()
}

/// Go's `%v` for a float64 (strconv 'g', shortest): `1`, `1.5`, `1e+06`, `1e-05`.
fn go_float(f: f64) -> String {
    float_fmt(f, |exp| exp < -4, 6, true)
}

/// Go's `encoding/json` float format: decimal unless very large or small (`1e+21`, `1e-7`).
fn go_json_float(f: f64) -> String {
    let a = f.abs();
    let exp_form = a != 0.0 && !(1e-6..1e21).contains(&a);
    float_fmt(f, |_| exp_form, i32::MAX, false)
}

/// Formats `f` from its shortest digits: exponent form when `use_exp(exp)` or `exp >= eprec`,
/// with Go's two-digit exponent when `two_digit_exp`.
fn float_fmt(f: f64, use_exp: impl Fn(i32) -> bool, eprec: i32, two_digit_exp: bool) -> String {
    if f == 0.0 {
        return "0".into();
    }
    let sci = format!("{:e}", f.abs());
    let (mant, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if f < 0.0 { "-" } else { "" };
    if use_exp(exp) || exp >= eprec {
        let mut m = digits[..1].to_string();
        if digits.len() > 1 {
            m.push('.');
            m.push_str(&digits[1..]);
        }
        let es = if exp < 0 { '-' } else { '+' };
        let e = exp.unsigned_abs();
        if two_digit_exp {
            format!("{sign}{m}e{es}{e:02}")
        } else {
            format!("{sign}{m}e{es}{e}")
        }
    } else if exp < 0 {
        format!("{sign}0.{}{digits}", "0".repeat((-exp - 1) as usize))
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            format!("{sign}{digits}{}", "0".repeat(int_len - digits.len()))
        } else {
            format!("{sign}{}.{}", &digits[..int_len], &digits[int_len..])
        }
    }
}

fn go_number(n: &serde_json::Number) -> String {
    match as_int(n) {
        Some(i) => i.to_string(),
        None => go_float(n.as_f64().unwrap_or(0.0)),
    }
}

/// A bad value as `field.Error` prints it: strings quoted, scalars bare, `null` as `"null"`,
/// objects and arrays in Go's `%#v`.
fn render(v: &Value) -> String {
    match v {
        Value::Null => go_quote("null"),
        Value::String(s) => go_quote(s),
        Value::Object(_) | Value::Array(_) => go_sharp(v),
        other => go_sharp(other),
    }
}

/// Go's `%#v` of a value held in an `interface{}`.
fn go_sharp(v: &Value) -> String {
    match v {
        Value::Null => "interface {}(nil)".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_number(n),
        Value::String(s) => go_quote(s),
        Value::Array(a) => format!(
            "[]interface {{}}{{{}}}",
            a.iter().map(go_sharp).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", go_quote(k), go_sharp(&m[k.as_str()])))
                .collect();
            format!("map[string]interface {{}}{{{}}}", inner.join(", "))
        }
    }
}

/// Go's `json.Marshal` of a value (sorted keys, Go's float format).
fn go_json(v: &Value) -> String {
    match v {
        Value::Number(n) => match as_int(n) {
            Some(i) => i.to_string(),
            None => go_json_float(n.as_f64().unwrap_or(0.0)),
        },
        Value::Array(a) => format!("[{}]", a.iter().map(go_json).collect::<Vec<_>>().join(",")),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        Value::String((*k).clone()),
                        go_json(&m[k.as_str()])
                    )
                })
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// Validation (kube-openapi's SchemaValidator, as the API server runs it).

/// The JSON type name and Go format kube-openapi infers for a value.
fn value_type(v: &Value) -> (&'static str, &'static str) {
    match v {
        Value::Null => ("null", ""),
        Value::Bool(_) => ("boolean", ""),
        Value::Number(n) if as_int(n).is_some() => ("integer", "int64"),
        Value::Number(_) => ("number", "float64"),
        Value::String(_) => ("string", ""),
        Value::Array(_) => ("array", ""),
        Value::Object(_) => ("object", ""),
    }
}

/// Formats the API server validates; the others are stripped from the schema (so `int32`
/// on an integer checks nothing).
const FORMATS: &[&str] = &[
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
];

fn supported_format(s: &Value) -> &str {
    let f = str_of(s, "format");
    if FORMATS.contains(&f.replace('-', "").as_str()) {
        f
    } else {
        ""
    }
}

/// True when kube-openapi (swag) calls `f` a JSON integer: whole, or within a relative
/// 1e-9 of the whole number below it, and inside ±(2^53-1).
fn float_is_int(f: f64) -> bool {
    if !f.is_finite() || f.abs() > 9_007_199_254_740_991.0 {
        return false;
    }
    let g = f.trunc();
    let diff = (f - g).abs();
    diff == 0.0 || (g != 0.0 && diff / (f.abs() + g.abs()) < 1e-9)
}

#[derive(Default)]
struct Validator {
    regexes: HashMap<String, Option<Regex>>,
    /// Nodes visited: stands in for kube-openapi's match count when picking which failing
    /// `anyOf`/`oneOf` branch to report.
    visits: usize,
}

impl Validator {
    fn regex(&mut self, p: &str) -> Option<Regex> {
        self.regexes
            .entry(p.to_string())
            .or_insert_with(|| Regex::new(p).ok())
            .clone()
    }

    /// Validates `v` against `s` at `path`; `root` skips the root's meta fields.
    fn node(&mut self, s: &Value, v: &Value, path: &str, root: bool) -> Vec<FieldError> {
        self.visits += 1;
        let mut errs = Vec::new();
        if !s.is_object() {
            return errs;
        }
        self.check_type(s, v, path, &mut errs);
        if v.is_null() {
            self.check_enum(s, v, path, &mut errs);
            return errs;
        }
        self.combinators(s, v, path, &mut errs);
        if let Value::String(st) = v {
            self.check_string(s, st, path, &mut errs);
            check_format(s, st, path, &mut errs);
        }
        if let Value::Number(n) = v {
            check_number(s, n, path, &mut errs);
        }
        if let Value::Array(a) = v {
            self.check_array(s, a, path, &mut errs);
        }
        self.check_enum(s, v, path, &mut errs);
        if let Value::Object(m) = v {
            self.check_object(s, m, path, root, &mut errs);
        }
        errs
    }

    fn check_type(&self, s: &Value, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
        let types: Vec<&str> = if flag(s, "x-kubernetes-int-or-string") {
            vec!["integer", "string"]
        } else {
            match str_of(s, "type") {
                "" => vec![],
                t => vec![t],
            }
        };
        let format = supported_format(s);
        if types.is_empty() && format.is_empty() {
            return;
        }
        let bad = |want: &str, got: &str| {
            FieldError::invalid(
                path,
                go_quote(got),
                format!("{path} in body must be of type {want}: {}", go_quote(got)),
            )
        };
        if v.is_null() {
            if !types.is_empty() && !flag(s, "nullable") {
                errs.push(bad(&types.join(","), "null"));
            }
            return;
        }
        let (st, vf) = value_type(v);
        let has = |t: &str| types.contains(&t);
        let float_int = st == "number" && v.as_f64().is_some_and(float_is_int) && has("integer");
        let int_float = st == "integer" && has("number");
        let stringish = matches!(v, Value::String(_) | Value::Array(_));
        if !(stringish || format.is_empty() || has(st) || vf == format || float_int || int_float) {
            errs.push(bad(format, vf));
            return;
        }
        if stringish && !(has("number") || has("integer") || format.is_empty()) {
            return;
        }
        if !(has(st) || float_int || int_float) {
            errs.push(bad(&types.join(","), st));
        }
    }

    fn combinators(&mut self, s: &Value, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
        let list = |k: &str| {
            get(s, k)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let composite = |msg: String| FieldError::invalid("", go_quote(""), msg);
        let any_of = list("anyOf");
        if !any_of.is_empty() {
            let mut best: Option<(usize, Vec<FieldError>)> = None;
            let mut ok = false;
            for sub in &any_of {
                let before = self.visits;
                let r = self.node(sub, v, path, false);
                if r.is_empty() {
                    ok = true;
                    break;
                }
                let score = self.visits - before;
                if best.as_ref().is_none_or(|(b, _)| score > *b) {
                    best = Some((score, r));
                }
            }
            if !ok {
                errs.push(composite(format!(
                    "{} must validate at least one schema (anyOf)",
                    go_quote(path)
                )));
                errs.extend(best.map(|b| b.1).unwrap_or_default());
            }
        }
        let one_of = list("oneOf");
        if !one_of.is_empty() {
            let mut best: Option<(usize, Vec<FieldError>)> = None;
            let mut valid = 0;
            for sub in &one_of {
                let before = self.visits;
                let r = self.node(sub, v, path, false);
                if r.is_empty() {
                    valid += 1;
                    best = None;
                    continue;
                }
                let score = self.visits - before;
                if valid == 0 && best.as_ref().is_none_or(|(b, _)| score > *b) {
                    best = Some((score, r));
                }
            }
            if valid != 1 {
                let extra = if valid == 0 {
                    "Found none valid".to_string()
                } else {
                    format!("Found {valid} valid alternatives")
                };
                errs.push(composite(format!(
                    "{} must validate one and only one schema (oneOf). {extra}",
                    go_quote(path)
                )));
                errs.extend(best.map(|b| b.1).unwrap_or_default());
            }
        }
        let all_of = list("allOf");
        if !all_of.is_empty() {
            let mut valid = 0;
            for sub in &all_of {
                let r = self.node(sub, v, path, false);
                if r.is_empty() {
                    valid += 1;
                }
                errs.extend(r);
            }
            if valid != all_of.len() {
                let extra = if valid == 0 { ". None validated" } else { "" };
                errs.push(composite(format!(
                    "{} must validate all the schemas (allOf){extra}",
                    go_quote(path)
                )));
            }
        }
        if let Some(not) = get(s, "not").filter(|n| n.is_object()) {
            if self.node(not, v, path, false).is_empty() {
                errs.push(composite(format!(
                    "{} must not validate the schema (not)",
                    go_quote(path)
                )));
            }
        }
    }

    /// maxLength, minLength and pattern; kube-openapi stops at the first failure.
    fn check_string(&mut self, s: &Value, st: &str, path: &str, errs: &mut Vec<FieldError>) {
        let len = st.chars().count() as i64;
        if let Some(max) = count(s, "maxLength") {
            if len > max {
                errs.push(FieldError::too_long(
                    path,
                    usize::try_from(max).unwrap_or(0),
                ));
                return;
            }
        }
        if let Some(min) = count(s, "minLength") {
            if len < min {
                errs.push(FieldError::invalid(
                    path,
                    go_quote(st),
                    format!("{path} in body should be at least {min} chars long"),
                ));
                return;
            }
        }
        let pattern = str_of(s, "pattern");
        if !pattern.is_empty() {
            let shown = match self.regex(pattern) {
                Some(re) if re.is_match(st) => return,
                Some(_) => pattern.to_string(),
                None => format!("{pattern}, but pattern is invalid"),
            };
            errs.push(FieldError::invalid(
                path,
                go_quote(st),
                format!("{path} in body should match '{shown}'"),
            ));
        }
    }

    fn check_array(&mut self, s: &Value, a: &[Value], path: &str, errs: &mut Vec<FieldError>) {
        match get(s, "items") {
            Some(item @ Value::Object(_)) => {
                for (i, x) in a.iter().enumerate() {
                    errs.extend(self.node(item, x, &format!("{path}[{i}]"), false));
                }
            }
            Some(Value::Array(tuple)) => {
                for (i, (sub, x)) in tuple.iter().zip(a).enumerate() {
                    errs.extend(self.node(sub, x, &format!("{path}[{i}]"), false));
                }
            }
            _ => {}
        }
        check_size(s, ("minItems", "maxItems", "items"), a.len(), path, errs);
        if flag(s, "uniqueItems") && a.iter().enumerate().any(|(i, x)| a[..i].contains(x)) {
            errs.push(FieldError::invalid(
                path,
                go_quote(""),
                format!("{path} in body shouldn't contain duplicates"),
            ));
        }
    }

    fn check_enum(&self, s: &Value, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
        let Some(values) = get(s, "enum").and_then(Value::as_array) else {
            return;
        };
        if values.is_empty() || values.iter().any(|e| enum_matches(v, e)) {
            return;
        }
        let supported: Vec<String> = values
            .iter()
            .map(|e| match e {
                Value::String(s) => s.clone(),
                other => go_json(other),
            })
            .collect();
        let refs: Vec<&str> = supported.iter().map(String::as_str).collect();
        let mut e = FieldError::not_supported(path, "", &refs);
        e.value = Some(render(v));
        errs.push(e);
    }

    fn check_object(
        &mut self,
        s: &Value,
        m: &Map<String, Value>,
        path: &str,
        root: bool,
        errs: &mut Vec<FieldError>,
    ) {
        check_size(
            s,
            ("minProperties", "maxProperties", "properties"),
            m.len(),
            path,
            errs,
        );
        let properties = props(s);
        let declared = |k: &str| properties.is_some_and(|p| p.contains_key(k));
        if additional_forbidden(s) {
            for k in m.keys().filter(|k| !declared(k)) {
                errs.push(FieldError::invalid(
                    path,
                    go_quote(k),
                    format!("{path}.{k} in body is a forbidden property"),
                ));
            }
        } else if let Some(Some(add)) = additional(s) {
            for (k, x) in m.iter().filter(|(k, _)| !declared(k)) {
                if root && is_meta(k) {
                    continue;
                }
                errs.extend(self.node(add, x, &join(path, k), false));
            }
        }
        if let Some(p) = properties {
            for (k, sub) in p {
                if root && is_meta(k) {
                    continue;
                }
                if let Some(x) = m.get(k) {
                    errs.extend(self.node(sub, x, &join(path, k), false));
                }
            }
        }
        for k in get(s, "required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(k) = k.as_str() {
                if !m.contains_key(k) {
                    errs.push(FieldError::required(join(path, k), ""));
                }
            }
        }
    }
}

fn is_meta(k: &str) -> bool {
    matches!(k, "apiVersion" | "kind" | "metadata")
}

/// Go's enum check: the value converted to the enum entry's Go type must deeply equal it
/// (so 1.0 matches the integer 1, and a float is truncated first).
fn enum_matches(v: &Value, e: &Value) -> bool {
    match (v, e) {
        (Value::Number(a), Value::Number(b)) => match (as_int(a), as_int(b)) {
            (Some(x), Some(y)) => x == y,
            (None, Some(y)) => a.as_f64().is_some_and(|f| f.trunc() as i64 == y),
            (_, None) => a.as_f64() == b.as_f64(),
        },
        (Value::Number(a), Value::String(b)) => as_int(a)
            .map(|i| {
                u32::try_from(i)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{FFFD}')
            })
            .is_some_and(|c| b.chars().eq(std::iter::once(c))),
        (Value::Null, _) => false,
        _ => v == e,
    }
}

fn check_format(s: &Value, st: &str, path: &str, errs: &mut Vec<FieldError>) {
    let format = supported_format(s);
    if format.is_empty() || format_ok(&format.replace('-', ""), st) {
        return;
    }
    errs.push(FieldError::invalid(
        path,
        go_quote(st),
        format!("{path} in body must be of type {format}: {}", go_quote(st)),
    ));
}

/// The cheap formats; the others Kubernetes knows (email, uri, isbn…) are accepted.
fn format_ok(format: &str, st: &str) -> bool {
    let re = |p: &str| Regex::new(p).map(|r| r.is_match(st)).unwrap_or(true);
    match format {
        "uuid" => re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$"),
        "uuid3" => re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$"),
        "uuid4" | "uuid5" => {
            let v = &format[4..];
            re(&format!(
                r"(?i)^[0-9a-f]{{8}}-?[0-9a-f]{{4}}-?{v}[0-9a-f]{{3}}-?[89ab][0-9a-f]{{3}}-?[0-9a-f]{{12}}$"
            ))
        }
        "date" => is_date(st),
        "datetime" => is_date_time(st),
        "byte" => {
            re(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$")
        }
        "ipv4" => st.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => st.parse::<std::net::Ipv6Addr>().is_ok(),
        "cidr" => st.split_once('/').is_some_and(|(ip, bits)| {
            let max = if ip.contains(':') { 128 } else { 32 };
            ip.parse::<std::net::IpAddr>().is_ok()
                && !bits.starts_with('+')
                && bits.parse::<u8>().is_ok_and(|b| b <= max)
        }),
        "mac" => re(r"^(?:[0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$"),
        "hexcolor" => re(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"),
        _ => true,
    }
}

/// RFC 3339 full-date, as Go's `time.Parse("2006-01-02")` accepts it.
fn is_date(st: &str) -> bool {
    let b = st.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let n = |r: std::ops::Range<usize>| st.get(r).and_then(|x| x.parse::<u32>().ok());
    let (Some(y), Some(m), Some(d)) = (n(0..4), n(5..7), n(8..10)) else {
        return false;
    };
    if !st
        .bytes()
        .enumerate()
        .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
    {
        return false;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// kube-openapi's date-time check: a date, `t`, then `hh:mm:ss[.frac](z|±hh:mm)`.
fn is_date_time(st: &str) -> bool {
    let lower = st.to_lowercase();
    let mut parts = lower.split('t');
    let (Some(date), Some(time)) = (parts.next(), parts.next()) else {
        return false;
    };
    if st.len() < 4 || !is_date(date) {
        return false;
    }
    let re = Regex::new(r"([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$");
    let Some(c) = re.ok().and_then(|r| {
        r.captures(time)
            .map(|c| [1, 2, 3].map(|i| c.get(i).map_or(String::new(), |m| m.as_str().to_string())))
    }) else {
        return false;
    };
    c[0].as_str() <= "23" && c[1].as_str() <= "59" && c[2].as_str() <= "59"
}

/// The number validator: range sanity of the value and bounds, multipleOf, minimum, maximum.
fn check_number(s: &Value, n: &serde_json::Number, path: &str, errs: &mut Vec<FieldError>) {
    let is_int_type = str_of(s, "type") == "integer" && !flag(s, "x-kubernetes-int-or-string");
    // kube-openapi prints the number with 'f' and parses it back as an int64.
    let int_ok = |f: f64| f.is_finite() && f.fract() == 0.0 && f.abs() < 9.2e18;
    let range_err = |prefix: &str| {
        FieldError::invalid(
            "",
            go_quote(""),
            format!("{prefix} value must be of type integer (default format) in {path}"),
        )
    };
    let data = n.as_f64().unwrap_or(0.0);
    let int = as_int(n);
    if is_int_type && int.is_none() && !int_ok(data) {
        errs.push(range_err("Checked"));
    }
    let bad = |detail: String, value: String| FieldError::invalid(path, value, detail);
    let shown = go_number(n);
    if let Some(f) = num(s, "multipleOf") {
        if is_int_type && !int_ok(f) {
            errs.push(range_err("MultipleOf"));
        }
        let (positive, multiple, factor) = match int {
            Some(i) if !is_int_type || int_ok(f) => {
                let fi = f as i64;
                (fi > 0, fi > 0 && i % fi == 0, fi.to_string())
            }
            _ => {
                let m = if f < 1.0 { 1.0 / f * data } else { data / f };
                (f > 0.0, f > 0.0 && float_is_int(m), go_float(f))
            }
        };
        if !positive {
            errs.push(bad(
                format!("factor MultipleOf declared for {path} must be positive: {factor}"),
                factor.clone(),
            ));
        } else if !multiple {
            errs.push(bad(
                format!("{path} in body should be a multiple of {factor}"),
                shown.clone(),
            ));
        }
    }
    for (key, excl_key, is_min) in [
        ("minimum", "exclusiveMinimum", true),
        ("maximum", "exclusiveMaximum", false),
    ] {
        let Some(bound) = num(s, key) else { continue };
        let excl = flag(s, excl_key);
        let bound_ok = !is_int_type || int_ok(bound);
        if !bound_ok {
            errs.push(range_err(if is_min {
                "Minimum boundary"
            } else {
                "Maximum boundary"
            }));
        }
        let (fails, shown_bound) = match int {
            Some(i) if bound_ok => {
                let b = bound as i64;
                let f = if is_min {
                    i < b || (excl && i == b)
                } else {
                    i > b || (excl && i == b)
                };
                (f, b.to_string())
            }
            _ => {
                let f = if is_min {
                    data < bound || (excl && data == bound)
                } else {
                    data > bound || (excl && data == bound)
                };
                (f, go_float(bound))
            }
        };
        if fails {
            let word = match (is_min, excl) {
                (true, false) => "greater than or equal to",
                (true, true) => "greater than",
                (false, false) => "less than or equal to",
                (false, true) => "less than",
            };
            errs.push(bad(
                format!("{path} in body should be {word} {shown_bound}"),
                shown.clone(),
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------
// x-kubernetes-list-type: set and map uniqueness (structurallisttype), with field.Path keys.

fn list_types_object(s: &Value, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(m) = v.as_object() else { return };
    if let Some(Some(add)) = additional(s) {
        for (k, x) in m {
            list_types(add, x, &format!("{path}[{k}]"), errs);
        }
    }
    if let Some(p) = props(s) {
        for (k, x) in m {
            if let Some(sub) = p.get(k) {
                list_types(sub, x, &join(path, k), errs);
            }
        }
    }
}

fn list_types(s: &Value, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(a) = v.as_array() else {
        return list_types_object(s, v, path, errs);
    };
    match str_of(s, "x-kubernetes-list-type") {
        "set" => {
            for i in non_unique(a) {
                errs.push(FieldError::duplicate(format!("{path}[{i}]"), render(&a[i])));
            }
        }
        "map" => list_map(s, a, path, errs),
        _ => {}
    }
    if let Some(item) = items_schema(s) {
        for (i, x) in a.iter().enumerate() {
            list_types(item, x, &format!("{path}[{i}]"), errs);
        }
    }
}

/// Indices of the second appearance of each repeated element; compound elements compare by
/// their JSON encoding, scalars by Go's `==` (so `1` and `1.0` differ).
fn non_unique(a: &[Value]) -> Vec<usize> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, x) in a.iter().enumerate() {
        let key = match x {
            Value::Object(_) | Value::Array(_) => format!("c{}", go_json(x)),
            Value::Number(n) if as_int(n).is_none() => format!("f{}", go_json(x)),
            other => format!("s{other}"),
        };
        let times = seen.entry(key).or_insert(0);
        *times += 1;
        if *times == 2 {
            out.push(i);
        }
    }
    out
}

fn list_map(s: &Value, a: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    if let Some((i, x)) = a
        .iter()
        .enumerate()
        .find(|(_, x)| !x.is_null() && !x.is_object())
    {
        errs.push(FieldError::invalid(
            format!("{path}[{i}]"),
            render(x),
            "must be an object for an array of list-type map",
        ));
        return;
    }
    let keys: Vec<&str> = get(s, "x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|k| k.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let entries: Vec<Value> = a
        .iter()
        .map(|x| {
            let mut key = Map::new();
            for k in &keys {
                if let Some(v) = x.get(*k) {
                    key.insert((*k).to_string(), v.clone());
                }
            }
            Value::Object(key)
        })
        .collect();
    for i in non_unique(&entries) {
        errs.push(FieldError::duplicate(
            format!("{path}[{i}]"),
            go_sharp(&entries[i]),
        ));
    }
}

// ---------------------------------------------------------------------------------------
// Defaulting and null dropping.

fn prune_nulls(s: Option<&Value>, v: &mut Value) {
    match v {
        Value::Object(m) => {
            let field_schema = |k: &str| match s {
                Some(s) => props(s)
                    .and_then(|p| p.get(k))
                    .or_else(|| additional(s).flatten()),
                None => None,
            };
            m.retain(|k, x| {
                let fs = field_schema(k);
                !x.is_null() || fs.is_none() || nullable(fs) || has_default(fs)
            });
            for (k, x) in m.iter_mut() {
                prune_nulls(field_schema(k), x);
            }
        }
        Value::Array(a) => {
            let item = s.and_then(items_schema);
            for x in a {
                prune_nulls(item, x);
            }
        }
        _ => {}
    }
}

fn default(s: &Value, v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(p) = props(s) {
                for (k, sub) in p {
                    let Some(d) = get(sub, "default").filter(|d| !d.is_null()) else {
                        continue;
                    };
                    if m.get(k)
                        .is_none_or(|x| x.is_null() && !flag(sub, "nullable"))
                    {
                        m.insert(k.clone(), d.clone());
                    }
                }
            }
            let add = additional(s).flatten();
            for (k, x) in m.iter_mut() {
                if let Some(sub) = props(s).and_then(|p| p.get(k)) {
                    default(sub, x);
                } else if let Some(add) = add {
                    fill_null(add, x);
                    default(add, x);
                }
            }
        }
        Value::Array(a) => {
            if let Some(item) = items_schema(s) {
                for x in a {
                    fill_null(item, x);
                    default(item, x);
                }
            }
        }
        _ => {}
    }
}

fn fill_null(s: &Value, x: &mut Value) {
    if x.is_null() && !flag(s, "nullable") {
        if let Some(d) = get(s, "default").filter(|d| !d.is_null()) {
            *x = d.clone();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Pruning.

fn prune_value(v: &mut Value, s: Option<&Value>, path: &str, out: &mut Vec<String>) {
    if let Some(s) = s.filter(|s| flag(s, "x-kubernetes-preserve-unknown-fields")) {
        return skip_prune(v, s, path, out);
    }
    match v {
        Value::Object(m) => {
            let Some(s) = s else {
                out.extend(m.keys().map(|k| join(path, k)));
                m.clear();
                return;
            };
            let embedded = flag(s, "x-kubernetes-embedded-resource");
            let mut drop = Vec::new();
            for (k, x) in m.iter_mut() {
                if embedded && is_meta(k) {
                    continue;
                }
                if let Some(sub) = props(s).and_then(|p| p.get(k)) {
                    prune_value(x, Some(sub), &join(path, k), out);
                } else if let Some(add) = additional(s) {
                    prune_value(x, add, &join(path, k), out);
                } else {
                    out.push(join(path, k));
                    drop.push(k.clone());
                }
            }
            for k in drop {
                m.remove(&k);
            }
        }
        Value::Array(a) => {
            let item = s.and_then(items_schema);
            for (i, x) in a.iter_mut().enumerate() {
                prune_value(x, item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn skip_prune(v: &mut Value, s: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            let embedded = flag(s, "x-kubernetes-embedded-resource");
            for (k, x) in m.iter_mut() {
                if embedded && is_meta(k) {
                    continue;
                }
                if let Some(sub) = props(s).and_then(|p| p.get(k)) {
                    prune_value(x, Some(sub), &join(path, k), out);
                } else if let Some(add) = additional(s) {
                    prune_value(x, add, &join(path, k), out);
                }
            }
        }
        Value::Array(a) => {
            if let Some(item) = items_schema(s) {
                for (i, x) in a.iter_mut().enumerate() {
                    skip_prune(x, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// Structural schema checks.

#[derive(Clone, Copy, PartialEq)]
enum Level {
    Root,
    Item,
    Field,
}

fn key_path(path: &str, child: &str, key: &str) -> String {
    format!("{path}.{child}[{key}]")
}

/// `anyOf: [{type: integer}, {type: string}]`, the value validation int-or-string allows.
fn is_int_or_string_any_of(s: &Value) -> bool {
    get(s, "anyOf").and_then(Value::as_array).is_some_and(|a| {
        a.len() == 2
            && a[0] == serde_json::json!({"type": "integer"})
            && a[1] == serde_json::json!({"type": "string"})
    })
}

fn invariants(s: &Value, lvl: Level, path: &str, errs: &mut Vec<FieldError>) {
    let Some(m) = s.as_object() else { return };
    let ty = str_of(s, "type");
    if ty == "array" && items_schema(s).is_none() {
        errs.push(FieldError::required(
            format!("{path}.items"),
            "must be specified",
        ));
    }
    if let Some(item) = items_schema(s) {
        invariants(item, Level::Item, &format!("{path}.items"), errs);
    }
    for (k, sub) in props(s).into_iter().flatten() {
        invariants(sub, Level::Field, &key_path(path, "properties", k), errs);
    }
    if let Some(add) = additional(s) {
        if lvl == Level::Root {
            errs.push(FieldError::forbidden(
                format!("{path}.additionalProperties"),
                "must not be used at the root",
            ));
        }
        if let Some(add) = add {
            invariants(
                add,
                Level::Field,
                &format!("{path}.additionalProperties"),
                errs,
            );
        }
    }
    let ios = flag(s, "x-kubernetes-int-or-string");
    let preserve = flag(s, "x-kubernetes-preserve-unknown-fields");
    let embedded = flag(s, "x-kubernetes-embedded-resource");
    if ios && preserve {
        errs.push(FieldError::invalid(
            format!("{path}.x-kubernetes-preserve-unknown-fields"),
            "true",
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if ios && embedded {
        errs.push(FieldError::invalid(
            format!("{path}.x-kubernetes-embedded-resource"),
            "true",
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    let skip_any_of = is_int_or_string_any_of(s);
    let skip_all_of_first = get(s, "allOf")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .is_some_and(is_int_or_string_any_of);
    value_validation(m, skip_any_of, skip_all_of_first, path, errs);
    if embedded && ty != "object" {
        let d = "must be object if x-kubernetes-embedded-resource is true";
        errs.push(if ty.is_empty() {
            FieldError::required(format!("{path}.type"), d)
        } else {
            FieldError::invalid_str(format!("{path}.type"), ty, d)
        });
    } else if ty.is_empty() && !ios && !preserve {
        let d = match lvl {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        errs.push(FieldError::required(format!("{path}.type"), d));
    }
    if embedded && additional(s).is_some() {
        errs.push(FieldError::forbidden(
            format!("{path}.additionalProperties"),
            "must not be used if x-kubernetes-embedded-resource is set",
        ));
    }
    if lvl == Level::Root && !ty.is_empty() && ty != "object" {
        errs.push(FieldError::invalid_str(
            format!("{path}.type"),
            ty,
            "must be object at the root",
        ));
    }
    let check_meta = lvl == Level::Root || embedded;
    for k in ["kind", "apiVersion"] {
        if let Some(sub) = props(s).and_then(|p| p.get(k)).filter(|_| check_meta) {
            let t = str_of(sub, "type");
            if t != "string" {
                let p = format!("{}.type", key_path(path, "properties", k));
                errs.push(FieldError::invalid_str(p, t, "must be string"));
            }
        }
    }
    if let Some(meta) = props(s).and_then(|p| p.get("metadata")) {
        let mp = key_path(path, "properties", "metadata");
        let t = str_of(meta, "type");
        if check_meta && t != "object" {
            errs.push(FieldError::invalid_str(
                format!("{mp}.type"),
                t,
                "must be object",
            ));
        }
        if lvl == Level::Root && !root_metadata_ok(meta) {
            errs.push(FieldError::forbidden(
                mp,
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            ));
        }
    }
    if embedded && !preserve && props(s).is_none_or(|p| p.is_empty()) {
        errs.push(FieldError::required(
            format!("{path}.properties"),
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
}

/// The root's metadata schema may only restrict `name` and `generateName`.
fn root_metadata_ok(meta: &Value) -> bool {
    let Some(m) = meta.as_object() else {
        return true;
    };
    m.iter().all(|(k, v)| match k.as_str() {
        "type" | "default" => true,
        "properties" => v
            .as_object()
            .is_none_or(|p| p.is_empty() || p.keys().all(|k| k == "name" || k == "generateName")),
        _ => v.is_null() || v == &Value::Bool(false),
    })
}

const NESTED_FORBIDDEN: &[(&str, &str)] = &[
    ("type", "must be empty to be structural"),
    ("additionalProperties", "must be undefined to be structural"),
    ("default", "must be undefined to be structural"),
    ("title", "must be empty to be structural"),
    ("description", "must be empty to be structural"),
    ("nullable", "must be false to be structural"),
    ("externalDocs", "must be undefined to be structural"),
    (
        "x-kubernetes-preserve-unknown-fields",
        "must be false to be structural",
    ),
    (
        "x-kubernetes-embedded-resource",
        "must be false to be structural",
    ),
    (
        "x-kubernetes-int-or-string",
        "must be false to be structural",
    ),
    (
        "x-kubernetes-list-map-keys",
        "must be empty to be structural",
    ),
    (
        "x-kubernetes-list-type",
        "must be undefined to be structural",
    ),
    (
        "x-kubernetes-map-type",
        "must be undefined to be structural",
    ),
    ("x-kubernetes-validations", "must be empty to be structural"),
];

fn value_validation(
    m: &Map<String, Value>,
    skip_any_of: bool,
    skip_first_all_of: bool,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let list = |k: &str| {
        m.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    if !skip_any_of {
        for (i, sub) in list("anyOf").iter().enumerate() {
            nested(sub, false, &format!("{path}.anyOf[{i}]"), errs);
        }
    }
    for (i, sub) in list("allOf").iter().enumerate() {
        nested(
            sub,
            skip_first_all_of && i == 0,
            &format!("{path}.allOf[{i}]"),
            errs,
        );
    }
    for (i, sub) in list("oneOf").iter().enumerate() {
        nested(sub, false, &format!("{path}.oneOf[{i}]"), errs);
    }
    if let Some(not) = m.get("not") {
        nested(not, false, &format!("{path}.not"), errs);
    }
    if let Some(p) = m
        .get("pattern")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
    {
        if let Err(e) = Regex::new(p) {
            let first = e
                .to_string()
                .lines()
                .last()
                .unwrap_or("")
                .trim()
                .to_string();
            errs.push(FieldError::invalid_str(
                format!("{path}.pattern"),
                p,
                format!("must be a valid regular expression, but isn't: {first}"),
            ));
        }
    }
}

fn nested(s: &Value, skip_any_of: bool, path: &str, errs: &mut Vec<FieldError>) {
    let Some(m) = s.as_object() else { return };
    value_validation(m, skip_any_of, false, path, errs);
    if let Some(item) = m.get("items") {
        nested(item, false, &format!("{path}.items"), errs);
    }
    for (k, sub) in props(s).into_iter().flatten() {
        nested(sub, false, &key_path(path, "properties", k), errs);
    }
    for (k, detail) in NESTED_FORBIDDEN {
        let set = match m.get(*k) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(_) => true,
        };
        if set {
            errs.push(FieldError::forbidden(format!("{path}.{k}"), *detail));
        }
    }
    if props(s).is_some_and(|p| p.contains_key("metadata")) {
        errs.push(FieldError::forbidden(
            key_path(path, "properties", "metadata"),
            "must not be specified in a nested context",
        ));
    }
}

/// Properties and items named under `anyOf`/`allOf`/`oneOf`/`not` must exist structurally.
fn completeness(
    v: &Map<String, Value>,
    s: Option<&Map<String, Value>>,
    s_path: &str,
    v_path: &str,
    errs: &mut Vec<FieldError>,
) {
    let Some(s) = s else {
        errs.push(FieldError::required(
            s_path,
            format!("because it is defined in {v_path}"),
        ));
        return;
    };
    let list = |k: &str| {
        v.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let mut subs: Vec<(Value, String)> = Vec::new();
    if let Some(not) = v.get("not") {
        subs.push((not.clone(), format!("{v_path}.not")));
    }
    for k in ["allOf", "anyOf", "oneOf"] {
        for (i, sub) in list(k).into_iter().enumerate() {
            subs.push((sub, format!("{v_path}.{k}[{i}]")));
        }
    }
    for (sub, sub_path) in subs {
        let Some(sub) = sub.as_object() else { continue };
        nested_completeness(sub, s, s_path, &sub_path, errs);
    }
}

fn nested_completeness(
    v: &Map<String, Value>,
    s: &Map<String, Value>,
    s_path: &str,
    v_path: &str,
    errs: &mut Vec<FieldError>,
) {
    completeness(v, Some(s), s_path, v_path, errs);
    if let Some(vi) = v.get("items").and_then(Value::as_object) {
        let si = s.get("items").and_then(Value::as_object);
        let (sp, vp) = (format!("{s_path}.items"), format!("{v_path}.items"));
        match si {
            Some(si) => nested_completeness(vi, si, &sp, &vp, errs),
            None => completeness(vi, None, &sp, &vp, errs),
        }
    }
    let sprops = s.get("properties").and_then(Value::as_object);
    for (k, vf) in v
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let (sp, vp) = (
            key_path(s_path, "properties", k),
            key_path(v_path, "properties", k),
        );
        match sprops.and_then(|p| p.get(k)).and_then(Value::as_object) {
            Some(sf) => {
                if let Some(vf) = vf.as_object() {
                    nested_completeness(vf, sf, &sp, &vp, errs);
                }
            }
            None => errs.push(FieldError::required(
                sp,
                format!("because it is defined in {vp}"),
            )),
        }
    }
}

/// The checks of the CRD's OpenAPI schema validation that concern structure.
fn openapi_checks(s: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(m) = s.as_object() else { return };
    let ty = str_of(s, "type");
    const TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];
    if !ty.is_empty() && !TYPES.contains(&ty) {
        errs.push(FieldError::not_supported(
            format!("{path}.type"),
            ty,
            &TYPES,
        ));
    }
    if flag(s, "uniqueItems") {
        errs.push(FieldError::forbidden(
            format!("{path}.uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    if let Some(add) = m.get("additionalProperties") {
        if props(s).is_some_and(|p| !p.is_empty()) && add != &Value::Bool(true) {
            errs.push(FieldError::forbidden(
                format!("{path}.additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        openapi_checks(add, &format!("{path}.additionalProperties"), errs);
    }
    for (k, sub) in props(s).into_iter().flatten() {
        openapi_checks(sub, &key_path(path, "properties", k), errs);
    }
    if let Some(not) = m.get("not") {
        openapi_checks(not, &format!("{path}.not"), errs);
    }
    for k in ["allOf", "oneOf", "anyOf"] {
        for (i, sub) in m
            .get(k)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            openapi_checks(sub, &format!("{path}.{k}[{i}]"), errs);
        }
    }
    if let Some(item) = items_schema(s) {
        openapi_checks(item, &format!("{path}.items"), errs);
    }
    if m.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        errs.push(FieldError::invalid(
            format!("{path}.x-kubernetes-preserve-unknown-fields"),
            "false",
            "must be true or undefined",
        ));
    }
    let type_err = |errs: &mut Vec<FieldError>, want: &str, ext: &str| {
        let d = format!("must be {want} if x-kubernetes-{ext} is specified");
        errs.push(if ty.is_empty() {
            FieldError::required(format!("{path}.type"), d)
        } else {
            FieldError::invalid_str(format!("{path}.type"), ty, d)
        });
    };
    if let Some(mt) = m.get("x-kubernetes-map-type").and_then(Value::as_str) {
        if ty != "object" {
            type_err(errs, "object", "map-type");
        }
        if mt != "atomic" && mt != "granular" {
            errs.push(FieldError::not_supported(
                format!("{path}.x-kubernetes-map-type"),
                mt,
                &["atomic", "granular"],
            ));
        }
    }
    let lt = m.get("x-kubernetes-list-type").and_then(Value::as_str);
    if let Some(lt) = lt {
        if ty != "array" {
            type_err(errs, "array", "list-type");
        }
        if !matches!(lt, "atomic" | "set" | "map") {
            errs.push(FieldError::not_supported(
                format!("{path}.x-kubernetes-list-type"),
                lt,
                &["atomic", "set", "map"],
            ));
        }
    }
    let keys = m
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array);
    if keys.is_some_and(|k| !k.is_empty()) {
        let d = "must be map if x-kubernetes-list-map-keys is non-empty";
        match lt {
            None => errs.push(FieldError::required(
                format!("{path}.x-kubernetes-list-type"),
                d,
            )),
            Some("map") => {}
            Some(other) => errs.push(FieldError::invalid_str(
                format!("{path}.x-kubernetes-list-type"),
                other,
                d,
            )),
        }
    }
    if lt == Some("map") {
        if keys.is_none_or(|k| k.is_empty()) {
            errs.push(FieldError::required(
                format!("{path}.x-kubernetes-list-map-keys"),
                "must not be empty if x-kubernetes-list-type is map",
            ));
        }
        match items_schema(s) {
            None => errs.push(FieldError::required(
                format!("{path}.items"),
                "must have a schema if x-kubernetes-list-type is map",
            )),
            Some(item) if str_of(item, "type") != "object" => errs.push(FieldError::invalid_str(
                format!("{path}.items.type"),
                str_of(item, "type"),
                "must be object if parent array's x-kubernetes-list-type is map",
            )),
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A CRD root schema with `spec` of the given schema.
    fn root(spec: Value) -> Value {
        json!({"type": "object", "properties": {"spec": spec}})
    }

    /// Runs `[schema of spec.x, value of spec.x, [expected errors]]` cases.
    fn cases(table: Value) {
        for case in table.as_array().expect("table") {
            let schema = root(json!({"type": "object", "properties": {"x": case[0]}}));
            let got: Vec<String> = validate(&schema, &json!({"spec": {"x": case[1]}}))
                .iter()
                .map(ToString::to_string)
                .collect();
            let want: Vec<&str> = case[2]
                .as_array()
                .expect("want")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert_eq!(got, want, "case {case}");
        }
    }

    #[test]
    fn types() {
        cases(json!([
            [{"type": "integer"}, "string", ["spec.x: Invalid value: \"string\": spec.x in body must be of type integer: \"string\""]],
            [{"type": "integer"}, 2.0, []],
            [{"type": "integer"}, 1.5, [
                "spec.x: Invalid value: \"number\": spec.x in body must be of type integer: \"number\"",
                ": Invalid value: \"\": Checked value must be of type integer (default format) in spec.x"]],
            [{"type": "number"}, 3, []],
            [{"type": "boolean"}, {}, ["spec.x: Invalid value: \"object\": spec.x in body must be of type boolean: \"object\""]],
            [{"type": "object"}, [], ["spec.x: Invalid value: \"array\": spec.x in body must be of type object: \"array\""]],
        ]));
    }

    #[test]
    fn nullable() {
        cases(json!([
            [{"type": "array", "items": {"type": "string"}}, [null],
                ["spec.x[0]: Invalid value: \"null\": spec.x[0] in body must be of type string: \"null\""]],
            [{"type": "array", "items": {"type": "string", "nullable": true}}, [null], []],
        ]));
    }

    #[test]
    fn required() {
        cases(json!([
            [{"type": "object", "required": ["cronSpec"], "properties": {"cronSpec": {"type": "string"}}}, {}, ["spec.x.cronSpec: Required value"]],
        ]));
        let r = json!({"type": "object", "required": ["spec"]});
        assert_eq!(
            validate(&r, &json!({}))[0].to_string(),
            "spec: Required value"
        );
    }

    #[test]
    fn enums() {
        cases(json!([
            [{"type": "string", "enum": ["a", "b"]}, "c", ["spec.x: Unsupported value: \"c\": supported values: \"a\", \"b\""]],
            [{"type": "integer", "enum": [1, 2]}, 3, ["spec.x: Unsupported value: 3: supported values: \"1\", \"2\""]],
            [{"type": "integer", "enum": [1, 2]}, 2, []],
        ]));
    }

    #[test]
    fn bounds() {
        cases(json!([
            [{"type": "integer", "minimum": 1}, 0, ["spec.x: Invalid value: 0: spec.x in body should be greater than or equal to 1"]],
            [{"type": "integer", "maximum": 10}, 11, ["spec.x: Invalid value: 11: spec.x in body should be less than or equal to 10"]],
            [{"type": "integer", "minimum": 1, "exclusiveMinimum": true}, 1, ["spec.x: Invalid value: 1: spec.x in body should be greater than 1"]],
            [{"type": "integer", "maximum": 5, "exclusiveMaximum": true}, 5, ["spec.x: Invalid value: 5: spec.x in body should be less than 5"]],
            [{"type": "number", "maximum": 1.25}, 1.5, ["spec.x: Invalid value: 1.5: spec.x in body should be less than or equal to 1.25"]],
        ]));
    }

    #[test]
    fn multiple_of() {
        cases(json!([
            [{"type": "integer", "multipleOf": 3}, 7, ["spec.x: Invalid value: 7: spec.x in body should be a multiple of 3"]],
            [{"type": "integer", "multipleOf": 3}, 9, []],
            [{"type": "number", "multipleOf": 0.5}, 1.5, []],
        ]));
    }

    #[test]
    fn string_length_and_pattern() {
        let s = json!({"type": "string", "minLength": 3, "maxLength": 5, "pattern": "^[a-z]+$"});
        cases(json!([
            [s, "abcdef", ["spec.x: Too long: may not be more than 5 bytes"]],
            [s, "ab", ["spec.x: Invalid value: \"ab\": spec.x in body should be at least 3 chars long"]],
            [s, "ABC", ["spec.x: Invalid value: \"ABC\": spec.x in body should match '^[a-z]+$'"]],
            [{"type": "string", "maxLength": 3}, "ééé", []],
        ]));
    }

    #[test]
    fn formats() {
        cases(json!([
            [{"type": "string", "format": "uuid"}, "nope", ["spec.x: Invalid value: \"nope\": spec.x in body must be of type uuid: \"nope\""]],
            [{"type": "string", "format": "date-time"}, "2024-01-01T00:00:00Z", []],
            [{"type": "string", "format": "date-time"}, "soon", ["spec.x: Invalid value: \"soon\": spec.x in body must be of type date-time: \"soon\""]],
            [{"type": "string", "format": "date"}, "2023-02-29", ["spec.x: Invalid value: \"2023-02-29\": spec.x in body must be of type date: \"2023-02-29\""]],
            [{"type": "string", "format": "byte"}, "aGk=", []],
            [{"type": "integer", "format": "int32"}, 9_999_999_999_i64, []],
            [{"type": "string", "format": "made-up"}, "y", []],
        ]));
    }

    #[test]
    fn items_count_and_unique() {
        let s = json!({"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 2, "uniqueItems": true});
        cases(json!([
            [s, [], ["spec.x: Invalid value: 0: spec.x in body should have at least 1 items"]],
            [s, [1, 2, 3], ["spec.x: Too many: 3: must have at most 2 items"]],
            [s, [1, 1], ["spec.x: Invalid value: \"\": spec.x in body shouldn't contain duplicates"]],
            [{"type": "array", "items": {"type": "object", "required": ["name"]}}, [{"name": "a"}, {}], ["spec.x[1].name: Required value"]],
        ]));
    }

    #[test]
    fn object_properties() {
        let s = json!({"type": "object", "minProperties": 1, "maxProperties": 2, "additionalProperties": {"type": "string"}});
        cases(json!([
            [s, {}, ["spec.x: Invalid value: 0: spec.x in body should have at least 1 properties"]],
            [s, {"a": "", "b": "", "c": ""}, ["spec.x: Too many: 3: must have at most 2 items"]],
            [s, {"a": 1}, ["spec.x.a: Invalid value: \"integer\": spec.x.a in body must be of type string: \"integer\""]],
            [{"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false}, {"b": 1},
                ["spec.x: Invalid value: \"b\": spec.x.b in body is a forbidden property"]],
        ]));
    }

    #[test]
    fn combinators() {
        cases(json!([
            [{"anyOf": [{"type": "integer"}, {"type": "string"}]}, true, [
                ": Invalid value: \"\": \"spec.x\" must validate at least one schema (anyOf)",
                "spec.x: Invalid value: \"boolean\": spec.x in body must be of type integer: \"boolean\""]],
            [{"type": "integer", "oneOf": [{"minimum": 0}, {"maximum": 10}]}, 5,
                [": Invalid value: \"\": \"spec.x\" must validate one and only one schema (oneOf). Found 2 valid alternatives"]],
            [{"type": "integer", "allOf": [{"minimum": 0}, {"maximum": 10}]}, 11, [
                "spec.x: Invalid value: 11: spec.x in body should be less than or equal to 10",
                ": Invalid value: \"\": \"spec.x\" must validate all the schemas (allOf)"]],
            [{"type": "integer", "not": {"minimum": 5}}, 6, [": Invalid value: \"\": \"spec.x\" must not validate the schema (not)"]],
        ]));
    }

    #[test]
    fn int_or_string_and_preserve() {
        cases(json!([
            [{"x-kubernetes-int-or-string": true}, 80, []],
            [{"x-kubernetes-int-or-string": true}, "http", []],
            [{"x-kubernetes-int-or-string": true}, true,
                ["spec.x: Invalid value: \"boolean\": spec.x in body must be of type integer,string: \"boolean\""]],
            [{"type": "object", "x-kubernetes-preserve-unknown-fields": true}, {"y": {"z": 1}}, []],
        ]));
    }

    #[test]
    fn list_types() {
        let item = json!({"type": "object", "properties": {"name": {"type": "string"}, "protocol": {"type": "string"}}});
        cases(json!([
            [{"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}, ["a", "b", "a", "a"],
                ["spec.x[2]: Duplicate value: \"a\""]],
            [{"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"], "items": item},
                [{"name": "a", "protocol": "TCP"}, {"name": "a"}],
                ["spec.x[1]: Duplicate value: map[string]interface {}{\"name\":\"a\"}"]],
            [{"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name", "protocol"], "items": item},
                [{"name": "a", "protocol": "TCP"}, {"name": "a", "protocol": "UDP"}, {"name": "a", "protocol": "TCP"}],
                ["spec.x[2]: Duplicate value: map[string]interface {}{\"name\":\"a\", \"protocol\":\"TCP\"}"]],
            [{"type": "object", "additionalProperties": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "integer"}}},
                {"k": [1, 1]}, ["spec.x[k][1]: Duplicate value: 1"]],
        ]));
    }

    #[test]
    fn root_meta_fields_are_not_validated() {
        let s = json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {"name": {"maxLength": 1}}}}});
        let obj = json!({"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "long"}});
        assert!(validate(&s, &obj).is_empty());
    }

    #[test]
    fn defaults_nested_and_nulls() {
        let s = root(json!({"type": "object", "properties": {
            "replicas": {"type": "integer", "default": 1},
            "template": {"type": "object", "default": {}, "properties": {"image": {"type": "string", "default": "nginx"}}},
            "gone": {"type": "string"},
            "kept": {"type": "string", "nullable": true},
            "filled": {"type": "string", "default": "x"},
        }}));
        let mut obj = json!({"spec": {"gone": null, "kept": null, "filled": null}});
        apply_defaults(&s, &mut obj);
        let want = json!({"spec": {"replicas": 1, "template": {"image": "nginx"}, "kept": null, "filled": "x"}});
        assert_eq!(obj, want);
    }

    #[test]
    fn defaults_arrays_and_maps() {
        let s = root(json!({"type": "object", "properties": {
            "ports": {"type": "array", "items": {"type": "object", "default": {"name": "d"},
                "properties": {"port": {"type": "integer", "default": 80}, "name": {"type": "string"}}}},
            "m": {"type": "object", "additionalProperties": {"type": "object", "properties": {"x": {"type": "boolean", "default": true}}}},
        }}));
        let mut obj = json!({"spec": {"ports": [{"name": "a"}, null], "m": {"k": {}}}});
        apply_defaults(&s, &mut obj);
        let want = json!({"spec": {"ports": [{"name": "a", "port": 80}, {"name": "d", "port": 80}], "m": {"k": {"x": true}}}});
        assert_eq!(obj, want);
    }

    #[test]
    fn prune_unknown_fields() {
        let s = root(json!({"type": "object", "properties": {
            "a": {"type": "integer"},
            "items": {"type": "array", "items": {"type": "object", "properties": {"ok": {"type": "string"}}}},
            "port": {"x-kubernetes-int-or-string": true},
        }}));
        let mut obj = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n", "odd": 1}, "extra": true,
            "spec": {"a": 1, "b": 2, "port": "http", "items": [{"ok": "y"}, {"ok": "z", "bad": {"deep": 1}}]}});
        let paths = prune(&s, &mut obj);
        assert_eq!(paths, ["extra", "spec.b", "spec.items[1].bad"]);
        let want = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n", "odd": 1},
            "spec": {"a": 1, "port": "http", "items": [{"ok": "y"}, {"ok": "z"}]}});
        assert_eq!(obj, want);
        let strict = "strict decoding error: unknown field \"extra\", unknown field \"spec.b\", \
                      unknown field \"spec.items[1].bad\"";
        assert_eq!(strict_decoding_error(&paths).as_deref(), Some(strict));
        assert_eq!(strict_decoding_error(&[]), None);
    }

    #[test]
    fn prune_preserve_and_embedded() {
        let s = root(json!({"type": "object", "properties": {
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                "properties": {"typed": {"type": "object", "properties": {}}}},
            "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        }}));
        let mut obj = json!({"spec": {
            "free": {"x": {"y": 1}, "typed": {"z": 1}},
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"any": 1}, "junk": 1},
            "labels": {"a": "b"},
        }});
        assert_eq!(
            prune(&s, &mut obj),
            ["spec.free.typed.z", "spec.template.junk"]
        );
        let want = json!({"spec": {
            "free": {"x": {"y": 1}, "typed": {}},
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"any": 1}},
            "labels": {"a": "b"},
        }});
        assert_eq!(obj, want);
    }

    /// Runs `[schema, [expected errors]]` cases through `validate_structural`; `$` in an
    /// expected error stands for the schema's path.
    fn structural_cases(table: Value) {
        let p = "spec.versions[0].schema.openAPIV3Schema";
        for case in table.as_array().expect("table") {
            let got: Vec<String> = validate_structural(&case[0], p)
                .iter()
                .map(ToString::to_string)
                .collect();
            let want: Vec<String> = case[1]
                .as_array()
                .expect("want")
                .iter()
                .filter_map(Value::as_str)
                .map(|w| w.replace('$', p))
                .collect();
            assert_eq!(got, want, "case {case}");
        }
    }

    #[test]
    fn structural_types() {
        structural_cases(json!([
            [{"type": "object", "properties": {"spec": {"properties": {}}}},
                ["$.properties[spec].type: Required value: must not be empty for specified object fields"]],
            [{"type": "string"}, ["$.type: Invalid value: \"string\": must be object at the root"]],
            [{}, ["$.type: Required value: must not be empty at the root"]],
            [{"type": "object", "properties": {"l": {"type": "array", "items": {}}}},
                ["$.properties[l].items.type: Required value: must not be empty for specified array items"]],
            [{"type": "object", "properties": {"l": {"type": "array"}}}, ["$.properties[l].items: Required value: must be specified"]],
            [{"type": "object", "properties": {"x": {"type": "thing"}}}, ["$.properties[x].type: Unsupported value: \"thing\": \
                supported values: \"array\", \"boolean\", \"integer\", \"number\", \"object\", \"string\""]],
            [{"type": "object", "properties": {"p": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "f": {"x-kubernetes-preserve-unknown-fields": true}}}, []],
        ]));
    }

    #[test]
    fn structural_forbidden_features() {
        structural_cases(json!([
            [{"type": "object", "properties": {"s": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}}}},
                ["$.properties[s].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"]],
            [{"type": "object", "properties": {"v": {"type": "string", "anyOf": [{"type": "string", "maxLength": 3}]}}},
                ["$.properties[v].anyOf[0].type: Forbidden: must be empty to be structural"]],
            [{"type": "object", "properties": {"l": {"type": "array", "uniqueItems": true, "items": {"type": "string"}}}},
                ["$.properties[l].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic"]],
            [{"type": "object", "properties": {"t": {"type": "object", "x-kubernetes-embedded-resource": true}}},
                ["$.properties[t].properties: Required value: must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields"]],
            [{"type": "object", "properties": {"s": {"type": "object"}}, "anyOf": [{"properties": {"foo": {}}}]},
                ["$.properties[foo]: Required value: because it is defined in $.anyOf[0].properties[foo]"]],
            [{"type": "object", "properties": {"metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}}},
                ["$.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"]],
            [{"type": "object", "nullable": true}, ["$.nullable: Forbidden: nullable cannot be true at the root"]],
        ]));
    }

    #[test]
    fn go_number_rendering() {
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(-1.5), "-1.5");
        assert_eq!(go_float(0.001), "0.001");
        let v = json!([1.0, 2.5, {"b": 1, "a": null}]);
        assert_eq!(go_json(&v), "[1,2.5,{\"a\":null,\"b\":1}]");
    }

    #[test]
    fn garbage_schemas_do_not_panic() {
        let schemas = json!([null, 42, "x", [],
            {"type": 5, "properties": [], "items": "x", "required": "spec", "enum": 3},
            {"type": "object", "properties": {"a": 7, "b": {"minLength": "a", "pattern": "(", "maximum": "z"}}},
            {"anyOf": {}, "allOf": [1, null], "oneOf": [[]], "not": 3, "additionalProperties": 1},
            {"type": "integer", "multipleOf": 0, "minimum": 1e300, "maxLength": -1, "maxItems": -3},
            {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": [1, {}], "items": {"default": null}},
            {"properties": {"metadata": 1, "kind": {"type": 1}}, "x-kubernetes-embedded-resource": "yes"}]);
        let objs =
            json!([null, {"spec": [1, {"a": null}], "a": "x", "b": {"c": []}}, [1.5, "x"], -3]);
        for s in schemas.as_array().into_iter().flatten() {
            let _ = validate_structural(s, "p");
            for o in objs.as_array().into_iter().flatten() {
                let _ = validate(s, o);
                let _ = validate(&root(s.clone()), &json!({"spec": o}));
                let mut d = o.clone();
                apply_defaults(s, &mut d);
                let _ = prune(s, &mut d);
            }
        }
    }
}
