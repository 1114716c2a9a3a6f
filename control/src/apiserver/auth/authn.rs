//! Authentication of requests, as kube-apiserver's authenticators in its
//! order: a client certificate signed by the cluster CA (user = CN,
//! groups = O), then a bearer token — a static token of the
//! `--token-auth-file` when one is given, a ServiceAccount token (a JWT this server signed, checked
//! against the objects it names), or a bootstrap token (`<id>.<secret>`
//! from a `bootstrap.kubernetes.io/token` Secret in `kube-system`). A
//! request with no credentials is `system:anonymous`; one with credentials
//! that do not authenticate is refused (401), never downgraded.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::Value;

use crate::apiserver::registry;
use crate::apiserver::tokens::{Claims, ObjectLookup, TokenError, TokenIssuer};
use crate::store::WatchCache;

/// Tokens whose signature was checked, so a client's every request costs a
/// map lookup and not an ECDSA verification. Expiry and the bound objects
/// are still checked on every request.
const VERIFIED_CACHE_SIZE: usize = 4096;

/// The group whose members are allowed everything (kube-apiserver's
/// privileged group).
pub const SYSTEM_MASTERS: &str = "system:masters";
/// Every authenticated user is in this group.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The group of anonymous requests.
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
/// The user of requests without credentials.
pub const ANONYMOUS: &str = "system:anonymous";
/// The group of joining machines' bootstrap tokens.
pub const BOOTSTRAPPERS: &str = "system:bootstrappers";
/// The group of every node's kubelet.
pub const NODES: &str = "system:nodes";

/// Who a request comes from (Kubernetes' `user.Info`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserInfo {
    /// The user name.
    pub name: String,
    /// A unique id, when the credential carries one.
    pub uid: String,
    /// The groups, `system:authenticated` included.
    pub groups: Vec<String>,
    /// Further facts (the pod a ServiceAccount token is bound to, …).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// An authenticated user: `groups` and `system:authenticated`.
    pub fn authenticated(name: impl Into<String>, groups: &[&str]) -> Self {
        let mut u = Self {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        };
        u.add_group(AUTHENTICATED);
        u
    }

    /// The user of requests without credentials.
    pub fn anonymous() -> Self {
        Self {
            name: ANONYMOUS.to_string(),
            groups: vec![UNAUTHENTICATED.to_string()],
            ..Default::default()
        }
    }

    /// The API server itself, for the writes of its own loops (namespace
    /// and definition lifecycles, bootstrap objects): a superuser, as
    /// kube-apiserver's loopback client.
    pub fn apiserver() -> Arc<Self> {
        static USER: std::sync::OnceLock<Arc<UserInfo>> = std::sync::OnceLock::new();
        USER.get_or_init(|| {
            Arc::new(UserInfo::authenticated(
                "system:apiserver",
                &[SYSTEM_MASTERS],
            ))
        })
        .clone()
    }

    /// A ServiceAccount's user with its groups.
    pub fn service_account(namespace: &str, name: &str, uid: &str) -> Self {
        let mut u = Self::authenticated(
            Claims::username(namespace, name),
            &[
                "system:serviceaccounts",
                &format!("system:serviceaccounts:{namespace}"),
            ],
        );
        u.uid = uid.to_string();
        u
    }

    /// Add a group unless it is there.
    pub fn add_group(&mut self, group: &str) {
        if !self.groups.iter().any(|g| g == group) {
            self.groups.push(group.to_string());
        }
    }

    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// Whether the user is a superuser (`system:masters`).
    pub fn is_superuser(&self) -> bool {
        self.in_group(SYSTEM_MASTERS)
    }

    /// The ServiceAccount (namespace, name) this user is, if it is one.
    pub fn as_service_account(&self) -> Option<(&str, &str)> {
        let rest = self.name.strip_prefix("system:serviceaccount:")?;
        rest.split_once(':')
            .filter(|(ns, n)| !ns.is_empty() && !n.is_empty() && !n.contains(':'))
    }

    /// The node a kubelet's user is (`system:node:<name>` in `system:nodes`).
    pub fn as_node(&self) -> Option<&str> {
        let name = self.name.strip_prefix("system:node:")?;
        (self.in_group(NODES) && !name.is_empty()).then_some(name)
    }

    /// The user as a `UserInfo` object of the authentication API.
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::json!({"username": self.name, "groups": self.groups});
        if !self.uid.is_empty() {
            v["uid"] = Value::from(self.uid.clone());
        }
        if !self.extra.is_empty() {
            v["extra"] = serde_json::to_value(&self.extra).unwrap_or_default();
        }
        v
    }
}

/// The user a verified client certificate names: CN is the user, each O a
/// group. `None` for a certificate without a common name.
pub fn user_of_certificate(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    if name.is_empty() {
        return None;
    }
    let groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
    Some(UserInfo::authenticated(name, &groups))
}

/// Why credentials did not authenticate (logged; the client sees 401).
#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    /// Not a bearer token of a kind the server accepts.
    #[error("invalid bearer token")]
    InvalidToken,
    /// A ServiceAccount token that does not verify.
    #[error(transparent)]
    ServiceAccount(#[from] TokenError),
    /// A bootstrap token that does not verify.
    #[error("bootstrap token: {0}")]
    Bootstrap(&'static str),
}

/// Checks credentials.
pub struct Authenticator {
    /// Static tokens and their users (`--token-auth-file`).
    static_tokens: Vec<(String, UserInfo)>,
    issuer: Arc<TokenIssuer>,
    verified: Mutex<HashMap<String, Arc<Claims>>>,
}

// === impl Authenticator ===

impl Authenticator {
    /// An authenticator accepting tokens of `issuer` and `static_tokens`.
    pub fn new(static_tokens: Vec<(String, UserInfo)>, issuer: Arc<TokenIssuer>) -> Self {
        Self {
            static_tokens,
            issuer,
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// The first static token of a superuser (empty when there is none).
    pub fn admin_token(&self) -> &str {
        self.static_tokens
            .iter()
            .find(|(_, u)| u.is_superuser())
            .map_or("", |(t, _)| t.as_str())
    }

    /// The user of a request: its client certificate's, else its bearer
    /// token's, else anonymous. Credentials that do not authenticate are an
    /// error.
    pub fn authenticate(
        &self,
        certificate_user: Option<&UserInfo>,
        authorization: &str,
        cache: &WatchCache,
    ) -> Result<UserInfo, AuthnError> {
        if let Some(u) = certificate_user {
            return Ok(u.clone());
        }
        if authorization.is_empty() {
            return Ok(UserInfo::anonymous());
        }
        let token = authorization
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthnError::InvalidToken)?;
        self.authenticate_token(token, cache)
    }

    /// The user of a bearer token (also what a TokenReview asks).
    pub fn authenticate_token(
        &self,
        token: &str,
        cache: &WatchCache,
    ) -> Result<UserInfo, AuthnError> {
        if let Some((_, user)) = self
            .static_tokens
            .iter()
            .find(|(t, _)| constant_time_eq(token.as_bytes(), t.as_bytes()))
        {
            return Ok(user.clone());
        }
        if let Some((id, secret)) = bootstrap_token_parts(token) {
            return bootstrap_user(id, secret, cache);
        }
        // Only something shaped like a JWT is worth a signature check.
        if token.bytes().filter(|b| *b == b'.').count() != 2 {
            return Err(AuthnError::InvalidToken);
        }
        let claims = self.service_account(token, cache)?;
        let k = &claims.kubernetes;
        let mut user =
            UserInfo::service_account(&k.namespace, &k.serviceaccount.name, &k.serviceaccount.uid);
        // The facts Kubernetes' service-account authenticator adds.
        if let Some(pod) = &k.pod {
            user.extra.insert(
                "authentication.kubernetes.io/pod-name".into(),
                vec![pod.name.clone()],
            );
            user.extra.insert(
                "authentication.kubernetes.io/pod-uid".into(),
                vec![pod.uid.clone()],
            );
        }
        if let Some(node) = &k.node {
            user.extra.insert(
                "authentication.kubernetes.io/node-name".into(),
                vec![node.name.clone()],
            );
        }
        if !claims.jti.is_empty() {
            user.extra.insert(
                "authentication.kubernetes.io/credential-id".into(),
                vec![format!("JTI={}", claims.jti)],
            );
        }
        Ok(user)
    }

    fn service_account(&self, token: &str, cache: &WatchCache) -> Result<Arc<Claims>, TokenError> {
        let now = jiff::Timestamp::now();
        let cached = self.verified.lock().get(token).cloned();
        let claims = match cached {
            // Times are checked again: a cached token expires too.
            Some(c) => {
                self.issuer.verify_times(&c, now.as_second())?;
                c
            }
            None => {
                let c = Arc::new(self.issuer.verify(token, now.as_second())?);
                let mut verified = self.verified.lock();
                if verified.len() >= VERIFIED_CACHE_SIZE {
                    verified.clear();
                }
                verified.insert(token.to_string(), c.clone());
                c
            }
        };
        crate::apiserver::tokens::validate_bound_objects(&claims, &CacheLookup(cache), now)?;
        Ok(claims)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Read a static token file as kube-apiserver's `--token-auth-file`:
/// CSV lines `token,user,uid[,"group1,group2"]`.
pub fn read_token_file(path: &std::path::Path) -> Result<Vec<(String, UserInfo)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (head, groups) = match line.split_once(",\"") {
            Some((h, g)) => (h, g.trim_end_matches('"')),
            None => (line, ""),
        };
        let fields: Vec<&str> = head.split(',').map(str::trim).collect();
        if fields.len() < 3 || fields[0].is_empty() || fields[1].is_empty() {
            return Err(format!(
                "{} line {}: want token,user,uid[,\"group1,group2\"]",
                path.display(),
                i + 1
            ));
        }
        let mut groups: Vec<&str> = groups
            .split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .collect();
        groups.extend(fields[3..].iter().copied().filter(|g| !g.is_empty()));
        let mut user = UserInfo::authenticated(fields[1], &groups);
        user.uid = fields[2].to_string();
        out.push((fields[0].to_string(), user));
    }
    Ok(out)
}

/// `<id>.<secret>`: 6 and 16 characters of `[a-z0-9]`.
pub fn bootstrap_token_parts(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (ok(id, 6) && ok(secret, 16)).then_some((id, secret))
}

/// A string value of a Secret's `data` (base64) or `stringData`.
pub fn secret_value(secret: &Value, key: &str) -> Option<String> {
    use base64::Engine;
    if let Some(v) = secret
        .pointer(&format!("/data/{key}"))
        .and_then(Value::as_str)
    {
        let bytes = base64::engine::general_purpose::STANDARD.decode(v).ok()?;
        return String::from_utf8(bytes).ok();
    }
    secret
        .pointer(&format!("/stringData/{key}"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The user of a bootstrap token, as Kubernetes' bootstrap authenticator:
/// `system:bootstrap:<id>` in `system:bootstrappers` and the Secret's
/// `auth-extra-groups`.
fn bootstrap_user(id: &str, secret: &str, cache: &WatchCache) -> Result<UserInfo, AuthnError> {
    let r = registry::builtin::find("", "v1", "secrets").expect("secrets are served");
    let obj = cache
        .get(&r.key(Some("kube-system"), &format!("bootstrap-token-{id}")))
        .ok_or(AuthnError::Bootstrap("no such token"))?;
    if obj.get("type").and_then(Value::as_str) != Some("bootstrap.kubernetes.io/token") {
        return Err(AuthnError::Bootstrap("secret is not a bootstrap token"));
    }
    if obj.pointer("/metadata/deletionTimestamp").is_some() {
        return Err(AuthnError::Bootstrap("token is being deleted"));
    }
    let stored = secret_value(&obj, "token-secret").unwrap_or_default();
    if secret_value(&obj, "token-id").as_deref() != Some(id)
        || !constant_time_eq(stored.as_bytes(), secret.as_bytes())
    {
        return Err(AuthnError::Bootstrap("token does not match"));
    }
    if secret_value(&obj, "usage-bootstrap-authentication").as_deref() != Some("true") {
        return Err(AuthnError::Bootstrap("token is not for authentication"));
    }
    if let Some(exp) = secret_value(&obj, "expiration") {
        let expired = exp
            .parse::<jiff::Timestamp>()
            .map(|t| t <= jiff::Timestamp::now())
            .unwrap_or(true);
        if expired {
            return Err(AuthnError::Bootstrap("token has expired"));
        }
    }
    let mut user = UserInfo::authenticated(format!("system:bootstrap:{id}"), &[BOOTSTRAPPERS]);
    for g in secret_value(&obj, "auth-extra-groups")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|g| g.starts_with("system:bootstrappers:"))
    {
        user.add_group(g);
    }
    Ok(user)
}

/// Objects read from the watch cache.
pub struct CacheLookup<'a>(pub &'a WatchCache);

impl ObjectLookup for CacheLookup<'_> {
    fn lookup(&self, plural: &str, namespace: &str, name: &str) -> Option<Arc<Value>> {
        let r = registry::builtin::find("", "v1", plural)?;
        self.0.get(&r.key(Some(namespace), name))
    }
}

/// The token a WebSocket request carries in its subprotocols, as
/// `Authorization` would (`Bearer <token>`), or `None`.
pub fn websocket_bearer(protocols: &str) -> Option<String> {
    use base64::Engine as _;
    let encoded = protocols
        .split(',')
        .map(str::trim)
        .find_map(|p| p.strip_prefix(BEARER_PROTOCOL))?;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .ok()?;
    String::from_utf8(token).ok().map(|t| format!("Bearer {t}"))
}

/// The subprotocols with the token's left out, for passing on.
pub fn without_bearer(protocols: &str) -> String {
    protocols
        .split(',')
        .map(str::trim)
        .filter(|p| !p.starts_with(BEARER_PROTOCOL))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The subprotocol prefix of a bearer token (Kubernetes' WebSocket
/// protocol authenticator reads it).
const BEARER_PROTOCOL: &str = "base64url.bearer.authorization.k8s.io.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_websocket_token_is_read_from_its_subprotocol_and_left_out_after() {
        let protocols = "v4.channel.k8s.io, base64url.bearer.authorization.k8s.io.YWJjLmRlZg";
        assert_eq!(
            websocket_bearer(protocols).as_deref(),
            Some("Bearer abc.def")
        );
        assert_eq!(without_bearer(protocols), "v4.channel.k8s.io");
        assert_eq!(websocket_bearer("v4.channel.k8s.io"), None);
        assert_eq!(
            websocket_bearer("base64url.bearer.authorization.k8s.io.!!"),
            None
        );
    }

    #[test]
    fn certificates_name_the_user_and_groups() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, "system:node:n1");
        dn.push(rcgen::DnType::OrganizationName, "system:nodes");
        params.distinguished_name = dn;
        let cert = params.self_signed(&key).unwrap();
        let u = user_of_certificate(cert.der()).unwrap();
        assert_eq!(u.name, "system:node:n1");
        assert_eq!(u.groups, ["system:nodes", AUTHENTICATED]);
        assert_eq!(u.as_node(), Some("n1"));
    }

    #[test]
    fn token_files_are_kube_apiservers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.csv");
        std::fs::write(&path, "t1,alice,u1,\"system:masters,team\"\nt2,bob,u2\n").unwrap();
        let tokens = read_token_file(&path).unwrap();
        assert_eq!(
            tokens[0].1.groups,
            ["system:masters", "team", AUTHENTICATED]
        );
        assert_eq!(tokens[1].1.name, "bob");
        std::fs::write(&path, "t1,alice\n").unwrap();
        assert!(read_token_file(&path).is_err());
    }

    #[test]
    fn bootstrap_tokens_have_their_shape() {
        assert!(bootstrap_token_parts("abcdef.0123456789abcdef").is_some());
        assert!(bootstrap_token_parts("abcdef.0123456789ABCDEF").is_none());
        assert!(bootstrap_token_parts("abcde.0123456789abcdef").is_none());
        assert!(bootstrap_token_parts("a.b.c").is_none());
    }

    #[test]
    fn service_account_users() {
        let u = UserInfo::service_account("ns", "sa", "u1");
        assert_eq!(u.as_service_account(), Some(("ns", "sa")));
        assert!(u.in_group("system:serviceaccounts:ns"));
        assert!(u.in_group(AUTHENTICATED));
        assert_eq!(UserInfo::anonymous().as_service_account(), None);
    }
}
