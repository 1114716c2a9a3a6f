use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::*;

const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const NOW: i64 = 1_750_000_000;

#[derive(Default)]
struct Objects(HashMap<(String, String), Arc<Value>>);

impl Objects {
    fn put(&mut self, plural: &str, name: &str, uid: &str) {
        self.0.insert(
            (plural.into(), name.into()),
            Arc::new(json!({"metadata": {"name": name, "namespace": "ns", "uid": uid}})),
        );
    }
}

impl ObjectLookup for Objects {
    fn lookup(&self, plural: &str, namespace: &str, name: &str) -> Option<Arc<Value>> {
        assert_eq!(namespace, "ns");
        self.0.get(&(plural.to_string(), name.to_string())).cloned()
    }
}

fn spec(pod: bool) -> TokenSpec {
    TokenSpec {
        namespace: "ns".into(),
        service_account: ObjectRef {
            name: "default".into(),
            uid: "sa-uid".into(),
        },
        pod: pod.then(|| ObjectRef {
            name: "web".into(),
            uid: "pod-uid".into(),
        }),
        expiration_seconds: 3600,
        ..Default::default()
    }
}

fn live_objects() -> Objects {
    let mut o = Objects::default();
    o.put("serviceaccounts", "default", "sa-uid");
    o.put("pods", "web", "pod-uid");
    o
}

fn at(secs: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(secs).unwrap()
}

#[test]
fn signed_token_verifies_with_kubernetes_claims() {
    let issuer = TokenIssuer::generate(ISSUER.into());
    let token = issuer.sign(&issuer.claims(&spec(true), NOW));
    let claims = issuer.verify(&token, NOW + 10).unwrap();
    assert_eq!(claims.sub, "system:serviceaccount:ns:default");
    assert_eq!(claims.aud, [ISSUER]);
    assert_eq!((claims.iat, claims.nbf, claims.exp), (NOW, NOW, NOW + 3600));
    assert_eq!(claims.kubernetes.pod.as_ref().unwrap().uid, "pod-uid");
    validate_bound_objects(&claims, &live_objects(), at(NOW + 10)).unwrap();

    // The wire form carries the claim names Kubernetes uses.
    let payload = token.split('.').nth(1).unwrap();
    let raw: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(raw["kubernetes.io"]["serviceaccount"]["name"], "default");
    assert_eq!(raw["kubernetes.io"]["namespace"], "ns");
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], issuer.key_id());
}

#[test]
fn expired_and_future_tokens_are_rejected() {
    let issuer = TokenIssuer::generate(ISSUER.into());
    let token = issuer.sign(&issuer.claims(&spec(false), NOW));
    // Within the leeway past exp, still good; beyond it, expired.
    assert!(issuer.verify(&token, NOW + 3600 + LEEWAY_SECONDS).is_ok());
    assert_eq!(
        issuer.verify(&token, NOW + 3600 + LEEWAY_SECONDS + 1),
        Err(TokenError::Expired)
    );
    assert_eq!(
        issuer.verify(&token, NOW - LEEWAY_SECONDS - 1),
        Err(TokenError::NotYetValid)
    );
}

#[test]
fn another_key_or_a_changed_payload_fails_the_signature() {
    let ours = TokenIssuer::generate(ISSUER.into());
    let theirs = TokenIssuer::generate(ISSUER.into());
    let token = theirs.sign(&theirs.claims(&spec(false), NOW));
    assert_eq!(ours.verify(&token, NOW), Err(TokenError::Signature));

    // Same signature, claims edited to another ServiceAccount.
    let good = ours.sign(&ours.claims(&spec(false), NOW));
    let parts: Vec<&str> = good.split('.').collect();
    let mut claims = ours.claims(&spec(false), NOW);
    claims.kubernetes.serviceaccount.name = "admin".into();
    claims.sub = Claims::username("ns", "admin");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap()),
        parts[2]
    );
    assert_eq!(ours.verify(&forged, NOW), Err(TokenError::Signature));

    // alg "none" is never accepted.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
        parts[1]
    );
    assert!(matches!(
        ours.verify(&none, NOW),
        Err(TokenError::Algorithm(_))
    ));
    assert!(matches!(
        ours.verify("not-a-jwt", NOW),
        Err(TokenError::Malformed(_))
    ));
}

#[test]
fn tokens_for_other_audiences_do_not_authenticate() {
    let issuer = TokenIssuer::generate(ISSUER.into());
    let mut s = spec(false);
    s.audiences = vec!["vault".into()];
    let token = issuer.sign(&issuer.claims(&s, NOW));
    assert_eq!(
        issuer.verify(&token, NOW),
        Err(TokenError::Audience(vec!["vault".into()]))
    );
    let other = TokenIssuer::from_pem(
        &rcgen::KeyPair::generate().unwrap().serialize_pem(),
        "https://elsewhere".into(),
    )
    .unwrap();
    let token = other.sign(&other.claims(&spec(false), NOW));
    assert!(issuer.verify(&token, NOW).is_err());
}

#[test]
fn deleted_or_recreated_service_account_is_rejected() {
    let issuer = TokenIssuer::generate(ISSUER.into());
    let claims = issuer
        .verify(&issuer.sign(&issuer.claims(&spec(false), NOW)), NOW)
        .unwrap();
    let mut objects = live_objects();
    objects
        .0
        .remove(&("serviceaccounts".into(), "default".into()));
    assert!(matches!(
        validate_bound_objects(&claims, &objects, at(NOW)),
        Err(TokenError::ServiceAccount(_))
    ));
    objects.put("serviceaccounts", "default", "another-uid");
    assert!(matches!(
        validate_bound_objects(&claims, &objects, at(NOW)),
        Err(TokenError::ServiceAccount(_))
    ));
}

#[test]
fn deleted_or_recreated_bound_pod_is_rejected() {
    let issuer = TokenIssuer::generate(ISSUER.into());
    let claims = issuer
        .verify(&issuer.sign(&issuer.claims(&spec(true), NOW)), NOW)
        .unwrap();
    let mut objects = live_objects();
    objects.0.remove(&("pods".into(), "web".into()));
    assert!(matches!(
        validate_bound_objects(&claims, &objects, at(NOW)),
        Err(TokenError::Invalidated(_))
    ));
    objects.put("pods", "web", "new-pod-uid");
    assert!(matches!(
        validate_bound_objects(&claims, &objects, at(NOW)),
        Err(TokenError::Invalidated(_))
    ));
    // A pod being deleted keeps its token for the leeway, then loses it.
    objects.0.insert(
        ("pods".into(), "web".into()),
        Arc::new(json!({"metadata": {
            "name": "web", "uid": "pod-uid",
            "deletionTimestamp": "2025-06-15T15:06:40Z",
        }})),
    );
    let deleting = "2025-06-15T15:06:40Z".parse::<jiff::Timestamp>().unwrap();
    assert!(validate_bound_objects(&claims, &objects, deleting).is_ok());
    let later = at(deleting.as_second() + LEEWAY_SECONDS + 1);
    assert!(matches!(
        validate_bound_objects(&claims, &objects, later),
        Err(TokenError::Invalidated(_))
    ));
}

#[test]
fn key_is_made_once_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let first = TokenIssuer::ensure(dir.path(), ISSUER.into()).unwrap();
    let token = first.sign(&first.claims(&spec(false), NOW));
    let again = TokenIssuer::ensure(dir.path(), ISSUER.into()).unwrap();
    assert_eq!(first.key_id(), again.key_id());
    assert!(again.verify(&token, NOW).is_ok());
}

#[test]
fn the_published_jwk_verifies_tokens() {
    let issuer = TokenIssuer::generate(ISSUER.into());
    let token = issuer.sign(&issuer.claims(&spec(false), NOW));
    let jwk = issuer.jwk();
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str()),
        (Some("EC"), Some("P-256"))
    );
    assert_eq!(jwk["kid"], issuer.key_id());
    let mut point = vec![4u8];
    for c in ["x", "y"] {
        point.extend(URL_SAFE_NO_PAD.decode(jwk[c].as_str().unwrap()).unwrap());
    }
    let (signed, sig) = token.rsplit_once('.').unwrap();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point)
        .verify(signed.as_bytes(), &URL_SAFE_NO_PAD.decode(sig).unwrap())
        .unwrap();
}
