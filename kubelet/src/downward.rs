//! The downward API: a pod's own fields (`fieldRef`) and its containers'
//! resources (`resourceFieldRef`) as strings, shared by environment
//! variables and `downwardAPI` volume files.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ObjectFieldSelector, Pod, ResourceFieldSelector, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kedge_config::quantity::{parse_quantity, QuantityError};

/// Why a downward API field has no value (Kubernetes' wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownwardError {
    /// The `apiVersion` of a `fieldRef` is not `v1`.
    #[error("unsupported pod version: {0}")]
    Version(String),
    /// A `fieldPath` the downward API does not offer.
    #[error("field label not supported: {0}")]
    FieldPath(String),
    /// A `resource` the downward API does not offer.
    #[error("unsupported container resource : {0}")]
    Resource(String),
    /// `resourceFieldRef.containerName` names no container of the pod.
    #[error("container {0} not found")]
    Container(String),
    /// A quantity in the spec or a divisor does not parse.
    #[error("invalid quantity {value:?}: {source}")]
    Quantity {
        /// The text that did not parse.
        value: String,
        /// Why.
        #[source]
        source: QuantityError,
    },
}

/// What the node can give its pods, the value of limits a container leaves
/// unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeAllocatable {
    /// CPU in millicores.
    pub cpu_millis: i128,
    /// Memory in bytes.
    pub memory_bytes: i128,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage_bytes: i128,
}

// === impl NodeAllocatable ===

impl NodeAllocatable {
    /// From a Node's `status.allocatable` (or the kubelet's capacity),
    /// written as quantities; missing or malformed entries count as zero.
    pub fn from_quantities<'a, I, K, V>(quantities: I) -> Self
    where
        I: IntoIterator<Item = (&'a K, &'a V)>,
        K: AsRef<str> + ?Sized + 'a,
        V: AsRef<str> + ?Sized + 'a,
    {
        let mut out = Self::default();
        for (k, v) in quantities {
            let Ok(q) = parse_quantity(v.as_ref()) else {
                continue;
            };
            match k.as_ref() {
                "cpu" => out.cpu_millis = q.as_milli(),
                "memory" => out.memory_bytes = q.as_bytes(),
                "ephemeral-storage" => out.ephemeral_storage_bytes = q.as_bytes(),
                _ => {}
            }
        }
        out
    }
}

/// What downward API values come from besides the pod: the node's and the
/// pod's addresses and the node's allocatable resources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownwardInputs {
    /// The node's IPs (`status.hostIPs`), primary first.
    pub host_ips: Vec<String>,
    /// The pod's IPs (`status.podIPs`), primary first; the host's for a
    /// hostNetwork pod.
    pub pod_ips: Vec<String>,
    /// Limits a container leaves unset default to these.
    pub allocatable: NodeAllocatable,
}

/// The value of a `fieldRef` for `pod`.
pub fn pod_field_value(
    pod: &Pod,
    selector: &ObjectFieldSelector,
    inputs: &DownwardInputs,
) -> Result<String, DownwardError> {
    if let Some(v) = selector.api_version.as_deref() {
        if !v.is_empty() && v != "v1" {
            return Err(DownwardError::Version(v.to_string()));
        }
    }
    let path = selector.field_path.as_str();
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    if let Some((field, key)) = split_subscript(path) {
        let map = match field {
            "metadata.labels" => meta.labels.as_ref(),
            "metadata.annotations" => meta.annotations.as_ref(),
            _ => return Err(DownwardError::FieldPath(path.to_string())),
        };
        return Ok(map.and_then(|m| m.get(key)).cloned().unwrap_or_default());
    }
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" => inputs.host_ips.first().cloned().unwrap_or_default(),
        "status.hostIPs" => inputs.host_ips.join(","),
        "status.podIP" => inputs.pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => inputs.pod_ips.join(","),
        _ => return Err(DownwardError::FieldPath(path.to_string())),
    };
    Ok(value)
}

/// `metadata.labels['key']` → (`metadata.labels`, `key`).
fn split_subscript(path: &str) -> Option<(&str, &str)> {
    let inner = path.strip_suffix("']")?;
    let open = inner.find("['")?;
    Some((&inner[..open], &inner[open + 2..]))
}

/// A whole label or annotation map as Kubernetes writes it into a file:
/// `key="value"` lines in key order, values quoted as Go's `%q` does.
fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    let Some(map) = map else {
        return String::new();
    };
    map.iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\u{0b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The value of a `resourceFieldRef`: of `container` unless the selector
/// names another container of the pod. Unset limits are the node's
/// allocatable; an unset request is the limit in the spec (as the API
/// server defaults it) or zero. Values are divided by `divisor` (default
/// 1) and rounded up.
pub fn container_resource_value(
    selector: &ResourceFieldSelector,
    pod: &Pod,
    container: Option<&Container>,
    allocatable: &NodeAllocatable,
) -> Result<String, DownwardError> {
    let named = selector.container_name.as_deref().filter(|n| !n.is_empty());
    let container = match (named, container) {
        (Some(name), _) => find_container(pod, name)?,
        (None, Some(c)) => c,
        (None, None) => return Err(DownwardError::Container(String::new())),
    };
    let divisor = match selector.divisor.as_ref() {
        Some(d) => parse(&d.0)?,
        None => None,
    };
    let resources = container.resources.as_ref();
    let (kind, resource) = match selector.resource.split_once('.') {
        Some(("limits", r)) => (Kind::Limit, r),
        Some(("requests", r)) => (Kind::Request, r),
        _ => return Err(DownwardError::Resource(selector.resource.clone())),
    };
    let node_value = match resource {
        "cpu" => allocatable.cpu_millis,
        "memory" => allocatable.memory_bytes,
        "ephemeral-storage" => allocatable.ephemeral_storage_bytes,
        _ => return Err(DownwardError::Resource(selector.resource.clone())),
    };
    let cpu = resource == "cpu";
    let spec_value = |q: &kedge_config::quantity::Quantity| {
        if cpu {
            q.as_milli()
        } else {
            q.as_bytes()
        }
    };
    let limit = quantity(resources, Kind::Limit, resource)?;
    let value = match kind {
        Kind::Limit => limit.as_ref().map(spec_value).unwrap_or(node_value),
        Kind::Request => match quantity(resources, Kind::Request, resource)? {
            Some(q) => spec_value(&q),
            None => limit.as_ref().map(spec_value).unwrap_or(0),
        },
    };
    // A zero divisor means unset, as in Kubernetes.
    let divisor = divisor
        .filter(|d| !d.is_zero())
        .map(|d| spec_value(&d))
        .filter(|&d| d > 0)
        .unwrap_or(if cpu { 1000 } else { 1 });
    Ok(div_ceil(value, divisor).to_string())
}

#[derive(Clone, Copy)]
enum Kind {
    Limit,
    Request,
}

fn quantity(
    resources: Option<&ResourceRequirements>,
    kind: Kind,
    name: &str,
) -> Result<Option<kedge_config::quantity::Quantity>, DownwardError> {
    let map: Option<&BTreeMap<String, Quantity>> = resources.and_then(|r| match kind {
        Kind::Limit => r.limits.as_ref(),
        Kind::Request => r.requests.as_ref(),
    });
    match map.and_then(|m| m.get(name)) {
        Some(q) => parse(&q.0),
        None => Ok(None),
    }
}

fn parse(s: &str) -> Result<Option<kedge_config::quantity::Quantity>, DownwardError> {
    parse_quantity(s)
        .map(Some)
        .map_err(|source| DownwardError::Quantity {
            value: s.to_string(),
            source,
        })
}

fn find_container<'a>(pod: &'a Pod, name: &str) -> Result<&'a Container, DownwardError> {
    pod.spec
        .iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .find(|c| c.name == name)
        .ok_or_else(|| DownwardError::Container(name.to_string()))
}

fn div_ceil(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b != 0 && (a > 0) == (b > 0) {
        q + 1
    } else {
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web-0".into()),
                namespace: Some("shop".into()),
                uid: Some("u-1".into()),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                annotations: Some(
                    [
                        ("b".to_string(), "two\nlines".to_string()),
                        ("a".to_string(), "say \"hi\"".to_string()),
                    ]
                    .into(),
                ),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("node-1".into()),
                service_account_name: Some("robot".into()),
                containers: vec![Container {
                    name: "app".into(),
                    resources: Some(ResourceRequirements {
                        limits: Some(
                            [
                                ("cpu".to_string(), Quantity("1500m".into())),
                                ("memory".to_string(), Quantity("64Mi".into())),
                            ]
                            .into(),
                        ),
                        requests: Some([("cpu".to_string(), Quantity("250m".into()))].into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn field(path: &str) -> Result<String, DownwardError> {
        let inputs = DownwardInputs {
            host_ips: vec!["10.0.0.1".into(), "fd00::1".into()],
            pod_ips: vec!["10.1.0.5".into(), "fd01::5".into()],
            allocatable: NodeAllocatable::default(),
        };
        let sel = ObjectFieldSelector {
            api_version: Some("v1".into()),
            field_path: path.into(),
        };
        pod_field_value(&pod(), &sel, &inputs)
    }

    #[test]
    fn pod_fields() {
        assert_eq!(field("metadata.name").unwrap(), "web-0");
        assert_eq!(field("metadata.namespace").unwrap(), "shop");
        assert_eq!(field("metadata.uid").unwrap(), "u-1");
        assert_eq!(field("metadata.labels['app']").unwrap(), "web");
        assert_eq!(field("metadata.labels['none']").unwrap(), "");
        assert_eq!(field("metadata.annotations['a']").unwrap(), "say \"hi\"");
        assert_eq!(field("spec.nodeName").unwrap(), "node-1");
        assert_eq!(field("spec.serviceAccountName").unwrap(), "robot");
        assert_eq!(field("status.hostIP").unwrap(), "10.0.0.1");
        assert_eq!(field("status.hostIPs").unwrap(), "10.0.0.1,fd00::1");
        assert_eq!(field("status.podIP").unwrap(), "10.1.0.5");
        assert_eq!(field("status.podIPs").unwrap(), "10.1.0.5,fd01::5");
        assert_eq!(field("metadata.labels").unwrap(), "app=\"web\"");
        assert_eq!(
            field("metadata.annotations").unwrap(),
            "a=\"say \\\"hi\\\"\"\nb=\"two\\nlines\""
        );
        assert_eq!(
            field("spec.hostname").unwrap_err().to_string(),
            "field label not supported: spec.hostname"
        );
        let sel = ObjectFieldSelector {
            api_version: Some("v2".into()),
            field_path: "metadata.name".into(),
        };
        assert_eq!(
            pod_field_value(&pod(), &sel, &DownwardInputs::default())
                .unwrap_err()
                .to_string(),
            "unsupported pod version: v2"
        );
    }

    fn resource(name: &str, divisor: Option<&str>) -> Result<String, DownwardError> {
        let p = pod();
        let alloc = NodeAllocatable::from_quantities(&BTreeMap::from([
            ("cpu".to_string(), "4".to_string()),
            ("memory".to_string(), "8Gi".to_string()),
            ("ephemeral-storage".to_string(), "100G".to_string()),
        ]));
        let sel = ResourceFieldSelector {
            container_name: None,
            divisor: divisor.map(|d| Quantity(d.into())),
            resource: name.into(),
        };
        container_resource_value(&sel, &p, p.spec.as_ref().map(|s| &s.containers[0]), &alloc)
    }

    #[test]
    fn container_resources() {
        // CPU rounds up to whole cores by default.
        assert_eq!(resource("limits.cpu", None).unwrap(), "2");
        assert_eq!(resource("limits.cpu", Some("1m")).unwrap(), "1500");
        assert_eq!(resource("requests.cpu", None).unwrap(), "1");
        assert_eq!(resource("requests.cpu", Some("1m")).unwrap(), "250");
        assert_eq!(resource("limits.memory", None).unwrap(), "67108864");
        assert_eq!(resource("limits.memory", Some("1Mi")).unwrap(), "64");
        assert_eq!(resource("limits.memory", Some("1M")).unwrap(), "68");
        // The request defaults to the limit.
        assert_eq!(resource("requests.memory", Some("1Mi")).unwrap(), "64");
        // An unset limit is the node's allocatable.
        assert_eq!(
            resource("limits.ephemeral-storage", Some("1G")).unwrap(),
            "100"
        );
        assert_eq!(resource("requests.ephemeral-storage", None).unwrap(), "0");
        assert_eq!(
            resource("limits.nvidia.com/gpu", None)
                .unwrap_err()
                .to_string(),
            "unsupported container resource : limits.nvidia.com/gpu"
        );
    }

    #[test]
    fn unset_cpu_limit_is_allocatable() {
        let mut p = pod();
        p.spec.as_mut().unwrap().containers[0].resources = None;
        let sel = ResourceFieldSelector {
            container_name: Some("app".into()),
            divisor: None,
            resource: "limits.cpu".into(),
        };
        let alloc = NodeAllocatable {
            cpu_millis: 3500,
            ..Default::default()
        };
        assert_eq!(
            container_resource_value(&sel, &p, None, &alloc).unwrap(),
            "4"
        );
        let sel = ResourceFieldSelector {
            container_name: Some("nope".into()),
            ..sel
        };
        assert_eq!(
            container_resource_value(&sel, &p, None, &alloc)
                .unwrap_err()
                .to_string(),
            "container nope not found"
        );
    }
}
