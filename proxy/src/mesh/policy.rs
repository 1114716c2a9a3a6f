//! The mesh's authorization policies (`mesh.kedge.io/v1alpha1`
//! AuthorizationPolicy, Istio's semantics for what a connection carries):
//! a DENY policy that matches refuses; if any ALLOW policy selects the
//! pod, a connection none of them matches is refused; with neither, all
//! is allowed. A policy matches when one of its rules does; a rule when
//! one of its sources (principals, namespaces and their negations) and one
//! of its operations (ports and their negation) match, absent lists
//! matching anything.
//!
//! Methods and paths need the request: for a pod a policy with them
//! selects, the destination's proxy reads HTTP and decides each request
//! ([`Call::Request`]). On a connection that is not HTTP, a DENY rule
//! naming them refuses the whole connection and an ALLOW rule naming them
//! matches nothing (the safe side both ways, as ztunnel does).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// The policy object.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct AuthorizationPolicy {
    /// Its name and namespace.
    pub metadata: ObjectMeta,
    /// What it says.
    #[serde(default)]
    pub spec: AuthorizationPolicySpec,
}

impl k8s_openapi::Resource for AuthorizationPolicy {
    const API_VERSION: &'static str = "mesh.kedge.io/v1alpha1";
    const GROUP: &'static str = "mesh.kedge.io";
    const KIND: &'static str = "AuthorizationPolicy";
    const VERSION: &'static str = "v1alpha1";
    const URL_PATH_SEGMENT: &'static str = "authorizationpolicies";
    type Scope = k8s_openapi::NamespaceResourceScope;
}

impl k8s_openapi::Metadata for AuthorizationPolicy {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The policy's spec.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationPolicySpec {
    /// The pods it applies to; all of its namespace's when absent.
    pub selector: Option<LabelSelector>,
    /// `ALLOW` (the default) or `DENY`.
    pub action: Option<String>,
    /// Absent: an ALLOW policy matches nothing (so it denies all).
    pub rules: Option<Vec<Rule>>,
}

/// Labels a pod must have.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Each must be on the pod.
    pub match_labels: Option<BTreeMap<String, String>>,
}

/// One rule.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Rule {
    /// Sources, any of which may match.
    pub from: Option<Vec<From>>,
    /// Operations, any of which may match.
    pub to: Option<Vec<To>>,
}

/// A source entry.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct From {
    /// The source.
    pub source: Option<Source>,
}

/// Who calls.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// `<trust domain>/ns/<ns>/sa/<sa>` patterns.
    pub principals: Option<Vec<String>>,
    /// Patterns the caller must not match.
    pub not_principals: Option<Vec<String>>,
    /// The caller's namespace.
    pub namespaces: Option<Vec<String>>,
    /// Namespaces the caller must not be in.
    pub not_namespaces: Option<Vec<String>>,
}

/// An operation entry.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct To {
    /// The operation.
    pub operation: Option<Operation>,
}

/// What is called.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// Destination ports.
    pub ports: Option<Vec<String>>,
    /// Ports it must not be.
    pub not_ports: Option<Vec<String>>,
    /// HTTP methods (see the module's note).
    pub methods: Option<Vec<String>>,
    /// HTTP paths (see the module's note).
    pub paths: Option<Vec<String>>,
}

/// Who is calling: the SPIFFE ID of a mesh caller, nothing for plaintext.
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    /// `spiffe://<td>/ns/<ns>/sa/<sa>`, or `None` from outside the mesh.
    pub spiffe_id: Option<&'a str>,
}

impl Caller<'_> {
    /// Istio's principal: the SPIFFE ID without its scheme.
    fn principal(&self) -> &str {
        self.spiffe_id
            .map(|id| id.strip_prefix("spiffe://").unwrap_or(id))
            .unwrap_or_default()
    }

    /// The namespace of its identity.
    fn namespace(&self) -> &str {
        let principal = self.principal();
        principal
            .split_once("/ns/")
            .and_then(|(_, rest)| rest.split_once("/sa/"))
            .map_or("", |(namespace, _)| namespace)
    }
}

/// What is being decided: a connection, or one HTTP request on it.
#[derive(Clone, Copy, Debug)]
pub enum Call<'a> {
    /// A connection, before anything is read from it.
    Connection,
    /// An HTTP request.
    Request {
        /// Its method (`GET`).
        method: &'a str,
        /// Its path, without the query.
        path: &'a str,
    },
}

/// Why a connection was refused: the policy that refused it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// `<namespace>/<name>` of the DENY policy that matched, or of the
    /// ALLOW policies none of which did.
    pub policy: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Allow,
    Deny,
}

/// The policies of the cluster, by namespace.
#[derive(Clone, Debug, Default)]
pub struct Policies {
    by_namespace: HashMap<String, Vec<AuthorizationPolicy>>,
}

impl Policies {
    /// Index `policies`.
    pub fn index<'a>(policies: impl IntoIterator<Item = &'a AuthorizationPolicy>) -> Self {
        let mut by_namespace: HashMap<String, Vec<AuthorizationPolicy>> = HashMap::new();
        for policy in policies {
            if let Some(namespace) = &policy.metadata.namespace {
                by_namespace
                    .entry(namespace.clone())
                    .or_default()
                    .push(policy.clone());
            }
        }
        Self { by_namespace }
    }

    /// Whether a policy selecting the pod (in `namespace`, with `labels`)
    /// names methods or paths, so that its requests must be read.
    pub fn reads_http(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        self.by_namespace.get(namespace).is_some_and(|policies| {
            policies.iter().filter(|p| selects(p, labels)).any(|p| {
                p.spec.rules.iter().flatten().any(|r| {
                    r.to.iter()
                        .flatten()
                        .filter_map(|t| t.operation.as_ref())
                        .any(http_only)
                })
            })
        })
    }

    /// Whether `caller` may make `call` to `port` of a pod in `namespace`
    /// with `labels`.
    pub fn check(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        caller: Caller<'_>,
        port: u16,
        call: Call<'_>,
    ) -> Result<(), Denial> {
        let Some(policies) = self.by_namespace.get(namespace) else {
            return Ok(());
        };
        let applicable: Vec<&AuthorizationPolicy> =
            policies.iter().filter(|p| selects(p, labels)).collect();
        let name = |p: &AuthorizationPolicy| {
            format!(
                "{namespace}/{}",
                p.metadata.name.as_deref().unwrap_or_default()
            )
        };
        for policy in applicable.iter().filter(|p| action(p) == Action::Deny) {
            let rules = policy.spec.rules.as_deref().unwrap_or_default();
            if rules
                .iter()
                .any(|r| rule_matches(r, caller, port, Action::Deny, call))
            {
                return Err(Denial {
                    policy: name(policy),
                });
            }
        }
        let allows: Vec<&&AuthorizationPolicy> = applicable
            .iter()
            .filter(|p| action(p) == Action::Allow)
            .collect();
        if allows.is_empty() {
            return Ok(());
        }
        let allowed = allows.iter().any(|policy| {
            let rules = policy.spec.rules.as_deref().unwrap_or_default();
            rules
                .iter()
                .any(|r| rule_matches(r, caller, port, Action::Allow, call))
        });
        if allowed {
            Ok(())
        } else {
            let mut names: Vec<String> = allows.iter().map(|p| name(p)).collect();
            names.sort();
            Err(Denial {
                policy: names.join(","),
            })
        }
    }
}

fn action(policy: &AuthorizationPolicy) -> Action {
    match policy.spec.action.as_deref() {
        Some("DENY") => Action::Deny,
        _ => Action::Allow,
    }
}

fn selects(policy: &AuthorizationPolicy, labels: &BTreeMap<String, String>) -> bool {
    let wanted = policy
        .spec
        .selector
        .as_ref()
        .and_then(|s| s.match_labels.as_ref());
    wanted.is_none_or(|wanted| wanted.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

fn rule_matches(
    rule: &Rule,
    caller: Caller<'_>,
    port: u16,
    action: Action,
    call: Call<'_>,
) -> bool {
    let from = rule.from.as_deref().unwrap_or_default();
    let to = rule.to.as_deref().unwrap_or_default();
    let source_matches = from.is_empty()
        || from
            .iter()
            .any(|f| f.source.as_ref().is_none_or(|s| source_matches(s, caller)));
    let operation_matches = to.is_empty()
        || to.iter().any(|t| {
            t.operation
                .as_ref()
                .is_none_or(|o| operation_matches(o, port, action, call))
        });
    source_matches && operation_matches
}

fn source_matches(source: &Source, caller: Caller<'_>) -> bool {
    // A plaintext caller has neither: a list naming some never matches it,
    // a negated list always does.
    let (principal, namespace) = match caller.spiffe_id {
        Some(_) => (Some(caller.principal()), Some(caller.namespace())),
        None => (None, None),
    };
    let listed = |patterns: &Option<Vec<String>>, value: Option<&str>| {
        patterns
            .as_ref()
            .map(|p| value.is_some_and(|v| p.iter().any(|p| pattern_matches(p, v))))
    };
    listed(&source.principals, principal) != Some(false)
        && listed(&source.namespaces, namespace) != Some(false)
        && listed(&source.not_principals, principal) != Some(true)
        && listed(&source.not_namespaces, namespace) != Some(true)
}

fn http_only(operation: &Operation) -> bool {
    operation.methods.as_ref().is_some_and(|m| !m.is_empty())
        || operation.paths.as_ref().is_some_and(|p| !p.is_empty())
}

fn operation_matches(operation: &Operation, port: u16, action: Action, call: Call<'_>) -> bool {
    match call {
        // Not known yet: the safe side for each action.
        Call::Connection if http_only(operation) && action == Action::Allow => return false,
        Call::Connection => {}
        Call::Request { method, path } => {
            let listed = |patterns: &Option<Vec<String>>, value: &str| {
                patterns
                    .as_ref()
                    .filter(|p| !p.is_empty())
                    .is_none_or(|p| p.iter().any(|p| pattern_matches(p, value)))
            };
            if !listed(&operation.methods, method) || !listed(&operation.paths, path) {
                return false;
            }
        }
    }
    let port = port.to_string();
    let listed = |ports: &Option<Vec<String>>| ports.as_ref().map(|p| p.contains(&port));
    listed(&operation.ports) != Some(false) && listed(&operation.not_ports) != Some(true)
}

/// Istio's string match: exact, `*` alone, a `prefix*` or a `*suffix`.
fn pattern_matches(pattern: &str, value: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return value.starts_with(prefix);
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        return value.ends_with(suffix);
    }
    pattern == value
}

#[cfg(test)]
mod tests;
