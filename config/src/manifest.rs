//! Manifest decoding: what `kubectl apply -f` accepts.
//!
//! * YAML with any number of `---`-separated documents; empty documents (and documents that
//!   are only comments) are skipped;
//! * JSON: one object, or several objects one after another;
//! * a `kind: List` (or any `*List` with an `items` array) is expanded into its items; items
//!   of a typed list (`PodList`) that lack `apiVersion` / `kind` get them from the list.

use serde::Deserialize;
use serde_json::{Map, Value};

/// Why a manifest could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// A YAML document is not well formed.
    #[error("error parsing YAML document {document}{}: {message}", position(*line, *column))]
    Yaml {
        /// The document's index (0-based, counting empty documents too).
        document: usize,
        /// The 1-based line, when known.
        line: Option<usize>,
        /// The 1-based column, when known.
        column: Option<usize>,
        /// What the parser said.
        message: String,
    },
    /// A JSON value is not well formed.
    #[error("error parsing JSON document {document}{}: {message}", position(*line, *column))]
    Json {
        /// The value's index (0-based).
        document: usize,
        /// The 1-based line, when known.
        line: Option<usize>,
        /// The 1-based column, when known.
        column: Option<usize>,
        /// What the parser said.
        message: String,
    },
    /// A document is not a mapping (`key: value`).
    #[error("document {document} is not an object: {found}")]
    NotAnObject {
        /// The document's index.
        document: usize,
        /// The JSON type found instead (`array`, `string`, …).
        found: &'static str,
    },
}

fn position(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
        (Some(l), None) => format!(" (line {l})"),
        _ => String::new(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Decodes a YAML or JSON manifest into its objects, in order.
pub fn decode_documents(input: &str) -> Result<Vec<Value>, ManifestError> {
    let trimmed = input.trim_start_matches('\u{feff}');
    let first = trimmed.trim_start().chars().next();
    let raw = if first == Some('{') {
        decode_json(trimmed)?
    } else {
        decode_yaml(trimmed)?
    };
    let mut out = Vec::new();
    for (index, doc) in raw {
        match doc {
            Value::Null => continue,
            Value::Object(map) => expand(map, &mut out),
            other => {
                return Err(ManifestError::NotAnObject {
                    document: index,
                    found: type_name(&other),
                })
            }
        }
    }
    Ok(out)
}

fn expand(map: Map<String, Value>, out: &mut Vec<Value>) {
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or("");
    let is_list = kind.ends_with("List") && matches!(map.get("items"), Some(Value::Array(_)));
    if !is_list {
        out.push(Value::Object(map));
        return;
    }
    let item_kind = kind.strip_suffix("List").unwrap_or("").to_string();
    let api_version = map.get("apiVersion").cloned();
    let Some(Value::Array(items)) = map.get("items").cloned() else {
        return;
    };
    for item in items {
        match item {
            Value::Object(mut m) => {
                if !item_kind.is_empty() {
                    if !m.contains_key("kind") {
                        m.insert("kind".into(), Value::String(item_kind.clone()));
                    }
                    if let (false, Some(v)) = (m.contains_key("apiVersion"), api_version.clone()) {
                        m.insert("apiVersion".into(), v);
                    }
                }
                // Lists may nest.
                expand(m, out);
            }
            Value::Null => {}
            other => out.push(other),
        }
    }
}

fn decode_json(input: &str) -> Result<Vec<(usize, Value)>, ManifestError> {
    let mut out = Vec::new();
    let stream = serde_json::Deserializer::from_str(input).into_iter::<Value>();
    for (i, v) in stream.enumerate() {
        match v {
            Ok(v) => out.push((i, v)),
            Err(e) => {
                return Err(ManifestError::Json {
                    document: i,
                    line: Some(e.line()),
                    column: Some(e.column()),
                    message: e.to_string(),
                })
            }
        }
    }
    Ok(out)
}

fn decode_yaml(input: &str) -> Result<Vec<(usize, Value)>, ManifestError> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(input).enumerate() {
        let value = serde_yaml::Value::deserialize(doc).map_err(|e| {
            let loc = e.location();
            ManifestError::Yaml {
                document: i,
                line: loc.as_ref().map(|l| l.line()),
                column: loc.as_ref().map(|l| l.column()),
                message: e.to_string(),
            }
        })?;
        out.push((i, yaml_to_json(value)));
    }
    Ok(out)
}

/// Converts a YAML value to JSON: non-string keys become strings, tags are dropped, and
/// non-finite floats become null.
pub fn yaml_to_json(v: serde_yaml::Value) -> Value {
    match v {
        serde_yaml::Value::Null => Value::Null,
        serde_yaml::Value::Bool(b) => Value::Bool(b),
        serde_yaml::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
        }
        serde_yaml::Value::String(s) => Value::String(s),
        serde_yaml::Value::Sequence(seq) => {
            Value::Array(seq.into_iter().map(yaml_to_json).collect())
        }
        serde_yaml::Value::Mapping(m) => {
            let mut map = Map::new();
            for (k, v) in m {
                let key = match k {
                    serde_yaml::Value::String(s) => s,
                    serde_yaml::Value::Null => "null".into(),
                    serde_yaml::Value::Bool(b) => b.to_string(),
                    serde_yaml::Value::Number(n) => n.to_string(),
                    other => serde_json::to_string(&yaml_to_json(other)).unwrap_or_default(),
                };
                map.insert(key, yaml_to_json(v));
            }
            Value::Object(map)
        }
        serde_yaml::Value::Tagged(t) => yaml_to_json(t.value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn multi_document_yaml() {
        let docs = decode_documents(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n# only a comment\n---\n\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: b}\ndata:\n  1: x\n",
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["metadata"]["name"], "a");
        assert_eq!(docs[1]["kind"], "Secret");
        assert_eq!(docs[1]["data"]["1"], "x");
    }

    #[test]
    fn json_single_and_stream() {
        let docs = decode_documents(r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}"#)
            .unwrap();
        assert_eq!(
            docs,
            vec![json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}})]
        );
        let docs = decode_documents("{\"kind\":\"A\"}\n{\"kind\":\"B\"}").unwrap();
        assert_eq!(docs.len(), 2);
    }

    #[test]
    fn list_expansion() {
        let docs = decode_documents(
            r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"}},{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"}}]}"#,
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1]["kind"], "Deployment");
        let typed =
            decode_documents("apiVersion: v1\nkind: PodList\nitems:\n- metadata: {name: x}\n")
                .unwrap();
        assert_eq!(
            typed,
            vec![json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"}})]
        );
        let empty = decode_documents("apiVersion: v1\nkind: List\nitems: []\n").unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn errors_carry_document_and_line() {
        let err = decode_documents("kind: A\n---\nkind: B\n  bad: : indent\n").unwrap_err();
        match &err {
            ManifestError::Yaml { document, line, .. } => {
                assert_eq!(*document, 1);
                assert!(line.is_some());
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("document 1"), "{err}");
        let err = decode_documents("{\"a\": }").unwrap_err();
        assert!(
            matches!(err, ManifestError::Json { line: Some(1), .. }),
            "{err:?}"
        );
        let err = decode_documents("- a\n- b\n").unwrap_err();
        assert_eq!(
            err,
            ManifestError::NotAnObject {
                document: 0,
                found: "array"
            }
        );
        assert!(decode_documents("").unwrap().is_empty());
    }
}
