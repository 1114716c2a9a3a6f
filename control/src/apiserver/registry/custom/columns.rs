//! Table cells for custom resources, computed from a CRD version's
//! `additionalPrinterColumns` the way kube-apiserver's CRD table convertor
//! does, so `kubectl get` shows the same columns and values against kedge.
//!
//! The JSONPath dialect is client-go's `util/jsonpath` (kubectl's), ported
//! quirk for quirk: columns are wrapped in `{…}` before parsing, missing keys
//! are allowed, and only the first match of a column is shown.

use serde_json::{json, Value};
use std::borrow::Cow;

const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const CREATION_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const TYPES: &str = "boolean,date,integer,number,string";
const FORMATS: &str = "byte,date,date-time,double,float,int32,int64,password";
/// Bounds parser recursion (filters and unions re-enter it) so hostile paths can't blow the stack.
const MAX_DEPTH: usize = 32;

/// One compiled column.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub r#type: String,
    pub format: String,
    pub description: String,
    pub priority: i32,
    path: Vec<Node>,
}

/// The columns of a CRD version (its additionalPrinterColumns JSON array, or None for the default).
///
/// Like kube-apiserver, an empty list means the default `Age` column, and the
/// first column whose path does not parse ends the list (earlier ones are kept).
pub fn columns(additional: Option<&Value>) -> Vec<Column> {
    let list = additional
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty());
    let default = [
        json!({"name": "Age", "type": "date", "description": CREATION_DESCRIPTION,
        "jsonPath": ".metadata.creationTimestamp"}),
    ];
    let mut out = Vec::new();
    for col in list.map_or(&default[..], |l| l.as_slice()) {
        let path = json_path(col);
        let Ok(nodes) = parse(&format!("{{{path}}}"), 0) else {
            break;
        };
        let description = match text(col, "description") {
            "" => format!("Custom resource definition column (in JSONPath format): {path}"),
            d => d.to_string(),
        };
        let priority = col.get("priority").and_then(Value::as_i64);
        out.push(Column {
            name: text(col, "name").into(),
            r#type: text(col, "type").into(),
            format: text(col, "format").into(),
            description,
            priority: priority.and_then(|p| i32::try_from(p).ok()).unwrap_or(0),
            path: nodes,
        });
    }
    out
}

/// `columnDefinitions` entries for a table: Name first, then the columns.
pub fn definitions(columns: &[Column]) -> Vec<Value> {
    let name = json!({"name": "Name", "type": "string", "format": "name",
        "description": NAME_DESCRIPTION, "priority": 0});
    let rest = columns.iter().map(|c| {
        json!({"name": c.name, "type": c.r#type, "format": c.format,
            "description": c.description, "priority": c.priority})
    });
    std::iter::once(name).chain(rest).collect()
}

/// The cells after the name for one object, at time `now`.
///
/// Only the first match counts; anything missing, failing or of the wrong type is `null`.
pub fn cells(columns: &[Column], obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    columns.iter().map(|c| cell(c, obj, now)).collect()
}

fn cell(col: &Column, obj: &Value, now: jiff::Timestamp) -> Value {
    let Ok(results) = find_results(&col.path, obj) else {
        return Value::Null;
    };
    let Some(value) = results.first().and_then(|r| r.first()) else {
        return Value::Null;
    };
    let value: &Value = value;
    match (col.r#type.as_str(), value) {
        // string columns go through the JSONPath printer, which takes any value
        ("string", Value::Null) => Value::String("<no value>".into()),
        ("string", v) => Value::String(go_print(v)),
        (_, Value::Null) => Value::Null,
        ("integer", Value::Number(n)) => match n.as_i64() {
            Some(i) => i.into(),
            None => go_float_to_int(n.as_f64().unwrap_or(0.0)).into(),
        },
        ("number", Value::Number(n)) => float_value(n.as_f64().unwrap_or(0.0)),
        ("boolean", Value::Bool(b)) => Value::Bool(*b),
        ("date", Value::String(s)) => Value::String(age(s, now)),
        _ => Value::Null,
    }
}

/// Errors in a CRD version's additionalPrinterColumns, `path` e.g. `spec.versions[0].additionalPrinterColumns`.
///
/// Field names are upstream's internal ones, hence `JSONPath` even for v1 CRDs.
pub fn validate(additional: &Value, path: &str) -> Vec<(String, String)> {
    let mut errs = Vec::new();
    for (i, col) in additional.as_array().into_iter().flatten().enumerate() {
        let at = |f: &str| format!("{path}[{i}].{f}");
        if text(col, "name").is_empty() {
            errs.push((at("name"), "Required value".into()));
        }
        match text(col, "type") {
            "" => errs.push((
                at("type"),
                format!("Required value: must be one of {TYPES}"),
            )),
            t if !TYPES.split(',').any(|x| x == t) => errs.push((
                at("type"),
                format!("Invalid value: {}: must be one of {TYPES}", go_quote(t)),
            )),
            _ => {}
        }
        let f = text(col, "format");
        if !f.is_empty() && !FORMATS.split(',').any(|x| x == f) {
            errs.push((
                at("format"),
                format!("Invalid value: {}: must be one of {FORMATS}", go_quote(f)),
            ));
        }
        match json_path(col) {
            "" => errs.push((at("JSONPath"), "Required value".into())),
            p if !p.starts_with('.') => errs.push((
                at("JSONPath"),
                format!(
                    "Invalid value: {}: must be a simple json path starting with .",
                    go_quote(p)
                ),
            )),
            _ => {}
        }
    }
    errs
}

/// kubectl's JSONPath on one object: the list of matched values.
///
/// `path` is in column form (no braces); it is wrapped in `{…}` as kube-apiserver does.
#[cfg(test)]
fn evaluate(path: &str, obj: &Value) -> Result<Vec<Value>, String> {
    let nodes = parse(&format!("{{{path}}}"), 0)?;
    let results = find_results(&nodes, obj)?;
    Ok(results.into_iter().flatten().map(Cow::into_owned).collect())
}

fn text<'a>(col: &'a Value, key: &str) -> &'a str {
    col.get(key).and_then(Value::as_str).unwrap_or("")
}

/// v1 spells it `jsonPath`; v1beta1 JSON used `JSONPath`.
fn json_path(col: &Value) -> &str {
    match text(col, "jsonPath") {
        "" => text(col, "JSONPath"),
        p => p,
    }
}

// ---------------------------------------------------------------- parsing

#[derive(Debug, Clone)]
enum Node {
    List(Vec<Node>),
    Text(String),
    Field(String),
    /// start, end, step; `None` is "not given"; the bool marks an end derived from a plain index.
    Array([Option<i64>; 3], bool),
    Filter(Vec<Node>, Vec<Node>, String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Wildcard,
    Recursive,
    Union(Vec<Vec<Node>>),
    Identifier(String),
}

struct Parser {
    s: Vec<char>,
    pos: usize,
    start: usize,
    depth: usize,
}

fn is_terminator(c: Option<char>) -> bool {
    matches!(
        c,
        None | Some(' ' | '\t' | '\r' | '\n' | '.' | ',' | '[' | ']' | '$' | '@' | '{' | '}')
    )
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

/// A whole template (text and `{…}` actions), as client-go's `Parse`.
fn parse(text: &str, depth: usize) -> Result<Vec<Node>, String> {
    if depth > MAX_DEPTH {
        return Err("jsonpath nested too deeply".into());
    }
    let mut p = Parser {
        s: text.chars().collect(),
        pos: 0,
        start: 0,
        depth,
    };
    let mut root = Vec::new();
    loop {
        if p.at("{") {
            if p.pos > p.start {
                root.push(Node::Text(p.consume()));
            }
            p.pos += 1;
            p.consume();
            let mut list = Vec::new();
            p.inside(&mut list)?;
            root.push(Node::List(list));
        } else if p.next().is_none() {
            break;
        }
    }
    if p.pos > p.start {
        root.push(Node::Text(p.consume()));
    }
    Ok(root)
}

/// The nodes of one action, as client-go's `parseAction`.
fn parse_action(text: &str, depth: usize) -> Result<Vec<Node>, String> {
    match parse(&format!("{{{text}}}"), depth + 1)?.into_iter().next() {
        Some(Node::List(nodes)) => Ok(nodes),
        _ => Ok(Vec::new()),
    }
}

impl Parser {
    fn at(&self, prefix: &str) -> bool {
        prefix
            .chars()
            .enumerate()
            .all(|(i, c)| self.s.get(self.pos + i) == Some(&c))
    }
    fn next(&mut self) -> Option<char> {
        let c = self.s.get(self.pos).copied();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }
    fn backup(&mut self, c: Option<char>) {
        if c.is_some() {
            self.pos -= 1;
        }
    }
    fn peek(&self) -> Option<char> {
        self.s.get(self.pos).copied()
    }
    fn consume(&mut self) -> String {
        let v: String = self.s[self.start..self.pos].iter().collect();
        self.start = self.pos;
        v
    }
    /// Whether the character two back (before a just-read quote) is a backslash.
    fn escaped(&self) -> bool {
        self.pos >= 2 && self.s[self.pos - 2] == '\\'
    }

    /// Parses inside `{…}` up to and including the closing brace.
    fn inside(&mut self, cur: &mut Vec<Node>) -> Result<(), String> {
        loop {
            if self.at("}") {
                self.pos += 1;
                self.consume();
                return Ok(());
            } else if self.at("[?(") {
                self.filter(cur)?;
                continue;
            } else if self.at("..") {
                if matches!(cur.last(), Some(Node::Recursive)) {
                    return Err("invalid multiple recursive descent".into());
                }
                self.pos += 2;
                self.consume();
                cur.push(Node::Recursive);
                if self.peek().is_some_and(is_alnum) {
                    self.field(cur);
                }
                continue;
            }
            match self.next() {
                None | Some('\r' | '\n') => return Err("unclosed action".into()),
                Some(' ' | '@' | '$') => {
                    self.consume();
                }
                Some('[') => self.array(cur)?,
                Some(q @ ('"' | '\'')) => self.quote(cur, q)?,
                Some('.') => self.field(cur),
                Some(c) if c == '+' || c == '-' || c.is_numeric() => {
                    self.backup(Some(c));
                    self.number(cur)?;
                }
                Some(c) if is_alnum(c) => {
                    self.backup(Some(c));
                    self.identifier(cur);
                }
                Some(c) => {
                    return Err(format!(
                        "unrecognized character in action: U+{:04X} '{c}'",
                        c as u32
                    ))
                }
            }
        }
    }

    fn field(&mut self, cur: &mut Vec<Node>) {
        self.consume();
        loop {
            let c = self.next();
            if c == Some('\\') {
                self.next();
            } else if is_terminator(c) {
                self.backup(c);
                break;
            }
        }
        let v = self.consume();
        cur.push(if v == "*" {
            Node::Wildcard
        } else {
            Node::Field(v.replace('\\', ""))
        });
    }

    fn identifier(&mut self, cur: &mut Vec<Node>) {
        loop {
            let c = self.next();
            if is_terminator(c) {
                self.backup(c);
                break;
            }
        }
        let v = self.consume();
        cur.push(match v.as_str() {
            "true" => Node::Bool(true),
            "false" => Node::Bool(false),
            _ => Node::Identifier(v),
        });
    }

    fn number(&mut self, cur: &mut Vec<Node>) -> Result<(), String> {
        if matches!(self.peek(), Some('+' | '-')) {
            self.next();
        }
        while self.peek().is_some_and(|c| c == '.' || c.is_numeric()) {
            self.next();
        }
        let v = self.consume();
        if let Ok(i) = v.parse::<i64>() {
            cur.push(Node::Int(i));
        } else if let Ok(f) = v.parse::<f64>() {
            cur.push(Node::Float(f));
        } else {
            return Err(format!("cannot parse number {v}"));
        }
        Ok(())
    }

    fn array(&mut self, cur: &mut Vec<Node>) -> Result<(), String> {
        loop {
            match self.next() {
                None | Some('\n') => return Err("unterminated array".into()),
                Some(']') => break,
                _ => {}
            }
        }
        let all = self.consume();
        let mut text = &all[1..all.len() - 1];
        if text == "*" {
            text = ":";
        }
        if text.contains(',') {
            let mut union = Vec::new();
            for part in text.split(',') {
                union.push(parse_action(
                    &format!("[{}]", part.trim_matches(' ')),
                    self.depth,
                )?);
            }
            cur.push(Node::Union(union));
            return Ok(());
        }
        if let Some(key) = text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
            if text.len() >= 2 && !key.contains('\'') {
                cur.extend(parse_action(&format!(".{key}"), self.depth)?);
                return Ok(());
            }
        }
        let parts: Vec<&str> = text.split(':').collect();
        let num_like = |p: &str| {
            p.strip_prefix('-')
                .unwrap_or(p)
                .bytes()
                .all(|b| b.is_ascii_digit())
        };
        if parts.len() > 3 || !parts.iter().all(|p| num_like(p)) {
            return Err(format!("invalid array index {text}"));
        }
        let mut params = [None; 3];
        let mut derived = false;
        for (i, param) in params.iter_mut().enumerate() {
            match parts.get(i) {
                Some(p) if !p.is_empty() => {
                    let v = p
                        .parse::<i64>()
                        .map_err(|_| format!("array index {p} is not a number"))?;
                    *param = Some(v);
                }
                None if i == 1 => {
                    *param = Some(parts[0].parse::<i64>().unwrap_or(0).wrapping_add(1));
                    derived = true;
                }
                _ => {}
            }
        }
        cur.push(Node::Array(params, derived));
        Ok(())
    }

    fn filter(&mut self, cur: &mut Vec<Node>) -> Result<(), String> {
        self.pos += 3;
        self.consume();
        let (mut begin, mut end, mut pair) = (false, false, ' ');
        loop {
            match self.next() {
                None | Some('\n') => return Err("unterminated filter".into()),
                Some(q @ ('"' | '\'')) if !begin => (begin, pair) = (true, q),
                Some(q @ ('"' | '\'')) => end |= !self.escaped() && q == pair,
                Some(')') if begin == end => break,
                _ => {}
            }
        }
        if self.next() != Some(']') {
            return Err("unclosed array expect ]".into());
        }
        let all = self.consume();
        let text = &all[..all.len() - 2];
        // client-go splits with ^([^!<>=]+)([!<>=]+)(.+?)$
        let is_op = |c: char| matches!(c, '!' | '<' | '>' | '=');
        let left_end = text.find(is_op).unwrap_or(text.len());
        let mut op_end = text[left_end..]
            .find(|c| !is_op(c))
            .map_or(text.len(), |i| left_end + i);
        if op_end == text.len() && op_end > left_end + 1 {
            op_end -= 1;
        }
        if left_end == 0 || left_end == text.len() || op_end == text.len() {
            cur.push(Node::Filter(
                parse_action(text, self.depth)?,
                Vec::new(),
                "exists".into(),
            ));
        } else {
            let left = parse_action(&text[..left_end], self.depth)?;
            let right = parse_action(&text[op_end..], self.depth)?;
            cur.push(Node::Filter(left, right, text[left_end..op_end].into()));
        }
        Ok(())
    }

    fn quote(&mut self, cur: &mut Vec<Node>, q: char) -> Result<(), String> {
        loop {
            match self.next() {
                None | Some('\n') => return Err("unterminated quoted string".into()),
                Some(c) if c == q && !self.escaped() => break,
                _ => {}
            }
        }
        let v = self.consume();
        let s = unquote(&v, q).ok_or_else(|| format!("unquote string {v} error invalid syntax"))?;
        cur.push(Node::Text(s));
        Ok(())
    }
}

/// Go's `strconv.Unquote` rules, extended to single quotes as client-go does.
fn unquote(v: &str, q: char) -> Option<String> {
    let inner: Vec<char> = v.chars().collect();
    let inner = inner.get(1..inner.len().checked_sub(1)?)?;
    let mut out = Vec::new();
    let mut it = inner.iter().copied();
    let hex = |it: &mut dyn Iterator<Item = char>, n: usize| -> Option<u32> {
        (0..n).try_fold(0u32, |acc, _| Some(acc * 16 + it.next()?.to_digit(16)?))
    };
    while let Some(c) = it.next() {
        let ch = match c {
            c if c == q => return None,
            '\\' => match it.next()? {
                'a' => '\x07',
                'b' => '\x08',
                'f' => '\x0c',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                'v' => '\x0b',
                '\\' => '\\',
                e @ ('\'' | '"') if e == q => e,
                'x' => {
                    out.push(hex(&mut it, 2)? as u8);
                    continue;
                }
                d @ '0'..='7' => {
                    let v = (0..2).try_fold(d.to_digit(8)?, |acc, _| {
                        Some(acc * 8 + it.next()?.to_digit(8)?)
                    })?;
                    out.push(u8::try_from(v).ok()?);
                    continue;
                }
                'u' => char::from_u32(hex(&mut it, 4)?)?,
                'U' => char::from_u32(hex(&mut it, 8)?)?,
                _ => return None,
            },
            c => c,
        };
        out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

// ------------------------------------------------------------- evaluation

type Vals<'a> = Vec<Cow<'a, Value>>;
/// Errors carry the partial result, because client-go's `exists` filter uses it even then.
type Eval<'a> = Result<Vals<'a>, (Vals<'a>, String)>;

/// One result list per top-level template node, each evaluated from the object root.
fn find_results<'a>(nodes: &[Node], obj: &'a Value) -> Result<Vec<Vals<'a>>, String> {
    nodes
        .iter()
        .map(|n| walk(vec![Cow::Borrowed(obj)], n).map_err(|(_, e)| e))
        .collect()
}

fn walk<'a>(input: Vals<'a>, node: &Node) -> Eval<'a> {
    let each = |v: Value| input.iter().map(|_| Cow::Owned(v.clone())).collect();
    match node {
        Node::List(nodes) => eval_list(input, nodes),
        Node::Text(t) => Ok(vec![Cow::Owned(Value::String(t.clone()))]),
        Node::Int(i) => Ok(each(Value::from(*i))),
        Node::Float(f) => Ok(each(Value::from(*f))),
        Node::Bool(b) => Ok(each(Value::Bool(*b))),
        Node::Field(name) => Ok(input
            .iter()
            .filter_map(|v| borrowed(v)?.get(name.as_str()).map(Cow::Borrowed))
            .collect()),
        Node::Wildcard => Ok(input.iter().flat_map(children).collect()),
        Node::Recursive => Ok(recursive(&input)),
        Node::Array(params, derived) => eval_array(input, params, *derived),
        Node::Filter(left, right, op) => eval_filter(input, left, right, op),
        Node::Union(lists) => {
            let mut out = Vec::new();
            for list in lists {
                match eval_list(input.clone(), list) {
                    Ok(v) => out.extend(v),
                    Err((_, e)) => return Err((input, e)),
                }
            }
            Ok(out)
        }
        Node::Identifier(name) => Err((input, format!("unrecognized identifier {name}"))),
    }
}

fn eval_list<'a>(mut cur: Vals<'a>, nodes: &[Node]) -> Eval<'a> {
    for node in nodes {
        cur = walk(cur, node)?;
    }
    Ok(cur)
}

/// Object values live in the object itself; computed values are scalars with nothing inside.
fn borrowed<'a>(v: &Cow<'a, Value>) -> Option<&'a Value> {
    match v {
        Cow::Borrowed(v) => Some(v),
        Cow::Owned(_) => None,
    }
}

/// What `*` and `..` step into: map values, array items, and a string's bytes.
fn children<'a>(v: &Cow<'a, Value>) -> Vals<'a> {
    match (borrowed(v), v.as_ref()) {
        (Some(Value::Object(m)), _) => m.values().map(Cow::Borrowed).collect(),
        (Some(Value::Array(a)), _) => a.iter().map(Cow::Borrowed).collect(),
        (_, Value::String(s)) => s.bytes().map(|b| Cow::Owned(Value::from(b))).collect(),
        _ => Vec::new(),
    }
}

/// Every non-empty container, depth first, parents before children (iterative, so deep input is safe).
fn recursive<'a>(input: &Vals<'a>) -> Vals<'a> {
    let mut out = Vec::new();
    let mut stack: Vals<'a> = input.iter().rev().cloned().collect();
    while let Some(v) = stack.pop() {
        let has = match v.as_ref() {
            Value::Object(m) => !m.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::String(s) => !s.is_empty(),
            _ => false,
        };
        if has {
            if !matches!(v.as_ref(), Value::String(_)) {
                stack.extend(children(&v).into_iter().rev());
            }
            out.push(v);
        }
    }
    out
}

fn eval_array<'a>(input: Vals<'a>, params: &[Option<i64>; 3], derived: bool) -> Eval<'a> {
    let mut out = Vec::new();
    for v in &input {
        let items = match v.as_ref() {
            Value::Null => continue,
            Value::Array(_) => children(v),
            other => {
                let kind = if other.is_object() {
                    "map[string]interface {}"
                } else {
                    "value"
                };
                return Err((input, format!("{kind} is not array or slice")));
            }
        };
        let len = items.len() as i64;
        let mut start = params[0].unwrap_or(0);
        if start < 0 {
            start += len;
        }
        let mut end = params[1].unwrap_or(len);
        if end < 0 || (end == 0 && derived) {
            end += len;
        }
        if end == start {
            return Ok(out);
        }
        let err = if start >= len || start < 0 {
            format!("array index out of bounds: index {start}, length {len}")
        } else if end > len || end < 0 {
            format!(
                "array index out of bounds: index {}, length {len}",
                end.wrapping_sub(1)
            )
        } else if start > end {
            format!("starting index {start} is greater than ending index {end}")
        } else if params[2].is_some_and(|s| s <= 0) {
            "step must be > 0".to_string()
        } else {
            let step = params[2].unwrap_or(1) as usize;
            out.extend(
                items
                    .into_iter()
                    .take(end as usize)
                    .skip(start as usize)
                    .step_by(step),
            );
            continue;
        };
        return Err((input, err));
    }
    Ok(out)
}

fn eval_filter<'a>(input: Vals<'a>, left: &[Node], right: &[Node], op: &str) -> Eval<'a> {
    let mut out = Vec::new();
    for v in &input {
        if !matches!(v.as_ref(), Value::Array(_)) {
            let e = format!(
                "{} is not array or slice and cannot be filtered",
                go_print(v)
            );
            return Err((input, e));
        }
        for item in children(v) {
            let lefts = eval_list(vec![item.clone()], left);
            if op == "exists" {
                if !lefts.unwrap_or_else(|(partial, _)| partial).is_empty() {
                    out.push(item);
                }
                continue;
            }
            let one = |r: Eval<'a>| -> Result<Option<Cow<'a, Value>>, String> {
                let mut r = r.map_err(|(_, e)| e)?;
                match r.len() {
                    0 => Ok(None),
                    1 => Ok(r.pop()),
                    _ => Err("can only compare one element at a time".into()),
                }
            };
            let l = match one(lefts) {
                Ok(Some(l)) => l,
                Ok(None) => continue,
                Err(e) => return Err((input, e)),
            };
            let r = match one(eval_list(vec![item.clone()], right)) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => return Err((input, e)),
            };
            let less = || compare(&l, &r, true);
            let equal = || compare(&l, &r, false);
            let pass = match op {
                "<" => less(),
                ">" => less().and_then(|lt| if lt { Ok(false) } else { equal().map(|eq| !eq) }),
                "==" => equal(),
                "!=" => equal().map(|eq| !eq),
                "<=" => less().and_then(|lt| if lt { Ok(true) } else { equal() }),
                ">=" => less().map(|lt| !lt),
                _ => Err(format!("unrecognized filter operator {op}")),
            };
            match pass {
                Ok(true) => out.push(item),
                Ok(false) => {}
                Err(e) => return Err((out, e)),
            }
        }
    }
    Ok(out)
}

/// Go text/template's `lt`/`eq`: same basic kind only, no ordering for bools.
fn compare(a: &Value, b: &Value, less: bool) -> Result<bool, String> {
    enum K<'v> {
        B(bool),
        I(i64),
        F(f64),
        S(&'v str),
    }
    fn kind(v: &Value) -> Option<K<'_>> {
        Some(match v {
            Value::Bool(b) => K::B(*b),
            Value::Number(n) => n
                .as_i64()
                .map_or_else(|| K::F(n.as_f64().unwrap_or(0.0)), K::I),
            Value::String(s) => K::S(s),
            _ => return None,
        })
    }
    let (Some(x), Some(y)) = (kind(a), kind(b)) else {
        return Err("invalid type for comparison".into());
    };
    match (x, y) {
        (K::B(_), K::B(_)) if less => Err("invalid type for comparison".into()),
        (K::B(x), K::B(y)) => Ok(x == y),
        (K::I(x), K::I(y)) => Ok(if less { x < y } else { x == y }),
        (K::F(x), K::F(y)) => Ok(if less { x < y } else { x == y }),
        (K::S(x), K::S(y)) => Ok(if less { x < y } else { x == y }),
        _ => Err("incompatible types for comparison".into()),
    }
}

// ------------------------------------------------------------- formatting

/// Go's `fmt.Print` of a decoded JSON value, which is what string columns show.
fn go_print(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n
            .as_i64()
            .map_or_else(|| go_float(n.as_f64().unwrap_or(0.0)), |i| i.to_string()),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_print).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut kv: Vec<_> = m.iter().collect();
            kv.sort_by(|a, b| a.0.cmp(b.0));
            let kv: Vec<_> = kv
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_print(v)))
                .collect();
            format!("map[{}]", kv.join(" "))
        }
    }
}

/// Go's `%v` for float64: shortest digits, exponent form below 1e-4 or from 1e6 (`1e+06`).
fn go_float(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let e = format!("{:e}", f.abs());
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let sign = if f < 0.0 { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let es = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{dot}e{es}{:02}", exp.abs());
    }
    let dp = exp + 1;
    let nd = digits.len() as i32;
    if dp <= 0 {
        format!("{sign}0.{}{digits}", "0".repeat((-dp) as usize))
    } else if dp >= nd {
        format!("{sign}{digits}{}", "0".repeat((dp - nd) as usize))
    } else {
        format!(
            "{sign}{}.{}",
            &digits[..dp as usize],
            &digits[dp as usize..]
        )
    }
}

/// Go's `int64(f)`; out-of-range conversions give i64::MIN as on amd64.
fn go_float_to_int(f: f64) -> i64 {
    const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
    if (-LIMIT..LIMIT).contains(&f) {
        f as i64
    } else {
        i64::MIN
    }
}

/// A float cell; whole numbers are written without `.0`, as Go's encoding/json does.
fn float_value(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9.2e18 {
        Value::from(f as i64)
    } else {
        Value::from(f)
    }
}

/// Go's `%q` for bad values in validation messages; Rust's `{:?}` escapes the
/// same way for everything but rare control characters.
fn go_quote(s: &str) -> String {
    format!("{s:?}")
}

/// A `date` cell: kube-apiserver's `ConvertToHumanReadableDateType` (ShortHumanDuration).
fn age(s: &str, now: jiff::Timestamp) -> String {
    if s.is_empty() || s == "null" {
        return "<unknown>".into();
    }
    let Some(t) = parse_rfc3339(s) else {
        return "<invalid>".into();
    };
    if t.as_second() == -62135596800 && t.subsec_nanosecond() == 0 {
        return "<unknown>".into(); // Go's zero time
    }
    let ns = now.as_nanosecond() - t.as_nanosecond();
    short_human_duration(ns.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
}

/// apimachinery's `duration.ShortHumanDuration`, on a Go `time.Duration` in nanoseconds.
fn short_human_duration(ns: i64) -> String {
    let secs = ns / 1_000_000_000;
    if secs < -1 {
        "<invalid>".into()
    } else if secs < 0 {
        "0s".into()
    } else if secs < 60 {
        format!("{secs}s")
    } else if secs / 60 < 60 {
        format!("{}m", secs / 60)
    } else if secs / 3600 < 24 {
        format!("{}h", secs / 3600)
    } else if secs / 3600 < 24 * 365 {
        format!("{}d", secs / 3600 / 24)
    } else {
        format!("{}y", (ns as f64 / 3.6e12 / 24.0 / 365.0) as i64)
    }
}

/// Go's `time.Parse(time.RFC3339, s)`, including its lenient fallback
/// (one-digit hour, `,` before fractional seconds).
fn parse_rfc3339(s: &str) -> Option<jiff::Timestamp> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i32> {
        let d = b.get(r)?;
        d.iter()
            .all(u8::is_ascii_digit)
            .then(|| d.iter().fold(0, |a, c| a * 10 + i32::from(c - b'0')))
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || b.get(10) != Some(&b'T') {
        return None;
    }
    let hw = if b.get(12).is_some_and(u8::is_ascii_digit) {
        2
    } else {
        1
    };
    let mut i = 11 + hw;
    let hour = num(11..i)?;
    if b.get(i) != Some(&b':') || b.get(i + 3) != Some(&b':') {
        return None;
    }
    let (min, sec) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
    i += 6;
    let mut nanos = 0i32;
    if matches!(b.get(i), Some(b'.' | b',')) && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        let n = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        let frac = format!("{:0<9}", &s[i + 1..i + 1 + n.min(9)]);
        nanos = frac.parse().ok()?;
        i += 1 + n;
    }
    let offset = match &b[i..] {
        [b'Z'] => 0,
        [sg @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if h > 24 || m > 60 {
                return None;
            }
            (h * 3600 + m * 60) * if *sg == b'-' { -1 } else { 1 }
        }
        _ => return None,
    };
    if hour > 23 || min > 59 || sec > 59 {
        return None;
    }
    let dt = jiff::civil::DateTime::new(
        year as i16,
        month as i8,
        day as i8,
        hour as i8,
        min as i8,
        sec as i8,
        nanos,
    )
    .ok()?;
    jiff::tz::Offset::from_seconds(offset)
        .ok()?
        .to_timestamp(dt)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj() -> Value {
        json!({
            "metadata": {"name": "x", "creationTimestamp": "2024-01-01T00:00:00Z",
                "labels": {"app.kubernetes.io/name": "web"}},
            "spec": {"replicas": 3, "ratio": 1.5, "big": 1e6, "on": true, "none": null, "s": "3",
                "items": [{"name": "a", "n": 1}, {"name": "b", "n": 2}, {"name": "c", "n": 3}],
                "map": {"b": [1, "x"], "a": null}},
            "status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]}
        })
    }
    fn ev(p: &str) -> Vec<Value> {
        evaluate(p, &obj()).unwrap()
    }
    fn at(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }
    fn one(ty: &str, path: &str, o: &Value) -> Value {
        let cols = columns(Some(&json!([{"name": "C", "type": ty, "jsonPath": path}])));
        cells(&cols, o, at("2024-01-01T00:00:00Z")).remove(0)
    }

    #[test]
    fn jsonpath_forms() {
        assert_eq!(ev(".spec.replicas"), [json!(3)]);
        assert_eq!(
            ev(".metadata.labels.app\\.kubernetes\\.io/name"),
            [json!("web")]
        );
        assert_eq!(
            ev(".spec.items[*].name"),
            [json!("a"), json!("b"), json!("c")]
        );
        assert_eq!(ev(".spec.items[0].name"), [json!("a")]);
        assert_eq!(ev(".spec.items[-1].name"), [json!("c")]);
        assert_eq!(ev(".spec.items[0:2].n"), [json!(1), json!(2)]);
        assert_eq!(ev(".spec.items[::2].n"), [json!(1), json!(3)]);
        assert_eq!(ev(".spec.items[-2:].n"), [json!(2), json!(3)]);
        assert_eq!(ev(".spec.items[1:1]"), Vec::<Value>::new());
        assert_eq!(
            ev(".status.conditions[?(@.type==\"Ready\")].status"),
            [json!("True")]
        );
        assert_eq!(
            ev(".status.conditions[?(@.type!='Ready')].status"),
            [json!("False")]
        );
        assert_eq!(ev(".spec.items[?(@.n>1)].name"), [json!("b"), json!("c")]);
        assert_eq!(ev(".spec.items[?(@.n<2)].name"), [json!("a")]);
        assert_eq!(ev(".spec.items[?(@.n>=2)].name"), [json!("b"), json!("c")]);
        assert_eq!(ev(".spec.items[?(@.n)].name").len(), 3);
        assert_eq!(ev(".spec.items[?(@.zz)].name").len(), 0);
        assert_eq!(ev(".spec['replicas','on']"), [json!(3), json!(true)]);
        assert_eq!(ev(".spec.items[0,2].n"), [json!(1), json!(3)]);
        assert_eq!(ev(".spec.map.*"), [json!(null), json!([1, "x"])]);
        assert_eq!(
            ev("..name"),
            [json!("x"), json!("a"), json!("b"), json!("c")]
        );
        assert_eq!(ev(".spec.missing.deeper"), Vec::<Value>::new());
        assert!(evaluate(".spec.items[5]", &obj()).is_err());
        assert!(
            evaluate(".spec.items[?(@.n>1.5)]", &obj()).is_err(),
            "int vs float is incompatible"
        );
        assert!(evaluate(".spec.replicas[0]", &obj()).is_err());
        assert!(evaluate(".spec..x..y", &obj()).is_ok());
        assert_eq!(
            evaluate("....x", &obj()).unwrap_err(),
            "invalid multiple recursive descent"
        );
        assert_eq!(
            evaluate(".a[x]", &obj()).unwrap_err(),
            "invalid array index x"
        );
    }

    #[test]
    fn cell_types() {
        let o = obj();
        assert_eq!(one("integer", ".spec.replicas", &o), json!(3));
        assert_eq!(one("integer", ".spec.ratio", &o), json!(1));
        assert_eq!(one("integer", ".spec.s", &o), Value::Null);
        assert_eq!(one("integer", ".spec.missing", &o), Value::Null);
        assert_eq!(one("number", ".spec.ratio", &o), json!(1.5));
        assert_eq!(one("number", ".spec.replicas", &o).to_string(), "3");
        assert_eq!(one("number", ".spec.on", &o), Value::Null);
        assert_eq!(one("boolean", ".spec.on", &o), json!(true));
        assert_eq!(one("boolean", ".spec.s", &o), Value::Null);
        assert_eq!(one("string", ".spec.s", &o), json!("3"));
        assert_eq!(one("string", ".spec.replicas", &o), json!("3"));
        assert_eq!(one("string", ".spec.big", &o), json!("1e+06"));
        assert_eq!(one("string", ".spec.on", &o), json!("true"));
        assert_eq!(one("string", ".spec.none", &o), json!("<no value>"));
        assert_eq!(one("string", ".spec.missing", &o), Value::Null);
        assert_eq!(
            one("string", ".spec.map", &o),
            json!("map[a:<nil> b:[1 x]]")
        );
        assert_eq!(
            one("string", ".spec.items[*].name", &o),
            json!("a"),
            "first match only"
        );
        assert_eq!(
            one("string", ".spec.items[9].name", &o),
            Value::Null,
            "errors are null"
        );
        assert_eq!(one("boolean", ".spec.none", &o), Value::Null);
        assert_eq!(one("weird", ".spec.s", &o), Value::Null);
    }

    #[test]
    fn dates() {
        let age = |ts: &str, now: &str| super::age(ts, at(now));
        let t = "2024-01-01T00:00:00Z";
        assert_eq!(age(t, "2024-01-01T00:00:05Z"), "5s");
        assert_eq!(age(t, "2024-01-01T00:10:59Z"), "10m");
        assert_eq!(age(t, "2024-01-01T03:00:00Z"), "3h");
        assert_eq!(age(t, "2024-01-03T05:00:00Z"), "2d");
        assert_eq!(age(t, "2024-12-30T00:00:00Z"), "364d");
        assert_eq!(age(t, "2025-01-01T00:00:00Z"), "1y");
        assert_eq!(age(t, "2027-01-01T00:00:00Z"), "3y");
        assert_eq!(age(t, "2023-12-31T23:59:59Z"), "0s");
        assert_eq!(age(t, "2023-12-31T23:59:58Z"), "<invalid>");
        assert_eq!(
            age("2024-01-01T01:00:00+01:00", "2024-01-01T00:01:00Z"),
            "1m"
        );
        assert_eq!(age("2024-01-01T00:00:00.5Z", "2024-01-01T00:00:02Z"), "1s");
        assert_eq!(age("2024-01-01", "2024-01-02T00:00:00Z"), "<invalid>");
        assert_eq!(age("", "2024-01-02T00:00:00Z"), "<unknown>");
        assert_eq!(
            age("0001-01-01T00:00:00Z", "2024-01-02T00:00:00Z"),
            "<unknown>"
        );
        assert_eq!(one("date", ".t", &json!({"t": 5})), Value::Null);
        assert_eq!(
            one("date", ".t", &json!({"t": "garbage"})),
            json!("<invalid>")
        );
    }

    #[test]
    fn default_and_definitions() {
        for input in [None, Some(&json!([]))] {
            let cols = columns(input);
            let defs = definitions(&cols);
            assert_eq!(defs.len(), 2);
            assert_eq!(defs[0]["name"], "Name");
            assert_eq!(defs[0]["format"], "name");
            assert_eq!(
                defs[1],
                json!({"name": "Age", "type": "date", "format": "",
                "description": CREATION_DESCRIPTION, "priority": 0})
            );
            let o = obj();
            assert_eq!(cells(&cols, &o, at("2024-01-01T02:00:00Z")), [json!("2h")]);
        }
        let cols = columns(Some(&json!([
            {"name": "R", "type": "integer", "jsonPath": ".spec.replicas", "priority": 1, "format": "int32"},
            {"name": "D", "type": "string", "jsonPath": ".x", "description": "why"},
            {"name": "Bad", "type": "string", "jsonPath": ".a[x]"},
            {"name": "After", "type": "string", "jsonPath": ".b"}])));
        let defs = definitions(&cols);
        assert_eq!(defs.len(), 3, "a bad path ends the list");
        assert_eq!(
            defs[1],
            json!({"name": "R", "type": "integer", "format": "int32", "priority": 1,
            "description": "Custom resource definition column (in JSONPath format): .spec.replicas"})
        );
        assert_eq!(defs[2]["description"], "why");
    }

    #[test]
    fn validation() {
        let errs = validate(
            &json!([
            {"name": "A", "type": "string", "jsonPath": ".spec.a"},
            {"type": "strin", "jsonPath": "spec.x", "format": "uuid"},
            {"name": "B"}]),
            "spec.versions[0].additionalPrinterColumns",
        );
        let p = "spec.versions[0].additionalPrinterColumns";
        let want = [
            (format!("{p}[1].name"), "Required value".to_string()),
            (
                format!("{p}[1].type"),
                format!("Invalid value: \"strin\": must be one of {TYPES}"),
            ),
            (
                format!("{p}[1].format"),
                format!("Invalid value: \"uuid\": must be one of {FORMATS}"),
            ),
            (
                format!("{p}[1].JSONPath"),
                "Invalid value: \"spec.x\": must be a simple json path starting with .".into(),
            ),
            (
                format!("{p}[2].type"),
                "Required value: must be one of boolean,date,integer,number,string".into(),
            ),
            (format!("{p}[2].JSONPath"), "Required value".into()),
        ];
        assert_eq!(errs, want);
        assert_eq!(go_quote("a\"b\n"), "\"a\\\"b\\n\"");
        assert!(validate(&json!("nope"), p).is_empty());
    }

    #[test]
    fn floats_print_like_go() {
        for (f, s) in [
            (1.5, "1.5"),
            (100.0, "100"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (1e21, "1e+21"),
        ] {
            assert_eq!(go_float(f), s);
        }
    }

    #[test]
    fn garbage_never_panics() {
        let o = obj();
        let junk = [
            "",
            ".",
            "..",
            "[",
            "]",
            "{",
            "}",
            "[?(",
            "[?(@.a==)]",
            "[?(@.a=='x)]",
            "['",
            "[1:2:3:4]",
            "[-]",
            "[99999999999999999999]",
            "[-9223372036854775808]",
            "[?(@.a<=\"\\q\")]",
            "\"\\x",
            "'\\777'",
            ".a[?(@.b)]]]",
            "$.spec.*[*]",
            ".spec.items[?(@.n=1)]",
            "@@@",
            "\u{1F600}",
            ".a\\",
            "1.2.3",
            ".spec.items[?(@[?(@[?(@[?(@[?(@)])])])])]",
            ".x range .y end",
            "{{{",
            "}}}}",
            "[,]",
            "[?()]",
        ];
        let deep = "[?(@".repeat(200) + &")]".repeat(200);
        for p in junk.iter().copied().chain([deep.as_str()]) {
            let _ = evaluate(p, &o);
            let _ = validate(&json!([{"jsonPath": p, "type": p, "format": p}]), "x");
            for ty in ["string", "integer", "number", "boolean", "date"] {
                let cols = columns(Some(&json!([{"name": "c", "type": ty, "jsonPath": p}])));
                let _ = cells(&cols, &o, jiff::Timestamp::MAX);
                let _ = cells(&cols, &o, jiff::Timestamp::MIN);
            }
        }
        for t in [
            "9999-12-31T23:59:59+24:60",
            "0000-01-01T00:00:00-24:00",
            "2024-02-30T00:00:00Z",
            "2024-01-01T1:00:00,123456789012Z",
        ] {
            let _ = age(t, jiff::Timestamp::MAX);
            let _ = age(t, jiff::Timestamp::MIN);
        }
    }
}
