//! Generates `control/src/apiserver/registry/generated.rs`, kedge's one table
//! of facts about the built-in Kubernetes API types (JSON names, protobuf
//! field numbers and shapes, strategic-merge and list/map/struct markers).
//!
//! Run: `cargo run -p kedge-control --example gen_api_tables`.
//! `control/tests/api_tables_current.rs` includes this file and fails when
//! the checked-in table differs from what [`generate`] produces.
//!
//! Sources, both pinned below and found through `cargo metadata`:
//! - k8s-pb: prost-build output of the Kubernetes protobufs. Gives the
//!   messages, field numbers, shapes, referenced types and the Go markers
//!   (`+listType=map`, `+patchMergeKey=name`, ...) kept in the doc comments.
//! - k8s-openapi (module of the same Kubernetes minor): gives the exact
//!   OpenAPI definition names and JSON field names, which prost's snake_case
//!   loses (`hostIPC` -> `host_ipc`). Joined on (module path, lower-cased type
//!   name) and then (Rust field name); see [`json_name`].
//!
//! The parser is line based and relies on the regular shape of
//! rustfmt-formatted prost-build output; anything it does not recognise inside
//! a message is an error rather than a silent skip:
//! - a message is `pub struct Name {` at column 0, closed by `}` at column 0,
//!   preceded by `///` doc lines and `#[...]` attributes;
//! - each field is `///` doc lines, one `#[prost(...)]` line, then
//!   `pub name: Type,` which may wrap over several lines up to the `,`;
//! - there are no oneofs, enumerations or nested modules (checked);
//! - markers are doc lines whose text starts with `+`.
//!
//! In k8s-openapi, each type is one file starting with
//! `// Generated from definition <name>`, and its deserializer maps JSON keys
//! with lines `"jsonName" => Field::Key_rust_name,`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Pinned source crates; they must be the versions in Cargo.lock.
const K8S_PB: &str = "0.9.0";
const K8S_OPENAPI: &str = "0.29.0";
/// k8s-openapi's module for the Kubernetes minor k8s-pb 0.9.0 was built from
/// (its justfile pins `KUBERNETES_VERSION := "1.35.0"`).
const OPENAPI_MODULE: &str = "v1_35";
const KUBERNETES_VERSION: &str = "1.35";

/// Where the table goes, relative to the kedge-control package.
pub const OUTPUT: &str = "src/apiserver/registry/generated.rs";
pub const COMMAND: &str = "cargo run -p kedge-control --example gen_api_tables";

/// Module paths (in both crates) of the API groups kedge serves or will.
const MODULES: &[&str] = &[
    "api/apps/v1",
    "api/authentication/v1",
    "api/authorization/v1",
    "api/autoscaling/v1",
    "api/autoscaling/v2",
    "api/batch/v1",
    "api/certificates/v1",
    "api/coordination/v1",
    "api/core/v1",
    "api/discovery/v1",
    "api/networking/v1",
    "api/policy/v1",
    "api/rbac/v1",
    "api/scheduling/v1",
    "api/storage/v1",
    "apiextensions_apiserver/pkg/apis/apiextensions/v1",
    "apimachinery/pkg/api/resource",
    "apimachinery/pkg/apis/meta/v1",
    "apimachinery/pkg/runtime",
    "apimachinery/pkg/util/intstr",
];

/// Fields whose Rust names differ between the two crates:
/// (type, k8s-pb field, k8s-openapi field).
const RENAMED: &[(&str, &str, &str)] = &[(
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps",
    "ref",
    "ref_path",
)];

/// Types whose JSON form is not an object of their protobuf fields but which
/// k8s-openapi has no definition for: Duration is a string, the others are Go
/// `[]string` types that protobuf wraps in `items`.
const CUSTOM_JSON_EXTRA: &[&str] = &[
    "io.k8s.api.authentication.v1.ExtraValue",
    "io.k8s.api.authorization.v1.ExtraValue",
    "io.k8s.api.certificates.v1.ExtraValue",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Duration",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Verbs",
];

#[cfg_attr(test, allow(dead_code))]
fn main() {
    let generated = match generate() {
        Ok(generated) => generated,
        Err(e) => {
            eprintln!("gen_api_tables: {e}");
            std::process::exit(1);
        }
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(OUTPUT);
    if let Err(e) = std::fs::write(&path, &generated.text) {
        eprintln!("gen_api_tables: writing {}: {e}", path.display());
        std::process::exit(1);
    }
    for note in &generated.notes {
        eprintln!("note: {note}");
    }
    println!(
        "wrote {} ({} types, {} fields, {} bytes)",
        path.display(),
        generated.types,
        generated.fields,
        generated.text.len()
    );
}

/// The generated file and what the generator had to guess.
pub struct Generated {
    pub text: String,
    pub types: usize,
    pub fields: usize,
    /// JSON names that are not from k8s-openapi, dangling references.
    pub notes: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scalar {
    String,
    Bytes,
    Bool,
    Int32,
    Int64,
    Double,
}

#[derive(Clone, PartialEq, Eq, Debug)]
enum Shape {
    Scalar(Scalar),
    Message(String),
    RepeatedScalar(Scalar),
    RepeatedMessage(String),
    MapScalar(Scalar),
    MapMessage(String),
}

struct Field {
    json: String,
    /// The k8s-pb field name (join key).
    rust_name: String,
    /// Not from k8s-openapi: from the doc comment or camelCase of the Rust name.
    json_guessed: bool,
    /// An embedded Go struct: its fields appear in the outer JSON object.
    inline: bool,
    tag: u32,
    shape: Shape,
    list_type: String,
    list_map_keys: Vec<String>,
    patch_strategy: String,
    patch_merge_key: String,
    map_type: String,
}

struct Type {
    name: String,
    struct_type: String,
    map_type: String,
    custom_json: bool,
    fields: Vec<Field>,
    /// The k8s-openapi definition's [`normalize`]d field -> JSON names.
    openapi_json: Option<HashMap<String, String>>,
}

/// One k8s-pb message before names are resolved.
struct PbMessage {
    module: String,
    rust_name: String,
    markers: Markers,
    fields: Vec<PbField>,
}

struct PbField {
    rust_name: String,
    first_doc_word: String,
    markers: Markers,
    prost: String,
    rust_type: String,
}

/// `+key=value` markers of one doc comment, in order.
#[derive(Default)]
struct Markers(Vec<(String, String)>);

impl Markers {
    fn get(&self, key: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// One k8s-openapi definition.
struct OpenApiType {
    name: String,
    /// False for newtypes and enums (Quantity, Time, IntOrString, ...).
    object: bool,
    /// [`normalize`]d Rust field name -> JSON name.
    json: HashMap<String, String>,
}

pub fn generate() -> Result<Generated, String> {
    let (pb_root, openapi_root) = locate_sources()?;
    let openapi_root = openapi_root.join("src").join(OPENAPI_MODULE);
    let pb_root = pb_root.join("src");

    let mut openapi = HashMap::new();
    for module in MODULES {
        read_openapi_module(&openapi_root, module, &mut openapi)?;
    }
    let mut messages = Vec::new();
    for module in MODULES {
        let path = pb_root.join(module).join("mod.rs");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        parse_pb_module(module, &text, &mut messages)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }

    let mut types = Vec::new();
    for message in &messages {
        types.push(resolve(message, &openapi)?);
    }
    types.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(w) = types.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(format!("two messages named {}", w[0].name));
    }
    mark_inline(&mut types);
    let notes = notes(&types);
    let fields = types.iter().map(|t| t.fields.len()).sum();
    Ok(Generated {
        text: render(&types),
        types: types.len(),
        fields,
        notes,
    })
}

/// The source directories of k8s-pb and k8s-openapi, from `cargo metadata`.
fn locate_sources() -> Result<(PathBuf, PathBuf), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(&manifest)
        .output()
        .map_err(|e| format!("running cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("parsing cargo metadata: {e}"))?;
    let find = |name: &str, version: &str| -> Result<PathBuf, String> {
        metadata["packages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == name && p["version"] == version)
            .and_then(|p| p["manifest_path"].as_str())
            .and_then(|m| Path::new(m).parent())
            .map(Path::to_path_buf)
            .ok_or_else(|| format!("{name} {version} is not in the dependency graph"))
    };
    Ok((find("k8s-pb", K8S_PB)?, find("k8s-openapi", K8S_OPENAPI)?))
}

/// Reads every definition file of one k8s-openapi module.
fn read_openapi_module(
    root: &Path,
    module: &str,
    out: &mut HashMap<(String, String), OpenApiType>,
) -> Result<(), String> {
    let dir = root.join(module);
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs") && !p.ends_with("mod.rs"))
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let Some(name) = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("// Generated from definition "))
        else {
            continue;
        };
        let short = name.rsplit('.').next().unwrap_or(name);
        let object = text.contains(&format!("\npub struct {short} {{"));
        let mut json = HashMap::new();
        for line in text.lines() {
            let Some((key, rest)) = line.trim().split_once(" => Field::Key_") else {
                continue;
            };
            let (Some(key), Some(rust)) = (
                key.strip_prefix('"').and_then(|k| k.strip_suffix('"')),
                rest.strip_suffix(','),
            ) else {
                return Err(format!("{}: unexpected key line {line:?}", path.display()));
            };
            json.insert(normalize(rust), key.to_string());
        }
        out.insert(
            (module.to_string(), short.to_ascii_lowercase()),
            OpenApiType {
                name: name.to_string(),
                object,
                json,
            },
        );
    }
    Ok(())
}

/// The `+key=value` marker of one doc line, if it is one.
fn marker(doc: &str) -> Option<(String, String)> {
    let text = doc.trim().strip_prefix('+')?;
    let (key, value) = text.split_once('=').unwrap_or((text, ""));
    Some((key.trim().to_string(), value.trim().to_string()))
}

/// Parses the messages of one k8s-pb `mod.rs` (see the module docs).
fn parse_pb_module(module: &str, text: &str, out: &mut Vec<PbMessage>) -> Result<(), String> {
    let mut lines = text.lines().enumerate().peekable();
    let mut docs: Vec<&str> = Vec::new();
    let mut current: Option<PbMessage> = None;
    let mut prost: Option<String> = None;
    while let Some((n, line)) = lines.next() {
        let at = |msg: &str| format!("line {}: {msg}: {line:?}", n + 1);
        let trimmed = line.trim();
        if let Some(doc) = trimmed.strip_prefix("///") {
            docs.push(doc);
            continue;
        }
        let Some(message) = current.as_mut() else {
            if let Some(rest) = line.strip_prefix("pub struct ") {
                // `pub struct Name {}` is a message without fields.
                let (name, empty) = match (rest.strip_suffix(" {"), rest.strip_suffix(" {}")) {
                    (Some(name), _) => (name, false),
                    (_, Some(name)) => (name, true),
                    _ => return Err(at("unexpected struct form")),
                };
                let parsed = PbMessage {
                    module: module.to_string(),
                    rust_name: name.to_string(),
                    markers: Markers(docs.iter().filter_map(|d| marker(d)).collect()),
                    fields: Vec::new(),
                };
                if empty {
                    out.push(parsed);
                } else {
                    current = Some(parsed);
                }
            } else if line.starts_with("pub enum ") || line.starts_with("pub mod ") {
                return Err(at("enums and nested modules are not supported"));
            }
            if !trimmed.starts_with("#[") {
                docs.clear();
            }
            continue;
        };
        if line == "}" {
            if prost.is_some() {
                return Err(at("attribute without field"));
            }
            out.extend(current.take());
            docs.clear();
            continue;
        }
        if let Some(attr) = trimmed.strip_prefix("#[prost(") {
            let attr = attr
                .strip_suffix(")]")
                .ok_or_else(|| at("multi-line prost attribute"))?;
            if attr.contains("oneof") || attr.contains("enumeration") {
                return Err(at("oneofs and enumerations are not supported"));
            }
            prost = Some(attr.to_string());
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("pub ") {
            let attr = prost
                .take()
                .ok_or_else(|| at("field without prost attribute"))?;
            let (name, ty) = rest.split_once(':').ok_or_else(|| at("unexpected field"))?;
            let mut ty = ty.trim().to_string();
            // Wrapped types end at the `,` after the last closing `>`.
            let open = |t: &str| t.matches('<').count() != t.matches('>').count();
            while !ty.ends_with(',') || open(&ty) {
                let (_, next) = lines.next().ok_or_else(|| at("unterminated field"))?;
                ty.push_str(next.trim());
            }
            ty.pop();
            let first_doc_word = docs
                .iter()
                .find_map(|d| d.split_whitespace().next())
                .unwrap_or("")
                .to_string();
            message.fields.push(PbField {
                rust_name: name.trim().trim_start_matches("r#").to_string(),
                first_doc_word,
                markers: Markers(docs.iter().filter_map(|d| marker(d)).collect()),
                prost: attr,
                rust_type: ty,
            });
            docs.clear();
            continue;
        }
        if !trimmed.is_empty() {
            return Err(at("unexpected line in a message"));
        }
    }
    if current.is_some() {
        return Err("unterminated message".to_string());
    }
    Ok(())
}

/// The OpenAPI definition prefix of a module: `api/core/v1` ->
/// `io.k8s.api.core.v1` (crate names use `_` where Go paths have `-`).
fn prefix(module: &str) -> String {
    format!("io.k8s.{}", module.replace('/', ".").replace('_', "-"))
}

/// The definition name of a k8s-pb message: k8s-openapi's spelling when it
/// has the type (prost loses acronym case: `HostIp` is `HostIP`).
fn type_name(
    module: &str,
    rust_name: &str,
    openapi: &HashMap<(String, String), OpenApiType>,
) -> String {
    match openapi.get(&(module.to_string(), rust_name.to_ascii_lowercase())) {
        Some(t) => t.name.clone(),
        None => format!("{}.{rust_name}", prefix(module)),
    }
}

/// Resolves a Rust type path relative to `module` (`super::` steps up).
fn resolve_path(module: &str, path: &str) -> (String, String) {
    let mut parts: Vec<&str> = module.split('/').collect();
    let mut segments: Vec<&str> = path.split("::").collect();
    let name = segments.pop().unwrap_or_default();
    for segment in segments {
        if segment == "super" {
            parts.pop();
        } else {
            parts.push(segment);
        }
    }
    (parts.join("/"), name.to_string())
}

/// The message type inside a field's Rust type, e.g. `Vec<Container>` ->
/// `Container`, `BTreeMap<String, super::Quantity>` -> `super::Quantity`.
fn inner_type(rust_type: &str) -> String {
    let mut ty: String = rust_type.chars().filter(|c| !c.is_whitespace()).collect();
    if let Some(map) = ty.strip_prefix("::prost::alloc::collections::BTreeMap<") {
        ty = map
            .split_once(',')
            .map(|(_, v)| v.to_string())
            .unwrap_or_default();
    }
    for wrapper in [
        "::core::option::Option<",
        "::prost::alloc::vec::Vec<",
        "::prost::alloc::boxed::Box<",
    ] {
        if let Some(rest) = ty.strip_prefix(wrapper) {
            ty = rest.to_string();
        }
    }
    ty.trim_end_matches([',', '>']).to_string()
}

fn scalar(name: &str) -> Option<Scalar> {
    Some(match name {
        "string" => Scalar::String,
        "bytes" | "bytes = \"vec\"" => Scalar::Bytes,
        "bool" => Scalar::Bool,
        "int32" => Scalar::Int32,
        "int64" => Scalar::Int64,
        "double" => Scalar::Double,
        _ => return None,
    })
}

/// The shape of a field from its `#[prost(...)]` attribute and Rust type.
fn shape(
    module: &str,
    field: &PbField,
    openapi: &HashMap<(String, String), OpenApiType>,
) -> Result<(Shape, u32), String> {
    let parts: Vec<&str> = field.prost.split(", ").collect();
    let tag = parts
        .iter()
        .find_map(|p| p.strip_prefix("tag = \""))
        .and_then(|t| t.strip_suffix('"'))
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| format!("no tag in {:?}", field.prost))?;
    let message = || {
        let (m, name) = resolve_path(module, &inner_type(&field.rust_type));
        type_name(&m, &name, openapi)
    };
    let repeated = parts.contains(&"repeated");
    let unknown = || format!("unknown prost attribute {:?}", field.prost);
    let shape = if let Some(map) = field.prost.strip_prefix("btree_map = \"string, ") {
        let value = map.split('"').next().unwrap_or_default();
        if value == "message" {
            Shape::MapMessage(message())
        } else {
            Shape::MapScalar(scalar(value).ok_or_else(unknown)?)
        }
    } else if parts[0] == "message" {
        if repeated {
            Shape::RepeatedMessage(message())
        } else {
            Shape::Message(message())
        }
    } else {
        let s = scalar(parts[0]).ok_or_else(unknown)?;
        if repeated {
            Shape::RepeatedScalar(s)
        } else {
            Shape::Scalar(s)
        }
    };
    Ok((shape, tag))
}

/// The join key of Rust field names: the crates split acronyms differently
/// (k8s-pb `non_resource_ur_ls`, `a_pi_group`; k8s-openapi
/// `non_resource_urls`, `api_group`, `type_`), so compare without `_` and case.
fn normalize(rust: &str) -> String {
    rust.chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// lowerCamelCase of a snake_case name: the fallback JSON name.
fn camel(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The JSON name of a field: k8s-openapi's key for the same Rust field; else
/// the first word of the doc comment when it spells the field in
/// lowerCamelCase (Kubernetes docs start with the JSON name); else camelCase.
fn json_name(ty: &str, field: &PbField, openapi_type: Option<&OpenApiType>) -> (String, bool) {
    let rust = RENAMED
        .iter()
        .find(|(t, pb, _)| *t == ty && *pb == field.rust_name)
        .map_or(field.rust_name.as_str(), |(_, _, o)| o);
    if let Some(json) = openapi_type.and_then(|t| t.json.get(&normalize(rust))) {
        return (json.clone(), false);
    }
    let word: String = field
        .first_doc_word
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let plain: String = field.rust_name.chars().filter(|c| *c != '_').collect();
    if word.starts_with(|c: char| c.is_ascii_lowercase()) && word.eq_ignore_ascii_case(&plain) {
        return (word, true);
    }
    (camel(&field.rust_name), true)
}

fn resolve(
    message: &PbMessage,
    openapi: &HashMap<(String, String), OpenApiType>,
) -> Result<Type, String> {
    let name = type_name(&message.module, &message.rust_name, openapi);
    if !name.starts_with(&prefix(&message.module)) {
        return Err(format!("{name} is not under {}", prefix(&message.module)));
    }
    let openapi_type = openapi.get(&(
        message.module.clone(),
        message.rust_name.to_ascii_lowercase(),
    ));
    let mut fields = Vec::new();
    for f in &message.fields {
        let (shape, tag) = shape(&message.module, f, openapi)
            .map_err(|e| format!("{name}.{}: {e}", f.rust_name))?;
        let (json, json_guessed) = json_name(&name, f, openapi_type);
        fields.push(Field {
            json,
            json_guessed,
            rust_name: f.rust_name.clone(),
            inline: false,
            tag,
            shape,
            list_type: f.markers.get("listType"),
            list_map_keys: f.markers.all("listMapKey"),
            patch_strategy: f.markers.get("patchStrategy"),
            patch_merge_key: f.markers.get("patchMergeKey"),
            map_type: f.markers.get("mapType"),
        });
    }
    let custom_json = !fields.is_empty()
        && (openapi_type.is_some_and(|t| !t.object) || CUSTOM_JSON_EXTRA.contains(&name.as_str()));
    Ok(Type {
        name,
        struct_type: message.markers.get("structType"),
        map_type: message.markers.get("mapType"),
        custom_json,
        fields,
        openapi_json: openapi_type.map(|t| t.json.clone()),
    })
}

/// Handles embedded Go structs (`json:",inline"`): a protobuf message field
/// with no JSON key of its own whose type's fields are all JSON keys of the
/// outer type (Volume.volumeSource carries Volume's `hostPath`, `nfs`, ...).
/// Marks the field inline and, when the embedded type has no k8s-openapi
/// definition (VolumeSource, ProbeHandler, ...), takes its JSON names from
/// the outer type's.
fn mark_inline(types: &mut [Type]) {
    for i in 0..types.len() {
        let Some(outer) = types[i].openapi_json.clone() else {
            continue;
        };
        for j in 0..types[i].fields.len() {
            let field = &types[i].fields[j];
            let (Shape::Message(inner), true) = (&field.shape, field.json_guessed) else {
                continue;
            };
            let Ok(k) = types.binary_search_by(|t| t.name.as_str().cmp(inner)) else {
                continue;
            };
            let fits = |f: &Field| match types[k].openapi_json {
                Some(_) => outer.values().any(|json| *json == f.json),
                None => outer.contains_key(&normalize(&f.rust_name)),
            };
            if types[k].fields.is_empty() || !types[k].fields.iter().all(fits) {
                continue;
            }
            if types[k].openapi_json.is_none() {
                for f in &mut types[k].fields {
                    f.json = outer[&normalize(&f.rust_name)].clone();
                    f.json_guessed = false;
                }
            }
            let field = &mut types[i].fields[j];
            field.inline = true;
            field.json_guessed = false;
        }
    }
}

/// What the generator could not take from k8s-openapi, for the reviewer.
fn notes(types: &[Type]) -> Vec<String> {
    let mut notes = Vec::new();
    for ty in types {
        let guessed: Vec<&str> = ty
            .fields
            .iter()
            .filter(|f| f.json_guessed)
            .map(|f| f.json.as_str())
            .collect();
        if !guessed.is_empty() && !ty.custom_json {
            let why = if ty.openapi_json.is_some() {
                "missing from its k8s-openapi definition"
            } else {
                "no k8s-openapi definition"
            };
            notes.push(format!(
                "{}: JSON names guessed ({why}): {}",
                ty.name,
                guessed.join(", ")
            ));
        }
        if let Some(json) = &ty.openapi_json {
            let mut keys: Vec<&String> = json.values().collect();
            keys.sort();
            // Keys of the JSON form with no protobuf field (or inlined one);
            // apiVersion and kind are TypeMeta, which protobuf carries outside.
            let covered = |k: &str| {
                ty.fields.iter().any(|f| {
                    f.json == k
                        || (f.inline
                            && f.shape
                                .message()
                                .and_then(|m| find_in(types, m))
                                .is_some_and(|inner| inner.fields.iter().any(|g| g.json == k)))
                })
            };
            let extra: Vec<&str> = keys
                .into_iter()
                .map(String::as_str)
                .filter(|k| !matches!(*k, "apiVersion" | "kind") && !covered(k))
                .collect();
            if !extra.is_empty() && !ty.custom_json {
                notes.push(format!(
                    "{}: JSON keys without a protobuf field: {}",
                    ty.name,
                    extra.join(", ")
                ));
            }
        }
        for field in &ty.fields {
            if let Some(target) = field.shape.message() {
                if find_in(types, target).is_none() {
                    notes.push(format!(
                        "{}.{} refers to {target}, which is not in the table",
                        ty.name, field.json
                    ));
                }
            }
        }
    }
    notes
}

fn find_in<'a>(types: &'a [Type], name: &str) -> Option<&'a Type> {
    let i = types.binary_search_by(|t| t.name.as_str().cmp(name)).ok()?;
    Some(&types[i])
}

impl Shape {
    fn message(&self) -> Option<&str> {
        match self {
            Shape::Message(m) | Shape::RepeatedMessage(m) | Shape::MapMessage(m) => Some(m),
            _ => None,
        }
    }
}

fn render_shape(shape: &Shape) -> String {
    match shape {
        Shape::Scalar(s) => format!("Shape::Scalar(Scalar::{s:?})"),
        Shape::Message(m) => format!("Shape::Message({m:?})"),
        Shape::RepeatedScalar(s) => format!("Shape::RepeatedScalar(Scalar::{s:?})"),
        Shape::RepeatedMessage(m) => format!("Shape::RepeatedMessage({m:?})"),
        Shape::MapScalar(s) => format!("Shape::MapScalar(Scalar::{s:?})"),
        Shape::MapMessage(m) => format!("Shape::MapMessage({m:?})"),
    }
}

fn render_field(f: &Field) -> String {
    let mut line = format!(
        "Field {{ json: {:?}, tag: {}, shape: {}",
        f.json,
        f.tag,
        render_shape(&f.shape)
    );
    let list = match f.list_type.as_str() {
        "" => String::new(),
        "atomic" => "ListType::Atomic".to_string(),
        "set" => "ListType::Set".to_string(),
        "map" => format!("ListType::Map(&{:?})", f.list_map_keys),
        other => format!("ListType::Other({other:?})"),
    };
    if !list.is_empty() {
        let _ = write!(line, ", list: {list}");
    }
    for (key, value) in [
        ("patch_strategy", &f.patch_strategy),
        ("patch_merge_key", &f.patch_merge_key),
        ("map_type", &f.map_type),
    ] {
        if !value.is_empty() {
            let _ = write!(line, ", {key}: {value:?}");
        }
    }
    if f.inline {
        line.push_str(", inline: true");
    }
    line.push_str(", ..Field::DEFAULT },");
    if f.json_guessed {
        line.push_str(" // JSON name guessed");
    }
    line
}

const PREAMBLE: &str = r#"/// Kubernetes minor version the table describes.
pub const KUBERNETES_VERSION: &str = "@VERSION@";

/// A protobuf scalar type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scalar {
    String,
    Bytes,
    Bool,
    Int32,
    Int64,
    Double,
}

/// A field's protobuf shape; message types are full definition names
/// (`io.k8s.api.core.v1.Container`), keys of [`find`]. Maps have string keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Scalar(Scalar),
    Message(&'static str),
    RepeatedScalar(Scalar),
    RepeatedMessage(&'static str),
    MapScalar(Scalar),
    MapMessage(&'static str),
}

impl Shape {
    /// The message type of the field, its items or its map values.
    pub const fn message(self) -> Option<&'static str> {
        match self {
            Shape::Message(m) | Shape::RepeatedMessage(m) | Shape::MapMessage(m) => Some(m),
            _ => None,
        }
    }

    pub const fn is_list(self) -> bool {
        matches!(self, Shape::RepeatedScalar(_) | Shape::RepeatedMessage(_))
    }

    pub const fn is_map(self) -> bool {
        matches!(self, Shape::MapScalar(_) | Shape::MapMessage(_))
    }
}

/// `+listType` (`x-kubernetes-list-type`); `Map` carries the `+listMapKey`s.
/// `None` for lists without the marker (atomic for server-side apply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListType {
    None,
    Atomic,
    Set,
    Map(&'static [&'static str]),
    /// A value this generator does not know; kept rather than dropped.
    Other(&'static str),
}

/// One protobuf field of a type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// The JSON (and proto) field name.
    pub json: &'static str,
    /// The protobuf field number.
    pub tag: u32,
    pub shape: Shape,
    pub list: ListType,
    /// `patchStrategy` (`x-kubernetes-patch-strategy`): "", "merge",
    /// "retainKeys" or "merge,retainKeys".
    pub patch_strategy: &'static str,
    /// `patchMergeKey` (`x-kubernetes-patch-merge-key`), or "".
    pub patch_merge_key: &'static str,
    /// `+mapType` on the field: "", "atomic" or "granular".
    pub map_type: &'static str,
    /// An embedded Go struct (`json:",inline"`): in JSON its fields are
    /// fields of the outer object, `json` is only the protobuf name.
    pub inline: bool,
}

impl Field {
    const DEFAULT: Field = Field {
        json: "",
        tag: 0,
        shape: Shape::Scalar(Scalar::String),
        list: ListType::None,
        patch_strategy: "",
        patch_merge_key: "",
        map_type: "",
        inline: false,
    };
}

/// One protobuf message of the Kubernetes API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Type {
    /// OpenAPI definition name, e.g. `io.k8s.api.core.v1.PodSpec`.
    pub name: &'static str,
    /// `+structType` on the type: "", "atomic" or "granular" (OpenAPI
    /// publishes `atomic` as `x-kubernetes-map-type: atomic`).
    pub struct_type: &'static str,
    /// `+mapType` on the type.
    pub map_type: &'static str,
    /// The JSON form is not an object of `fields` (Quantity, Time,
    /// IntOrString, RawExtension, FieldsV1, ...): the fields are protobuf-only.
    pub custom_json: bool,
    /// In protobuf declaration order.
    pub fields: &'static [Field],
}

impl Type {
    /// The field with this JSON name, looking into inline (embedded) fields
    /// as JSON does: `Volume.hostPath` is `VolumeSource.hostPath`.
    pub fn field(&self, json: &str) -> Option<&'static Field> {
        self.fields.iter().find_map(|f| match f.shape.message() {
            Some(inner) if f.inline => find(inner).and_then(|t| t.field(json)),
            _ => (f.json == json).then_some(f),
        })
    }

    pub fn field_by_tag(&self, tag: u32) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.tag == tag)
    }
}

/// The type with this definition name.
pub fn find(name: &str) -> Option<&'static Type> {
    TYPES
        .binary_search_by(|t| t.name.cmp(name))
        .ok()
        .map(|i| &TYPES[i])
}

/// Every type, sorted by name.
#[rustfmt::skip]
pub static TYPES: &[Type] = &[
"#;

fn render(types: &[Type]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "// @generated by `{COMMAND}`; do not edit.\n\
         // Sources: k8s-pb {K8S_PB} (prost output of the Kubernetes {KUBERNETES_VERSION}.0 \
         protobufs: field numbers,\n\
         // shapes and markers) and k8s-openapi {K8S_OPENAPI} module {OPENAPI_MODULE} \
         (definition and JSON names).\n\
         // Modules: {}.\n\
         \n\
         //! Facts about the built-in Kubernetes API types, from their protobuf\n\
         //! definitions and Go markers: JSON names, protobuf field numbers and\n\
         //! shapes, strategic-merge patch metadata, list/map/struct types.\n",
        MODULES.join(", ")
    );
    out.push_str(&PREAMBLE.replace("@VERSION@", KUBERNETES_VERSION));
    for ty in types {
        let _ = write!(out, "    Type {{ name: {:?}", ty.name);
        if !ty.struct_type.is_empty() {
            let _ = write!(out, ", struct_type: {:?}", ty.struct_type);
        } else {
            out.push_str(", struct_type: \"\"");
        }
        let _ = write!(
            out,
            ", map_type: {:?}, custom_json: {}, fields: &[",
            ty.map_type, ty.custom_json
        );
        if ty.fields.is_empty() {
            out.push_str("] },\n");
            continue;
        }
        out.push('\n');
        for f in &ty.fields {
            let _ = writeln!(out, "        {}", render_field(f));
        }
        out.push_str("    ] },\n");
    }
    out.push_str("];\n");
    out
}
