use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::relay;

/// Bytes that differ by position, so a reordered or lost chunk shows.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 12) as u8))
        .collect()
}

/// A client, the relay and a server on loopback; the relay's own two
/// sockets are the accepted client connection and its connection onward.
async fn relayed(
    server: impl FnOnce(TcpStream) -> tokio::task::JoinHandle<()>,
) -> (
    TcpStream,
    tokio::task::JoinHandle<std::io::Result<(u64, u64)>>,
) {
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_addr: SocketAddr = upstream.local_addr().unwrap();
    let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front_addr = front.local_addr().unwrap();
    let relay_task = tokio::spawn(async move {
        let (client_side, _) = front.accept().await.unwrap();
        let server_side = TcpStream::connect(upstream_addr).await.unwrap();
        relay(&client_side, &server_side).await
    });
    let client = TcpStream::connect(front_addr).await.unwrap();
    let (accepted, _) = upstream.accept().await.unwrap();
    server(accepted);
    (client, relay_task)
}

#[tokio::test]
async fn bulk_both_ways_with_a_half_close_in_between() {
    let request = pattern(5 * 1024 * 1024 + 123, 7);
    let answer = pattern(3 * 1024 * 1024 + 45, 11);
    let (expected_request, served) = (request.clone(), answer.clone());
    let (mut client, relay_task) = relayed(move |mut socket| {
        tokio::spawn(async move {
            // Read to the end first: the client's FIN must come through.
            let mut got = Vec::new();
            socket.read_to_end(&mut got).await.unwrap();
            assert!(
                got == expected_request,
                "the request arrived whole and in order"
            );
            socket.write_all(&served).await.unwrap();
        })
    })
    .await;
    client.write_all(&request).await.unwrap();
    client.shutdown().await.unwrap();
    let mut got = Vec::new();
    client.read_to_end(&mut got).await.unwrap();
    assert!(got == answer, "the answer arrived whole and in order");
    let (to_server, to_client) = relay_task.await.unwrap().unwrap();
    assert_eq!(to_server, request.len() as u64);
    assert_eq!(to_client, answer.len() as u64);
}

#[tokio::test]
async fn small_exchanges_stay_in_the_buffer() {
    let (mut client, relay_task) = relayed(|mut socket| {
        tokio::spawn(async move {
            let mut buf = [0u8; 5];
            for _ in 0..3 {
                socket.read_exact(&mut buf).await.unwrap();
                socket.write_all(&buf).await.unwrap();
            }
        })
    })
    .await;
    for word in ["hello", "again", "third"] {
        client.write_all(word.as_bytes()).await.unwrap();
        let mut buf = [0u8; 5];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, word.as_bytes());
    }
    drop(client);
    let (to_server, to_client) = relay_task.await.unwrap().unwrap();
    assert_eq!((to_server, to_client), (15, 15));
}

#[tokio::test]
async fn a_reset_ends_the_relay() {
    let (client, relay_task) = relayed(|mut socket| {
        tokio::spawn(async move {
            // Keep sending until the relay goes away.
            let chunk = pattern(64 * 1024, 3);
            while socket.write_all(&chunk).await.is_ok() {}
        })
    })
    .await;
    let mut client = client;
    let mut buf = vec![0u8; 256 * 1024];
    client.read_exact(&mut buf).await.unwrap();
    client.set_zero_linger().unwrap();
    drop(client);
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), relay_task).await;
    assert!(ended.is_ok(), "the relay ends once the client is gone");
}
