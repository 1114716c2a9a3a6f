//! CustomResourceDefinition validation rules: the `x-kubernetes-validations` (CEL) of a
//! version's structural schema, evaluated as kube-apiserver 1.32 evaluates them on create and
//! update, with its field paths and messages.
//!
//! Evaluation uses the `cel` crate (cel-rust). It has no type checker, so type errors that
//! kube-apiserver rejects when the CRD is written surface here when a rule runs, as the
//! runtime `no such overload` error kube-apiserver reports for dynamically typed values.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use cel::common::types::{CelOptional, LIST_TYPE};
use cel::common::value::{CowVal, Val};
use cel::objects::{Key, Map};
use cel::{Context, Env, ExecutionError, Program, Value as Cel};
use kedge_config::validation::{go_quote, FieldError};
use serde_json::Value;

/// Schema and object depth past which nothing is walked or converted: objects are user data and
/// recursion must not overflow the stack.
const MAX_DEPTH: usize = 64;
/// Rule evaluations per object, standing in for kube-apiserver's CEL cost budget.
const MAX_EVALUATIONS: usize = 20_000;
/// Longest list the list functions added here walk.
const MAX_LIST: usize = 100_000;
/// kube-apiserver's `MaxEvaluatedMessageExpressionSizeBytes`.
const MAX_MESSAGE_BYTES: usize = 5 * 1024;
/// CEL's reserved words, escaped as `__word__` when they name a property.
const RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// Errors of the `x-kubernetes-validations` rules of `schema` (the version's openAPIV3Schema,
/// walked through properties, items and additionalProperties) on `obj`; `old` is the stored
/// object on update, which enables transition rules (`oldSelf`) and ratcheting. A rule at the
/// root reports the field `<nil>`, as kube-apiserver's nil `field.Path` prints.
pub fn validate(schema: &Value, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut w = Walker {
        errs: Vec::new(),
        programs: HashMap::new(),
        evaluations: 0,
    };
    let unchanged = old == Some(obj);
    w.walk(schema, obj, old, "", true, unchanged, 0);
    w.errs
}

/// Errors for rules that do not compile, as CRD admission reports them under `path` (the
/// schema's path, like `spec.versions[0].schema.openAPIV3Schema`).
pub fn validate_rules(schema: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    check_rules(schema, path, 0, &mut errs);
    errs
}

fn check_rules(schema: &Value, path: &str, depth: usize, errs: &mut Vec<FieldError>) {
    if depth > MAX_DEPTH {
        return;
    }
    for (i, rule) in rules_of(schema).iter().enumerate() {
        let base = format!("{path}.x-kubernetes-validations[{i}]");
        let src = rule.get("rule").and_then(Value::as_str).unwrap_or("");
        if src.trim().is_empty() {
            errs.push(FieldError::required(
                format!("{base}.rule"),
                "rule is not specified",
            ));
        } else if let Err(e) = env().compile(src) {
            let detail = format!("compilation failed: {e}");
            errs.push(FieldError::invalid(
                format!("{base}.rule"),
                go_rule(rule),
                detail,
            ));
        }
        if let Some(m) = rule.get("messageExpression").and_then(Value::as_str) {
            if let Err(e) = env().compile(m) {
                let detail = format!("messageExpression compilation failed: {e}");
                errs.push(FieldError::invalid(
                    format!("{base}.messageExpression"),
                    go_rule(rule),
                    detail,
                ));
            }
        }
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, s) in props {
            check_rules(s, &format!("{path}.properties[{k}]"), depth + 1, errs);
        }
    }
    if let Some(items) = schema.get("items").filter(|v| v.is_object()) {
        check_rules(items, &format!("{path}.items"), depth + 1, errs);
    }
    if let Some(ap) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        check_rules(ap, &format!("{path}.additionalProperties"), depth + 1, errs);
    }
}

/// The rule as Go's `%#v` prints kube-apiserver's internal `ValidationRule` (pointers shown as
/// `nil` or by their value, as addresses mean nothing here).
fn go_rule(rule: &Value) -> String {
    let s = |k: &str| go_quote(rule.get(k).and_then(Value::as_str).unwrap_or(""));
    let reason = match rule.get("reason").and_then(Value::as_str) {
        Some(r) => format!("&{}", go_quote(r)),
        None => "(*apiextensions.FieldValueErrorReason)(nil)".into(),
    };
    let optional = match rule.get("optionalOldSelf").and_then(Value::as_bool) {
        Some(b) => format!("&{b}"),
        None => "(*bool)(nil)".into(),
    };
    format!(
        "apiextensions.ValidationRule{{Rule:{}, Message:{}, MessageExpression:{}, Reason:{reason}, FieldPath:{}, OptionalOldSelf:{optional}}}",
        s("rule"),
        s("message"),
        s("messageExpression"),
        s("fieldPath")
    )
}

fn rules_of(schema: &Value) -> &[Value] {
    schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The shared environment: the standard library and macros, cel-rust's strings extension
/// (`lowerAscii`, `split`, `join`, `replace`, `trim`, `indexOf`, ...), and the Kubernetes list
/// functions cel-rust lacks.
fn env() -> &'static Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        // A declaration conflict only loses that function; it must not stop validation.
        let _ = env.add_extension(cel::extensions::strings);
        let list_fns: [(&str, cel::common::functions::Function); 4] = [
            ("isSorted", is_sorted),
            ("sum", sum),
            ("min", min),
            ("max", max),
        ];
        for (name, f) in list_fns {
            let _ = env.add_member_overload(name, &format!("list_{name}"), LIST_TYPE, vec![], f);
        }
        for (name, f) in [
            ("indexOf", index_of as _),
            ("lastIndexOf", last_index_of as _),
        ] {
            let id = format!("list_{name}_dyn");
            let dyn_ty = cel::common::types::DYN_TYPE;
            let _ = env.add_member_overload(name, &id, LIST_TYPE, vec![dyn_ty], f);
        }
        Arc::new(env)
    })
}

fn list_arg(args: &[CowVal<'_, '_>]) -> Result<Vec<Cel>, ExecutionError> {
    let target = args
        .first()
        .ok_or_else(ExecutionError::missing_argument_or_target)?;
    match Cel::try_from(target.as_ref())? {
        Cel::List(l) if l.len() <= MAX_LIST => Ok(l.as_ref().clone()),
        Cel::List(_) => Err(ExecutionError::function_error("list", "list too long")),
        other => Err(ExecutionError::unsupported_target_type(other)),
    }
}

fn ret<'b, 'v>(v: Cel) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let b: Box<dyn Val> = v.try_into()?;
    Ok(CowVal::from(b))
}

/// CEL's ordering across the comparable scalar types; `None` for values that do not compare.
fn compare(a: &Cel, b: &Cel) -> Option<Ordering> {
    match (a, b) {
        (Cel::Int(x), Cel::Int(y)) => Some(x.cmp(y)),
        (Cel::UInt(x), Cel::UInt(y)) => Some(x.cmp(y)),
        (Cel::Float(x), Cel::Float(y)) => x.partial_cmp(y),
        (Cel::Int(x), Cel::Float(y)) => (*x as f64).partial_cmp(y),
        (Cel::Float(x), Cel::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Cel::String(x), Cel::String(y)) => Some(x.cmp(y)),
        (Cel::Bool(x), Cel::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn no_overload(name: &str) -> ExecutionError {
    ExecutionError::no_such_member_overload(name, vec!["list".into()])
}

fn is_sorted<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let l = list_arg(&args)?;
    for w in l.windows(2) {
        match compare(&w[0], &w[1]) {
            Some(Ordering::Greater) => return ret(Cel::Bool(false)),
            Some(_) => {}
            None => return Err(no_overload("isSorted")),
        }
    }
    ret(Cel::Bool(true))
}

fn sum<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let mut acc = Cel::Int(0);
    for v in list_arg(&args)? {
        acc = match (acc, v) {
            (Cel::Int(a), Cel::Int(b)) => Cel::Int(a.checked_add(b).ok_or_else(overflow)?),
            (Cel::Int(0), Cel::UInt(b)) => Cel::UInt(b),
            (Cel::UInt(a), Cel::UInt(b)) => Cel::UInt(a.checked_add(b).ok_or_else(overflow)?),
            (Cel::Int(0), Cel::Float(b)) => Cel::Float(b),
            (Cel::Float(a), Cel::Float(b)) => Cel::Float(a + b),
            _ => return Err(no_overload("sum")),
        };
    }
    ret(acc)
}

fn overflow() -> ExecutionError {
    ExecutionError::function_error("sum", "integer overflow")
}

fn extreme<'b, 'v>(
    args: Vec<CowVal<'b, 'v>>,
    name: &str,
    keep: Ordering,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let mut it = list_arg(&args)?.into_iter();
    let mut best = it.next().ok_or_else(|| {
        ExecutionError::function_error(name, format!("{name} called on empty list"))
    })?;
    for v in it {
        match compare(&v, &best) {
            Some(o) if o == keep => best = v,
            Some(_) => {}
            None => return Err(no_overload(name)),
        }
    }
    ret(best)
}

fn min<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    extreme(args, "min", Ordering::Less)
}

fn max<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    extreme(args, "max", Ordering::Greater)
}

fn position<'b, 'v>(
    args: Vec<CowVal<'b, 'v>>,
    last: bool,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let l = list_arg(&args)?;
    let needle = match args.get(1) {
        Some(v) => Cel::try_from(v.as_ref())?,
        None => return Err(ExecutionError::invalid_argument_count(1, 0)),
    };
    let found = if last {
        l.iter().rposition(|v| *v == needle)
    } else {
        l.iter().position(|v| *v == needle)
    };
    ret(Cel::Int(found.map_or(-1, |i| i as i64)))
}

fn index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    position(args, false)
}

fn last_index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    position(args, true)
}

/// A property name as CEL rules see it (`foo-bar` → `foo__dash__bar`, `namespace` →
/// `__namespace__`), or `None` when no CEL identifier can spell it and rules cannot reach it.
fn escape(name: &str) -> Option<String> {
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let ok_first = |c: char| c.is_ascii_alphabetic() || "_.-/".contains(c);
    let mut chars = name.chars();
    if !chars.next().is_some_and(ok_first) || !chars.all(|c| ok_first(c) || c.is_ascii_digit()) {
        return None;
    }
    let escaped = name
        .replace("__", "__underscores__")
        .replace('.', "__dot__")
        .replace('-', "__dash__")
        .replace('/', "__slash__");
    Some(escaped)
}

/// The CEL value of `v` under schema `s`: objects with properties become field-addressable
/// (escaped names), maps (`additionalProperties`) keep their keys, `number` is always a double.
/// At a resource root only `apiVersion`, `kind` and `metadata.name`/`generateName` of the
/// metadata are visible, as kube-apiserver exposes them.
fn to_cel(v: &Value, s: &Value, resource_root: bool, depth: usize) -> Cel {
    if depth > MAX_DEPTH {
        return Cel::Null;
    }
    let ty = s.get("type").and_then(Value::as_str).unwrap_or("");
    match v {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) if ty != "number" => Cel::Int(i),
            _ => Cel::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(x) => Cel::String(Arc::new(x.clone())),
        Value::Array(a) => {
            let items = s.get("items").unwrap_or(&Value::Null);
            Cel::List(Arc::new(
                a.iter()
                    .map(|e| to_cel(e, items, false, depth + 1))
                    .collect(),
            ))
        }
        Value::Object(o) => {
            let props = s.get("properties").and_then(Value::as_object);
            let ap = s.get("additionalProperties").filter(|a| a.is_object());
            let mut m: HashMap<Key, Cel> = HashMap::new();
            for (k, e) in o {
                if let (None, Some(ap)) = (props, ap) {
                    m.insert(Key::from(k.as_str()), to_cel(e, ap, false, depth + 1));
                    continue;
                }
                let child = props.and_then(|p| p.get(k)).unwrap_or(&Value::Null);
                let embedded =
                    child.get("x-kubernetes-embedded-resource") == Some(&Value::Bool(true));
                let value = if resource_root && k == "metadata" {
                    let mut meta: HashMap<Key, Cel> = HashMap::new();
                    for f in ["name", "generateName"] {
                        if let Some(Value::String(x)) = e.get(f) {
                            meta.insert(Key::from(f), Cel::String(Arc::new(x.clone())));
                        }
                    }
                    Cel::Map(Map::from(meta))
                } else {
                    to_cel(e, child, embedded, depth + 1)
                };
                if let Some(name) = escape(k) {
                    m.insert(Key::from(name), value);
                }
            }
            Cel::Map(Map::from(m))
        }
    }
}

/// kube-apiserver's wording for a runtime error, which follows cel-go's.
fn exec_error(e: &ExecutionError) -> String {
    match e {
        ExecutionError::NoSuchKey(k) => format!("no such key: {k}"),
        ExecutionError::IndexOutOfBounds(Cel::Int(i)) => format!("index out of bounds: {i}"),
        ExecutionError::DivisionByZero(_) => "division by zero".into(),
        ExecutionError::RemainderByZero(_) => "modulus by zero".into(),
        ExecutionError::Overflow(..) => "integer overflow".into(),
        ExecutionError::FunctionError { message, .. } => message.clone(),
        // cel-go rejects these when the CRD is written; cel-rust only finds them at run time.
        ExecutionError::UndeclaredReference(n) => format!("undeclared reference to '{n}'"),
        ExecutionError::NoSuchOverload(_)
        | ExecutionError::UnexpectedType { .. }
        | ExecutionError::ValuesNotComparable(..)
        | ExecutionError::UnsupportedBinaryOperator(..)
        | ExecutionError::NotSupportedAsMethod { .. }
        | ExecutionError::UnsupportedTargetType { .. }
        | ExecutionError::UnsupportedIndex(..)
        | ExecutionError::InvalidArgumentCount { .. } => "no such overload".into(),
        other => other.to_string(),
    }
}

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// A rule's `fieldPath` (`.spec.x`, `['a.b']`) as kube-apiserver normalizes it against the
/// schema; `None` when it does not resolve (CRD admission rejects such paths).
fn normalize_field_path(fp: &str, mut s: &Value) -> Option<String> {
    let mut out = String::new();
    let mut rest = fp;
    while !rest.is_empty() {
        let name: String;
        if let Some(r) = rest.strip_prefix("['") {
            let end = r.find("']")?;
            name = r[..end].replace("\\'", "'").replace("\\\\", "\\");
            rest = &r[end + 2..];
        } else if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            name = r[..end].to_string();
            rest = &r[end..];
        } else {
            return None;
        }
        if let Some(props) = s.get("properties").and_then(Value::as_object) {
            s = props.get(&name)?;
            out = child(&out, &name);
        } else if let Some(ap) = s.get("additionalProperties").filter(|a| a.is_object()) {
            s = ap;
            out.push_str(&format!("[{name}]"));
        } else {
            return None;
        }
    }
    Some(out)
}

/// Whether a rule reads `oldSelf`, which makes it a transition rule.
fn uses_old_self(p: &Program) -> bool {
    p.references().has_variable("oldSelf")
}

struct Walker {
    errs: Vec<FieldError>,
    programs: HashMap<String, Result<Arc<Program>, String>>,
    evaluations: usize,
}

impl Walker {
    fn program(&mut self, src: &str) -> Result<Arc<Program>, String> {
        if let Some(p) = self.programs.get(src) {
            return p.clone();
        }
        let p = env()
            .compile(src)
            .map(Arc::new)
            .map_err(|e| format!("compilation failed: {e}"));
        self.programs.insert(src.to_string(), p.clone());
        p
    }

    /// Validates one node and its children. `unchanged` says the nearest node correlated with
    /// the old object is equal to it: errors of non-transition rules are then dropped
    /// (kube-apiserver's ratcheting, on by default in 1.32, turns them into warnings).
    #[allow(clippy::too_many_arguments)]
    fn walk(
        &mut self,
        s: &Value,
        obj: &Value,
        old: Option<&Value>,
        path: &str,
        resource_root: bool,
        unchanged: bool,
        depth: usize,
    ) {
        if depth > MAX_DEPTH || obj.is_null() || !s.is_object() {
            return;
        }
        let old = old.filter(|o| !o.is_null());
        let mut rules: Vec<&Value> = rules_of(s).iter().collect();
        if let Some(all_of) = s.get("allOf").and_then(Value::as_array) {
            rules.extend(all_of.iter().flat_map(rules_of));
        }
        if !rules.is_empty() {
            self.eval_rules(&rules, s, obj, old, path, resource_root, unchanged);
        }
        match obj {
            Value::Object(o) => {
                let old_map = old.and_then(Value::as_object);
                let props = s.get("properties").and_then(Value::as_object);
                let ap = s.get("additionalProperties").filter(|a| a.is_object());
                for (k, v) in o {
                    let old_v = old_map.and_then(|m| m.get(k));
                    let ch = old_v.map_or(unchanged, |ov| ov == v);
                    if let Some(ap) = ap {
                        let p = format!("{path}[{k}]");
                        self.walk(ap, v, old_v, &p, false, ch, depth + 1);
                    }
                    if let Some(ps) = props.and_then(|p| p.get(k)) {
                        let emb =
                            ps.get("x-kubernetes-embedded-resource") == Some(&Value::Bool(true));
                        self.walk(ps, v, old_v, &child(path, k), emb, ch, depth + 1);
                    }
                }
            }
            Value::Array(a) => {
                let Some(items) = s.get("items").filter(|i| i.is_object()) else {
                    return;
                };
                let keys: Vec<&str> =
                    if s.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map") {
                        s.get("x-kubernetes-list-map-keys")
                            .and_then(Value::as_array)
                            .map(|k| k.iter().filter_map(Value::as_str).collect())
                            .unwrap_or_default()
                    } else {
                        Vec::new()
                    };
                let old_items = old.and_then(Value::as_array);
                let emb = items.get("x-kubernetes-embedded-resource") == Some(&Value::Bool(true));
                for (i, v) in a.iter().enumerate() {
                    // Only map-type lists correlate items with the old list, by their keys.
                    let old_v = match old_items {
                        Some(olds) if !keys.is_empty() => olds
                            .iter()
                            .find(|o| keys.iter().all(|k| o.get(k) == v.get(k))),
                        _ => None,
                    };
                    let ch = old_v.map_or(unchanged, |ov| ov == v);
                    let p = format!("{path}[{i}]");
                    self.walk(items, v, old_v, &p, emb, ch, depth + 1);
                }
            }
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_rules(
        &mut self,
        rules: &[&Value],
        s: &Value,
        obj: &Value,
        old: Option<&Value>,
        path: &str,
        resource_root: bool,
        unchanged: bool,
    ) {
        let ty = s.get("type").and_then(Value::as_str).unwrap_or("");
        let value = go_quote(ty);
        let shown = |p: &str| {
            if p.is_empty() {
                "<nil>".to_string()
            } else {
                p.to_string()
            }
        };
        let self_val = to_cel(obj, s, resource_root, 0);
        let old_val = old.map(|o| to_cel(o, s, resource_root, 0));
        for rule in rules {
            let src = rule.get("rule").and_then(Value::as_str).unwrap_or("");
            if src.trim().is_empty() {
                continue;
            }
            let message = rule
                .get("message")
                .and_then(Value::as_str)
                .map(str::trim)
                .unwrap_or("");
            let rule_str = if message.is_empty() {
                src.trim()
            } else {
                message
            };
            let program = match self.program(src) {
                Ok(p) => p,
                Err(e) => {
                    let detail = format!("rule compile error: {e}");
                    self.errs
                        .push(FieldError::invalid(shown(path), value.clone(), detail));
                    continue;
                }
            };
            let transition = uses_old_self(&program);
            let optional = rule.get("optionalOldSelf") == Some(&Value::Bool(true));
            if transition && old_val.is_none() && !optional {
                continue;
            }
            self.evaluations += 1;
            if self.evaluations > MAX_EVALUATIONS {
                let detail = "validation failed due to running out of cost budget, no further validation rules will be run";
                self.errs
                    .push(FieldError::invalid(shown(path), value.clone(), detail));
                return;
            }
            let oldv = if transition { old_val.as_ref() } else { None };
            let result = run(&program, &self_val, oldv, transition && optional);
            match result {
                Ok(Cel::Bool(true)) => continue,
                Ok(Cel::Bool(false)) => {}
                Ok(_) => {
                    let detail =
                        format!("rule did not evaluate to a bool evaluating rule: {rule_str}");
                    self.errs
                        .push(FieldError::invalid(shown(path), value.clone(), detail));
                    continue;
                }
                Err(e) => {
                    let err = exec_error(&e);
                    let detail = if err.starts_with("no such overload") {
                        format!("'{err}': call arguments did not match a supported operator, function or macro signature for rule: {rule_str}")
                    } else {
                        format!("{err} evaluating rule: {rule_str}")
                    };
                    self.errs
                        .push(FieldError::invalid(shown(path), value.clone(), detail));
                    continue;
                }
            }
            if !transition && unchanged {
                continue;
            }
            let mut err_path = path.to_string();
            if let Some(fp) = rule
                .get("fieldPath")
                .and_then(Value::as_str)
                .filter(|f| !f.is_empty())
            {
                if let Some(n) = normalize_field_path(fp, s) {
                    err_path = child(path, &n);
                }
            }
            let detail = rule
                .get("messageExpression")
                .and_then(Value::as_str)
                .and_then(|m| self.message_expression(m, &self_val, oldv))
                .unwrap_or_else(|| {
                    if message.is_empty() {
                        format!("failed rule: {rule_str}")
                    } else {
                        message.to_string()
                    }
                });
            let field = shown(&err_path);
            let err = match rule.get("reason").and_then(Value::as_str) {
                Some("FieldValueForbidden") => FieldError::forbidden(field, detail),
                Some("FieldValueRequired") => FieldError::required(field, detail),
                Some("FieldValueDuplicate") => FieldError::duplicate(field, value.clone()),
                _ => FieldError::invalid(field, value.clone(), detail),
            };
            self.errs.push(err);
        }
    }

    /// The evaluated `messageExpression`, or `None` (kube-apiserver then falls back to
    /// `message`) when it fails, is not a string, or is empty, multi-line or too long.
    fn message_expression(
        &mut self,
        src: &str,
        self_val: &Cel,
        old: Option<&Cel>,
    ) -> Option<String> {
        let program = self.program(src).ok()?;
        if uses_old_self(&program) && old.is_none() {
            return None;
        }
        match run(&program, self_val, old, false) {
            Ok(Cel::String(m)) => {
                let m = m.trim();
                (!m.is_empty() && !m.contains('\n') && m.len() <= MAX_MESSAGE_BYTES)
                    .then(|| m.to_string())
            }
            _ => None,
        }
    }
}

/// Runs `program` with `self` and, for transition rules, `oldSelf` (an optional when the rule
/// sets `optionalOldSelf`).
fn run(
    program: &Program,
    self_val: &Cel,
    old: Option<&Cel>,
    optional: bool,
) -> Result<Cel, ExecutionError> {
    let mut ctx = Context::with_env(Arc::clone(env()));
    let boxed: Box<dyn Val> = self_val.clone().try_into()?;
    ctx.add_variable_as_val("self", boxed);
    match (old, optional) {
        (Some(o), false) => {
            let b: Box<dyn Val> = o.clone().try_into()?;
            ctx.add_variable_as_val("oldSelf", b);
        }
        (Some(o), true) => {
            let b: Box<dyn Val> = o.clone().try_into()?;
            ctx.add_variable_as_val("oldSelf", Box::new(CelOptional::of(b)));
        }
        (None, true) => ctx.add_variable_as_val("oldSelf", Box::new(CelOptional::none())),
        (None, false) => {}
    }
    program.execute(&ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rendered(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(|e| e.to_string()).collect()
    }

    /// A Gateway-API-like schema exercising the common rule shapes.
    fn schema() -> Value {
        json!({
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.metadata.name.startsWith('gw-')", "message": "name must start with gw-"},
                {"rule": "!has(self.metadata.namespace)"}
            ],
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "spec": {
                    "type": "object",
                    "x-kubernetes-validations": [
                        {"rule": "self.minReplicas <= self.maxReplicas", "message": "minReplicas must be at most maxReplicas"},
                        {"rule": "self.className == oldSelf.className", "message": "Value is immutable", "fieldPath": ".className"},
                        {"rule": "self.ports.all(p, p.port > 0)", "messageExpression": "'bad ports: ' + string(size(self.ports))"},
                        {"rule": "!has(self.secret) || self.mode == 'tls'", "reason": "FieldValueForbidden", "message": "secret needs tls"},
                        {"rule": "self.ports.map(p, p.port).isSorted() && self.ports.exists_one(p, p.name == 'http')", "message": "sorted, one http"}
                    ],
                    "properties": {
                        "className": {"type": "string"},
                        "mode": {"type": "string"},
                        "secret": {"type": "string"},
                        "minReplicas": {"type": "integer"},
                        "maxReplicas": {"type": "integer"},
                        "ports": {
                            "type": "array",
                            "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["name"],
                            "items": {
                                "type": "object",
                                "x-kubernetes-validations": [
                                    {"rule": "self.name.matches('^[a-z]+$')", "message": "name must be lowercase letters"},
                                    {"rule": "self.port == oldSelf.port", "message": "port is immutable"}
                                ],
                                "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}
                            }
                        },
                        "labels": {
                            "type": "object",
                            "additionalProperties": {"type": "string", "x-kubernetes-validations": [{"rule": "self.size() <= 3"}]}
                        }
                    }
                }
            }
        })
    }

    fn good() -> Value {
        json!({
            "apiVersion": "x/v1", "kind": "Gw",
            "metadata": {"name": "gw-a", "labels": {"a": "b"}},
            "spec": {"className": "c", "mode": "plain", "minReplicas": 1, "maxReplicas": 3,
                     "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}],
                     "labels": {"k": "abc"}}
        })
    }

    #[test]
    fn valid_object_passes() {
        assert!(validate(&schema(), &good(), None).is_empty());
        assert!(validate(&schema(), &good(), Some(&good())).is_empty());
    }

    #[test]
    fn create_errors() {
        let mut o = good();
        o["metadata"]["name"] = json!("bad");
        o["metadata"]["namespace"] = json!("ns"); // hidden from rules at the root
        o["spec"]["minReplicas"] = json!(5);
        o["spec"]["secret"] = json!("s");
        o["spec"]["ports"][1]["name"] = json!("HTTPS");
        o["spec"]["ports"][1]["port"] = json!(-1);
        o["spec"]["labels"]["k"] = json!("abcd");
        assert_eq!(
            rendered(&validate(&schema(), &o, None)),
            vec![
                "<nil>: Invalid value: \"object\": name must start with gw-",
                "spec: Invalid value: \"object\": minReplicas must be at most maxReplicas",
                "spec: Invalid value: \"object\": bad ports: 2",
                "spec: Forbidden: secret needs tls",
                "spec: Invalid value: \"object\": sorted, one http",
                "spec.labels[k]: Invalid value: \"string\": failed rule: self.size() <= 3",
                "spec.ports[1]: Invalid value: \"object\": name must be lowercase letters",
            ]
        );
    }

    #[test]
    fn transition_rules_and_ratcheting() {
        let old = good();
        let mut o = good();
        o["spec"]["className"] = json!("other");
        o["spec"]["ports"][1]["port"] = json!(8443);
        o["spec"]["ports"][0]["name"] = json!("HTTP"); // new item: no oldSelf there
        assert_eq!(
            rendered(&validate(&schema(), &o, Some(&old))),
            vec![
                "spec.className: Invalid value: \"object\": Value is immutable",
                "spec: Invalid value: \"object\": sorted, one http",
                "spec.ports[0]: Invalid value: \"object\": name must be lowercase letters",
                "spec.ports[1]: Invalid value: \"object\": port is immutable",
            ]
        );
        // An unchanged invalid value is ratcheted: stored objects stay updatable.
        let mut bad = good();
        bad["spec"]["minReplicas"] = json!(9);
        let mut upd = bad.clone();
        upd["metadata"]["labels"] = json!({"x": "y"});
        assert!(validate(&schema(), &upd, Some(&bad)).is_empty());
    }

    #[test]
    fn optional_old_self_and_errors() {
        let s = json!({"type": "object", "properties": {"v": {"type": "integer",
        "x-kubernetes-validations": [
            {"rule": "oldSelf.hasValue() ? self >= oldSelf.value() : self < 10", "optionalOldSelf": true, "message": "no decrease"},
            {"rule": "self / 0 == 1"},
            {"rule": "self.foo()", "message": "m"},
            {"rule": "self + 'a' == 'b'"},
            {"rule": "[1,3,2].max() == 3 && [2,1].min() == 1 && [1,2].sum() == 3 && [1,2,1].lastIndexOf(1) == 2 && 'A-b'.lowerAscii().split('-').join('') == 'ab'"}
        ]}}});
        assert_eq!(
            rendered(&validate(&s, &json!({"v": 11}), None)),
            vec![
                "v: Invalid value: \"integer\": no decrease",
                "v: Invalid value: \"integer\": division by zero evaluating rule: self / 0 == 1",
                "v: Invalid value: \"integer\": undeclared reference to 'foo' evaluating rule: m",
                "v: Invalid value: \"integer\": 'no such overload': call arguments did not match a supported operator, function or macro signature for rule: self + 'a' == 'b'",
            ]
        );
        assert_eq!(
            validate(&s, &json!({"v": 12}), Some(&json!({"v": 11}))).len(),
            3
        );
    }

    #[test]
    fn compile_errors() {
        let s = json!({"type": "object", "properties": {"spec": {"type": "object",
            "x-kubernetes-validations": [{"rule": "self.a ++"}, {"rule": "true", "messageExpression": "'a' +"}, {"rule": " "}]}}});
        let errs = validate_rules(&s, "spec.versions[0].schema.openAPIV3Schema");
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert_eq!(
            errs[0].field,
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule"
        );
        assert!(
            errs[0]
                .detail
                .starts_with("compilation failed: ERROR: <input>:1:"),
            "{}",
            errs[0].detail
        );
        assert!(errs[0]
            .value
            .as_deref()
            .unwrap_or("")
            .starts_with("apiextensions.ValidationRule{Rule:\"self.a ++\""));
        assert!(errs[1].field.ends_with("[1].messageExpression"));
        assert_eq!(errs[2].to_string(), "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[2].rule: Required value: rule is not specified");
        let e = validate(&s, &json!({"spec": {}}), None);
        assert!(
            e[0].detail
                .starts_with("rule compile error: compilation failed:"),
            "{e:?}"
        );
    }

    #[test]
    fn escaped_names_and_numbers() {
        let s = json!({"type": "object", "x-kubernetes-validations": [
            {"rule": "self.__namespace__ == 'a' && self.foo__dash__bar == 1.0 && type(self.n) == double"}],
            "properties": {"namespace": {"type": "string"}, "foo-bar": {"type": "number"}, "n": {"type": "number"}}});
        assert!(validate(&s, &json!({"namespace": "a", "foo-bar": 1, "n": 2}), None).is_empty());
    }

    #[test]
    fn garbage_does_not_panic() {
        let mut deep = json!(1);
        for _ in 0..500 {
            deep = json!({"a": deep, "l": [deep.clone()]});
            if deep.to_string().len() > 200_000 {
                break;
            }
        }
        let schemas = [
            json!(null),
            json!(3),
            json!({"x-kubernetes-validations": "x"}),
            json!({"x-kubernetes-validations": [{"rule": 3}, {"rule": "(((", "fieldPath": "['"}, {"rule": "self[0] == self.x", "reason": 7}]}),
            json!({"properties": {"a": {"x-kubernetes-validations": [{"rule": "self.a.a.a == oldSelf", "fieldPath": ".a.b['c"}]}}, "items": 5}),
        ];
        for s in &schemas {
            for o in [
                json!(null),
                json!([1, "a", {}]),
                json!({"a": {"a": null}}),
                deep.clone(),
            ] {
                let _ = validate(s, &o, Some(&json!({"a": 1})));
                let _ = validate_rules(s, "x");
            }
        }
        assert_eq!(normalize_field_path(".a['b", &json!({})), None);
    }
}
