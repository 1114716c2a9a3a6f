//! Impersonation (`kubectl --as`, `--as-group`): the `Impersonate-*`
//! headers make a request act as another user, for a caller RBAC lets
//! `impersonate` each of the user, groups, uid and extras named.

use std::collections::BTreeMap;

use hyper::HeaderMap;

use super::authn::{UserInfo, ANONYMOUS, AUTHENTICATED, UNAUTHENTICATED};
use super::authz::{self, Attributes};
use crate::apiserver::status::{ApiError, ApiResult};
use crate::apiserver::ApiState;

const USER: &str = "impersonate-user";
const UID: &str = "impersonate-uid";
const GROUP: &str = "impersonate-group";
const EXTRA: &str = "impersonate-extra-";

/// The user `caller` acts as: itself, or the one the headers name once
/// each impersonation is allowed.
pub fn act_as(state: &ApiState, caller: UserInfo, headers: &HeaderMap) -> ApiResult<UserInfo> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    };
    let user = values(USER).into_iter().next();
    let uid = values(UID).into_iter().next();
    let groups = values(GROUP);
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix(EXTRA) {
            let key = percent_decode(key);
            if let Ok(v) = value.to_str() {
                extra.entry(key).or_default().push(v.to_string());
            }
        }
    }
    let Some(name) = user else {
        if !groups.is_empty() || !extra.is_empty() || uid.is_some() {
            return Err(ApiError::bad_request(
                "requested impersonation of groups, extras or uid without impersonating a user",
            ));
        }
        return Ok(caller);
    };
    let check = |attrs: Attributes| authz::require(state, &caller, &attrs);
    let mut target = UserInfo {
        name: name.clone(),
        ..Default::default()
    };
    match target
        .as_service_account()
        .map(|(ns, n)| (ns.to_string(), n.to_string()))
    {
        Some((ns, sa)) => {
            check(Attributes::resource(
                "impersonate",
                "",
                "serviceaccounts",
                &ns,
                &sa,
            ))?;
            target.groups = vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
            ];
        }
        None => check(Attributes::resource("impersonate", "", "users", "", &name))?,
    }
    for g in groups {
        check(Attributes::resource("impersonate", "", "groups", "", &g))?;
        target.add_group(&g);
    }
    for (key, values) in &extra {
        for v in values {
            let mut a =
                Attributes::resource("impersonate", "authentication.k8s.io", "userextras", "", v);
            a.subresource = key.clone();
            check(a)?;
        }
    }
    if let Some(uid) = uid {
        check(Attributes::resource(
            "impersonate",
            "authentication.k8s.io",
            "uids",
            "",
            &uid,
        ))?;
        target.uid = uid;
    }
    target.extra = extra;
    if name == ANONYMOUS {
        target.add_group(UNAUTHENTICATED);
    } else {
        target.add_group(AUTHENTICATED);
    }
    tracing::debug!(caller = %caller.name, user = %target.name, "impersonating");
    Ok(target)
}

/// Extra keys are percent-encoded in header names.
fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("k={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}
