//! The kubelet's TLS: a serving certificate (self-signed unless one is
//! given, as a kubelet without `--tls-cert-file` does) and mandatory client
//! certificates signed by the cluster CA.

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair};
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{VerifierBuilderError, WebPkiClientVerifier};
use tokio_rustls::rustls::{self, RootCertStore};

/// Errors while setting up the kubelet's TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM input held nothing usable.
    #[error("{what}: {source}")]
    Pem {
        /// Which input.
        what: &'static str,
        /// The cause.
        #[source]
        source: pem::Error,
    },
    /// The self-signed serving certificate could not be made.
    #[error("serving certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// The cluster CA cannot verify client certificates.
    #[error("client CA: {0}")]
    ClientCa(#[from] VerifierBuilderError),
    /// rustls refused the certificate or key.
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The server side of the kubelet's TLS.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<rustls::ServerConfig>,
}

// === impl ServerTls ===

impl ServerTls {
    /// Serve with this certificate chain and key (PEM), accepting clients
    /// whose certificate `client_ca_pem` signed.
    pub fn new(cert_pem: &str, key_pem: &str, client_ca_pem: &str) -> Result<Self, TlsError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| TlsError::Pem {
                what: "serving certificate",
                source,
            })?;
        let key =
            PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|source| TlsError::Pem {
                what: "serving key",
                source,
            })?;
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(client_ca_pem.as_bytes()) {
            let ca = ca.map_err(|source| TlsError::Pem {
                what: "client CA",
                source,
            })?;
            roots.add(ca)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// Serve with a fresh self-signed certificate for the node's name and
    /// addresses. The API server does not verify it (Kubernetes' default
    /// without `--kubelet-certificate-authority`), so it need not persist.
    pub fn self_signed(
        node_name: &str,
        addresses: &[IpAddr],
        client_ca_pem: &str,
    ) -> Result<Self, TlsError> {
        let (cert, key) = self_signed_pem(node_name, addresses)?;
        Self::new(&cert, &key, client_ca_pem)
    }

    /// The rustls configuration.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        self.config.clone()
    }
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

/// A self-signed serving certificate and its key, as PEM.
fn self_signed_pem(node_name: &str, addresses: &[IpAddr]) -> Result<(String, String), TlsError> {
    let mut params = CertificateParams::new(vec![node_name.to_string()])?;
    for ip in addresses {
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress(*ip));
    }
    let mut dn = DistinguishedName::new();
    // Kubernetes names a kubelet's self-signed certificate `<host>@<time>`.
    dn.push(
        DnType::CommonName,
        format!("{node_name}@{}", jiff::Timestamp::now().as_second()),
    );
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}
