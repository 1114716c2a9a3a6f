//! ServiceAccount tokens: JWTs signed with the cluster's service-account
//! key, issued through the TokenRequest API and accepted as bearer tokens.
//!
//! The key is an ECDSA P-256 key kept in the data dir beside the CA
//! (`sa.key`), made on first start and reused after, so tokens survive a
//! restart. Tokens are compact JWS (`ES256`) with the claims Kubernetes puts
//! in bound tokens: `iss`, `sub` (`system:serviceaccount:<ns>:<name>`),
//! `aud`, `exp`, `iat`, `nbf`, `jti` and the private `kubernetes.io` claim
//! naming the namespace, the ServiceAccount and the bound Pod or Secret.
//!
//! [`TokenIssuer::verify`] checks what the token itself proves (signature,
//! issuer, audience, times); [`validate_bound_objects`] then checks that the
//! objects it names still exist with the same uids, as Kubernetes'
//! service-account validator does.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The file of the signing key in the data dir (PKCS#8 PEM).
pub const KEY_FILE: &str = "sa.key";

/// Clock skew tolerated on `exp`, `nbf` and deletion times (go-jose's
/// default leeway, which Kubernetes uses).
pub const LEEWAY_SECONDS: i64 = 60;

/// Errors while loading or making the signing key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The stored key is not a usable P-256 PKCS#8 key.
    #[error("service-account key {path}: {message}")]
    Invalid {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A key could not be generated.
    #[error("generating the service-account key: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Why a bearer token is not a valid service-account token. The messages
/// are Kubernetes'; they go to the server's log, the client only sees 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts, or the parts do not decode.
    #[error("token is not a JWT: {0}")]
    Malformed(String),
    /// Another signing algorithm than ours.
    #[error("unexpected signing algorithm {0:?}")]
    Algorithm(String),
    /// The signature does not verify with our key.
    #[error("invalid signature")]
    Signature,
    /// Issued by someone else.
    #[error("token issuer {0:?} is not this cluster's")]
    Issuer(String),
    /// Not meant for this API server.
    #[error("token audiences {0:?} do not include the API server's")]
    Audience(Vec<String>),
    /// Past `exp`.
    #[error("service account token has expired")]
    Expired,
    /// Before `nbf`.
    #[error("service account token is not valid yet")]
    NotYetValid,
    /// The ServiceAccount is gone, being deleted, or was recreated.
    #[error("{0}")]
    ServiceAccount(String),
    /// The bound Pod or Secret is gone, being deleted, or was recreated.
    #[error("service account token has been invalidated: {0}")]
    Invalidated(String),
}

/// A `name` and `uid` pair of the private claim.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// The object's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The object's uid.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

/// The `kubernetes.io` private claim.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaim {
    /// The ServiceAccount's namespace.
    #[serde(default)]
    pub namespace: String,
    /// The ServiceAccount.
    #[serde(default)]
    pub serviceaccount: ObjectRef,
    /// The Pod the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
    /// The Secret the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectRef>,
    /// The node the bound Pod runs on (informational, as Kubernetes adds it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ObjectRef>,
}

/// The claims of a service-account token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Subject: `system:serviceaccount:<namespace>:<name>`.
    pub sub: String,
    /// Audiences.
    pub aud: Vec<String>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Unique id of the token.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jti: String,
    /// What the token is about.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaim,
}

impl Claims {
    /// The user name of a ServiceAccount, as Kubernetes spells it.
    pub fn username(namespace: &str, name: &str) -> String {
        format!("system:serviceaccount:{namespace}:{name}")
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    kid: String,
}

/// Signs and verifies service-account tokens with the cluster's key.
pub struct TokenIssuer {
    key: EcdsaKeyPair,
    /// `kid`: base64url of the SHA-256 of the public key (SPKI DER), as
    /// Kubernetes names its keys.
    key_id: String,
    rng: SystemRandom,
    /// `iss` of issued tokens, and the only issuer accepted.
    pub issuer: String,
    /// Audiences a token must share one of to authenticate to this API
    /// server; the default audiences of a TokenRequest.
    pub api_audiences: Vec<String>,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("key_id", &self.key_id)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

// === impl TokenIssuer ===

impl TokenIssuer {
    /// The issuer of a cluster with domain `cluster_domain`:
    /// `https://kubernetes.default.svc.<domain>` is both the issuer and the
    /// API audience, as kubeadm configures them.
    pub fn issuer_url(cluster_domain: &str) -> String {
        format!("https://kubernetes.default.svc.{cluster_domain}")
    }

    /// Load the key from `dir`, generating it on first start.
    pub fn ensure(dir: &Path, issuer: String) -> Result<Self, KeyError> {
        let path = dir.join(KEY_FILE);
        let pem = if path.exists() {
            std::fs::read_to_string(&path).map_err(|source| KeyError::Io {
                path: path.clone(),
                source,
            })?
        } else {
            // rcgen's default key is ECDSA P-256 with SHA-256: ES256.
            let pem = rcgen::KeyPair::generate()?.serialize_pem();
            crate::apiserver::certs::write_private(&path, &pem).map_err(|e| KeyError::Invalid {
                path: path.clone(),
                message: e.to_string(),
            })?;
            pem
        };
        Self::from_pem(&pem, issuer).map_err(|message| KeyError::Invalid { path, message })
    }

    /// An issuer over a PKCS#8 PEM P-256 key.
    pub fn from_pem(pem: &str, issuer: String) -> Result<Self, String> {
        let key = rcgen::KeyPair::from_pem(pem).map_err(|e| e.to_string())?;
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &key.serialize_der(),
            &rng,
        )
        .map_err(|e| format!("not a P-256 key: {e}"))?;
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            &rcgen::PublicKeyData::subject_public_key_info(&key),
        );
        Ok(Self {
            key: pair,
            key_id: URL_SAFE_NO_PAD.encode(digest.as_ref()),
            rng,
            api_audiences: vec![issuer.clone()],
            issuer,
        })
    }

    /// A fresh key, for tests.
    pub fn generate(issuer: String) -> Self {
        let pem = rcgen::KeyPair::generate()
            .expect("generating a P-256 key")
            .serialize_pem();
        Self::from_pem(&pem, issuer).expect("a fresh P-256 key")
    }

    /// The `kid` of tokens this issuer signs.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key as a JWK, for `/openid/v1/jwks`.
    pub fn jwk(&self) -> Value {
        // The public key is the uncompressed point 0x04 || x || y.
        let point = self.key.public_key().as_ref();
        let (x, y) = point[1..].split_at(32);
        serde_json::json!({
            "use": "sig",
            "kty": "EC",
            "kid": self.key_id,
            "crv": "P-256",
            "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(x),
            "y": URL_SAFE_NO_PAD.encode(y),
        })
    }

    /// Sign `claims` into a compact JWS.
    pub fn sign(&self, claims: &Claims) -> String {
        let header = Header {
            alg: "ES256".into(),
            kid: self.key_id.clone(),
        };
        let mut out = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("header"));
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims")));
        let sig = self
            .key
            .sign(&self.rng, out.as_bytes())
            .expect("ECDSA signing does not fail with a valid key");
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(sig.as_ref()));
        out
    }

    /// The claims of `token` if it is ours, meant for this API server and
    /// within its validity at `now` (seconds since the epoch). The objects
    /// it names are checked by [`validate_bound_objects`].
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("not three parts".into()));
        };
        let decode = |part: &str, what: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|e| TokenError::Malformed(format!("{what}: {e}")))
        };
        let header: Header = serde_json::from_slice(&decode(h, "header")?)
            .map_err(|e| TokenError::Malformed(format!("header: {e}")))?;
        if header.alg != "ES256" {
            return Err(TokenError::Algorithm(header.alg));
        }
        let sig = decode(s, "signature")?;
        let signed = &token[..h.len() + 1 + p.len()];
        signature::UnparsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_FIXED,
            self.key.public_key().as_ref(),
        )
        .verify(signed.as_bytes(), &sig)
        .map_err(|_| TokenError::Signature)?;
        let claims: Claims = serde_json::from_slice(&decode(p, "payload")?)
            .map_err(|e| TokenError::Malformed(format!("claims: {e}")))?;
        if claims.iss != self.issuer {
            return Err(TokenError::Issuer(claims.iss));
        }
        if !claims.aud.iter().any(|a| self.api_audiences.contains(a)) {
            return Err(TokenError::Audience(claims.aud));
        }
        self.verify_times(&claims, now)?;
        let expected = Claims::username(
            &claims.kubernetes.namespace,
            &claims.kubernetes.serviceaccount.name,
        );
        if claims.sub != expected {
            return Err(TokenError::Malformed(format!(
                "subject {:?} does not match the kubernetes.io claim",
                claims.sub
            )));
        }
        Ok(claims)
    }
}

impl TokenIssuer {
    /// Whether `now` is within the validity of `claims`, give or take the
    /// leeway.
    pub fn verify_times(&self, claims: &Claims, now: i64) -> Result<(), TokenError> {
        if now > claims.exp + LEEWAY_SECONDS {
            return Err(TokenError::Expired);
        }
        if now + LEEWAY_SECONDS < claims.nbf {
            return Err(TokenError::NotYetValid);
        }
        Ok(())
    }
}

/// What a token is issued for: the ServiceAccount and what it is bound to.
#[derive(Debug, Clone, Default)]
pub struct TokenSpec {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount.
    pub service_account: ObjectRef,
    /// The Pod it is bound to.
    pub pod: Option<ObjectRef>,
    /// The Secret it is bound to.
    pub secret: Option<ObjectRef>,
    /// The node of the bound Pod.
    pub node: Option<ObjectRef>,
    /// Audiences (the API audiences when empty).
    pub audiences: Vec<String>,
    /// Lifetime in seconds.
    pub expiration_seconds: i64,
}

impl TokenIssuer {
    /// The claims of a token for `spec` issued at `now`.
    pub fn claims(&self, spec: &TokenSpec, now: i64) -> Claims {
        let aud = if spec.audiences.is_empty() {
            self.api_audiences.clone()
        } else {
            spec.audiences.clone()
        };
        Claims {
            iss: self.issuer.clone(),
            sub: Claims::username(&spec.namespace, &spec.service_account.name),
            aud,
            exp: now + spec.expiration_seconds,
            iat: now,
            nbf: now,
            jti: uuid::Uuid::new_v4().to_string(),
            kubernetes: KubernetesClaim {
                namespace: spec.namespace.clone(),
                serviceaccount: spec.service_account.clone(),
                pod: spec.pod.clone(),
                secret: spec.secret.clone(),
                node: spec.node.clone(),
            },
        }
    }
}

/// Looks up an object by resource plural (`serviceaccounts`, `pods`,
/// `secrets`), namespace and name.
pub trait ObjectLookup {
    /// The object, if it exists.
    fn lookup(&self, plural: &str, namespace: &str, name: &str) -> Option<std::sync::Arc<Value>>;
}

/// Check that the ServiceAccount and the bound object of `claims` still
/// exist with the uids the token names, and are not being deleted for
/// longer than the leeway (Kubernetes' validator).
pub fn validate_bound_objects(
    claims: &Claims,
    objects: &dyn ObjectLookup,
    now: jiff::Timestamp,
) -> Result<(), TokenError> {
    let k = &claims.kubernetes;
    let ns = &k.namespace;
    let deleted_long_ago = |obj: &Value| {
        obj.pointer("/metadata/deletionTimestamp")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .is_some_and(|t| t.as_second() < now.as_second() - LEEWAY_SECONDS)
    };
    let uid = |obj: &Value| {
        obj.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let sa_name = &k.serviceaccount.name;
    let sa = objects
        .lookup("serviceaccounts", ns, sa_name)
        .ok_or_else(|| {
            TokenError::ServiceAccount(format!("serviceaccounts \"{sa_name}\" not found"))
        })?;
    if deleted_long_ago(&sa) {
        return Err(TokenError::ServiceAccount(format!(
            "service account {ns}/{sa_name} has been deleted"
        )));
    }
    if uid(&sa) != k.serviceaccount.uid {
        return Err(TokenError::ServiceAccount(format!(
            "service account UID ({}) does not match claim ({})",
            uid(&sa),
            k.serviceaccount.uid
        )));
    }
    for (plural, bound) in [("secrets", &k.secret), ("pods", &k.pod)] {
        let Some(bound) = bound else {
            continue;
        };
        let obj = objects.lookup(plural, ns, &bound.name).ok_or_else(|| {
            TokenError::Invalidated(format!("{plural} \"{}\" not found", bound.name))
        })?;
        if deleted_long_ago(&obj) {
            return Err(TokenError::Invalidated(format!(
                "{plural} {ns}/{} is being deleted",
                bound.name
            )));
        }
        if uid(&obj) != bound.uid {
            return Err(TokenError::Invalidated(format!(
                "{plural} UID ({}) does not match the claim ({})",
                uid(&obj),
                bound.uid
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
