//! Authentication of requests: the admin bearer token of the kubeconfig, or
//! a ServiceAccount token (a JWT this server signed, checked against the
//! objects it names).
//!
//! Authorization stays "authenticated is allowed": a ServiceAccount token
//! can do what the admin can. RBAC is not evaluated yet; the identity is
//! established so that it can be.

use std::collections::HashMap;
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

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum User {
    /// The admin of the kubeconfig.
    Admin,
    /// A ServiceAccount, `system:serviceaccount:<ns>:<name>`.
    ServiceAccount(String),
}

/// Checks bearer tokens.
pub struct Authenticator {
    admin_token: String,
    issuer: Arc<TokenIssuer>,
    verified: Mutex<HashMap<String, Arc<Claims>>>,
}

// === impl Authenticator ===

impl Authenticator {
    /// An authenticator accepting `admin_token` and tokens of `issuer`.
    pub fn new(admin_token: String, issuer: Arc<TokenIssuer>) -> Self {
        Self {
            admin_token,
            issuer,
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// The admin bearer token.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The user of an `Authorization` header value, if it authenticates.
    pub fn authenticate(&self, authorization: &str, cache: &WatchCache) -> Option<User> {
        let token = authorization.strip_prefix("Bearer ")?.trim();
        if constant_time_eq(token.as_bytes(), self.admin_token.as_bytes()) {
            return Some(User::Admin);
        }
        // Only something shaped like a JWT is worth a signature check.
        if token.bytes().filter(|b| *b == b'.').count() != 2 {
            return None;
        }
        match self.service_account(token, cache) {
            Ok(claims) => Some(User::ServiceAccount(claims.sub.clone())),
            Err(e) => {
                tracing::debug!(error = %e, "service account token rejected");
                None
            }
        }
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

/// Objects read from the watch cache.
pub struct CacheLookup<'a>(pub &'a WatchCache);

impl ObjectLookup for CacheLookup<'_> {
    fn lookup(&self, plural: &str, namespace: &str, name: &str) -> Option<Arc<Value>> {
        let r = registry::builtin::find("", "v1", plural)?;
        self.0.get(&r.key(Some(namespace), name))
    }
}
