//! `kedge server` on SIGTERM: it stops accepting connections, ends its
//! watches (clients resume them elsewhere), lets the requests in flight
//! finish — a write whose body is still arriving is answered and kept —
//! and exits by itself well within its grace period. `kedge up`'s node
//! proxy likewise finishes the connections it carries.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use common::{eventually, Cluster};

/// A TLS connection to the API server, trusting the cluster CA and
/// authenticating with the admin kubeconfig's client certificate.
fn connect(c: &Cluster) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let kubeconfig = kube::config::Kubeconfig::read_from(c.kubeconfig()).unwrap();
    let cluster = kubeconfig.clusters[0].cluster.as_ref().unwrap();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).unwrap();
    let ca = b64(cluster.certificate_authority_data.as_ref().unwrap());
    // The admin's client certificate and key, as the kubeconfig holds them.
    let text = std::fs::read_to_string(c.kubeconfig()).unwrap();
    let field = |name: &str| {
        b64(text
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .expect("the admin kubeconfig holds a client certificate"))
    };
    let cert = field("client-certificate-data: ");
    let key = field("client-key-data: ");
    let chain: Vec<_> = rustls_pemfile::certs(&mut cert.as_slice())
        .map(Result::unwrap)
        .collect();
    let key = rustls_pemfile::private_key(&mut key.as_slice())
        .unwrap()
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(addr(c)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    // Handshake now, before the server drains.
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    tls
}

fn addr(c: &Cluster) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], c.port()))
}

/// Read until `needle` shows up in what was read (or the stream ends).
fn read_until(stream: &mut impl Read, needle: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(needle) {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn sigterm_drains_the_api_server() {
    let mut c = Cluster::start();

    // A watch, open when the signal comes.
    let mut watch = connect(&c);
    write!(
        watch,
        "GET /api/v1/namespaces/default/configmaps?watch=true HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    )
    .unwrap();
    let head = read_until(&mut watch, "\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    // A create whose body is only half sent when the signal comes.
    let body = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"in-flight"},"data":{"a":"b"}}"#;
    let (first, rest) = body.split_at(body.len() / 2);
    let mut create = connect(&c);
    write!(
        create,
        "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{first}",
        body.len()
    )
    .unwrap();
    create.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));

    c.sigterm();
    // New connections are refused once the listener is closed.
    assert!(
        eventually(Duration::from_secs(10), || TcpStream::connect(addr(&c))
            .is_err()),
        "the server still accepts connections while draining"
    );
    // The watch ends: the chunked stream's last chunk arrives.
    let rest_of_watch = read_until(&mut watch, "0\r\n\r\n");
    assert!(rest_of_watch.ends_with("0\r\n\r\n"), "{rest_of_watch:?}");

    // The request in flight is answered, and the connection closes.
    create.write_all(rest.as_bytes()).unwrap();
    create.flush().unwrap();
    let answer = read_until(&mut create, "\"in-flight\"");
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );

    // Nothing is left open: the server exits by itself, well inside its
    // 30-second grace period, and successfully.
    let status = c
        .wait_exit(Duration::from_secs(20))
        .expect("exited while draining");
    assert!(status.success(), "{status:?}");

    // The acknowledged write is kept.
    c.restart();
    let data = c.kubectl(&["get", "configmap", "in-flight", "-o", "jsonpath={.data.a}"]);
    assert_eq!(data, "b");
}

/// `kedge up` on SIGTERM with its node's service proxy (userspace, the
/// default) carrying a connection: the proxy stops taking new ones, the
/// open one goes on carrying requests, and once it is closed the process
/// exits by itself, well inside its grace period.
#[test]
fn sigterm_lets_the_node_proxy_finish_the_connections_it_carries() {
    let echo = common::images::echo();
    let mut c = Cluster::up();
    let node = c.node.clone().unwrap();
    c.apply(&format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: echo
        image: {echo}
        env: [{{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}]
        readinessProbe:
          httpGet: {{path: /readyz, port: 8080}}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
"#
    ));
    c.kubectl(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    let node_port = c.kubectl(&[
        "get",
        "svc",
        "web",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    let addr: SocketAddr = format!("{}:{node_port}", node.address()).parse().unwrap();
    // One kept-alive connection through the proxy, answering.
    let ask = |s: &mut TcpStream| -> String {
        s.write_all(b"GET /kept HTTP/1.1\r\nHost: web\r\n\r\n")
            .unwrap();
        read_until(s, "}\n")
    };
    let mut open = None;
    assert!(
        eventually(Duration::from_secs(60), || {
            let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
                return false;
            };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let answered = ask(&mut s).starts_with("HTTP/1.1 200");
            if answered {
                open = Some(s);
            }
            answered
        }),
        "the NodePort answers"
    );
    let mut open = open.unwrap();

    c.sigterm();
    // No new connection is taken once the proxy drains.
    assert!(
        eventually(Duration::from_secs(10), || {
            TcpStream::connect_timeout(&addr, Duration::from_secs(1))
                .and_then(|mut s| {
                    s.set_read_timeout(Some(Duration::from_secs(2)))?;
                    s.write_all(b"GET /new HTTP/1.1\r\nHost: web\r\n\r\n")?;
                    let mut buf = [0u8; 1];
                    s.read(&mut buf)
                })
                .map_or(true, |n| n == 0)
        }),
        "the node's proxy still takes connections while draining"
    );
    // The open one still carries requests, seconds after the signal.
    std::thread::sleep(Duration::from_secs(2));
    let answer = ask(&mut open);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        c.wait_exit(Duration::from_secs(1)).is_none(),
        "exited with a connection still open"
    );

    // Closed: nothing is left, and the process ends by itself.
    drop(open);
    let status = c
        .wait_exit(Duration::from_secs(25))
        .expect("exited once the connection closed");
    assert!(status.success(), "{status:?}");
}
