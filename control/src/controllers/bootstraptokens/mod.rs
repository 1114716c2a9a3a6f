//! Bootstrap tokens (kube-controller-manager's `tokencleaner` and
//! `bootstrapsigner`): expired `bootstrap.kubernetes.io/token` Secrets are
//! deleted, and the `cluster-info` ConfigMap in `kube-public` carries a
//! signature per signing token (`jws-kubeconfig-<id>`), by which a joining
//! machine that knows the token trusts the CA it reads there.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::watcher;

use super::Context;
use crate::apiserver::authn::{bootstrap_token_parts, secret_value};

/// Where bootstrap tokens live.
pub const NAMESPACE: &str = "kube-system";
/// The ConfigMap joining machines read.
pub const CLUSTER_INFO: &str = "cluster-info";
/// Its namespace, readable by anyone.
pub const PUBLIC: &str = "kube-public";
/// The Secret type of bootstrap tokens.
pub const TOKEN_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The key prefix of the signatures in `cluster-info`.
pub const SIGNATURE_PREFIX: &str = "jws-kubeconfig-";

/// The detached JWS (`<header>..<signature>`, HS256 keyed with the token
/// secret, `kid` the token id) over `content`, as Kubernetes' bootstrap
/// signer computes it.
pub fn detached_signature(content: &str, token_id: &str, token_secret: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"HS256","kid":"{token_id}"}}"#));
    let payload = URL_SAFE_NO_PAD.encode(content);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token_secret.as_bytes());
    let sig = ring::hmac::sign(&key, format!("{header}.{payload}").as_bytes());
    format!("{header}..{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

/// Whether `signature` is the detached JWS of `content` with this token.
pub fn verify_signature(
    content: &str,
    signature: &str,
    token_id: &str,
    token_secret: &str,
) -> bool {
    let want = detached_signature(content, token_id, token_secret);
    want.len() == signature.len()
        && want
            .bytes()
            .zip(signature.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// A token's id, secret and whether it signs, if the Secret is a live
/// bootstrap token.
fn token_of(secret: &Secret, now: jiff::Timestamp) -> Option<(String, String, bool)> {
    if secret.type_.as_deref() != Some(TOKEN_TYPE) || secret.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let v = serde_json::to_value(secret).ok()?;
    let id = secret_value(&v, "token-id")?;
    let token_secret = secret_value(&v, "token-secret")?;
    bootstrap_token_parts(&format!("{id}.{token_secret}"))?;
    if expired(&v, now) {
        return None;
    }
    let signs = secret_value(&v, "usage-bootstrap-signing").as_deref() == Some("true");
    Some((id, token_secret, signs))
}

fn expired(secret: &serde_json::Value, now: jiff::Timestamp) -> bool {
    secret_value(secret, "expiration")
        .and_then(|e| e.parse::<jiff::Timestamp>().ok())
        .is_some_and(|t| t <= now)
}

/// The token cleaner, until dropped: expired tokens are deleted when they
/// expire (checked on every change and every ten seconds).
pub async fn run_cleaner(ctx: Arc<Context>) {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), NAMESPACE);
    let lp = ListParams::default().fields(&format!("type={TOKEN_TYPE}"));
    loop {
        match secrets.list(&lp).await {
            Ok(list) => {
                let now = jiff::Timestamp::now();
                for s in list.items {
                    let v = serde_json::to_value(&s).unwrap_or_default();
                    if s.type_.as_deref() == Some(TOKEN_TYPE) && expired(&v, now) {
                        let name = s.metadata.name.clone().unwrap_or_default();
                        match secrets.delete(&name, &DeleteParams::default()).await {
                            Ok(_) => {
                                tracing::info!(secret = %name, "expired bootstrap token deleted")
                            }
                            Err(e) => {
                                tracing::warn!(secret = %name, error = %e, "deleting an expired bootstrap token")
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "listing bootstrap tokens"),
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

/// The bootstrap signer, until dropped: on every change of tokens or of
/// `cluster-info`, its signatures become exactly those of the live
/// signing tokens.
pub async fn run_signer(ctx: Arc<Context>) {
    let secrets = watcher(
        Api::<Secret>::namespaced(ctx.watch_client.clone(), NAMESPACE),
        watcher::Config::default().fields(&format!("type={TOKEN_TYPE}")),
    )
    .map(|_| ());
    let info = watcher(
        Api::<ConfigMap>::namespaced(ctx.watch_client.clone(), PUBLIC),
        watcher::Config::default().fields(&format!("metadata.name={CLUSTER_INFO}")),
    )
    .map(|_| ());
    // Expiry changes nothing in the store: look again now and then.
    let ticks = futures::stream::unfold((), |()| async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Some(((), ()))
    });
    let mut changes =
        futures::stream::select(futures::stream::select(secrets, info), ticks).boxed();
    while changes.next().await.is_some() {
        if let Err(e) = sign(&ctx).await {
            tracing::debug!(error = %e, "signing cluster-info");
        }
    }
}

async fn sign(ctx: &Context) -> Result<(), kube::Error> {
    // Reads as the controller manager, as Kubernetes' informers.
    let Some(info) = Api::<ConfigMap>::namespaced(ctx.watch_client.clone(), PUBLIC)
        .get_opt(CLUSTER_INFO)
        .await?
    else {
        return Ok(());
    };
    let data = info.data.clone().unwrap_or_default();
    let Some(content) = data.get("kubeconfig").cloned() else {
        return Ok(());
    };
    let now = jiff::Timestamp::now();
    let tokens = Api::<Secret>::namespaced(ctx.watch_client.clone(), NAMESPACE)
        .list(&ListParams::default().fields(&format!("type={TOKEN_TYPE}")))
        .await?;
    let want: BTreeMap<String, String> = tokens
        .items
        .iter()
        .filter_map(|s| token_of(s, now))
        .filter(|(_, _, signs)| *signs)
        .map(|(id, secret, _)| {
            (
                format!("{SIGNATURE_PREFIX}{id}"),
                detached_signature(&content, &id, &secret),
            )
        })
        .collect();
    let have: BTreeMap<String, String> = data
        .iter()
        .filter(|(k, _)| k.starts_with(SIGNATURE_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if want == have {
        return Ok(());
    }
    let mut next = info.clone();
    let mut data: BTreeMap<String, String> = data
        .into_iter()
        .filter(|(k, _)| !k.starts_with(SIGNATURE_PREFIX))
        .collect();
    data.extend(want);
    next.data = Some(data);
    next.metadata.managed_fields = None;
    Api::<ConfigMap>::namespaced(ctx.client.clone(), PUBLIC)
        .replace(CLUSTER_INFO, &Default::default(), &next)
        .await?;
    tracing::info!("cluster-info signatures updated");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_with_their_token() {
        let sig = detached_signature("content", "abcdef", "0123456789abcdef");
        let parts: Vec<&str> = sig.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert!(parts[1].is_empty(), "detached: no payload");
        assert!(verify_signature(
            "content",
            &sig,
            "abcdef",
            "0123456789abcdef"
        ));
        assert!(!verify_signature(
            "content",
            &sig,
            "abcdef",
            "0123456789abcdeg"
        ));
        assert!(!verify_signature(
            "other",
            &sig,
            "abcdef",
            "0123456789abcdef"
        ));
    }
}
