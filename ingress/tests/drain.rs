//! Draining the proxy: the listeners close at once, a request in flight
//! still gets its answer, idle keep-alive connections do not hold the drain
//! up, and the drain ends when the last open request does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kedge_ingress::table::{compile, EndpointRegistry, ObjectKey, Snapshot};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

const HOST: &str = "drain.example";

/// A backend that tells `arrived` of each request and answers it only once
/// the sender it hands over is used (or dropped).
async fn held_backend() -> (SocketAddr, mpsc::Receiver<oneshot::Sender<()>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (arrived, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let arrived = arrived.clone();
            tokio::spawn(async move {
                let mut r = BufReader::new(s);
                loop {
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let (release, released) = oneshot::channel();
                    if arrived.send(release).await.is_err() {
                        return;
                    }
                    let _ = released.await;
                    let body = "done";
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if r.get_mut().write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

/// One Ingress routing `HOST` to `backend`.
fn objects(backend: SocketAddr) -> Snapshot {
    let class: IngressClass = serde_json::from_value(json!({
        "metadata": {"name": "kedge"},
        "spec": {"controller": kedge_ingress::CONTROLLER_NAME}
    }))
    .unwrap();
    let ingress: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "drain", "namespace": "default"},
        "spec": {"ingressClassName": "kedge",
                 "rules": [{"host": HOST, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                     "backend": {"service": {"name": "slow", "port": {"number": 80}}}}]}}]}
    }))
    .unwrap();
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "slow", "namespace": "default"},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": backend.port()}]}
    }))
    .unwrap();
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "slow-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "slow"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": backend.port(), "protocol": "TCP"}],
        "endpoints": [{"addresses": [backend.ip().to_string()], "conditions": {"ready": true}}]
    }))
    .unwrap();
    let mut snap = Snapshot {
        ingresses: vec![Arc::new(ingress)],
        classes: vec![Arc::new(class)],
        services: HashMap::from([(ObjectKey::new("default", "slow"), Arc::new(service))]),
        ..Default::default()
    };
    snap.add_slice(Arc::new(slice));
    snap
}

/// Send one keep-alive GET on `s` and read its answer (status, body).
async fn get(s: &mut BufReader<TcpStream>) -> (String, String) {
    let req = format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    s.get_mut().write_all(req.as_bytes()).await.unwrap();
    let mut status = String::new();
    s.read_line(&mut status).await.unwrap();
    let mut len = 0;
    loop {
        let mut line = String::new();
        s.read_line(&mut line).await.unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; len];
    s.read_exact(&mut body).await.unwrap();
    (status, String::from_utf8(body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_finishes_open_requests_and_refuses_new_connections() {
    let (backend, mut arrived) = held_backend().await;
    let fallback = Arc::new(kedge_ingress::tls::TlsCert::fallback());
    let compiled = compile(
        &objects(backend),
        &Default::default(),
        &EndpointRegistry::default(),
        fallback.clone(),
    );
    assert!(compiled.problems.is_empty(), "{:?}", compiled.problems);
    let routes = kedge_ingress::new_routes(fallback);
    routes.store(Arc::new(compiled.table));
    let listeners = kedge_ingress::Listeners::bind(
        &["127.0.0.1:0".parse().unwrap()],
        &["127.0.0.1:0".parse().unwrap()],
    )
    .unwrap();
    let server = Arc::new(
        kedge_ingress::server::start(
            routes,
            Arc::new(kedge_ingress::Metrics::new()),
            listeners,
            kedge_ingress::ServeOptions {
                threads: 2,
                access_log: false,
                https_port: None,
                mesh: None,
                ..Default::default()
            },
        )
        .unwrap(),
    );
    let (http, https) = (server.http_addrs[0], server.https_addrs[0]);

    // A kept-alive connection, idle when the drain starts.
    let mut idle = BufReader::new(TcpStream::connect(http).await.unwrap());
    let first = tokio::spawn(async move {
        let answer = get(&mut idle).await;
        (answer, idle)
    });
    arrived.recv().await.unwrap().send(()).unwrap();
    let ((status, _), mut idle) = first.await.unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");

    // A request held at the backend while the drain starts.
    let in_flight = tokio::spawn(async move {
        let mut s = BufReader::new(TcpStream::connect(http).await.unwrap());
        get(&mut s).await
    });
    let release = tokio::time::timeout(Duration::from_secs(5), arrived.recv())
        .await
        .expect("the request reaches the backend")
        .unwrap();
    let drained = tokio::spawn({
        let server = server.clone();
        async move { server.drain().await }
    });

    // New connections are refused once the listeners close.
    let refused = |addr| async move {
        for _ in 0..100 {
            if TcpStream::connect(addr).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    };
    assert!(
        refused(http).await,
        "HTTP still accepting after the drain started"
    );
    assert!(
        refused(https).await,
        "HTTPS still accepting after the drain started"
    );

    // The idle keep-alive connection is closed rather than waited for.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the idle connection stays open");
    assert!(
        !drained.is_finished(),
        "the drain ended with a request open"
    );

    // The open request still gets its answer, and the drain then ends.
    release.send(()).unwrap();
    let (status, body) = tokio::time::timeout(Duration::from_secs(5), in_flight)
        .await
        .expect("the open request is answered")
        .unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(body, "done");
    tokio::time::timeout(Duration::from_secs(5), drained)
        .await
        .expect("the drain ends once the open request is done")
        .unwrap();
}
