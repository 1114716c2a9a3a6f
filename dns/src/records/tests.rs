use super::*;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

fn domain() -> Name {
    Name::from_ascii("cluster.local.").unwrap()
}

fn service(value: serde_json::Value) -> Service {
    serde_json::from_value(value).unwrap()
}

fn slice(value: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(value).unwrap()
}

/// `name TYPE rdata` lines, sorted, for comparing record sets.
fn lines(records: &[Record]) -> Vec<String> {
    let mut out: Vec<String> = records
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
        .collect();
    out.sort();
    out
}

#[test]
fn cluster_ip_service_has_a_srv_and_ptr() {
    let svc = service(json!({
        "metadata": {"name": "mysql", "namespace": "luffy"},
        "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                 "ports": [{"name": "db", "port": 3306, "protocol": "TCP"}, {"port": 9}]}
    }));
    let records = service_records(&domain(), 5, &svc, &[]);
    assert_eq!(
        lines(&records),
        vec![
            "20.0.96.10.in-addr.arpa. PTR mysql.luffy.svc.cluster.local.",
            "_db._tcp.mysql.luffy.svc.cluster.local. SRV 0 100 3306 mysql.luffy.svc.cluster.local.",
            "mysql.luffy.svc.cluster.local. A 10.96.0.20",
        ]
    );
    assert!(records.iter().all(|r| r.ttl == 5));
}

#[test]
fn dual_stack_service_has_aaaa() {
    let svc = service(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"clusterIP": "10.96.0.21", "clusterIPs": ["10.96.0.21", "fd00::21"]}
    }));
    let records = service_records(&domain(), 5, &svc, &[]);
    let types: Vec<_> = records
        .iter()
        .map(|r| r.record_type().to_string())
        .collect();
    assert!(types.contains(&"A".to_string()));
    assert!(types.contains(&"AAAA".to_string()));
}

#[test]
fn external_name_is_a_cname() {
    let svc = service(json!({
        "metadata": {"name": "ext", "namespace": "default"},
        "spec": {"type": "ExternalName", "externalName": "db.example.com"}
    }));
    assert_eq!(
        lines(&service_records(&domain(), 5, &svc, &[])),
        vec!["ext.default.svc.cluster.local. CNAME db.example.com."]
    );
}

#[test]
fn headless_service_answers_ready_endpoints_and_hostnames() {
    let svc = service(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"clusterIP": "None"}
    }));
    let endpoints = slice(json!({
        "metadata": {"name": "web-abc", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.244.0.5"], "hostname": "web-0", "conditions": {"ready": true}},
            {"addresses": ["10.244.0.6"], "conditions": {}},
            {"addresses": ["10.244.0.7"], "hostname": "web-2", "conditions": {"ready": false}}
        ],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
    }));
    let records = service_records(&domain(), 5, &svc, &[&endpoints]);
    assert_eq!(
        lines(&records),
        vec![
            "10-244-0-6.web.default.svc.cluster.local. A 10.244.0.6",
            "5.0.244.10.in-addr.arpa. PTR web-0.web.default.svc.cluster.local.",
            "6.0.244.10.in-addr.arpa. PTR 10-244-0-6.web.default.svc.cluster.local.",
            "_http._tcp.web.default.svc.cluster.local. SRV 0 50 8080 10-244-0-6.web.default.svc.cluster.local.",
            "_http._tcp.web.default.svc.cluster.local. SRV 0 50 8080 web-0.web.default.svc.cluster.local.",
            "web-0.web.default.svc.cluster.local. A 10.244.0.5",
            "web.default.svc.cluster.local. A 10.244.0.5",
            "web.default.svc.cluster.local. A 10.244.0.6",
        ]
    );
}

#[test]
fn publish_not_ready_addresses_includes_unready() {
    let svc = service(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": true}
    }));
    let endpoints = slice(json!({
        "metadata": {"name": "web-abc", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.0.7"], "conditions": {"ready": false}}]
    }));
    let records = service_records(&domain(), 5, &svc, &[&endpoints]);
    assert!(lines(&records).contains(&"web.default.svc.cluster.local. A 10.244.0.7".to_string()));
}

#[test]
fn service_without_cluster_ip_or_bad_name_has_no_records() {
    let pending = service(json!({"metadata": {"name": "a", "namespace": "b"}, "spec": {}}));
    assert!(service_records(&domain(), 5, &pending, &[]).is_empty());
    let bad = service(json!({
        "metadata": {"name": "a".repeat(64), "namespace": "b"},
        "spec": {"clusterIP": "10.96.0.1"}
    }));
    assert!(service_records(&domain(), 5, &bad, &[]).is_empty());
}

#[test]
fn dashed_addresses_round_trip() {
    for ip in ["10.244.0.5", "fd00::5", "2001:db8::1:2"] {
        let ip: IpAddr = ip.parse().unwrap();
        assert_eq!(undashed(&dashed(ip)), Some(ip));
    }
    assert_eq!(undashed("web-0"), None);
    assert_eq!(undashed("1-2-3"), None);
}

#[test]
fn soa_and_dns_version() {
    let soa = soa_record(&domain(), 5, 1);
    assert_eq!(soa.name.to_string(), "cluster.local.");
    let txt = dns_version_record(&domain(), 5).unwrap();
    assert_eq!(txt.name.to_string(), "dns-version.cluster.local.");
    assert_eq!(txt.data.to_string(), "1.1.0");
}
