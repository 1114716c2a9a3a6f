use serde_json::{json, Value};

use super::*;

fn service(v: Value) -> Service {
    serde_json::from_value(v).unwrap()
}

fn slice(v: Value) -> EndpointSlice {
    serde_json::from_value(v).unwrap()
}

fn web(extra_spec: Value) -> Service {
    let mut spec = json!({
        "clusterIP": "10.96.0.20",
        "clusterIPs": ["10.96.0.20"],
        "ports": [
            {"name": "http", "port": 80, "protocol": "TCP"},
            {"name": "dns", "port": 53, "protocol": "UDP"},
        ],
    });
    for (k, v) in extra_spec.as_object().unwrap() {
        spec[k] = v.clone();
    }
    service(json!({"metadata": {"namespace": "ns", "name": "web"}, "spec": spec}))
}

fn endpoint(ip: &str, node: &str, ready: Option<bool>, terminating: Option<bool>) -> Value {
    let mut conditions = json!({});
    if let Some(r) = ready {
        conditions["ready"] = json!(r);
    }
    if let Some(t) = terminating {
        conditions["terminating"] = json!(t);
    }
    json!({"addresses": [ip], "nodeName": node, "conditions": conditions})
}

fn web_slice(name: &str, endpoints: Vec<Value>) -> EndpointSlice {
    slice(json!({
        "metadata": {"namespace": "ns", "name": name, "labels": {SERVICE_NAME_LABEL: "web"}},
        "addressType": "IPv4",
        "ports": [
            {"name": "http", "port": 8080, "protocol": "TCP"},
            {"name": "dns", "port": 5353, "protocol": "UDP"},
        ],
        "endpoints": endpoints,
    }))
}

fn addrs(entry: &ServicePortEntry) -> Vec<String> {
    entry.endpoints.iter().map(|e| e.addr.to_string()).collect()
}

fn node(name: &str) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        addresses: vec!["192.0.2.1".parse().unwrap()],
    }
}

fn frontend(addr: &str, protocol: Protocol) -> Frontend {
    Frontend {
        addr: addr.parse().unwrap(),
        protocol,
    }
}

#[test]
fn ready_non_terminating_endpoints_per_port() {
    let mut state = ServiceState::new();
    state.apply_service(&web(json!({})));
    state.apply_slice(&web_slice(
        "web-a",
        vec![
            endpoint("10.244.0.5", "n1", Some(true), None),
            // Absent `ready` means ready.
            endpoint("10.244.0.6", "n1", None, None),
            endpoint("10.244.0.7", "n1", Some(false), None),
            // Terminating but still ready: no new connections.
            endpoint("10.244.0.8", "n1", Some(true), Some(true)),
        ],
    ));
    state.apply_slice(&web_slice(
        "web-b",
        vec![
            endpoint("10.244.1.5", "n2", Some(true), Some(false)),
            // The same endpoint in two slices counts once.
            endpoint("10.244.0.5", "n1", Some(true), None),
        ],
    ));
    let table = state.table();
    assert_eq!(table.ports.len(), 2);
    let http = &table.ports[0];
    let dns = &table.ports[1];
    assert_eq!(
        (&*dns.port_name, dns.protocol, dns.port),
        ("dns", Protocol::Udp, 53)
    );
    assert_eq!(
        (&*http.port_name, http.protocol, http.port),
        ("http", Protocol::Tcp, 80)
    );
    assert_eq!(
        addrs(http),
        ["10.244.0.5:8080", "10.244.0.6:8080", "10.244.1.5:8080"]
    );
    assert_eq!(
        addrs(dns),
        ["10.244.0.5:5353", "10.244.0.6:5353", "10.244.1.5:5353"]
    );
    assert_eq!(
        table.cluster_ips().into_iter().collect::<Vec<_>>(),
        vec!["10.96.0.20".parse::<IpAddr>().unwrap()]
    );
}

#[test]
fn slice_updates_and_deletes_change_the_table() {
    let mut state = ServiceState::new();
    // A slice may arrive before its Service.
    assert!(!state.apply_slice(&web_slice(
        "web-a",
        vec![endpoint("10.244.0.5", "n1", Some(true), None)]
    )));
    assert!(state.apply_service(&web(json!({}))));
    assert_eq!(addrs(&state.table().ports[0]), ["10.244.0.5:8080"]);
    // Unchanged: nothing to sync.
    assert!(!state.apply_service(&web(json!({}))));
    assert!(state.apply_slice(&web_slice(
        "web-a",
        vec![endpoint("10.244.0.5", "n1", Some(false), None)]
    )));
    assert!(state.table().ports[0].endpoints.is_empty());
    assert!(state.delete_slice(&web_slice("web-a", vec![])));
    assert!(state.table().ports[0].endpoints.is_empty());
    assert!(state.delete_service(&web(json!({}))));
    assert!(state.table().ports.is_empty());
}

#[test]
fn slices_of_other_services_and_unmatched_ports_are_ignored() {
    let mut state = ServiceState::new();
    state.apply_service(&web(json!({})));
    let mut other = web_slice("db-a", vec![endpoint("10.244.0.9", "n1", Some(true), None)]);
    other.metadata.labels = Some([(SERVICE_NAME_LABEL.to_string(), "db".to_string())].into());
    state.apply_slice(&other);
    state.apply_slice(&slice(json!({
        "metadata": {"namespace": "ns", "name": "web-x", "labels": {SERVICE_NAME_LABEL: "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "metrics", "port": 9090, "protocol": "TCP"}],
        "endpoints": [endpoint("10.244.0.10", "n1", Some(true), None)],
    })));
    assert!(state.table().ports.iter().all(|p| p.endpoints.is_empty()));
}

#[test]
fn headless_and_external_name_services_are_not_proxied() {
    let mut state = ServiceState::new();
    assert!(!state.apply_service(&web(json!({"clusterIP": "None", "clusterIPs": ["None"]}))));
    assert!(!state.apply_service(&web(
        json!({"type": "ExternalName", "externalName": "example.org"})
    )));
    assert!(state.table().ports.is_empty());
    // A Service turned headless is removed.
    assert!(state.apply_service(&web(json!({}))));
    assert!(state.apply_service(&web(json!({"clusterIP": "None", "clusterIPs": ["None"]}))));
    assert!(state.table().ports.is_empty());
}

#[test]
fn relist_replaces_everything() {
    let mut state = ServiceState::new();
    state.apply_service(&web(json!({})));
    state.apply_slice(&web_slice(
        "web-a",
        vec![endpoint("10.244.0.5", "n1", None, None)],
    ));
    let svc = web(json!({"clusterIP": "10.96.0.21", "clusterIPs": ["10.96.0.21"]}));
    state.replace_services([&svc]);
    let fresh = web_slice("web-b", vec![endpoint("10.244.0.6", "n1", None, None)]);
    state.replace_slices([&fresh]);
    let table = state.table();
    assert_eq!(
        table.ports[0].cluster_ips,
        vec!["10.96.0.21".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(addrs(&table.ports[0]), ["10.244.0.6:8080"]);
}

#[test]
fn session_affinity_client_ip_with_timeout() {
    let mut state = ServiceState::new();
    state.apply_service(&web(json!({"sessionAffinity": "ClientIP"})));
    assert_eq!(
        state.table().ports[0].affinity,
        Some(DEFAULT_AFFINITY_TIMEOUT)
    );
    state.apply_service(&web(json!({
        "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
    })));
    assert_eq!(
        state.table().ports[0].affinity,
        Some(Duration::from_secs(60))
    );
    state.apply_service(&web(json!({"sessionAffinity": "None"})));
    assert_eq!(state.table().ports[0].affinity, None);
}

#[test]
fn cluster_ip_frontends_skip_ports_without_endpoints() {
    let mut state = ServiceState::new();
    state.apply_service(&web(json!({})));
    assert!(state.table().frontends(&node("n1")).is_empty());
    let mut only_http = web_slice("web-a", vec![endpoint("10.244.0.5", "n1", None, None)]);
    only_http.ports.as_mut().unwrap().truncate(1);
    state.apply_slice(&only_http);
    let f = state.table().frontends(&node("n1"));
    assert_eq!(
        f.keys().copied().collect::<Vec<_>>(),
        [frontend("10.96.0.20:80", Protocol::Tcp)]
    );
    let b = &f[&frontend("10.96.0.20:80", Protocol::Tcp)];
    assert_eq!(b.service, ServiceKey::new("ns", "web"));
    assert_eq!(&*b.port_name, "http");
    assert_eq!(&b.endpoints[..], ["10.244.0.5:8080".parse().unwrap()]);
}

#[test]
fn node_ports_and_external_traffic_policy_local() {
    let mut state = ServiceState::new();
    let np = |policy: &str| {
        web(json!({
            "type": "NodePort",
            "externalTrafficPolicy": policy,
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}],
        }))
    };
    state.apply_service(&np("Cluster"));
    state.apply_slice(&web_slice(
        "web-a",
        vec![
            endpoint("10.244.0.5", "n1", None, None),
            endpoint("10.244.1.5", "n2", None, None),
        ],
    ));
    let cluster_ip = frontend("10.96.0.20:80", Protocol::Tcp);
    let node_port = frontend("192.0.2.1:30080", Protocol::Tcp);
    let f = state.table().frontends(&node("n1"));
    assert_eq!(f[&node_port].endpoints.len(), 2);

    state.apply_service(&np("Local"));
    let f = state.table().frontends(&node("n1"));
    // ClusterIP traffic is not affected by the external policy.
    assert_eq!(f[&cluster_ip].endpoints.len(), 2);
    assert_eq!(
        &f[&node_port].endpoints[..],
        ["10.244.0.5:8080".parse().unwrap()]
    );
    // A node with no local endpoint does not serve the NodePort at all.
    let f = state.table().frontends(&node("n3"));
    assert!(f.contains_key(&cluster_ip));
    assert!(!f.contains_key(&node_port));
}

#[test]
fn internal_traffic_policy_local() {
    let mut state = ServiceState::new();
    state.apply_service(&web(json!({"internalTrafficPolicy": "Local"})));
    state.apply_slice(&web_slice(
        "web-a",
        vec![
            endpoint("10.244.0.5", "n1", None, None),
            endpoint("10.244.1.5", "n2", None, None),
        ],
    ));
    let f = state.table().frontends(&node("n2"));
    assert_eq!(
        &f[&frontend("10.96.0.20:80", Protocol::Tcp)].endpoints[..],
        ["10.244.1.5:8080".parse().unwrap()]
    );
}

#[test]
fn load_balancer_ports_are_served_on_node_addresses() {
    let mut state = ServiceState::new();
    state.apply_service(&web(json!({
        "type": "LoadBalancer",
        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}],
    })));
    state.apply_slice(&web_slice(
        "web-a",
        vec![endpoint("10.244.0.5", "n1", None, None)],
    ));
    let keys: Vec<String> = state
        .table()
        .frontends(&node("n1"))
        .keys()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        keys,
        [
            "10.96.0.20:80/TCP",
            "192.0.2.1:80/TCP",
            "192.0.2.1:30080/TCP"
        ]
    );
}

#[test]
fn node_port_fields_of_cluster_ip_services_are_ignored() {
    let mut state = ServiceState::new();
    state.apply_service(&web(json!({
        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}],
        "externalTrafficPolicy": "Local",
    })));
    let table = state.table();
    assert_eq!(table.ports[0].node_port, None);
    assert!(!table.ports[0].external_local);
}

#[test]
fn http_ports_are_known_by_app_protocol_then_name_with_the_services_request_policy() {
    assert_eq!(
        http_version(Some("http"), Some("grpc")),
        Some(HttpVersion::Http1)
    );
    assert_eq!(
        http_version(Some("kubernetes.io/h2c"), None),
        Some(HttpVersion::Http2)
    );
    assert_eq!(
        http_version(Some("tcp"), Some("http")),
        None,
        "appProtocol wins"
    );
    assert_eq!(
        http_version(None, Some("http-web")),
        Some(HttpVersion::Http1)
    );
    assert_eq!(http_version(None, Some("grpc")), Some(HttpVersion::Http2));
    assert_eq!(http_version(None, Some("https")), None);
    assert_eq!(http_version(None, None), None);
    assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
    assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
    assert_eq!(parse_duration("2"), None);
    assert_eq!(parse_duration("-1s"), None);
    assert_eq!(parse_duration("1h"), None);
}

#[test]
fn a_traffic_split_names_services_with_positive_weights() {
    let split = parse_split("api-v1=90, api-v2 = 10,broken,zero=0,=5");
    let split: Vec<(&str, u32)> = split.iter().map(|(n, w)| (&**n, *w)).collect();
    assert_eq!(split, [("api-v1", 90), ("api-v2", 10)]);
}

#[test]
fn http_is_looked_for_on_ports_that_declare_no_protocol() {
    assert!(sniffs_http(None, None, 8080));
    assert!(sniffs_http(None, Some("web"), 80));
    // Declared: HTTP already, or another protocol.
    assert!(!sniffs_http(None, Some("http"), 80));
    assert!(!sniffs_http(Some("kubernetes.io/h2c"), Some("web"), 80));
    assert!(!sniffs_http(Some("postgresql"), None, 5000));
    assert!(!sniffs_http(None, Some("tcp-db"), 5000));
    assert!(!sniffs_http(None, Some("tls"), 8443));
    // Servers that speak first.
    assert!(!sniffs_http(None, Some("db"), 3306));
    assert!(!sniffs_http(None, None, 22));
}
