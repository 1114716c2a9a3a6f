//! Requests over one connection, spread over endpoints on loopback: each
//! endpoint a small HTTP server answering its own name (or always 503).

use std::collections::BTreeMap;

use hyper::body::Incoming;
use tokio::net::TcpListener;

use super::*;
use crate::table::HttpVersion;

/// An HTTP/1.1 and HTTP/2 server on loopback answering `name` (or
/// `status`, when not 200); its address.
async fn endpoint(name: &'static str, status: StatusCode) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_: Request<Incoming>| async move {
                    let mut response = Response::new(Full::new(Bytes::from(name)));
                    *response.status_mut() = status;
                    Ok::<_, std::convert::Infallible>(response)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

fn dial_loopback() -> Dial {
    Arc::new(|endpoint| {
        Box::pin(async move {
            let tcp = TcpStream::connect(endpoint).await?;
            Ok(Box::new(tcp) as Box<dyn Io>)
        })
    })
}

/// The node proxy's side: a listener whose connections are served along a
/// route over `endpoints`; its address and the outcomes seen.
async fn proxy(
    endpoints: Vec<SocketAddr>,
    retries: u32,
) -> (SocketAddr, Arc<Mutex<Vec<(StatusCode, u32)>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let balancer = Arc::new(RequestBalancer::default());
    let clients = HttpClients::new(dial_loopback());
    let seen = outcomes.clone();
    let endpoints: Arc<[SocketAddr]> = endpoints.into();
    tokio::spawn(async move {
        while let Ok((app, _)) = listener.accept().await {
            let endpoints = endpoints.clone();
            let seen = seen.clone();
            let route = Arc::new(Route {
                endpoints: Box::new(move || endpoints.clone()),
                port: HttpPort {
                    version: HttpVersion::Http1,
                    timeout: Some(Duration::from_secs(5)),
                    retries,
                },
                balancer: balancer.clone(),
                clients: clients.clone(),
                done: Box::new(move |o: &Outcome, _| seen.lock().push((o.status, o.retries))),
            });
            tokio::spawn(serve(app, route));
        }
    });
    (addr, outcomes)
}

/// `count` GETs on one connection of the given version; the bodies.
async fn requests(proxy: SocketAddr, http2: bool, count: usize) -> Vec<(StatusCode, String)> {
    let tcp = TokioIo::new(TcpStream::connect(proxy).await.unwrap());
    let mut out = Vec::new();
    if http2 {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), tcp)
                .await
                .unwrap();
        tokio::spawn(connection);
        for _ in 0..count {
            let request = Request::get("http://web/")
                .body(Empty::<Bytes>::new())
                .unwrap();
            let response = sender.send_request(request).await.unwrap();
            let status = response.status();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            out.push((status, String::from_utf8_lossy(&body).to_string()));
        }
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(tcp).await.unwrap();
        tokio::spawn(connection);
        for _ in 0..count {
            sender.ready().await.unwrap();
            let request = Request::get("/")
                .header("host", "web")
                .body(Empty::<Bytes>::new())
                .unwrap();
            let response = sender.send_request(request).await.unwrap();
            let status = response.status();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            out.push((status, String::from_utf8_lossy(&body).to_string()));
        }
    }
    out
}

fn spread(answers: &[(StatusCode, String)]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (_, body) in answers {
        *out.entry(body.clone()).or_default() += 1;
    }
    out
}

#[tokio::test]
async fn requests_of_one_connection_spread_over_the_endpoints_in_both_versions() {
    let endpoints = vec![
        endpoint("a", StatusCode::OK).await,
        endpoint("b", StatusCode::OK).await,
        endpoint("c", StatusCode::OK).await,
    ];
    let (proxy, _) = proxy(endpoints, 2).await;
    for http2 in [false, true] {
        let answers = requests(proxy, http2, 60).await;
        assert!(
            answers.iter().all(|(s, _)| *s == StatusCode::OK),
            "{answers:?}"
        );
        let spread = spread(&answers);
        assert_eq!(spread.len(), 3, "http2={http2}: {spread:?}");
        assert!(
            spread.values().all(|n| *n >= 5),
            "http2={http2}: {spread:?}"
        );
    }
}

#[tokio::test]
async fn retries_hide_a_failing_endpoint_until_it_is_ejected() {
    let endpoints = vec![
        endpoint("a", StatusCode::OK).await,
        endpoint("b", StatusCode::OK).await,
        endpoint("broken", StatusCode::SERVICE_UNAVAILABLE).await,
    ];
    let (proxy, outcomes) = proxy(endpoints, 2).await;
    let answers = requests(proxy, false, 40).await;
    assert!(
        answers.iter().all(|(s, _)| *s == StatusCode::OK),
        "no request failed: {answers:?}"
    );
    let retried = outcomes.lock().iter().filter(|(_, r)| *r > 0).count();
    assert!(retried >= 1, "some requests met the broken endpoint first");
    assert!(
        retried <= EJECT_AFTER as usize,
        "then it was ejected: {retried} retried"
    );
}

#[tokio::test]
async fn without_retries_the_failure_reaches_the_application_and_no_endpoint_is_a_503() {
    let broken = endpoint("broken", StatusCode::SERVICE_UNAVAILABLE).await;
    let (proxy, _) = proxy(vec![broken], 0).await;
    let answers = requests(proxy, false, 2).await;
    assert!(answers
        .iter()
        .all(|(s, _)| *s == StatusCode::SERVICE_UNAVAILABLE));
    let (proxy, _) = proxy_without_endpoints().await;
    assert_eq!(
        requests(proxy, false, 1).await[0].0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

async fn proxy_without_endpoints() -> (SocketAddr, Arc<Mutex<Vec<(StatusCode, u32)>>>) {
    proxy(Vec::new(), 2).await
}

#[test]
fn the_less_busy_of_two_is_picked_and_tried_endpoints_are_avoided() {
    let balancer = RequestBalancer::default();
    let (a, b): (SocketAddr, SocketAddr) = (
        "10.0.0.1:80".parse().unwrap(),
        "10.0.0.2:80".parse().unwrap(),
    );
    let held: Vec<Picked> = (0..3).map(|_| balancer.pick(&[a], &[]).unwrap()).collect();
    for _ in 0..20 {
        assert_eq!(
            balancer.pick(&[a, b], &[]).unwrap().endpoint,
            b,
            "a has 3 outstanding"
        );
    }
    drop(held);
    assert_eq!(balancer.pick(&[a, b], &[b]).unwrap().endpoint, a);
    assert_eq!(
        balancer.pick(&[a], &[a]).unwrap().endpoint,
        a,
        "nothing else to try"
    );
    let picked = balancer.pick(&[b], &[]).unwrap();
    for _ in 1..EJECT_AFTER {
        assert!(!balancer.record(&picked, false));
    }
    assert!(
        balancer.record(&picked, false),
        "ejected at the fifth failure in a row"
    );
    drop(picked);
    for _ in 0..20 {
        assert_eq!(balancer.pick(&[a, b], &[]).unwrap().endpoint, a);
    }
    assert_eq!(
        balancer.pick(&[b], &[]).unwrap().endpoint,
        b,
        "with every endpoint ejected, they are all taken back"
    );
    assert!(balancer.pick(&[], &[]).is_none());
}

#[test]
fn streams_are_told_apart_by_their_first_bytes() {
    assert_eq!(sniff(b""), None);
    assert_eq!(sniff(b"GE"), None);
    assert_eq!(sniff(b"GET / HTTP/1.1\r\n"), Some(Sniffed::Http1));
    assert_eq!(sniff(b"OPTIONS * HTTP/1.1"), Some(Sniffed::Http1));
    assert_eq!(sniff(b"PRI * HT"), None, "could be the HTTP/2 preface");
    assert_eq!(sniff(H2_PREFACE), Some(Sniffed::Http2));
    assert_eq!(sniff(b"\x16\x03\x01"), Some(Sniffed::Other), "TLS");
    assert_eq!(sniff(b"get / "), Some(Sniffed::Other));
    assert_eq!(sniff(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"), Some(Sniffed::Other));
}

#[tokio::test]
async fn a_silent_stream_is_taken_for_another_protocol_and_nothing_read_is_lost() {
    let (mut client, server) = tokio::io::duplex(64);
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    client.write_all(b"PRI").await.unwrap();
    let (mut stream, kind) = sniff_stream(server, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(kind, Sniffed::Other);
    client.write_all(b"!").await.unwrap();
    let mut read = [0u8; 4];
    stream.read_exact(&mut read).await.unwrap();
    assert_eq!(&read, b"PRI!");
}

#[tokio::test]
async fn inbound_requests_are_let_through_or_answered_403_in_both_versions() {
    let app = endpoint("app", StatusCode::OK).await;
    for http2 in [false, true] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (stream, kind) = sniff_stream(stream, Duration::from_secs(5)).await.unwrap();
            let upstream = TcpStream::connect(app).await.unwrap();
            let allow =
                |method: &Method, path: &str| method == Method::GET && !path.starts_with("/admin");
            serve_inbound(stream, kind, upstream, allow).await.unwrap();
        });
        let tcp = TokioIo::new(TcpStream::connect(addr).await.unwrap());
        let mut statuses = Vec::new();
        if http2 {
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), tcp)
                    .await
                    .unwrap();
            tokio::spawn(connection);
            for (method, path) in [("GET", "/ok"), ("GET", "/admin"), ("POST", "/ok")] {
                let request = Request::builder()
                    .method(method)
                    .uri(format!("http://app{path}"))
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                statuses.push(sender.send_request(request).await.unwrap().status());
            }
        } else {
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(tcp).await.unwrap();
            tokio::spawn(connection);
            for (method, path) in [("GET", "/ok"), ("GET", "/admin"), ("POST", "/ok")] {
                sender.ready().await.unwrap();
                let request = Request::builder()
                    .method(method)
                    .uri(path)
                    .header("host", "app")
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                let response = sender.send_request(request).await.unwrap();
                statuses.push(response.status());
                let _ = response.into_body().collect().await;
            }
        }
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::FORBIDDEN, StatusCode::FORBIDDEN],
            "http2={http2}"
        );
    }
}
