//! The kubelet's token manager: ServiceAccount tokens of projected volumes
//! are asked of the API server once and reused on every volume refresh
//! until they near their end — past 80% of their lifetime, or a day after
//! issue — as Kubernetes' `pkg/kubelet/token` does. A small jitter keeps
//! many pods from refreshing in the same second.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use parking_lot::Mutex;

use crate::objects::{ObjectSource, Result};

/// A token is refreshed a day after issue whatever its lifetime.
const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Up to this much earlier, at random.
const MAX_JITTER: Duration = Duration::from_secs(10);

/// An [`ObjectSource`] that caches the tokens of another.
pub struct TokenManager {
    inner: Arc<dyn ObjectSource>,
    cache: Mutex<HashMap<String, TokenRequest>>,
}

// === impl TokenManager ===

impl TokenManager {
    /// Tokens of `inner`, cached.
    pub fn new(inner: Arc<dyn ObjectSource>) -> Self {
        Self {
            inner,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// How many tokens are cached.
    pub fn len(&self) -> usize {
        self.cache.lock().len()
    }

    /// Whether no token is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn key(namespace: &str, name: &str, request: &TokenRequest) -> String {
        let bound = request.spec.bound_object_ref.as_ref().map(|r| {
            (
                r.api_version.clone(),
                r.kind.clone(),
                r.name.clone(),
                r.uid.clone(),
            )
        });
        format!(
            "{name:?}/{namespace:?}/{:?}/{:?}/{bound:?}",
            request.spec.audiences, request.spec.expiration_seconds
        )
    }

    async fn token(
        &self,
        namespace: &str,
        name: &str,
        request: &TokenRequest,
    ) -> Result<TokenRequest> {
        let key = Self::key(namespace, name, request);
        let now = Timestamp::now();
        let jitter = Duration::from_millis(rand_millis(MAX_JITTER));
        let cached = {
            let mut cache = self.cache.lock();
            // Expired tokens are of no use to anyone.
            cache.retain(|_, tr| !is_expired(tr, now));
            cache.get(&key).cloned()
        };
        if let Some(tr) = cached {
            if !requires_refresh(&tr, now, jitter) {
                return Ok(tr);
            }
        }
        match self
            .inner
            .service_account_token(namespace, name, request)
            .await
        {
            Ok(tr) => {
                tracing::debug!(%namespace, serviceaccount = %name, "token requested");
                self.cache.lock().insert(key, tr.clone());
                Ok(tr)
            }
            Err(e) => {
                // A token not yet expired beats none while the API
                // server cannot be reached.
                let fallback = self.cache.lock().get(&key).cloned();
                match fallback {
                    Some(tr) if !is_expired(&tr, Timestamp::now()) => {
                        tracing::warn!(%namespace, serviceaccount = %name, error = %e, "token refresh failed; using the cached token");
                        Ok(tr)
                    }
                    _ => Err(e),
                }
            }
        }
    }
}

fn rand_millis(max: Duration) -> u64 {
    use std::hash::{BuildHasher, RandomState};
    // A fresh hasher seed per call is random enough for a jitter.
    RandomState::new().hash_one(std::time::SystemTime::now()) % (max.as_millis() as u64 + 1)
}

fn expiry(tr: &TokenRequest) -> Option<Timestamp> {
    tr.status.as_ref().map(|s| s.expiration_timestamp.0)
}

fn is_expired(tr: &TokenRequest, now: Timestamp) -> bool {
    expiry(tr).is_none_or(|exp| exp <= now)
}

/// Whether a cached token should be replaced at `now`: past 80% of its
/// lifetime or past a day since issue, each less `jitter`.
pub fn requires_refresh(tr: &TokenRequest, now: Timestamp, jitter: Duration) -> bool {
    let (Some(exp), Some(seconds)) = (expiry(tr), tr.spec.expiration_seconds) else {
        return true;
    };
    let jitter = SignedDuration::try_from(jitter).unwrap_or_default();
    let issued = exp - SignedDuration::from_secs(seconds);
    let max_ttl = SignedDuration::try_from(MAX_TTL).unwrap_or_default();
    if now > issued + max_ttl - jitter {
        return true;
    }
    let fifth = SignedDuration::from_secs(seconds * 20 / 100);
    now > exp - fifth - jitter
}

impl ObjectSource for TokenManager {
    fn config_map<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<ConfigMap>>>> {
        self.inner.config_map(namespace, name)
    }

    fn secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<Secret>>>> {
        self.inner.secret(namespace, name)
    }

    fn services<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, Result<Vec<Arc<Service>>>> {
        self.inner.services(namespace)
    }

    fn persistent_volume_claim<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<k8s_openapi::api::core::v1::PersistentVolumeClaim>>>> {
        self.inner.persistent_volume_claim(namespace, name)
    }

    fn persistent_volume<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<k8s_openapi::api::core::v1::PersistentVolume>>>> {
        self.inner.persistent_volume(name)
    }

    fn service_account_token<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        request: &'a TokenRequest,
    ) -> BoxFuture<'a, Result<TokenRequest>> {
        Box::pin(self.token(namespace, name, request))
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequestSpec};

    use super::*;
    use crate::objects::MemoryObjects;

    fn request(pod_uid: &str) -> TokenRequest {
        TokenRequest {
            spec: TokenRequestSpec {
                expiration_seconds: Some(3607),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: Some("web".into()),
                    uid: Some(pod_uid.into()),
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn refresh_at_eighty_percent_or_after_a_day() {
        let now = Timestamp::now();
        let mut tr = request("u");
        tr.status = Some(k8s_openapi::api::authentication::v1::TokenRequestStatus {
            token: "t".into(),
            expiration_timestamp: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                now + SignedDuration::from_secs(3607),
            ),
        });
        let at = |secs: i64| now + SignedDuration::from_secs(secs);
        assert!(!requires_refresh(&tr, now, Duration::ZERO));
        // 80% of 3607 s is 2885.6 s.
        assert!(!requires_refresh(&tr, at(2885), Duration::ZERO));
        assert!(requires_refresh(&tr, at(2887), Duration::ZERO));
        assert!(requires_refresh(&tr, at(2880), Duration::from_secs(10)));

        // A year-long token still goes after a day.
        tr.spec.expiration_seconds = Some(365 * 24 * 3600);
        tr.status.as_mut().unwrap().expiration_timestamp.0 =
            now + SignedDuration::from_secs(365 * 24 * 3600);
        assert!(!requires_refresh(&tr, at(23 * 3600), Duration::ZERO));
        assert!(requires_refresh(&tr, at(24 * 3600 + 1), Duration::ZERO));
    }

    #[tokio::test]
    async fn tokens_are_reused_per_pod_until_refresh() {
        let objects = Arc::new(MemoryObjects::new());
        objects.put_service_account("ns", "default");
        let manager = TokenManager::new(objects.clone());
        let a = manager
            .service_account_token("ns", "default", &request("pod-1"))
            .await
            .unwrap();
        let again = manager
            .service_account_token("ns", "default", &request("pod-1"))
            .await
            .unwrap();
        assert_eq!(a.status.unwrap().token, again.status.unwrap().token);
        assert_eq!(objects.tokens_issued(), 1);
        // Another pod, another token.
        manager
            .service_account_token("ns", "default", &request("pod-2"))
            .await
            .unwrap();
        assert_eq!(objects.tokens_issued(), 2);
        assert_eq!(manager.len(), 2);
        // No ServiceAccount, no token.
        assert!(manager
            .service_account_token("ns", "missing", &request("pod-1"))
            .await
            .is_err());
    }
}
