//! The cluster's credentials: a CA and a serving certificate made with rcgen
//! on first start, an admin bearer token, and the kubeconfig that ties them
//! together. All are kept in the data dir and reused on later starts.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use tokio_rustls::rustls;

/// Errors while preparing credentials.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// Reading or writing a file in the data dir failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Generating a key or certificate failed.
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// The stored certificate or key could not be used.
    #[error("TLS setup: {0}")]
    Tls(String),
}

/// Paths of the credentials inside the data dir.
pub struct Credentials {
    /// PEM of the cluster CA certificate.
    pub ca_pem: String,
    /// PEM of the serving certificate.
    pub cert_pem: String,
    /// PEM of the serving key.
    pub key_pem: String,
    /// The admin bearer token.
    pub admin_token: String,
}

fn read(path: &Path) -> Result<String, CertError> {
    fs::read_to_string(path).map_err(|source| CertError::Io {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn write_private(path: &Path, contents: &str) -> Result<(), CertError> {
    let io_err = |source| CertError::Io {
        path: path.to_path_buf(),
        source,
    };
    // Write then rename so a crash never leaves half a key behind.
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, contents).map_err(io_err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600)).map_err(io_err)?;
    }
    fs::rename(&tmp, path).map_err(io_err)
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "kedge-ca");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    params
}

/// The cluster CA, able to sign further certificates (serving certificates
/// of the API server and, later, of node agents).
pub struct ClusterCa {
    key: KeyPair,
}

impl ClusterCa {
    /// Sign a serving certificate for these DNS names and IPs.
    pub fn sign_serving(
        &self,
        dns: &[&str],
        ips: &[IpAddr],
    ) -> Result<(String, String), CertError> {
        let mut params =
            CertificateParams::new(dns.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        for ip in ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, dns.first().copied().unwrap_or("kedge"));
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2124, 1, 1);
        let key = KeyPair::generate()?;
        let issuer = Issuer::new(ca_params(), &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Sign a client certificate for `common_name` (the user name) in the
    /// groups `organizations`.
    pub fn sign_client(
        &self,
        common_name: &str,
        organizations: &[&str],
    ) -> Result<(String, String), CertError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        for o in organizations {
            dn.push(DnType::OrganizationName, *o);
        }
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2124, 1, 1);
        let key = KeyPair::generate()?;
        let issuer = Issuer::new(ca_params(), &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// Load the credentials from `dir`, making whatever is missing. The serving
/// certificate covers `localhost`, `kubernetes.default.svc…` and `ips`.
pub fn ensure(dir: &Path, ips: &[IpAddr]) -> Result<(Credentials, ClusterCa), CertError> {
    let ca_crt = dir.join("ca.crt");
    let ca_key = dir.join("ca.key");
    let (ca_pem, ca) = if ca_crt.exists() && ca_key.exists() {
        let key = KeyPair::from_pem(&read(&ca_key)?)?;
        (read(&ca_crt)?, ClusterCa { key })
    } else {
        let key = KeyPair::generate()?;
        let cert = ca_params().self_signed(&key)?;
        write_private(&ca_key, &key.serialize_pem())?;
        write_private(&ca_crt, &cert.pem())?;
        (cert.pem(), ClusterCa { key })
    };

    let server_crt = dir.join("apiserver.crt");
    let server_key = dir.join("apiserver.key");
    let (cert_pem, key_pem) = if server_crt.exists() && server_key.exists() {
        (read(&server_crt)?, read(&server_key)?)
    } else {
        let (c, k) = ca.sign_serving(
            &[
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
            ips,
        )?;
        write_private(&server_key, &k)?;
        write_private(&server_crt, &c)?;
        (c, k)
    };

    let token_path = dir.join("admin.token");
    let admin_token = if token_path.exists() {
        read(&token_path)?.trim().to_string()
    } else {
        let token: String = {
            use rand::Rng;
            let mut rng = rand::rng();
            (0..32)
                .map(|_| {
                    let i = rng.random_range(0..36u8);
                    (if i < 10 { b'0' + i } else { b'a' + i - 10 }) as char
                })
                .collect()
        };
        write_private(&token_path, &token)?;
        token
    };

    Ok((
        Credentials {
            ca_pem,
            cert_pem,
            key_pem,
            admin_token,
        },
        ca,
    ))
}

/// A rustls server config offering HTTP/2 and HTTP/1.1.
pub fn server_config(creds: &Credentials) -> Result<Arc<rustls::ServerConfig>, CertError> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut creds.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| CertError::Tls(e.to_string()))?;
    let key = rustls_pemfile::private_key(&mut creds.key_pem.as_bytes())
        .map_err(|e| CertError::Tls(e.to_string()))?
        .ok_or_else(|| CertError::Tls("no private key in apiserver.key".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CertError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| CertError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Write a kubeconfig for the admin user and return its path.
pub fn write_kubeconfig(
    dir: &Path,
    server_url: &str,
    creds: &Credentials,
) -> Result<PathBuf, CertError> {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(creds.ca_pem.as_bytes());
    let cfg = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kedge\n  cluster:\n    server: {server_url}\n    certificate-authority-data: {ca}\nusers:\n- name: admin\n  user:\n    token: {token}\ncontexts:\n- name: kedge\n  context:\n    cluster: kedge\n    user: admin\n    namespace: default\ncurrent-context: kedge\npreferences: {{}}\n",
        token = creds.admin_token
    );
    let path = dir.join("kubeconfig");
    write_private(&path, &cfg)?;
    Ok(path)
}
