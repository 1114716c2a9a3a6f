//! The DNS server on loopback, its index fed directly, queried with real
//! DNS packets over UDP and TCP. Forwarding goes to a stub upstream the
//! test starts on 127.0.0.1, never to the host's resolver.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_server::proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_server::proto::rr::rdata::A;
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kedge_dns::{ClusterDns, DnsConfig, DnsServer};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

// === a stub upstream resolver ===

/// Answers `*.example.test` A with 192.0.2.1 (TTL 60); `big.example.test`
/// truncated over UDP and whole over TCP; `fail.example.test` SERVFAIL;
/// anything else NXDOMAIN.
struct Stub {
    addr: SocketAddr,
    queries: Arc<AtomicUsize>,
    /// While set, everything is SERVFAIL.
    down: Arc<std::sync::atomic::AtomicBool>,
}

fn stub_answer(request: &Message, tcp: bool, down: bool) -> Message {
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_available = true;
    let query = request.queries[0].clone();
    let name = query.name().to_ascii().to_lowercase();
    response.add_query(query.clone());
    if name == "fail.example.test." || down {
        response.metadata.response_code = ResponseCode::ServFail;
    } else if name == "big.example.test." && !tcp {
        response.metadata.truncation = true;
    } else if name.ends_with(".example.test.") {
        let count = if name == "big.example.test." { 60 } else { 1 };
        let ttl = if name.starts_with("short.") { 1 } else { 60 };
        for i in 0..count {
            response.add_answer(Record::from_rdata(
                query.name().clone(),
                ttl,
                RData::A(A::new(192, 0, 2, 1 + i as u8)),
            ));
        }
    } else {
        response.metadata.response_code = ResponseCode::NXDomain;
    }
    response
}

async fn start_stub() -> Stub {
    // One port for UDP and TCP; a port free for UDP may be taken for TCP.
    let (udp, tcp, addr) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        if let Ok(tcp) = TcpListener::bind(addr).await {
            break (udp, tcp, addr);
        }
    };
    let queries = Arc::new(AtomicUsize::new(0));
    let counter = queries.clone();
    let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (udp_down, tcp_down) = (down.clone(), down.clone());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            let request = Message::from_vec(&buf[..n]).unwrap();
            let down = udp_down.load(Ordering::SeqCst);
            let bytes = stub_answer(&request, false, down).to_vec().unwrap();
            let _ = udp.send_to(&bytes, peer).await;
        }
    });
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = tcp.accept().await else {
                return;
            };
            let down = tcp_down.load(Ordering::SeqCst);
            tokio::spawn(async move {
                let length = stream.read_u16().await.unwrap() as usize;
                let mut buf = vec![0u8; length];
                stream.read_exact(&mut buf).await.unwrap();
                let request = Message::from_vec(&buf).unwrap();
                let bytes = stub_answer(&request, true, down).to_vec().unwrap();
                stream.write_u16(bytes.len() as u16).await.unwrap();
                stream.write_all(&bytes).await.unwrap();
            });
        }
    });
    Stub {
        addr,
        queries,
        down,
    }
}

// === the server under test ===

struct Cluster {
    dns: ClusterDns,
    server: DnsServer,
    stub: Stub,
}

impl Cluster {
    fn addr(&self) -> SocketAddr {
        self.server.local_addrs()[0]
    }
}

async fn start() -> Cluster {
    let stub = start_stub().await;
    let dns = ClusterDns::new(DnsConfig {
        listen: vec![(Ipv4Addr::LOCALHOST, 0).into()],
        cluster_domain: "cluster.local".into(),
        upstreams: vec![stub.addr],
        ttl: 5,
        cache_size: 100,
        upstream_timeout: Duration::from_secs(2),
    })
    .unwrap();
    let index = dns.index();
    index.apply_service(&service(json!({
        "metadata": {"name": "mysql", "namespace": "luffy"},
        "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                 "ports": [{"name": "db", "port": 3306, "protocol": "TCP"}]}
    })));
    index.apply_service(&service(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"clusterIP": "None"}
    })));
    index.apply_endpoint_slice(&slice(json!({
        "metadata": {"name": "web-x1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.244.0.5"], "hostname": "web-0", "conditions": {"ready": true}},
            {"addresses": ["10.244.0.6"], "hostname": "web-1", "conditions": {"ready": true}}
        ],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
    })));
    index.apply_service(&service(json!({
        "metadata": {"name": "ext", "namespace": "default"},
        "spec": {"type": "ExternalName", "externalName": "db.example.test"}
    })));
    // A headless Service too big for a 512-byte UDP answer.
    index.apply_service(&service(json!({
        "metadata": {"name": "many", "namespace": "default"},
        "spec": {"clusterIP": "None"}
    })));
    let endpoints: Vec<_> = (1..=100)
        .map(|i| json!({"addresses": [format!("10.244.1.{i}")]}))
        .collect();
    index.apply_endpoint_slice(&slice(json!({
        "metadata": {"name": "many-x1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "many"}},
        "addressType": "IPv4",
        "endpoints": endpoints
    })));
    let server = dns.bind().await.unwrap();
    Cluster { dns, server, stub }
}

fn service(value: serde_json::Value) -> Service {
    serde_json::from_value(value).unwrap()
}

fn slice(value: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(value).unwrap()
}

// === a client ===

fn request(name: &str, rtype: RecordType, edns: Option<u16>) -> Message {
    let mut message = Message::query();
    message.metadata.id = rand_id();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        message.set_edns(e);
    }
    message
}

fn rand_id() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed) as u16
}

async fn exchange_udp(addr: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(bytes, addr).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let n = tokio::time::timeout(Duration::from_secs(3), socket.recv(&mut buf))
        .await
        .ok()?
        .unwrap();
    Some(buf[..n].to_vec())
}

async fn udp(addr: SocketAddr, name: &str, rtype: RecordType, edns: Option<u16>) -> Message {
    let request = request(name, rtype, edns);
    let bytes = exchange_udp(addr, &request.to_vec().unwrap())
        .await
        .expect("an answer over UDP");
    let response = Message::from_vec(&bytes).unwrap();
    assert_eq!(response.metadata.id, request.metadata.id);
    assert_eq!(response.metadata.message_type, MessageType::Response);
    response
}

async fn tcp(addr: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let request = request(name, rtype, None);
    let bytes = request.to_vec().unwrap();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_u16(bytes.len() as u16).await.unwrap();
    stream.write_all(&bytes).await.unwrap();
    let length = stream.read_u16().await.unwrap() as usize;
    let mut buf = vec![0u8; length];
    stream.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).unwrap()
}

fn data(message: &Message) -> Vec<String> {
    message.answers.iter().map(|r| r.data.to_string()).collect()
}

// === tests ===

#[tokio::test]
async fn cluster_ip_service_a_srv_ptr() {
    let cluster = start().await;
    let a = udp(
        cluster.addr(),
        "mysql.luffy.svc.cluster.local.",
        RecordType::A,
        None,
    )
    .await;
    assert_eq!(a.metadata.response_code, ResponseCode::NoError);
    assert!(a.metadata.authoritative);
    assert_eq!(data(&a), vec!["10.96.0.20"]);
    assert_eq!(a.answers[0].ttl, 5);

    let srv = udp(
        cluster.addr(),
        "_db._tcp.mysql.luffy.svc.cluster.local.",
        RecordType::SRV,
        None,
    )
    .await;
    assert_eq!(
        data(&srv),
        vec!["0 100 3306 mysql.luffy.svc.cluster.local."]
    );
    assert_eq!(srv.additionals.len(), 1, "the target's address is added");

    let ptr = udp(
        cluster.addr(),
        "20.0.96.10.in-addr.arpa.",
        RecordType::PTR,
        None,
    )
    .await;
    assert_eq!(data(&ptr), vec!["mysql.luffy.svc.cluster.local."]);
}

#[tokio::test]
async fn headless_endpoints_and_hostnames() {
    let cluster = start().await;
    let mut all = data(
        &udp(
            cluster.addr(),
            "web.default.svc.cluster.local.",
            RecordType::A,
            None,
        )
        .await,
    );
    all.sort();
    assert_eq!(all, vec!["10.244.0.5", "10.244.0.6"]);
    let web0 = udp(
        cluster.addr(),
        "web-0.web.default.svc.cluster.local.",
        RecordType::A,
        None,
    )
    .await;
    assert_eq!(data(&web0), vec!["10.244.0.5"]);
    let srv = udp(
        cluster.addr(),
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
        None,
    )
    .await;
    let mut targets = data(&srv);
    targets.sort();
    assert_eq!(
        targets,
        vec![
            "0 50 8080 web-0.web.default.svc.cluster.local.",
            "0 50 8080 web-1.web.default.svc.cluster.local.",
        ]
    );
    let ptr = udp(
        cluster.addr(),
        "6.0.244.10.in-addr.arpa.",
        RecordType::PTR,
        None,
    )
    .await;
    assert_eq!(data(&ptr), vec!["web-1.web.default.svc.cluster.local."]);
}

#[tokio::test]
async fn external_name_is_a_cname_resolved_upstream() {
    let cluster = start().await;
    let answer = udp(
        cluster.addr(),
        "ext.default.svc.cluster.local.",
        RecordType::A,
        None,
    )
    .await;
    assert_eq!(data(&answer), vec!["db.example.test.", "192.0.2.1"]);
    assert_eq!(answer.answers[0].record_type(), RecordType::CNAME);
}

#[tokio::test]
async fn nxdomain_and_nodata_carry_the_soa() {
    let cluster = start().await;
    let nx = udp(
        cluster.addr(),
        "nope.luffy.svc.cluster.local.",
        RecordType::A,
        None,
    )
    .await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert!(nx.answers.is_empty());
    assert_eq!(nx.authorities.len(), 1);
    assert_eq!(nx.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(nx.authorities[0].name.to_string(), "cluster.local.");

    for (name, rtype) in [
        ("mysql.luffy.svc.cluster.local.", RecordType::AAAA),
        ("luffy.svc.cluster.local.", RecordType::A),
    ] {
        let nodata = udp(cluster.addr(), name, rtype, None).await;
        assert_eq!(
            nodata.metadata.response_code,
            ResponseCode::NoError,
            "{name}"
        );
        assert!(nodata.answers.is_empty(), "{name}");
        assert_eq!(
            nodata.authorities[0].record_type(),
            RecordType::SOA,
            "{name}"
        );
    }
}

#[tokio::test]
async fn headless_without_ready_endpoints_is_nxdomain() {
    let cluster = start().await;
    cluster.dns.index().apply_service(&service(json!({
        "metadata": {"name": "idle", "namespace": "standby"},
        "spec": {"clusterIP": "None"}
    })));
    for rtype in [RecordType::A, RecordType::AAAA, RecordType::SRV] {
        let nx = udp(
            cluster.addr(),
            "idle.standby.svc.cluster.local.",
            rtype,
            None,
        )
        .await;
        assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain, "{rtype}");
        assert!(nx.metadata.authoritative, "{rtype}");
        assert!(nx.answers.is_empty(), "{rtype}");
        assert_eq!(nx.authorities[0].record_type(), RecordType::SOA, "{rtype}");
    }
    let namespace = udp(
        cluster.addr(),
        "standby.svc.cluster.local.",
        RecordType::A,
        None,
    )
    .await;
    assert_eq!(namespace.metadata.response_code, ResponseCode::NoError);
    assert!(namespace.answers.is_empty());
}

#[tokio::test]
async fn big_answer_truncates_over_udp_and_comes_whole_over_tcp() {
    let cluster = start().await;
    let truncated = udp(
        cluster.addr(),
        "many.default.svc.cluster.local.",
        RecordType::A,
        None,
    )
    .await;
    assert!(
        truncated.metadata.truncation,
        "100 A records exceed 512 bytes"
    );
    assert!(truncated.answers.len() < 100);
    let whole = tcp(
        cluster.addr(),
        "many.default.svc.cluster.local.",
        RecordType::A,
    )
    .await;
    assert!(!whole.metadata.truncation);
    assert_eq!(whole.answers.len(), 100);
    // A client offering a big EDNS buffer gets it all over UDP.
    let edns = udp(
        cluster.addr(),
        "many.default.svc.cluster.local.",
        RecordType::A,
        Some(4096),
    )
    .await;
    assert!(!edns.metadata.truncation);
    assert_eq!(edns.answers.len(), 100);
}

#[tokio::test]
async fn dns_version_and_pod_names() {
    let cluster = start().await;
    let txt = udp(
        cluster.addr(),
        "dns-version.cluster.local.",
        RecordType::TXT,
        None,
    )
    .await;
    assert_eq!(data(&txt), vec!["1.1.0"]);
    let pod = udp(
        cluster.addr(),
        "10-244-0-9.luffy.pod.cluster.local.",
        RecordType::A,
        None,
    )
    .await;
    assert_eq!(data(&pod), vec!["10.244.0.9"]);
}

#[tokio::test]
async fn forwarded_names_are_answered_upstream_and_cached() {
    let cluster = start().await;
    let first = udp(cluster.addr(), "www.example.test.", RecordType::A, None).await;
    assert_eq!(first.metadata.response_code, ResponseCode::NoError);
    assert!(!first.metadata.authoritative);
    assert_eq!(data(&first), vec!["192.0.2.1"]);
    let asked = cluster.stub.queries.load(Ordering::SeqCst);
    let second = udp(cluster.addr(), "WWW.example.test.", RecordType::A, None).await;
    assert_eq!(data(&second), vec!["192.0.2.1"]);
    // From the cache, as the upstream said it: not authoritative, the
    // recursion it did available, the TTL no longer than given.
    assert!(!second.metadata.authoritative);
    assert!(second.metadata.recursion_available);
    assert_eq!(second.metadata.response_code, ResponseCode::NoError);
    assert!(second.answers[0].ttl <= 60);
    assert_eq!(second.queries[0].name().to_string(), "WWW.example.test.");
    assert_eq!(
        cluster.stub.queries.load(Ordering::SeqCst),
        asked,
        "served from the cache"
    );

    let nx = udp(cluster.addr(), "nothing.invalid.", RecordType::A, None).await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);

    let failed = udp(cluster.addr(), "fail.example.test.", RecordType::A, None).await;
    assert_eq!(failed.metadata.response_code, ResponseCode::ServFail);

    // The upstream truncates over UDP: the forwarder retries over TCP, and
    // the client gets all 60 records over TCP.
    let big = tcp(cluster.addr(), "big.example.test.", RecordType::A).await;
    assert_eq!(big.answers.len(), 60);

    let metrics = cluster.dns.metrics().encode();
    assert!(
        metrics.contains("kedge_dns_requests_total{type=\"A\",rcode=\"SERVFAIL\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("kedge_dns_cache_hits_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("kedge_dns_forwarded_requests_total{outcome=\"truncated_retry\"} 1"),
        "{metrics}"
    );
}

/// RFC 8767: when the upstreams fail, an expired answer is served with a
/// TTL of 30 s rather than SERVFAIL; a name never seen still fails.
#[tokio::test]
async fn expired_answers_are_served_stale_while_upstreams_fail() {
    let cluster = start().await;
    let fresh = udp(cluster.addr(), "short.example.test.", RecordType::A, None).await;
    assert_eq!(data(&fresh), vec!["192.0.2.1"]);
    assert_eq!(fresh.answers[0].ttl, 1);
    cluster.stub.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stale = udp(cluster.addr(), "short.example.test.", RecordType::A, None).await;
    assert_eq!(stale.metadata.response_code, ResponseCode::NoError);
    assert_eq!(data(&stale), vec!["192.0.2.1"]);
    assert_eq!(stale.answers[0].ttl, 30);
    let unknown = udp(cluster.addr(), "other.example.test.", RecordType::A, None).await;
    assert_eq!(unknown.metadata.response_code, ResponseCode::ServFail);
    cluster.stub.down.store(false, Ordering::SeqCst);
    let back = udp(cluster.addr(), "short.example.test.", RecordType::A, None).await;
    assert_eq!(
        back.answers[0].ttl, 1,
        "a fresh answer once the upstream is back"
    );
    let metrics = cluster.dns.metrics().encode();
    assert!(
        metrics.contains("kedge_dns_forwarded_requests_total{outcome=\"stale\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn unreachable_upstream_is_servfail() {
    // A port nothing listens on: the exchange fails or times out.
    let idle = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dns = ClusterDns::new(DnsConfig {
        listen: vec![(Ipv4Addr::LOCALHOST, 0).into()],
        cluster_domain: "cluster.local".into(),
        upstreams: vec![idle.local_addr().unwrap()],
        ttl: 5,
        cache_size: 100,
        upstream_timeout: Duration::from_millis(200),
    })
    .unwrap();
    let server = dns.bind().await.unwrap();
    let failed = udp(
        server.local_addrs()[0],
        "www.example.test.",
        RecordType::A,
        None,
    )
    .await;
    assert_eq!(failed.metadata.response_code, ResponseCode::ServFail);
}

#[tokio::test]
async fn changes_apply_as_events_arrive() {
    let cluster = start().await;
    let name = "late.default.svc.cluster.local.";
    let before = udp(cluster.addr(), name, RecordType::A, None).await;
    assert_eq!(before.metadata.response_code, ResponseCode::NXDomain);
    let late = service(json!({
        "metadata": {"name": "late", "namespace": "default"},
        "spec": {"clusterIP": "10.96.0.99"}
    }));
    cluster.dns.index().apply_service(&late);
    assert_eq!(
        data(&udp(cluster.addr(), name, RecordType::A, None).await),
        vec!["10.96.0.99"]
    );
    cluster.dns.index().delete_service(&late);
    let after = udp(cluster.addr(), name, RecordType::A, None).await;
    assert_eq!(after.metadata.response_code, ResponseCode::NXDomain);
}

#[tokio::test]
async fn malformed_packets_do_not_stop_the_server() {
    let cluster = start().await;
    let good = request("mysql.luffy.svc.cluster.local.", RecordType::A, None)
        .to_vec()
        .unwrap();

    // Shorter than a header: dropped.
    assert!(exchange_udp(cluster.addr(), &good[..5]).await.is_none());

    // A question cut short.
    let cut = exchange_udp(cluster.addr(), &good[..good.len() - 3]).await;
    assert_formerr_or_dropped(cut);

    // Counts claiming more than the packet holds.
    let mut counts = good.clone();
    counts[5] = 5; // QDCOUNT
    counts[7] = 3; // ANCOUNT
    assert_formerr_or_dropped(exchange_udp(cluster.addr(), &counts).await);

    // A name that is a compression pointer to itself.
    let mut looped = good[..12].to_vec();
    looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    assert_formerr_or_dropped(exchange_udp(cluster.addr(), &looped).await);

    // Two pointers pointing at each other.
    let mut pair = good[..12].to_vec();
    pair.extend_from_slice(&[0xc0, 14, 0xc0, 12, 0, 1, 0, 1]);
    assert_formerr_or_dropped(exchange_udp(cluster.addr(), &pair).await);

    // Garbage over TCP.
    let mut stream = TcpStream::connect(cluster.addr()).await.unwrap();
    stream.write_u16(4).await.unwrap();
    stream.write_all(&[0xff, 0xff, 0xff, 0xff]).await.unwrap();
    drop(stream);

    // Still serving.
    let a = udp(
        cluster.addr(),
        "mysql.luffy.svc.cluster.local.",
        RecordType::A,
        None,
    )
    .await;
    assert_eq!(data(&a), vec!["10.96.0.20"]);
    let a = tcp(
        cluster.addr(),
        "mysql.luffy.svc.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(data(&a), vec!["10.96.0.20"]);
}

fn assert_formerr_or_dropped(response: Option<Vec<u8>>) {
    let Some(bytes) = response else { return };
    assert!(bytes.len() >= 12, "a response has a header");
    // RCODE is the low nibble of the fourth byte.
    assert_eq!(bytes[3] & 0x0f, 1, "FORMERR");
    assert_eq!(bytes[2] & 0x80, 0x80, "a response");
}

/// Cluster names are answered over UDP from answers encoded once by
/// kedge's own encoder, and over TCP through hickory's: both must say the
/// same thing for every kind of name the zone holds.
#[tokio::test]
async fn udp_answers_match_the_full_encoder_over_tcp() {
    let cluster = start().await;
    let questions = [
        ("mysql.luffy.svc.cluster.local.", RecordType::A),
        ("mysql.luffy.svc.cluster.local.", RecordType::AAAA),
        ("mysql.luffy.svc.cluster.local.", RecordType::ANY),
        ("_db._tcp.mysql.luffy.svc.cluster.local.", RecordType::SRV),
        ("20.0.96.10.in-addr.arpa.", RecordType::PTR),
        ("web.default.svc.cluster.local.", RecordType::A),
        ("web-0.web.default.svc.cluster.local.", RecordType::A),
        ("_http._tcp.web.default.svc.cluster.local.", RecordType::SRV),
        ("5.0.244.10.in-addr.arpa.", RecordType::PTR),
        ("luffy.svc.cluster.local.", RecordType::A),
        ("nothing.luffy.svc.cluster.local.", RecordType::A),
        ("cluster.local.", RecordType::SOA),
        ("cluster.local.", RecordType::NS),
        ("dns-version.cluster.local.", RecordType::TXT),
        ("10-244-0-9.luffy.pod.cluster.local.", RecordType::A),
        ("10-244-0-9.luffy.pod.cluster.local.", RecordType::AAAA),
        ("not-an-ip.luffy.pod.cluster.local.", RecordType::A),
    ];
    for (name, rtype) in questions {
        // Twice over UDP: the second answer comes from the cache.
        for round in 0..2 {
            let fast = udp(cluster.addr(), name, rtype, Some(1232)).await;
            let full = tcp(cluster.addr(), name, rtype).await;
            let context = format!("{name} {rtype} (UDP round {round})");
            assert_eq!(
                fast.metadata.response_code, full.metadata.response_code,
                "{context}"
            );
            assert_eq!(
                fast.metadata.authoritative, full.metadata.authoritative,
                "{context}"
            );
            assert!(fast.metadata.recursion_available, "{context}");
            assert!(fast.metadata.recursion_desired, "{context}");
            assert_eq!(fast.answers, full.answers, "{context}");
            assert_eq!(fast.authorities, full.authorities, "{context}");
            let additionals = |m: &Message| -> Vec<Record> {
                m.additionals
                    .iter()
                    .filter(|r| r.record_type() != RecordType::OPT)
                    .cloned()
                    .collect()
            };
            assert_eq!(additionals(&fast), additionals(&full), "{context}");
            assert_eq!(
                fast.edns.as_ref().map(|e| e.max_payload()),
                Some(1232),
                "{context}"
            );
        }
    }
}

/// The question comes back as the client wrote it (resolvers that
/// randomise letter case check this), and the answer's name points at it.
#[tokio::test]
async fn udp_answers_echo_the_question_case_and_compress_names() {
    let cluster = start().await;
    let request = request("MySQL.Luffy.svc.Cluster.Local.", RecordType::A, None);
    let sent = request.to_vec().unwrap();
    let bytes = exchange_udp(cluster.addr(), &sent).await.unwrap();
    // Header and question as sent (ID, the question's bytes), then one A
    // record whose name is a two-byte pointer: 2 + 10 + 4 bytes.
    assert_eq!(bytes[..2], sent[..2]);
    assert_eq!(bytes[12..sent.len()], sent[12..]);
    assert_eq!(bytes.len(), sent.len() + 16);
    let response = Message::from_vec(&bytes).unwrap();
    assert_eq!(
        response.queries[0].name().to_string(),
        "MySQL.Luffy.svc.Cluster.Local."
    );
    assert_eq!(data(&response), vec!["10.96.0.20"]);
    // Answers from the cache are counted like the rest.
    for _ in 0..2 {
        udp(
            cluster.addr(),
            "dns-version.cluster.local.",
            RecordType::TXT,
            None,
        )
        .await;
    }
    let metrics = cluster.dns.metrics().encode();
    assert!(
        metrics.contains("kedge_dns_requests_total{type=\"TXT\",rcode=\"NOERROR\"} 2"),
        "{metrics}"
    );
}
