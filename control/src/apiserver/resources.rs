//! The registry of served resources: what discovery advertises, how URLs map
//! to storage keys, and which subresources each kind has.

/// One served resource (a plural name within a group/version).
#[derive(Debug)]
pub struct Resource {
    /// API group; empty for the legacy core group.
    pub group: &'static str,
    /// Served version.
    pub version: &'static str,
    /// Plural name as used in URLs.
    pub plural: &'static str,
    /// Singular name.
    pub singular: &'static str,
    /// Kind of the objects.
    pub kind: &'static str,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// kubectl short names.
    pub short_names: &'static [&'static str],
    /// Categories (`all` makes `kubectl get all` include it).
    pub categories: &'static [&'static str],
    /// Subresources beyond the object itself.
    pub subresources: &'static [Subresource],
    /// Kinds that are written only by controllers in Kubernetes still accept
    /// every verb here, so the list is the same for every resource except the
    /// few marked otherwise.
    pub verbs: &'static [&'static str],
}

/// A subresource such as `status` or `scale`.
#[derive(Debug)]
pub struct Subresource {
    /// Name as it appears after the object name in the URL.
    pub name: &'static str,
    /// Group of the kind the subresource speaks.
    pub group: &'static str,
    /// Version of the kind the subresource speaks.
    pub version: &'static str,
    /// Kind the subresource speaks.
    pub kind: &'static str,
    /// Verbs it supports.
    pub verbs: &'static [&'static str],
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const STATUS_VERBS: &[&str] = &["get", "patch", "update"];
const STATUS: Subresource = Subresource {
    name: "status",
    group: "",
    version: "",
    kind: "",
    verbs: STATUS_VERBS,
};
const SCALE: Subresource = Subresource {
    name: "scale",
    group: "autoscaling",
    version: "v1",
    kind: "Scale",
    verbs: STATUS_VERBS,
};

macro_rules! res {
    ($g:expr, $v:expr, $plural:expr, $singular:expr, $kind:expr, $ns:expr, $short:expr, $cat:expr, $sub:expr) => {
        Resource {
            group: $g,
            version: $v,
            plural: $plural,
            singular: $singular,
            kind: $kind,
            namespaced: $ns,
            short_names: $short,
            categories: $cat,
            subresources: $sub,
            verbs: ALL_VERBS,
        }
    };
}

/// Every resource the API server serves.
pub static RESOURCES: &[Resource] = &[
    res!(
        "",
        "v1",
        "namespaces",
        "namespace",
        "Namespace",
        false,
        &["ns"],
        &[],
        &[
            STATUS,
            Subresource {
                name: "finalize",
                group: "",
                version: "",
                kind: "",
                verbs: &["update"]
            }
        ]
    ),
    res!(
        "",
        "v1",
        "pods",
        "pod",
        "Pod",
        true,
        &["po"],
        &["all"],
        &[
            STATUS,
            Subresource {
                name: "binding",
                group: "",
                version: "v1",
                kind: "Binding",
                verbs: &["create"]
            },
            Subresource {
                name: "log",
                group: "",
                version: "v1",
                kind: "Pod",
                verbs: &["get"]
            },
            Subresource {
                name: "exec",
                group: "",
                version: "v1",
                kind: "PodExecOptions",
                verbs: &["create", "get"]
            }
        ]
    ),
    res!(
        "",
        "v1",
        "services",
        "service",
        "Service",
        true,
        &["svc"],
        &["all"],
        &[STATUS]
    ),
    res!(
        "",
        "v1",
        "endpoints",
        "endpoints",
        "Endpoints",
        true,
        &["ep"],
        &[],
        &[]
    ),
    res!(
        "",
        "v1",
        "configmaps",
        "configmap",
        "ConfigMap",
        true,
        &["cm"],
        &[],
        &[]
    ),
    res!("", "v1", "secrets", "secret", "Secret", true, &[], &[], &[]),
    res!(
        "",
        "v1",
        "nodes",
        "node",
        "Node",
        false,
        &["no"],
        &[],
        &[STATUS]
    ),
    res!(
        "",
        "v1",
        "events",
        "event",
        "Event",
        true,
        &["ev"],
        &[],
        &[]
    ),
    res!(
        "",
        "v1",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        &["sa"],
        &[],
        &[Subresource {
            name: "token",
            group: "authentication.k8s.io",
            version: "v1",
            kind: "TokenRequest",
            verbs: &["create"]
        }]
    ),
    res!(
        "apps",
        "v1",
        "deployments",
        "deployment",
        "Deployment",
        true,
        &["deploy"],
        &["all"],
        &[STATUS, SCALE]
    ),
    res!(
        "apps",
        "v1",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        true,
        &["rs"],
        &["all"],
        &[STATUS, SCALE]
    ),
    res!(
        "apps",
        "v1",
        "daemonsets",
        "daemonset",
        "DaemonSet",
        true,
        &["ds"],
        &["all"],
        &[STATUS]
    ),
    res!(
        "apps",
        "v1",
        "statefulsets",
        "statefulset",
        "StatefulSet",
        true,
        &["sts"],
        &["all"],
        &[STATUS, SCALE]
    ),
    res!(
        "batch",
        "v1",
        "jobs",
        "job",
        "Job",
        true,
        &[],
        &["all"],
        &[STATUS]
    ),
    res!(
        "batch",
        "v1",
        "cronjobs",
        "cronjob",
        "CronJob",
        true,
        &["cj"],
        &["all"],
        &[STATUS]
    ),
    res!(
        "networking.k8s.io",
        "v1",
        "ingresses",
        "ingress",
        "Ingress",
        true,
        &["ing"],
        &[],
        &[STATUS]
    ),
    res!(
        "networking.k8s.io",
        "v1",
        "ingressclasses",
        "ingressclass",
        "IngressClass",
        false,
        &[],
        &[],
        &[]
    ),
    res!(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "endpointslice",
        "EndpointSlice",
        true,
        &[],
        &[],
        &[]
    ),
    res!(
        "coordination.k8s.io",
        "v1",
        "leases",
        "lease",
        "Lease",
        true,
        &[],
        &[],
        &[]
    ),
];

/// The groups in the order discovery lists them (core first).
pub const GROUPS: &[&str] = &[
    "",
    "apps",
    "batch",
    "networking.k8s.io",
    "discovery.k8s.io",
    "coordination.k8s.io",
];

impl Resource {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The subresource with this name.
    pub fn subresource(&self, name: &str) -> Option<&'static Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// Whether the kind has a status subresource, so that writes to the main
    /// resource keep the stored status and writes to `status` keep the rest.
    pub fn has_status(&self) -> bool {
        self.subresource("status").is_some()
    }

    /// The storage key prefix of all objects of this resource.
    pub fn prefix(&self) -> String {
        let g = if self.group.is_empty() {
            "core"
        } else {
            self.group
        };
        format!("/{g}/{}/", self.plural)
    }

    /// The storage key prefix for one namespace (or all for cluster scope).
    pub fn namespace_prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{ns}/", self.prefix()),
            _ => self.prefix(),
        }
    }

    /// The storage key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        let ns = if self.namespaced {
            namespace.unwrap_or("")
        } else {
            ""
        };
        format!("{}{ns}/{name}", self.prefix())
    }
}

/// The resource served at `group/version/plural`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource for a group and kind.
pub fn by_kind(group: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.kind == kind)
}

/// Resources of one group/version.
pub fn in_group_version<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static Resource> + 'a {
    RESOURCES
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}
