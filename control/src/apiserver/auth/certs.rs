//! The cluster's credentials: a CA and a serving certificate made with rcgen
//! on first start and kept in the data dir, client certificates signed by
//! the CA for the admins and each component (made anew at every start, valid
//! a year, as kubeadm's), and the kubeconfigs that carry them.

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

/// The API server's credentials.
pub struct Credentials {
    /// PEM of the cluster CA certificate.
    pub ca_pem: String,
    /// PEM of the serving certificate.
    pub cert_pem: String,
    /// PEM of the serving key.
    pub key_pem: String,
}

/// The admins' user, in the group bound to `cluster-admin` (kubeadm's
/// `admin.conf`).
pub const ADMIN: (&str, &[&str]) = ("kubernetes-admin", &["kubeadm:cluster-admins"]);
/// The break-glass superuser, in `system:masters` (kubeadm's
/// `super-admin.conf`): works even when RBAC bindings are broken.
pub const SUPER_ADMIN: (&str, &[&str]) = ("kubernetes-super-admin", &["system:masters"]);

/// How long client certificates are valid (kubeadm's one year).
const CLIENT_CERT_DAYS: i64 = 365;

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

fn mesh_ca_params() -> CertificateParams {
    let mut params = ca_params();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "kedge-mesh-ca");
    params.distinguished_name = dn;
    params
}

/// The mesh's CA: it signs workload certificates (SPIFFE identities) and
/// nothing else. It is kept apart from the cluster CA on purpose: the API
/// server trusts the cluster CA's client certificates, and a workload's
/// certificate must never be a way into the API.
pub struct MeshCa {
    key: KeyPair,
    pem: String,
}

impl MeshCa {
    /// The mesh CA of `dir` (`mesh-ca.crt`, `mesh-ca.key`), made if missing.
    pub fn ensure(dir: &Path) -> Result<MeshCa, CertError> {
        let crt = dir.join("mesh-ca.crt");
        let key_path = dir.join("mesh-ca.key");
        if crt.exists() && key_path.exists() {
            return Ok(MeshCa {
                key: KeyPair::from_pem(&read(&key_path)?)?,
                pem: read(&crt)?,
            });
        }
        let key = KeyPair::generate()?;
        let cert = mesh_ca_params().self_signed(&key)?;
        write_private(&key_path, &key.serialize_pem())?;
        write_private(&crt, &cert.pem())?;
        Ok(MeshCa {
            key,
            pem: cert.pem(),
        })
    }

    /// The CA certificate (PEM): the trust bundle of the mesh.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A workload certificate for the public key of the request `pem`:
    /// `spiffe_id` its one name (a URI SAN, no subject), usable for both
    /// ends of mutual TLS, valid from now for `seconds`. Only the request's
    /// key is taken from it; everything else is the signer's.
    pub fn sign_workload(
        &self,
        pem: &str,
        spiffe_id: &str,
        seconds: i64,
    ) -> Result<String, CertError> {
        let mut csr = rcgen::CertificateSigningRequestParams::from_pem(pem)?;
        let uri = rcgen::string::Ia5String::try_from(spiffe_id)?;
        let params = &mut csr.params;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::seconds((seconds / 4).min(300));
        params.not_after = now + time::Duration::seconds(seconds);
        params.is_ca = IsCa::NoCa;
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.custom_extensions.clear();
        let issuer = Issuer::new(mesh_ca_params(), &self.key);
        Ok(csr.signed_by(&issuer)?.pem())
    }
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
    /// groups `organizations`, valid from now for a year.
    pub fn sign_client(
        &self,
        common_name: &str,
        organizations: &[&str],
    ) -> Result<(String, String), CertError> {
        self.sign_client_valid(common_name, organizations, CLIENT_CERT_DAYS * 24 * 3600)
    }

    /// Sign a client certificate valid from now for `seconds` (backdated
    /// a little, as the cluster's signer does).
    pub fn sign_client_valid(
        &self,
        common_name: &str,
        organizations: &[&str],
        seconds: i64,
    ) -> Result<(String, String), CertError> {
        let now = time::OffsetDateTime::now_utc();
        let from = now - time::Duration::seconds((seconds / 4).min(300));
        let until = now + time::Duration::seconds(seconds);
        self.sign_client_for(common_name, organizations, from, until)
    }

    /// Sign a client certificate valid between two times.
    pub fn sign_client_for(
        &self,
        common_name: &str,
        organizations: &[&str],
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
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
        params.not_before = not_before;
        params.not_after = not_after;
        let key = KeyPair::generate()?;
        let issuer = Issuer::new(ca_params(), &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

impl ClusterCa {
    /// The CA of an existing data dir, with its certificate (PEM).
    pub fn load(dir: &Path) -> Result<(ClusterCa, String), CertError> {
        let key = KeyPair::from_pem(&read(&dir.join("ca.key"))?)?;
        Ok((ClusterCa { key }, read(&dir.join("ca.crt"))?))
    }
}

/// The names every serving certificate of the API server covers.
const SERVING_NAMES: [&str; 5] = [
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

/// Load the credentials from `dir`, making whatever is missing. The serving
/// certificate covers `localhost`, `kubernetes.default.svc…`, `dns` and
/// `ips`; one kept from an earlier start that lacks any of them (a
/// control-plane endpoint or extra name given since) is issued anew, as
/// the CA is the same.
pub fn ensure(
    dir: &Path,
    dns: &[String],
    ips: &[IpAddr],
) -> Result<(Credentials, ClusterCa), CertError> {
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

    let mut names: Vec<&str> = SERVING_NAMES.to_vec();
    for name in dns {
        if !names.contains(&name.as_str()) {
            names.push(name);
        }
    }
    let server_crt = dir.join("apiserver.crt");
    let server_key = dir.join("apiserver.key");
    let kept = if server_crt.exists() && server_key.exists() {
        let cert = read(&server_crt)?;
        let missing = missing_names(&cert, &names, ips);
        if missing.is_empty() {
            Some((cert, read(&server_key)?))
        } else {
            tracing::info!(
                ?missing,
                "the API server's certificate lacks names; issuing a new one"
            );
            None
        }
    } else {
        None
    };
    let (cert_pem, key_pem) = match kept {
        Some(kept) => kept,
        None => {
            let (c, k) = ca.sign_serving(&names, ips)?;
            write_private(&server_key, &k)?;
            write_private(&server_crt, &c)?;
            (c, k)
        }
    };

    Ok((
        Credentials {
            ca_pem,
            cert_pem,
            key_pem,
        },
        ca,
    ))
}

/// The names and addresses of `dns` and `ips` that the certificate `pem`
/// does not list among its subject alternative names (all of them when it
/// does not parse).
fn missing_names(pem: &str, dns: &[&str], ips: &[IpAddr]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let mut have_dns = Vec::new();
    let mut have_ips = Vec::new();
    if let Ok((_, block)) = x509_parser::pem::parse_x509_pem(pem.as_bytes()) {
        if let Ok(cert) = block.parse_x509() {
            if let Ok(Some(san)) = cert.subject_alternative_name() {
                for name in &san.value.general_names {
                    match name {
                        GeneralName::DNSName(d) => have_dns.push(d.to_string()),
                        GeneralName::IPAddress(b) => have_ips.push(b.to_vec()),
                        _ => {}
                    }
                }
            }
        }
    }
    let ip_bytes = |ip: &IpAddr| match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    dns.iter()
        .filter(|d| !have_dns.iter().any(|h| h.eq_ignore_ascii_case(d)))
        .map(|d| d.to_string())
        .chain(
            ips.iter()
                .filter(|ip| !have_ips.contains(&ip_bytes(ip)))
                .map(IpAddr::to_string),
        )
        .collect()
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
    // Client certificates are asked for, not required: a request without
    // one authenticates with a token or is anonymous.
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls_pemfile::certs(&mut creds.ca_pem.as_bytes()) {
        let ca = ca.map_err(|e| CertError::Tls(e.to_string()))?;
        roots
            .add(ca)
            .map_err(|e| CertError::Tls(format!("cluster CA: {e}")))?;
    }
    let clients = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| CertError::Tls(e.to_string()))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CertError::Tls(e.to_string()))?
        .with_client_cert_verifier(clients)
        .with_single_cert(certs, key)
        .map_err(|e| CertError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A kubeconfig for a user authenticating with a client certificate.
pub fn kubeconfig(
    server_url: &str,
    ca_pem: &str,
    user: &str,
    cert_pem: &str,
    key_pem: &str,
) -> String {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kedge\n  cluster:\n    server: {server_url}\n    certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\ncontexts:\n- name: kedge\n  context:\n    cluster: kedge\n    user: {user}\n    namespace: default\ncurrent-context: kedge\npreferences: {{}}\n",
        ca = b64(ca_pem),
        cert = b64(cert_pem),
        key = b64(key_pem),
    )
}

impl ClusterCa {
    /// Sign a client certificate for `user` in `groups` and write a
    /// kubeconfig carrying it to `dir/file` (0600); returns its path.
    pub fn write_kubeconfig(
        &self,
        dir: &Path,
        file: &str,
        server_url: &str,
        ca_pem: &str,
        (user, groups): (&str, &[&str]),
    ) -> Result<PathBuf, CertError> {
        let (cert, key) = self.sign_client(user, groups)?;
        let path = dir.join(file);
        write_private(&path, &kubeconfig(server_url, ca_pem, user, &cert, &key))?;
        Ok(path)
    }
}

/// What a certificate signing request (PKCS#10, PEM) asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrInfo {
    /// The subject's common name.
    pub common_name: String,
    /// The subject's organizations.
    pub organizations: Vec<String>,
    /// DNS names asked for.
    pub dns_names: Vec<String>,
    /// IP addresses asked for.
    pub ip_addresses: Vec<IpAddr>,
    /// Email addresses, URIs and other names asked for (no signer of the
    /// API allows them in client certificates).
    pub other_names: usize,
    /// Of those, the URIs (a workload's SPIFFE ID).
    pub uris: Vec<String>,
}

impl CsrInfo {
    /// Parse a PEM request and check its signature.
    pub fn parse(pem: &[u8]) -> Result<CsrInfo, String> {
        use x509_parser::extensions::{GeneralName, ParsedExtension};
        use x509_parser::prelude::FromDer;
        let (_, block) =
            x509_parser::pem::parse_x509_pem(pem).map_err(|e| format!("not PEM: {e}"))?;
        if block.label != "CERTIFICATE REQUEST" {
            return Err(format!(
                "PEM block type must be CERTIFICATE REQUEST, not {}",
                block.label
            ));
        }
        let (_, csr) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&block.contents)
                .map_err(|e| format!("not a certificate request: {e}"))?;
        csr.verify_signature()
            .map_err(|e| format!("the request's signature does not verify: {e}"))?;
        let subject = &csr.certification_request_info.subject;
        let mut info = CsrInfo {
            common_name: subject
                .iter_common_name()
                .next()
                .and_then(|c| c.as_str().ok())
                .unwrap_or("")
                .to_string(),
            organizations: subject
                .iter_organization()
                .filter_map(|o| o.as_str().ok().map(str::to_string))
                .collect(),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            other_names: 0,
            uris: Vec::new(),
        };
        for ext in csr.requested_extensions().into_iter().flatten() {
            if let ParsedExtension::SubjectAlternativeName(san) = ext {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(d) => info.dns_names.push(d.to_string()),
                        GeneralName::IPAddress(b) => match b.len() {
                            4 => info
                                .ip_addresses
                                .push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default())),
                            16 => info
                                .ip_addresses
                                .push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default())),
                            _ => info.other_names += 1,
                        },
                        GeneralName::URI(uri) => {
                            info.uris.push(uri.to_string());
                            info.other_names += 1;
                        }
                        _ => info.other_names += 1,
                    }
                }
            }
        }
        Ok(info)
    }
}

impl ClusterCa {
    /// Issue the certificate a request asks for, with these key usages
    /// (Kubernetes' names: `digital signature`, `client auth`, …), valid
    /// from now for `seconds`.
    pub fn sign_request(
        &self,
        pem: &str,
        usages: &[&str],
        seconds: i64,
    ) -> Result<String, CertError> {
        let mut csr = rcgen::CertificateSigningRequestParams::from_pem(pem)?;
        let params = &mut csr.params;
        let now = time::OffsetDateTime::now_utc();
        // Back five minutes for clocks a little behind, as Kubernetes'
        // signer (less for short certificates, whose renewal is timed from
        // the start of their validity).
        params.not_before = now - time::Duration::seconds((seconds / 4).min(300));
        params.not_after = now + time::Duration::seconds(seconds);
        params.is_ca = IsCa::NoCa;
        params.key_usages = usages
            .iter()
            .filter_map(|u| match *u {
                "digital signature" => Some(KeyUsagePurpose::DigitalSignature),
                "key encipherment" => Some(KeyUsagePurpose::KeyEncipherment),
                "content commitment" => Some(KeyUsagePurpose::ContentCommitment),
                "data encipherment" => Some(KeyUsagePurpose::DataEncipherment),
                "key agreement" => Some(KeyUsagePurpose::KeyAgreement),
                _ => None,
            })
            .collect();
        params.extended_key_usages = usages
            .iter()
            .filter_map(|u| match *u {
                "client auth" => Some(ExtendedKeyUsagePurpose::ClientAuth),
                "server auth" => Some(ExtendedKeyUsagePurpose::ServerAuth),
                _ => None,
            })
            .collect();
        let issuer = Issuer::new(ca_params(), &self.key);
        Ok(csr.signed_by(&issuer)?.pem())
    }
}

/// `sha256:<hex>` of a CA certificate's SubjectPublicKeyInfo: the
/// `--discovery-token-ca-cert-hash` of `join`, as kubeadm computes it.
pub fn public_key_hash(ca_pem: &str) -> Result<String, CertError> {
    let (_, block) = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes())
        .map_err(|e| CertError::Tls(format!("CA certificate: {e}")))?;
    let cert = block
        .parse_x509()
        .map_err(|e| CertError::Tls(format!("CA certificate: {e}")))?;
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.tbs_certificate.subject_pki.raw);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("sha256:{hex}"))
}

/// When a PEM certificate's validity begins and ends, in seconds since the
/// epoch.
pub fn validity(pem: &str) -> Option<(i64, i64)> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    let cert = block.parse_x509().ok()?;
    let v = cert.validity();
    Some((v.not_before.timestamp(), v.not_after.timestamp()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_serving_certificate_is_issued_anew_for_names_it_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let local = [IpAddr::from([127, 0, 0, 1])];
        let (first, _) = ensure(dir.path(), &[], &local).unwrap();
        let (again, _) = ensure(dir.path(), &[], &local).unwrap();
        assert_eq!(first.cert_pem, again.cert_pem, "kept while it covers all");
        assert!(missing_names(&first.cert_pem, &SERVING_NAMES, &local).is_empty());

        let vip = IpAddr::from([10, 0, 0, 100]);
        let endpoint = vec!["api.example.test".to_string()];
        assert_eq!(
            missing_names(&first.cert_pem, &["api.example.test"], &[vip]),
            ["api.example.test", "10.0.0.100"]
        );
        let (wider, _) = ensure(dir.path(), &endpoint, &[local[0], vip]).unwrap();
        assert_ne!(first.cert_pem, wider.cert_pem);
        assert!(missing_names(&wider.cert_pem, &["API.example.test"], &[vip]).is_empty());
        assert_eq!(first.ca_pem, wider.ca_pem, "the same CA signs it");
    }
}
