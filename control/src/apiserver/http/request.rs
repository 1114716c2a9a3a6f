//! Parsing of API paths and query strings into what a request is about.

use std::collections::HashMap;

use std::sync::Arc;

use crate::apiserver::auth::authn::UserInfo;
use crate::apiserver::registry::{Registry, Resource};

/// What an API path addresses.
#[derive(Debug)]
pub enum Target {
    /// `/version`.
    Version,
    /// `/healthz`, `/livez`, `/readyz`.
    Health,
    /// `/metrics`.
    Metrics,
    /// `/api`.
    CoreVersions,
    /// `/apis`.
    Groups,
    /// `/apis/<group>`.
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`.
    ResourceList(String, String),
    /// `/openapi/v2`.
    OpenApiV2,
    /// `/openapi/v3`.
    OpenApiV3Index,
    /// `/openapi/v3/<api/v1 | apis/group/version>`.
    OpenApiV3(String),
    /// `/.well-known/openid-configuration`: where ServiceAccount tokens
    /// can be verified.
    OpenIdConfiguration,
    /// `/openid/v1/jwks`: the keys that sign ServiceAccount tokens.
    Jwks,
    /// A resource, collection or object.
    Resource(ResourceRequest),
}

/// A request for a resource: a collection (no name) or one object.
#[derive(Debug)]
pub struct ResourceRequest {
    /// The resource.
    pub resource: &'static Resource,
    /// The namespace in the URL, if any.
    pub namespace: Option<String>,
    /// The object name, if any.
    pub name: Option<String>,
    /// The subresource, if any.
    pub subresource: Option<String>,
    /// Whether the legacy `/watch/` path form was used.
    pub legacy_watch: bool,
    /// Who asks (anonymous until the request is authenticated).
    pub user: Arc<UserInfo>,
}

/// Parse the path of a request.
pub fn parse_path(path: &str, registry: &Registry) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let segs: Vec<&str> = if segs == [""] { vec![] } else { segs };
    match segs.as_slice() {
        ["version"] => return Some(Target::Version),
        ["healthz"] | ["livez"] | ["readyz"] => return Some(Target::Health),
        ["healthz", ..] | ["livez", ..] | ["readyz", ..] => return Some(Target::Health),
        ["metrics"] => return Some(Target::Metrics),
        ["api"] => return Some(Target::CoreVersions),
        ["apis"] => return Some(Target::Groups),
        ["apis", g] => return Some(Target::Group(g.to_string())),
        ["api", v] => return Some(Target::ResourceList(String::new(), v.to_string())),
        ["apis", g, v] => return Some(Target::ResourceList(g.to_string(), v.to_string())),
        [".well-known", "openid-configuration"] => return Some(Target::OpenIdConfiguration),
        ["openid", "v1", "jwks"] => return Some(Target::Jwks),
        ["openapi", "v2"] => return Some(Target::OpenApiV2),
        ["openapi", "v3"] => return Some(Target::OpenApiV3Index),
        ["openapi", "v3", rest @ ..] => return Some(Target::OpenApiV3(rest.join("/"))),
        _ => {}
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let (legacy_watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    let lookup = |plural: &str| registry.find(group, version, plural);
    let (namespace, rest): (Option<String>, &[&str]) = match rest {
        // `namespaces/<ns>/<resource>…` scopes a namespaced resource, unless
        // the third segment is a subresource of the namespace itself.
        ["namespaces", ns, plural, tail @ ..] if lookup(plural).is_some_and(|r| r.namespaced) => {
            let _ = tail;
            (Some(ns.to_string()), &rest[2..])
        }
        _ => (None, rest),
    };
    let resource = lookup(rest.first()?)?;
    let (name, subresource) = match &rest[1..] {
        [] => (None, None),
        [name] => (Some(name.to_string()), None),
        [name, sub] => (Some(name.to_string()), Some(sub.to_string())),
        // `nodes/{name}/proxy/{path…}`: the rest is the kubelet's path.
        [name, "proxy", ..] => (Some(name.to_string()), Some("proxy".to_string())),
        _ => return None,
    };
    if let Some(sub) = &subresource {
        resource.subresource(sub)?;
    }
    if resource.namespaced && namespace.is_none() && name.is_some() {
        // A namespaced object must be addressed inside its namespace.
        return None;
    }
    Some(Target::Resource(ResourceRequest {
        resource,
        namespace,
        name,
        subresource,
        legacy_watch,
        user: Arc::new(UserInfo::anonymous()),
    }))
}

/// Query parameters (last value wins, as in Kubernetes for single-valued
/// options); empty pairs such as `?&watch=true` are ignored.
#[derive(Debug, Default)]
pub struct Query {
    params: HashMap<String, Vec<String>>,
}

impl Query {
    /// Parse a raw query string.
    pub fn parse(raw: Option<&str>) -> Self {
        let mut params: HashMap<String, Vec<String>> = HashMap::new();
        if let Some(raw) = raw {
            for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
                if k.is_empty() {
                    continue;
                }
                params
                    .entry(k.into_owned())
                    .or_default()
                    .push(v.into_owned());
            }
        }
        Self { params }
    }

    /// The value of a parameter.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .get(key)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    /// Set a parameter unless the request gave it.
    pub fn set_default(&mut self, key: &str, value: &str) {
        let v = self.params.entry(key.to_string()).or_default();
        if v.last().is_none_or(String::is_empty) {
            v.push(value.to_string());
        }
    }

    /// A boolean parameter (`true`/`1`).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true") | Some("1"))
    }

    /// A non-empty string parameter.
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|s| !s.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> ResourceRequest {
        match parse_path(path, &Registry::new()) {
            Some(Target::Resource(r)) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn parses_resource_paths() {
        let r = res("/api/v1/namespaces/luffy/pods/web-1/status");
        assert_eq!(r.resource.plural, "pods");
        assert_eq!(r.namespace.as_deref(), Some("luffy"));
        assert_eq!(r.name.as_deref(), Some("web-1"));
        assert_eq!(r.subresource.as_deref(), Some("status"));

        let r = res("/api/v1/namespaces/luffy");
        assert_eq!(r.resource.plural, "namespaces");
        assert_eq!(r.name.as_deref(), Some("luffy"));

        let r = res("/api/v1/namespaces/luffy/finalize");
        assert_eq!(r.resource.plural, "namespaces");
        assert_eq!(r.subresource.as_deref(), Some("finalize"));

        let r = res("/apis/apps/v1/deployments");
        assert!(r.namespace.is_none() && r.name.is_none());

        let r = res("/api/v1/watch/namespaces/a/pods");
        assert!(r.legacy_watch);

        assert!(parse_path("/api/v1/pods/x", &Registry::new()).is_none());
        assert!(parse_path("/apis/apps/v1/namespaces/a/widgets", &Registry::new()).is_none());
    }

    #[test]
    fn query_ignores_empty_pairs() {
        let q = Query::parse(Some("&watch=true&&labelSelector=app%3Dweb"));
        assert!(q.flag("watch"));
        assert_eq!(q.get("labelSelector"), Some("app=web"));
    }
}
