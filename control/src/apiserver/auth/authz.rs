//! Authorization: what a request asks to do (Kubernetes' request
//! attributes, worked out from the path alone so an unknown resource is
//! refused as one, not found first), and the authorizers in
//! kube-apiserver's order: the privileged group `system:masters`, the Node
//! authorizer for kubelets, then RBAC.

use serde_json::Value;

use super::authn::UserInfo;
use super::{node, rbac};
use crate::apiserver::http::request::Query;
use crate::apiserver::status::ApiError;
use crate::apiserver::ApiState;

/// What a request asks to do (`authorizer.Attributes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`, `impersonate`, `bind`, `escalate`, … or, for a
    /// path outside the API, the lowercased HTTP method.
    pub verb: String,
    /// Whether it is about a resource (else about `path`).
    pub resource_request: bool,
    /// The API group.
    pub api_group: String,
    /// The API version.
    pub api_version: String,
    /// The resource (plural).
    pub resource: String,
    /// The subresource.
    pub subresource: String,
    /// The namespace, empty at the cluster scope.
    pub namespace: String,
    /// The object's name, when one is named.
    pub name: String,
    /// The path of a non-resource request.
    pub path: String,
}

impl Attributes {
    /// A resource request.
    pub fn resource(verb: &str, group: &str, resource: &str, namespace: &str, name: &str) -> Self {
        Self {
            verb: verb.into(),
            resource_request: true,
            api_group: group.into(),
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    /// `resource` or `resource/subresource`, as RBAC rules name it.
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// The attributes of an HTTP request, as Kubernetes' request-info resolver
/// makes them.
pub fn request_attributes(method: &str, path: &str, query: Option<&str>) -> Attributes {
    let non_resource = || Attributes {
        verb: method.to_ascii_lowercase(),
        path: path.to_string(),
        ..Default::default()
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, mut rest) = match parts.as_slice() {
        ["api", v, rest @ ..] if !rest.is_empty() => ("", *v, rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => (*g, *v, rest),
        _ => return non_resource(),
    };
    let mut a = Attributes {
        resource_request: true,
        api_group: group.into(),
        api_version: version.into(),
        verb: match method {
            "POST" => "create",
            "GET" | "HEAD" => "get",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "",
        }
        .into(),
        ..Default::default()
    };
    if rest.first() == Some(&"watch") {
        a.verb = "watch".into();
        rest = &rest[1..];
    }
    if rest.first() == Some(&"namespaces") {
        if let Some(ns) = rest.get(1) {
            a.namespace = ns.to_string();
            // `namespaces/<ns>/status|finalize` are the namespace's own
            // subresources; anything else is a resource inside it.
            match rest.get(2) {
                Some(&"status") | Some(&"finalize") | None => {}
                Some(_) => rest = &rest[2..],
            }
        }
    }
    a.resource = rest.first().map(|s| s.to_string()).unwrap_or_default();
    a.name = rest.get(1).map(|s| s.to_string()).unwrap_or_default();
    a.subresource = rest.get(2).map(|s| s.to_string()).unwrap_or_default();
    if a.resource == "namespaces" && !a.namespace.is_empty() {
        // `/api/v1/namespaces/<ns>` names the namespace itself.
        a.name = a.namespace.clone();
        a.subresource = rest.get(2).map(|s| s.to_string()).unwrap_or_default();
        a.namespace.clear();
        // The namespace is its own namespace for authorization, as
        // Kubernetes records it.
        a.namespace = a.name.clone();
    }
    let q = Query::parse(query);
    if a.name.is_empty() && a.verb == "get" {
        a.verb = if q.flag("watch") { "watch" } else { "list" }.into();
        // A list or watch of one object by name is authorized as that name.
        if let Some(name) = q
            .get("fieldSelector")
            .and_then(|s| s.strip_prefix("metadata.name="))
            .filter(|n| !n.is_empty() && !n.contains(','))
        {
            a.name = name.to_string();
        }
    }
    if a.name.is_empty() && a.verb == "delete" {
        a.verb = "deletecollection".into();
    }
    // A WebSocket GET that opens a stream into a pod is a create, as
    // Kubernetes authorizes it (AuthorizePodWebsocketUpgradeCreatePermission):
    // `get pods/exec` must not be enough to run commands.
    if a.resource == "pods"
        && a.verb == "get"
        && matches!(a.subresource.as_str(), "exec" | "attach" | "portforward")
    {
        a.verb = "create".into();
    }
    a
}

/// An authorizer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allow,
    /// Not allowed by this authorizer; the next one is asked.
    NoOpinion(String),
}

/// Whether `user` may do `attrs`; the reason when not.
pub fn authorize(state: &ApiState, user: &UserInfo, attrs: &Attributes) -> Result<(), String> {
    if user.is_superuser() {
        return Ok(());
    }
    // The reasons of every authorizer that said no, as Kubernetes' union
    // authorizer joins them.
    let mut reasons = Vec::new();
    let authorizers: [&dyn Fn() -> Decision; 2] =
        [&|| node::authorize(state, user, attrs), &|| {
            rbac::authorize(&state.cache, user, attrs)
        }];
    for authorizer in authorizers {
        match authorizer() {
            Decision::Allow => return Ok(()),
            Decision::NoOpinion(reason) if !reason.is_empty() => reasons.push(reason),
            Decision::NoOpinion(_) => {}
        }
    }
    Err(reasons.join(", "))
}

/// Kubernetes' 403 for a request `user` may not make.
pub fn forbidden(user: &UserInfo, attrs: &Attributes, reason: &str) -> ApiError {
    let mut message = if attrs.resource_request {
        let resource = attrs.combined_resource();
        let scope = if attrs.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace {:?}", attrs.namespace)
        };
        format!(
            "User {:?} cannot {} resource {:?} in API group {:?} {scope}",
            user.name, attrs.verb, resource, attrs.api_group
        )
    } else {
        format!(
            "User {:?} cannot {} path {:?}",
            user.name, attrs.verb, attrs.path
        )
    };
    if !reason.is_empty() {
        message = format!("{message}: {reason}");
    }
    if !attrs.resource_request {
        return ApiError::forbidden(format!("forbidden: {message}"));
    }
    let qualified = if attrs.api_group.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}.{}", attrs.resource, attrs.api_group)
    };
    let full = if attrs.name.is_empty() {
        format!("{qualified} is forbidden: {message}")
    } else {
        format!("{qualified} {:?} is forbidden: {message}", attrs.name)
    };
    let mut details = serde_json::json!({"group": attrs.api_group, "kind": attrs.resource});
    if !attrs.name.is_empty() {
        details["name"] = Value::from(attrs.name.clone());
    }
    ApiError::forbidden(full).with_details(details)
}

/// Check that `user` may do `attrs`, as a 403 when not.
pub fn require(state: &ApiState, user: &UserInfo, attrs: &Attributes) -> Result<(), ApiError> {
    authorize(state, user, attrs).map_err(|reason| forbidden(user, attrs, &reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(method: &str, path: &str, query: Option<&str>) -> Attributes {
        request_attributes(method, path, query)
    }

    #[test]
    fn verbs_follow_method_name_and_query() {
        let a = attrs("GET", "/api/v1/namespaces/ns/pods", None);
        assert_eq!(
            (a.verb.as_str(), a.namespace.as_str(), a.resource.as_str()),
            ("list", "ns", "pods")
        );
        assert_eq!(
            attrs("GET", "/api/v1/pods", Some("watch=true")).verb,
            "watch"
        );
        assert_eq!(
            attrs("GET", "/api/v1/watch/namespaces/a/pods", None).verb,
            "watch"
        );
        assert_eq!(
            attrs("DELETE", "/api/v1/namespaces/a/pods", None).verb,
            "deletecollection"
        );
        let a = attrs("POST", "/api/v1/namespaces/a/pods/p/exec", None);
        assert_eq!(
            (
                a.verb.as_str(),
                a.name.as_str(),
                a.combined_resource().as_str()
            ),
            ("create", "p", "pods/exec")
        );
        // A WebSocket GET into a pod needs create, as a POST does.
        for sub in ["exec", "attach", "portforward"] {
            let path = format!("/api/v1/namespaces/a/pods/p/{sub}");
            assert_eq!(attrs("GET", &path, None).verb, "create");
        }
        assert_eq!(
            attrs("GET", "/api/v1/namespaces/a/pods/p/log", None).verb,
            "get"
        );
        let a = attrs(
            "GET",
            "/apis/apps/v1/namespaces/a/deployments",
            Some("fieldSelector=metadata.name%3Dweb"),
        );
        assert_eq!(
            (a.verb.as_str(), a.name.as_str(), a.api_group.as_str()),
            ("list", "web", "apps")
        );
    }

    #[test]
    fn namespaces_and_paths() {
        let a = attrs("GET", "/api/v1/namespaces/ns1", None);
        assert_eq!(
            (a.resource.as_str(), a.name.as_str(), a.namespace.as_str()),
            ("namespaces", "ns1", "ns1")
        );
        let a = attrs("PUT", "/api/v1/namespaces/ns1/finalize", None);
        assert_eq!(
            (a.resource.as_str(), a.subresource.as_str()),
            ("namespaces", "finalize")
        );
        let a = attrs("GET", "/api/v1/nodes", None);
        assert_eq!((a.verb.as_str(), a.namespace.as_str()), ("list", ""));
        for p in [
            "/api",
            "/apis",
            "/api/v1",
            "/apis/apps/v1",
            "/healthz",
            "/version",
        ] {
            let a = attrs("GET", p, None);
            assert!(!a.resource_request, "{p}");
            assert_eq!((a.verb.as_str(), a.path.as_str()), ("get", p));
        }
    }

    #[test]
    fn forbidden_messages_are_kubernetes() {
        let u = UserInfo::service_account("y", "x", "");
        let e = forbidden(&u, &attrs("GET", "/api/v1/namespaces/y/secrets", None), "");
        assert_eq!(
            e.message,
            "secrets is forbidden: User \"system:serviceaccount:y:x\" cannot list resource \"secrets\" in API group \"\" in the namespace \"y\""
        );
        let e = forbidden(
            &u,
            &attrs("DELETE", "/apis/apps/v1/namespaces/y/deployments/web", None),
            "",
        );
        assert_eq!(
            e.message,
            "deployments.apps \"web\" is forbidden: User \"system:serviceaccount:y:x\" cannot delete resource \"deployments\" in API group \"apps\" in the namespace \"y\""
        );
        let e = forbidden(&u, &attrs("GET", "/api/v1/nodes", None), "");
        assert!(e.message.ends_with("at the cluster scope"), "{}", e.message);
        let e = forbidden(&UserInfo::anonymous(), &attrs("GET", "/api", None), "");
        assert_eq!(
            e.message,
            "forbidden: User \"system:anonymous\" cannot get path \"/api\""
        );
    }
}
