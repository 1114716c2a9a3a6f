use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite};

use kedge_control::apiserver::certs::MeshCa;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::mesh::identity::{spiffe_id, WorkloadCertificate};
use crate::mesh::testing::issue;
use crate::mesh::tls::{client_config, server_config};

/// A TCP server that echoes each connection back.
async fn echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = socket.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// A destination proxy presenting `server`'s identity, refusing
/// `spiffe://…/sa/denied`.
async fn destination_proxy(ca: &MeshCa, server: &WorkloadCertificate) -> SocketAddr {
    let config = server_config(server, ca.pem()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let config = config.clone();
            tokio::spawn(serve_connection(
                tcp,
                config,
                |caller, _| !caller.ends_with("/sa/denied"),
                host_connector(),
            ));
        }
    });
    addr
}

async fn ping(stream: &mut (impl AsyncRead + AsyncWrite + Unpin), text: &str) -> String {
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; text.len()];
    stream.read_exact(&mut buf).await.unwrap();
    String::from_utf8(buf).unwrap()
}

#[tokio::test]
async fn connections_cross_one_mutual_tls_session_as_streams() {
    let dir = tempfile::tempdir().unwrap();
    let ca = MeshCa::ensure(dir.path()).unwrap();
    let (client, server) = (issue(&ca, "client"), issue(&ca, "server"));
    let proxy = destination_proxy(&ca, &server).await;
    let target = echo().await;
    let config = client_config(&client, ca.pem(), vec![server.spiffe_id.clone()]).unwrap();
    let (tunnel, driver) = TunnelClient::connect(proxy, config).await.unwrap();
    tokio::spawn(driver);
    // Two connections at once on the one session.
    let (mut a, mut b) = (tunnel.clone(), tunnel.clone());
    let (mut first, mut second) = (a.open(target).await.unwrap(), b.open(target).await.unwrap());
    assert_eq!(ping(&mut first, "first").await, "first");
    assert_eq!(ping(&mut second, "second").await, "second");
    // A bigger transfer, both ways at once.
    let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let (mut reader, mut writer) = tokio::io::split(first);
    let sent = payload.clone();
    let write = tokio::spawn(async move { writer.write_all(&sent).await.unwrap() });
    let mut back = vec![0u8; payload.len()];
    reader.read_exact(&mut back).await.unwrap();
    write.await.unwrap();
    assert!(back == payload, "the bytes came back whole and in order");
}

#[tokio::test]
async fn the_destination_refuses_callers_the_policy_denies_and_unreachable_destinations() {
    let dir = tempfile::tempdir().unwrap();
    let ca = MeshCa::ensure(dir.path()).unwrap();
    let (denied, server) = (issue(&ca, "denied"), issue(&ca, "server"));
    let proxy = destination_proxy(&ca, &server).await;
    let target = echo().await;
    let config = client_config(&denied, ca.pem(), vec![server.spiffe_id.clone()]).unwrap();
    let (mut tunnel, driver) = TunnelClient::connect(proxy, config).await.unwrap();
    tokio::spawn(driver);
    match tunnel.open(target).await {
        Err(TunnelError::Refused(code)) => assert_eq!(code, StatusCode::UNAUTHORIZED),
        Err(other) => panic!("expected a 401, got {other}"),
        Ok(_) => panic!("expected a 401, got a stream"),
    }

    let client = issue(&ca, "client");
    let config = client_config(&client, ca.pem(), vec![server.spiffe_id.clone()]).unwrap();
    let (mut tunnel, driver) = TunnelClient::connect(proxy, config).await.unwrap();
    tokio::spawn(driver);
    // Nothing listens there.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    match tunnel.open(closed).await {
        Err(TunnelError::Refused(code)) => assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE),
        Err(other) => panic!("expected a 503, got {other}"),
        Ok(_) => panic!("expected a 503, got a stream"),
    }
}

#[tokio::test]
async fn a_client_expecting_another_workload_never_sends_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let ca = MeshCa::ensure(dir.path()).unwrap();
    let (client, server) = (issue(&ca, "client"), issue(&ca, "server"));
    let proxy = destination_proxy(&ca, &server).await;
    let config = client_config(
        &client,
        ca.pem(),
        vec![spiffe_id("cluster.local", "team", "payments")],
    )
    .unwrap();
    assert!(matches!(
        TunnelClient::connect(proxy, config).await,
        Err(TunnelError::Io(_))
    ));
}
