//! Where a pod's ConfigMaps, Secrets, Services and ServiceAccount tokens
//! come from: the API server for a real node, a lookup table for hollow
//! nodes and tests. Environment variables and volumes read them through
//! [`ObjectSource`] so neither depends on a live client.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestStatus};
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolume, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, PostParams};
use kube::Client;
use parking_lot::RwLock;

/// Errors of an object source.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The API server could not be asked (a missing object is not an error).
    #[error("API: {0}")]
    Api(#[source] kube::Error),
    /// The source cannot issue ServiceAccount tokens.
    #[error("no token source: {0}")]
    NoTokens(String),
}

/// Result of an object source.
pub type Result<T, E = ObjectError> = std::result::Result<T, E>;

/// Reads ConfigMaps and Secrets of a namespace; `None` when there is no
/// such object.
pub trait ObjectSource: Send + Sync {
    /// The ConfigMap `namespace/name`.
    fn config_map<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<ConfigMap>>>>;

    /// The Secret `namespace/name`.
    fn secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<Secret>>>>;

    /// The Services of `namespace`.
    fn services<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, Result<Vec<Arc<Service>>>>;

    /// The PersistentVolumeClaim `namespace/name`.
    fn persistent_volume_claim<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<PersistentVolumeClaim>>>>;

    /// The PersistentVolume `name`.
    fn persistent_volume<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<PersistentVolume>>>>;

    /// A token of ServiceAccount `namespace/name`: the TokenRequest
    /// answered (`status` set).
    fn service_account_token<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        request: &'a TokenRequest,
    ) -> BoxFuture<'a, Result<TokenRequest>>;
}

// === impl Client ===

// One GET per lookup: the kubelet's watch-based object cache would save
// them, but pods read few objects and only when a container starts or a
// volume is refreshed.
impl ObjectSource for Client {
    fn persistent_volume_claim<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<PersistentVolumeClaim>>>> {
        Box::pin(async move {
            let api: Api<PersistentVolumeClaim> = Api::namespaced(self.clone(), namespace);
            let pvc = api.get_opt(name).await.map_err(ObjectError::Api)?;
            Ok(pvc.map(Arc::new))
        })
    }

    fn persistent_volume<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<PersistentVolume>>>> {
        Box::pin(async move {
            let api: Api<PersistentVolume> = Api::all(self.clone());
            let pv = api.get_opt(name).await.map_err(ObjectError::Api)?;
            Ok(pv.map(Arc::new))
        })
    }

    fn config_map<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<ConfigMap>>>> {
        Box::pin(async move {
            let api: Api<ConfigMap> = Api::namespaced(self.clone(), namespace);
            let cm = api.get_opt(name).await.map_err(ObjectError::Api)?;
            Ok(cm.map(Arc::new))
        })
    }

    fn secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<Secret>>>> {
        Box::pin(async move {
            let api: Api<Secret> = Api::namespaced(self.clone(), namespace);
            let secret = api.get_opt(name).await.map_err(ObjectError::Api)?;
            Ok(secret.map(Arc::new))
        })
    }

    fn services<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, Result<Vec<Arc<Service>>>> {
        Box::pin(async move {
            let api: Api<Service> = Api::namespaced(self.clone(), namespace);
            let list = api
                .list(&ListParams::default())
                .await
                .map_err(ObjectError::Api)?;
            Ok(list.items.into_iter().map(Arc::new).collect())
        })
    }

    fn service_account_token<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        request: &'a TokenRequest,
    ) -> BoxFuture<'a, Result<TokenRequest>> {
        Box::pin(async move {
            let api: Api<ServiceAccount> = Api::namespaced(self.clone(), namespace);
            api.create_token_request(name, &PostParams::default(), request)
                .await
                .map_err(ObjectError::Api)
        })
    }
}

/// ConfigMaps and Secrets held in memory, keyed by namespace and name: the
/// source of hollow nodes and tests.
#[derive(Debug, Default)]
pub struct MemoryObjects {
    claims: RwLock<HashMap<(String, String), Arc<PersistentVolumeClaim>>>,
    volumes: RwLock<HashMap<String, Arc<PersistentVolume>>>,
    config_maps: RwLock<HashMap<(String, String), Arc<ConfigMap>>>,
    secrets: RwLock<HashMap<(String, String), Arc<Secret>>>,
    services: RwLock<HashMap<(String, String), Arc<Service>>>,
    /// ServiceAccounts that get tokens, by namespace and name.
    service_accounts: RwLock<std::collections::HashSet<(String, String)>>,
    /// How many tokens were issued.
    tokens_issued: std::sync::atomic::AtomicU64,
}

// === impl MemoryObjects ===

impl MemoryObjects {
    /// An empty source.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add or replace a PersistentVolumeClaim (namespace and name are its
    /// key).
    pub fn put_persistent_volume_claim(&self, pvc: PersistentVolumeClaim) {
        self.claims
            .write()
            .insert(key_of(&pvc.metadata), Arc::new(pvc));
    }

    /// Add or replace a PersistentVolume.
    pub fn put_persistent_volume(&self, pv: PersistentVolume) {
        let name = pv.metadata.name.clone().unwrap_or_default();
        self.volumes.write().insert(name, Arc::new(pv));
    }

    /// Add or replace a ConfigMap (its namespace and name are its key).
    pub fn put_config_map(&self, cm: ConfigMap) {
        let key = key_of(&cm.metadata);
        self.config_maps.write().insert(key, Arc::new(cm));
    }

    /// Add or replace a Secret.
    pub fn put_secret(&self, secret: Secret) {
        let key = key_of(&secret.metadata);
        self.secrets.write().insert(key, Arc::new(secret));
    }

    /// Add or replace a Service.
    pub fn put_service(&self, svc: Service) {
        let key = key_of(&svc.metadata);
        self.services.write().insert(key, Arc::new(svc));
    }

    /// Let ServiceAccount `namespace/name` have tokens: fake ones,
    /// `memory-token-<n>`, valid for what was asked.
    pub fn put_service_account(&self, namespace: &str, name: &str) {
        self.service_accounts
            .write()
            .insert((namespace.to_string(), name.to_string()));
    }

    /// How many tokens were issued so far.
    pub fn tokens_issued(&self) -> u64 {
        self.tokens_issued
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Remove a ConfigMap.
    pub fn remove_config_map(&self, namespace: &str, name: &str) {
        self.config_maps
            .write()
            .remove(&(namespace.to_string(), name.to_string()));
    }

    /// Remove a Secret.
    pub fn remove_secret(&self, namespace: &str, name: &str) {
        self.secrets
            .write()
            .remove(&(namespace.to_string(), name.to_string()));
    }
}

fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_else(|| "default".into()),
        meta.name.clone().unwrap_or_default(),
    )
}

impl ObjectSource for MemoryObjects {
    fn persistent_volume_claim<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<PersistentVolumeClaim>>>> {
        let found = self
            .claims
            .read()
            .get(&(namespace.to_string(), name.to_string()))
            .cloned();
        Box::pin(async move { Ok(found) })
    }

    fn persistent_volume<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<PersistentVolume>>>> {
        let found = self.volumes.read().get(name).cloned();
        Box::pin(async move { Ok(found) })
    }

    fn config_map<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<ConfigMap>>>> {
        let found = self
            .config_maps
            .read()
            .get(&(namespace.to_string(), name.to_string()))
            .cloned();
        Box::pin(async move { Ok(found) })
    }

    fn secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<Secret>>>> {
        let found = self
            .secrets
            .read()
            .get(&(namespace.to_string(), name.to_string()))
            .cloned();
        Box::pin(async move { Ok(found) })
    }

    fn services<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, Result<Vec<Arc<Service>>>> {
        let mut found: Vec<(String, Arc<Service>)> = self
            .services
            .read()
            .iter()
            .filter(|((ns, _), _)| ns == namespace)
            .map(|((_, n), s)| (n.clone(), s.clone()))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Box::pin(async move { Ok(found.into_iter().map(|(_, s)| s).collect()) })
    }

    fn service_account_token<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        request: &'a TokenRequest,
    ) -> BoxFuture<'a, Result<TokenRequest>> {
        Box::pin(async move {
            let known = self
                .service_accounts
                .read()
                .contains(&(namespace.to_string(), name.to_string()));
            if !known {
                return Err(ObjectError::NoTokens(format!(
                    "serviceaccounts \"{name}\" not found"
                )));
            }
            let n = self
                .tokens_issued
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1;
            let seconds = request.spec.expiration_seconds.unwrap_or(3600);
            let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(seconds);
            let mut answer = request.clone();
            answer.spec.expiration_seconds = Some(seconds);
            answer.status = Some(TokenRequestStatus {
                token: format!("memory-token-{n}"),
                expiration_timestamp: Time(expires),
            });
            Ok(answer)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[tokio::test]
    async fn memory_objects_by_namespace_and_name() {
        let objects = MemoryObjects::new();
        objects.put_config_map(ConfigMap {
            metadata: ObjectMeta {
                name: Some("cfg".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            ..Default::default()
        });
        assert!(objects.config_map("ns", "cfg").await.unwrap().is_some());
        assert!(objects.config_map("other", "cfg").await.unwrap().is_none());
        assert!(objects.secret("ns", "cfg").await.unwrap().is_none());
        objects.remove_config_map("ns", "cfg");
        assert!(objects.config_map("ns", "cfg").await.unwrap().is_none());
    }
}
