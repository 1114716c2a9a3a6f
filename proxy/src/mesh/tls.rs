//! Mutual TLS between node proxies, by workload identity: TLS 1.3 only,
//! ALPN `h2`, each side presenting the certificate of the workload it
//! speaks for. The server requires a client certificate that chains to the
//! mesh's trust bundle and reads the caller's SPIFFE ID from it; the client
//! checks that the server's certificate chains to the bundle and names the
//! identity it expects (the destination workload's), not a host name.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use super::identity::WorkloadCertificate;

/// Why a TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MeshTlsError {
    /// The trust bundle, certificate or key is not usable PEM.
    #[error("{0} is not usable PEM")]
    Pem(&'static str),
    /// rustls refused the configuration.
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(trust_bundle: &str) -> Result<Arc<RootCertStore>, MeshTlsError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(trust_bundle.as_bytes()) {
        roots
            .add(cert.map_err(|_| MeshTlsError::Pem("the trust bundle"))?)
            .map_err(|_| MeshTlsError::Pem("the trust bundle"))?;
    }
    if roots.is_empty() {
        return Err(MeshTlsError::Pem("the trust bundle"));
    }
    Ok(Arc::new(roots))
}

fn chain_and_key(
    identity: &WorkloadCertificate,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), MeshTlsError> {
    let chain = CertificateDer::pem_slice_iter(identity.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| MeshTlsError::Pem("the workload certificate"))?;
    let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes())
        .map_err(|_| MeshTlsError::Pem("the workload key"))?;
    Ok((chain, key))
}

/// The server side, presenting `identity` and requiring a client
/// certificate of the mesh.
pub fn server_config(
    identity: &WorkloadCertificate,
    trust_bundle: &str,
) -> Result<Arc<ServerConfig>, MeshTlsError> {
    let provider = provider();
    let verifier =
        WebPkiClientVerifier::builder_with_provider(roots(trust_bundle)?, provider.clone())
            .build()?;
    let (chain, key) = chain_and_key(identity)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The client side, presenting `identity` and accepting only a server
/// whose certificate names one of `expected` (SPIFFE IDs).
pub fn client_config(
    identity: &WorkloadCertificate,
    trust_bundle: &str,
    expected: Vec<String>,
) -> Result<Arc<ClientConfig>, MeshTlsError> {
    let provider = provider();
    let verifier = Arc::new(SpiffeServerVerifier {
        roots: roots(trust_bundle)?,
        expected,
        provider: provider.clone(),
    });
    let (chain, key) = chain_and_key(identity)?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    // No SNI: the server is reached by address and known by identity.
    config.enable_sni = false;
    Ok(Arc::new(config))
}

/// Client configurations made from one workload certificate, by the peer
/// identity they expect; made afresh once the certificate is renewed.
#[derive(Default)]
pub struct ClientConfigs {
    certificate: Option<Arc<WorkloadCertificate>>,
    by_peer: std::collections::HashMap<String, Arc<ClientConfig>>,
}

impl ClientConfigs {
    /// The configuration presenting `certificate` and expecting `expected`.
    pub fn get(
        &mut self,
        certificate: &Arc<WorkloadCertificate>,
        trust_bundle: &str,
        expected: &str,
    ) -> Result<Arc<ClientConfig>, MeshTlsError> {
        if !self
            .certificate
            .as_ref()
            .is_some_and(|held| Arc::ptr_eq(held, certificate))
        {
            *self = ClientConfigs {
                certificate: Some(certificate.clone()),
                by_peer: Default::default(),
            };
        }
        if let Some(config) = self.by_peer.get(expected) {
            return Ok(config.clone());
        }
        let config = client_config(certificate, trust_bundle, vec![expected.to_string()])?;
        self.by_peer.insert(expected.to_string(), config.clone());
        Ok(config)
    }
}

/// The SPIFFE ID a certificate names (its URI SAN), if exactly one.
pub fn spiffe_id_of(cert: &CertificateDer<'_>) -> Option<String> {
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::FromDer;
    let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(cert.as_ref()).ok()?;
    let sans = parsed.subject_alternative_name().ok()??;
    let mut uris = sans
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) if uri.starts_with("spiffe://") => Some(uri.to_string()),
            _ => None,
        });
    let first = uris.next()?;
    uris.next().is_none().then_some(first)
}

/// Checks the chain against the mesh's roots and the identity against the
/// expected ones; host names play no part.
#[derive(Debug)]
struct SpiffeServerVerifier {
    roots: Arc<RootCertStore>,
    expected: Vec<String>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        match spiffe_id_of(end_entity) {
            Some(id) if self.expected.contains(&id) => Ok(ServerCertVerified::assertion()),
            Some(id) => Err(rustls::Error::General(format!(
                "the peer is {id}, not {}",
                self.expected.join(" or ")
            ))),
            None => Err(rustls::Error::General(
                "the peer's certificate names no SPIFFE ID".into(),
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests;
