use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::time::Duration;

use kedge_control::apiserver::certs::MeshCa;
use rustls::pki_types::ServerName;

use super::*;
use crate::mesh::identity::spiffe_id;
use crate::mesh::testing::issue;

/// One exchange: the server echoes what it reads, prefixed with the
/// caller's identity as its certificate says; the client's result, and
/// the server's view of the caller (or its error).
fn exchange(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
) -> (std::io::Result<String>, Result<String, String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let served = std::thread::spawn(move || -> Result<String, String> {
        let (socket, _) = listener.accept().map_err(|e| e.to_string())?;
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let conn = rustls::ServerConnection::new(server).map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, socket);
        let mut hello = [0u8; 5];
        tls.read_exact(&mut hello).map_err(|e| e.to_string())?;
        let caller = tls
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(spiffe_id_of)
            .ok_or("no caller identity")?;
        tls.write_all(caller.as_bytes())
            .map_err(|e| e.to_string())?;
        tls.conn.send_close_notify();
        let _ = tls.flush();
        Ok(caller)
    });
    let result = (|| {
        let socket = TcpStream::connect(addr)?;
        socket.set_read_timeout(Some(Duration::from_secs(5)))?;
        let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
        let conn = rustls::ClientConnection::new(client, name).map_err(std::io::Error::other)?;
        let mut tls = rustls::StreamOwned::new(conn, socket);
        tls.write_all(b"hello")?;
        let mut answer = String::new();
        tls.read_to_string(&mut answer)?;
        assert_eq!(tls.conn.alpn_protocol(), Some(&b"h2"[..]));
        Ok(answer)
    })();
    (result, served.join().unwrap())
}

#[test]
fn workloads_of_one_mesh_authenticate_each_other_by_spiffe_id() {
    let dir = tempfile::tempdir().unwrap();
    let ca = MeshCa::ensure(dir.path()).unwrap();
    let (client, server) = (issue(&ca, "client"), issue(&ca, "server"));
    let (answer, caller) = exchange(
        server_config(&server, ca.pem()).unwrap(),
        client_config(&client, ca.pem(), vec![server.spiffe_id.clone()]).unwrap(),
    );
    assert_eq!(answer.unwrap(), "spiffe://cluster.local/ns/team/sa/client");
    assert_eq!(caller.unwrap(), client.spiffe_id);
}

#[test]
fn a_server_with_another_identity_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = MeshCa::ensure(dir.path()).unwrap();
    let (client, impostor) = (issue(&ca, "client"), issue(&ca, "impostor"));
    let expected = spiffe_id("cluster.local", "team", "server");
    let (answer, served) = exchange(
        server_config(&impostor, ca.pem()).unwrap(),
        client_config(&client, ca.pem(), vec![expected]).unwrap(),
    );
    let error = answer.unwrap_err().to_string();
    assert!(
        error.contains("the peer is spiffe://cluster.local/ns/team/sa/impostor"),
        "{error}"
    );
    assert!(served.is_err());
}

#[test]
fn a_client_of_another_mesh_is_refused() {
    let (ours, theirs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ca = MeshCa::ensure(ours.path()).unwrap();
    let other = MeshCa::ensure(theirs.path()).unwrap();
    let server = issue(&ca, "server");
    let stranger = issue(&other, "client");
    let (answer, served) = exchange(
        server_config(&server, ca.pem()).unwrap(),
        // The stranger trusts our CA, but its own certificate is not ours.
        client_config(&stranger, ca.pem(), vec![server.spiffe_id.clone()]).unwrap(),
    );
    assert!(answer.is_err());
    let error = served.unwrap_err();
    // Both CAs are called kedge-mesh-ca: the chain is found by name and
    // fails on the signature.
    assert!(error.contains("invalid peer certificate"), "{error}");
}

#[test]
fn bad_pem_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let ca = MeshCa::ensure(dir.path()).unwrap();
    let server = issue(&ca, "server");
    assert!(matches!(
        server_config(&server, "not a bundle"),
        Err(MeshTlsError::Pem(_))
    ));
    let mut broken = issue(&ca, "client");
    broken.key_pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into();
    assert!(client_config(&broken, ca.pem(), vec![]).is_err());
}
