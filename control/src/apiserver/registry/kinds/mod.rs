//! The built-in kinds, one module each (as Kubernetes'
//! `pkg/registry/<group>/<kind>/strategy.go`): how the kind is served
//! (its [`Resource`]: names, scope, subresources), its typed form
//! (decoding, defaulting, validation and update rules, from
//! `kedge_config::object`), its OpenAPI schema, and the rules of its
//! strategy the generic verbs consult (generation, status on create,
//! where its pod template is).
//!
//! Adding a kind is adding a module here and its line in [`ALL`]; the
//! served-resource list, discovery and OpenAPI are derived from [`ALL`].
//! Printer columns are still kept by plural in `apiserver::table`, and
//! protobuf decoding in `apiserver::protobuf`.

mod certificatesigningrequests;
mod clusterrolebindings;
mod clusterroles;
mod componentstatuses;
mod configmaps;
mod controllerrevisions;
mod cronjobs;
mod customresourcedefinitions;
mod daemonsets;
mod deployments;
mod endpoints;
mod endpointslices;
mod events;
mod horizontalpodautoscalers;
mod horizontalpodautoscalers_v1;
mod ingressclasses;
mod ingresses;
mod jobs;
mod leases;
mod limitranges;
mod localsubjectaccessreviews;
mod namespaces;
mod networkpolicies;
mod nodemetrics;
mod nodes;
mod persistentvolumeclaims;
mod persistentvolumes;
mod poddisruptionbudgets;
mod podmetrics;
mod pods;
mod replicasets;
mod replicationcontrollers;
mod resourcequotas;
mod rolebindings;
mod roles;
mod secrets;
mod selfsubjectaccessreviews;
mod selfsubjectreviews;
mod selfsubjectrulesreviews;
mod serviceaccounts;
mod services;
mod statefulsets;
mod storageclasses;
mod subjectaccessreviews;
mod tokenreviews;

use k8s_openapi::schemars::{JsonSchema, SchemaGenerator};
use serde_json::Value;

use kedge_config::object::Typed;
use kedge_config::validation::FieldError;

use super::{Resource, Subresource};
use crate::apiserver::status::ApiResult;
use crate::apiserver::ApiState;

/// Everything the server knows of one built-in kind.
pub struct Kind {
    /// How it is served.
    pub resource: Resource,
    /// How its objects are decoded, defaulted and validated.
    pub admission: Admission,
    /// Adds its OpenAPI schema (and those it references) to the generator,
    /// returning the schema's name.
    pub openapi: fn(&mut SchemaGenerator) -> String,
    /// Where its objects embed a PodSpec (`spec.template.spec`), empty for
    /// none: merge keys and field ownership below it are the PodSpec's.
    pub pod_spec: &'static str,
    /// Whether `metadata.generation` counts changes to its spec.
    pub generation: bool,
    /// What a new object's status becomes.
    pub on_create: OnCreate,
}

/// How a kind's objects are admitted.
pub enum Admission {
    /// Through its k8s-openapi type (decode, default, validate, immutable
    /// fields).
    Typed(Typed),
    /// By rules of its own on the JSON (CustomResourceDefinitions, whose
    /// schemas the typed form would reshape).
    Rules {
        /// Default and validate.
        admit: fn(Value) -> Result<Value, Vec<FieldError>>,
        /// Before an update of the object (not its status): what the
        /// update carries over from the stored object.
        prepare_update: fn(&Value, &mut Value),
        /// What an update may not change.
        validate_update: fn(&Value, &Value) -> Vec<FieldError>,
    },
}

/// What a kind does to a new object before it is stored.
pub enum OnCreate {
    /// Nothing: it is stored as given.
    AsGiven,
    /// Its status starts empty (controllers fill it in).
    EmptyStatus,
    /// Its status starts as this.
    Status(fn() -> Value),
    /// Kind-specific admission (a pod's ServiceAccount, QoS class, …).
    Prepare(fn(&ApiState, &mut Value) -> ApiResult<()>),
}

/// Every built-in kind, in the order discovery lists them (by group: core
/// first, then as the groups first appear).
pub static ALL: &[&Kind] = &[
    &namespaces::KIND,
    &pods::KIND,
    &services::KIND,
    &endpoints::KIND,
    &configmaps::KIND,
    &secrets::KIND,
    &nodes::KIND,
    &events::KIND,
    &serviceaccounts::KIND,
    &resourcequotas::KIND,
    &limitranges::KIND,
    &replicationcontrollers::KIND,
    &persistentvolumes::KIND,
    &persistentvolumeclaims::KIND,
    &deployments::KIND,
    &replicasets::KIND,
    &daemonsets::KIND,
    &statefulsets::KIND,
    &controllerrevisions::KIND,
    &jobs::KIND,
    &cronjobs::KIND,
    &horizontalpodautoscalers::KIND,
    &horizontalpodautoscalers_v1::KIND,
    &poddisruptionbudgets::KIND,
    &ingresses::KIND,
    &ingressclasses::KIND,
    &networkpolicies::KIND,
    &endpointslices::KIND,
    &leases::KIND,
    &customresourcedefinitions::KIND,
    &roles::KIND,
    &clusterroles::KIND,
    &rolebindings::KIND,
    &clusterrolebindings::KIND,
    &tokenreviews::KIND,
    &selfsubjectreviews::KIND,
    &subjectaccessreviews::KIND,
    &selfsubjectaccessreviews::KIND,
    &localsubjectaccessreviews::KIND,
    &selfsubjectrulesreviews::KIND,
    &certificatesigningrequests::KIND,
    &storageclasses::KIND,
    &componentstatuses::KIND,
    &nodemetrics::KIND,
    &podmetrics::KIND,
];

/// The built-in kind a resource serves (its version's).
pub fn of(r: &Resource) -> Option<&'static Kind> {
    ALL.iter().copied().find(|k| {
        k.resource.group == r.group && k.resource.version == r.version && k.resource.kind == r.kind
    })
}

/// The built-in kind `kind` of `group` (its storage version's, listed
/// first).
pub fn find(group: &str, kind: &str) -> Option<&'static Kind> {
    ALL.iter()
        .copied()
        .find(|k| k.resource.group == group && k.resource.kind == kind)
}

/// The API type name of a built-in kind (`io.k8s.api.apps.v1.Deployment`),
/// the root of its entry in the generated table: its storage version's.
pub fn type_name(group: &str, kind: &str) -> Option<&'static str> {
    type_names()
        .iter()
        .find(|((g, _, k), _)| *g == group && *k == kind)
        .map(|(_, name)| name.as_str())
}

/// The API type name of a built-in kind in one version.
pub fn type_name_in(group: &str, version: &str, kind: &str) -> Option<&'static str> {
    type_names()
        .iter()
        .find(|((g, v, k), _)| *g == group && *v == version && *k == kind)
        .map(|(_, name)| name.as_str())
}

/// The API type names of every built-in kind, by (group, version, kind):
/// what each kind's OpenAPI schema is called, worked out once.
#[allow(clippy::type_complexity)]
pub fn type_names() -> &'static [((&'static str, &'static str, &'static str), String)] {
    static NAMES: std::sync::OnceLock<Vec<((&'static str, &'static str, &'static str), String)>> =
        std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let mut gen = k8s_openapi::schemars::generate::SchemaSettings::openapi3().into_generator();
        ALL.iter()
            .map(|k| {
                let r = &k.resource;
                ((r.group, r.version, r.kind), (k.openapi)(&mut gen))
            })
            .collect()
    })
}

/// Whether a built-in kind publishes an OpenAPI schema: all do but the
/// resource metrics, read-only views kubectl needs no schema for.
pub fn has_schema(group: &str, kind: &str) -> bool {
    type_name(group, kind).is_some_and(|n| !n.is_empty())
}

/// The schema of a k8s-openapi type, added to the generator.
fn openapi<T: JsonSchema>(gen: &mut SchemaGenerator) -> String {
    gen.subschema_for::<T>();
    T::schema_name().into_owned()
}

/// What the review kinds share: they are created and answered at once
/// (`auth::reviews`), never stored, so admission keeps them as given.
const REVIEW: Kind = Kind {
    resource: Resource {
        group: "",
        version: "v1",
        plural: "",
        singular: "",
        kind: "",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        verbs: &["create"],
        custom: false,
        selectable_fields: &[],
    },
    admission: Admission::Rules {
        admit: Ok,
        prepare_update: |_, _| {},
        validate_update: |_, _| Vec::new(),
    },
    openapi: |_| String::new(),
    pod_spec: "",
    generation: false,
    on_create: OnCreate::AsGiven,
};

/// What the resource metrics kinds share (and ComponentStatus): worked out
/// when read, never written or stored.
const RESOURCE_METRICS: Kind = Kind {
    openapi: |_| String::new(),
    ..REVIEW
};

/// Whether `r` is one of the review kinds, answered and not stored.
pub fn is_review(r: &Resource) -> bool {
    matches!(r.group, "authorization.k8s.io" | "authentication.k8s.io")
        && r.kind.ends_with("Review")
}

/// `namespaces/finalize`: what the namespace lifecycle writes.
const FINALIZE: Subresource = Subresource {
    name: "finalize",
    group: "",
    version: "",
    kind: "",
    verbs: &["update"],
};

/// `pods/binding`: the scheduler's write.
const BINDING: Subresource = Subresource {
    name: "binding",
    group: "",
    version: "v1",
    kind: "Binding",
    verbs: &["create"],
};

/// `pods/log`.
const LOG: Subresource = Subresource {
    name: "log",
    group: "",
    version: "v1",
    kind: "Pod",
    verbs: &["get"],
};

/// `pods/eviction`: a delete that respects disruption budgets.
const EVICTION: Subresource = Subresource {
    name: "eviction",
    group: "policy",
    version: "v1",
    kind: "Eviction",
    verbs: &["create"],
};

/// `pods/exec`.
const EXEC: Subresource = Subresource {
    name: "exec",
    group: "",
    version: "v1",
    kind: "PodExecOptions",
    verbs: &["create", "get"],
};

/// `pods/portforward`.
const PORTFORWARD: Subresource = Subresource {
    name: "portforward",
    group: "",
    version: "v1",
    kind: "PodPortForwardOptions",
    verbs: &["create", "get"],
};

/// `nodes/proxy`: requests passed to the node's kubelet (GET its
/// `/metrics/resource`, `/stats/summary`, `/healthz`; DELETE a local-path
/// volume's directory).
const PROXY: Subresource = Subresource {
    name: "proxy",
    group: "",
    version: "v1",
    kind: "NodeProxyOptions",
    verbs: &["get", "delete"],
};

/// `serviceaccounts/token`: the TokenRequest API.
const TOKEN: Subresource = Subresource {
    name: "token",
    group: "authentication.k8s.io",
    version: "v1",
    kind: "TokenRequest",
    verbs: &["create"],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_unique_and_named_consistently() {
        let mut seen = std::collections::HashSet::new();
        for k in ALL {
            let r = &k.resource;
            assert!(
                seen.insert((r.group, r.version, r.kind)),
                "{} twice",
                r.kind
            );
            assert_eq!(r.singular, r.kind.to_lowercase(), "{}", r.kind);
            // The resource metrics are named after what they measure
            // (`nodes`, `pods`), as metrics-server names them.
            if r.group != "metrics.k8s.io" {
                assert!(r.plural.starts_with(&r.singular[..r.singular.len() - 1]));
            }
            assert!(!r.custom);
        }
    }

    #[test]
    fn every_kind_has_a_schema_named_as_kubernetes_names_it() {
        let mut gen = k8s_openapi::schemars::generate::SchemaSettings::openapi3().into_generator();
        for k in ALL {
            let name = (k.openapi)(&mut gen);
            if k.resource.group == "metrics.k8s.io" {
                assert!(name.is_empty(), "{name}");
                continue;
            }
            assert!(
                name.ends_with(&format!(".{}.{}", k.resource.version, k.resource.kind)),
                "{name}"
            );
        }
    }
}
