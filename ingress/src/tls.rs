//! Certificates: read from `kubernetes.io/tls` Secrets, chosen per
//! connection by the name the client asks for (SNI), and a fallback
//! certificate made at start for names no Secret covers.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::Routes;

/// A certificate chain with its key, ready for handshakes.
#[derive(Debug)]
pub struct TlsCert {
    /// What rustls serves.
    pub key: Arc<CertifiedKey>,
}

impl TlsCert {
    /// From PEM text: the chain (leaf first) and the private key.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, String> {
        let chain: Vec<_> = rustls_pemfile::certs(&mut &cert_pem[..])
            .collect::<Result<_, _>>()
            .map_err(|e| format!("tls.crt: {e}"))?;
        if chain.is_empty() {
            return Err("tls.crt holds no certificate".into());
        }
        let key = rustls_pemfile::private_key(&mut &key_pem[..])
            .map_err(|e| format!("tls.key: {e}"))?
            .ok_or("tls.key holds no private key")?;
        let signer = rustls::crypto::ring::sign::any_supported_type(&key)
            .map_err(|e| format!("tls.key: {e}"))?;
        let ck = CertifiedKey::new(chain, signer);
        // A key that does not belong to the certificate would fail every
        // handshake; say so now.
        match ck.keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(e) => return Err(format!("tls.key does not match tls.crt: {e}")),
        }
        Ok(Self { key: Arc::new(ck) })
    }

    /// From a `kubernetes.io/tls` Secret's `tls.crt` and `tls.key`.
    pub fn from_secret(secret: &Secret) -> Result<Self, String> {
        let data = secret.data.as_ref().ok_or("the secret has no data")?;
        let crt = data.get("tls.crt").ok_or("the secret has no tls.crt")?;
        let key = data.get("tls.key").ok_or("the secret has no tls.key")?;
        Self::from_pem(&crt.0, &key.0)
    }

    /// A self-signed certificate for names nothing else covers, as
    /// ingress-nginx serves its "fake certificate".
    pub fn fallback() -> Self {
        let mut params = rcgen::CertificateParams::new(vec!["ingress.local".to_string()])
            .expect("a literal DNS name");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            "kedge Ingress Controller Fake Certificate",
        );
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2124, 1, 1);
        let key = rcgen::KeyPair::generate().expect("key generation");
        let cert = params.self_signed(&key).expect("self-signing");
        Self::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes())
            .expect("a certificate just made parses")
    }
}

/// Certificates by host name, with the fallback.
#[derive(Debug)]
pub struct CertStore {
    exact: HashMap<String, Arc<TlsCert>>,
    /// `*.foo.com` certificates under `foo.com`.
    wildcard: HashMap<String, Arc<TlsCert>>,
    fallback: Arc<TlsCert>,
}

impl CertStore {
    /// A store with only the fallback.
    pub fn new(fallback: Arc<TlsCert>) -> Self {
        Self {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            fallback,
        }
    }

    /// Serve `cert` for `host` unless a certificate is already there (the
    /// oldest Ingress wins).
    pub fn insert_if_absent(&mut self, host: &str, cert: Arc<TlsCert>) {
        match host.strip_prefix("*.") {
            Some(parent) => self.wildcard.entry(parent.into()).or_insert(cert),
            None => self.exact.entry(host.into()).or_insert(cert),
        };
    }

    /// The certificate for a server name (any case); the fallback when
    /// nothing covers it or no name was sent.
    pub fn get(&self, name: Option<&str>) -> &Arc<TlsCert> {
        let Some(name) = name.map(|n| n.trim_end_matches('.').to_ascii_lowercase()) else {
            return &self.fallback;
        };
        if let Some(c) = self.exact.get(&name) {
            return c;
        }
        name.split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent))
            .unwrap_or(&self.fallback)
    }
}

/// Picks the certificate during each handshake from the current table, so
/// a changed Secret is served from the next connection on.
pub struct SniResolver {
    routes: Arc<Routes>,
}

impl std::fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SniResolver")
    }
}

impl SniResolver {
    /// A resolver reading `routes`.
    pub fn new(routes: Arc<Routes>) -> Self {
        Self { routes }
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let table = self.routes.load();
        Some(table.certs.get(hello.server_name()).key.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_for(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn pem_pairs_and_mismatches() {
        let (c1, k1) = cert_for("a.example");
        let (_, k2) = cert_for("b.example");
        assert!(TlsCert::from_pem(c1.as_bytes(), k1.as_bytes()).is_ok());
        let err = TlsCert::from_pem(c1.as_bytes(), k2.as_bytes()).unwrap_err();
        assert!(err.contains("does not match"), "{err}");
        assert!(TlsCert::from_pem(b"junk", k1.as_bytes()).is_err());
        assert!(TlsCert::from_pem(c1.as_bytes(), b"").is_err());
    }

    #[test]
    fn lookup_by_name_then_wildcard_then_fallback() {
        let fallback = Arc::new(TlsCert::fallback());
        let (c, k) = cert_for("a.example");
        let exact = Arc::new(TlsCert::from_pem(c.as_bytes(), k.as_bytes()).unwrap());
        let (c, k) = cert_for("*.example");
        let wild = Arc::new(TlsCert::from_pem(c.as_bytes(), k.as_bytes()).unwrap());
        let mut store = CertStore::new(fallback.clone());
        store.insert_if_absent("a.example", exact.clone());
        store.insert_if_absent("*.example", wild.clone());
        assert!(Arc::ptr_eq(store.get(Some("A.Example")), &exact));
        assert!(Arc::ptr_eq(store.get(Some("b.example")), &wild));
        assert!(Arc::ptr_eq(store.get(Some("x.b.example")), &fallback));
        assert!(Arc::ptr_eq(store.get(None), &fallback));
    }
}
