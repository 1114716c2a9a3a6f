//! HTTP and HTTPS as a user's curl speaks them, for tests of what answers
//! on a node's ports (the ingress controller, NodePorts), and the TLS
//! material a user would make for an Ingress.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use super::Cluster;

/// One HTTP/1.1 exchange on a fresh connection, read to the end.
pub fn http(addr: SocketAddr, host: &str, path: &str) -> Option<(u16, String, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    split(&buf)
}

pub fn split(raw: &[u8]) -> Option<(u16, String, String)> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, head.to_string(), body.to_string()))
}

pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The echo pod's JSON answer.
pub fn echoed(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

/// GET over TLS with `sni`, trusting only `ca_pem`: the status, body and
/// the server's certificate (DER).
pub fn https(
    addr: SocketAddr,
    sni: &str,
    ca_pem: &str,
    path: &str,
) -> Option<(u16, String, Vec<u8>)> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert.ok()?).ok()?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .ok()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).ok()?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name).ok()?;
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    // The server closes without close_notify sometimes; what was read counts.
    let _ = tls.read_to_end(&mut buf);
    let cert = tls.conn.peer_certificates()?.first()?.to_vec();
    let (status, _, body) = split(&buf)?;
    Some((status, body, cert))
}

/// A CA (PEM) and a certificate for `host` it signed, with its key.
pub struct Pki {
    /// The CA's certificate (PEM).
    pub ca_pem: String,
    /// The certificate (PEM).
    pub cert_pem: String,
    /// The certificate (DER), to compare with what a server presents.
    pub cert_der: Vec<u8>,
    /// The certificate's key (PEM).
    pub key_pem: String,
}

pub fn pki(host: &str) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ingress test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![host.to_string()])
        .unwrap()
        .signed_by(&key, &rcgen::Issuer::new(ca_params, ca_key))
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        key_pem: key.serialize_pem(),
    }
}

/// `kubectl create secret tls` in `luffy` from files, replacing any Secret
/// of that name.
pub fn tls_secret(c: &Cluster, dir: &std::path::Path, name: &str, p: &Pki) {
    let (crt, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&crt, &p.cert_pem).unwrap();
    std::fs::write(&key, &p.key_pem).unwrap();
    let yaml = c.kubectl(&[
        "-n",
        "luffy",
        "create",
        "secret",
        "tls",
        name,
        "--cert",
        crt.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--dry-run=client",
        "-o",
        "yaml",
    ]);
    c.apply(&yaml);
}
