use super::*;
use serde_json::json;

fn index() -> ClusterIndex {
    ClusterIndex::new("cluster.local", 5).unwrap()
}

fn name(text: &str) -> LowerName {
    LowerName::new(&Name::from_ascii(text).unwrap())
}

fn service(value: serde_json::Value) -> Service {
    serde_json::from_value(value).unwrap()
}

fn slice(value: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(value).unwrap()
}

fn answers(lookup: Lookup) -> Vec<String> {
    match lookup {
        Lookup::Answer { records, .. } => records.iter().map(|r| r.data.to_string()).collect(),
        other => panic!("expected an answer, got {other:?}"),
    }
}

fn mysql() -> Service {
    service(json!({
        "metadata": {"name": "mysql", "namespace": "luffy"},
        "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "db", "port": 3306}]}
    }))
}

#[test]
fn nxdomain_nodata_and_answers() {
    let index = index();
    index.apply_service(&mysql());
    let svc = name("mysql.luffy.svc.cluster.local.");
    assert_eq!(
        answers(index.lookup(&svc, RecordType::A)),
        vec!["10.96.0.20"]
    );
    assert_eq!(index.lookup(&svc, RecordType::AAAA), Lookup::NoData);
    assert_eq!(
        index.lookup(&name("luffy.svc.cluster.local."), RecordType::A),
        Lookup::NoData
    );
    assert_eq!(
        index.lookup(
            &name("_tcp.mysql.luffy.svc.cluster.local."),
            RecordType::SRV
        ),
        Lookup::NoData
    );
    assert_eq!(
        index.lookup(&name("svc.cluster.local."), RecordType::A),
        Lookup::NoData
    );
    assert_eq!(
        index.lookup(&name("cluster.local."), RecordType::A),
        Lookup::NoData
    );
    assert_eq!(
        index.lookup(&name("other.svc.cluster.local."), RecordType::A),
        Lookup::NxDomain
    );
    assert_eq!(
        index.lookup(&name("nope.luffy.svc.cluster.local."), RecordType::A),
        Lookup::NxDomain
    );
    assert_eq!(
        index.lookup(&name("example.com."), RecordType::A),
        Lookup::Outside
    );
    assert_eq!(
        answers(index.lookup(&name("MySQL.Luffy.svc.cluster.local."), RecordType::A)),
        vec!["10.96.0.20"],
        "names are case-insensitive"
    );
    assert_eq!(
        answers(index.lookup(&name("20.0.96.10.in-addr.arpa."), RecordType::PTR)),
        vec!["mysql.luffy.svc.cluster.local."]
    );
    assert_eq!(
        index.lookup(&name("21.0.96.10.in-addr.arpa."), RecordType::PTR),
        Lookup::Outside,
        "unknown reverse names fall through to the upstreams"
    );
}

#[test]
fn delete_removes_names_and_empty_parents() {
    let index = index();
    index.apply_service(&mysql());
    index.delete_service(&mysql());
    assert_eq!(
        index.lookup(&name("mysql.luffy.svc.cluster.local."), RecordType::A),
        Lookup::NxDomain
    );
    assert_eq!(
        index.lookup(&name("luffy.svc.cluster.local."), RecordType::A),
        Lookup::NxDomain
    );
    assert_eq!(
        index.lookup(&name("20.0.96.10.in-addr.arpa."), RecordType::PTR),
        Lookup::Outside
    );
    assert_eq!(
        index.lookup(&name("svc.cluster.local."), RecordType::A),
        Lookup::NoData
    );
}

#[test]
fn endpoint_slices_update_headless_answers() {
    let index = index();
    index.apply_service(&service(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"clusterIP": "None"}
    })));
    let web = name("web.default.svc.cluster.local.");
    assert_eq!(index.lookup(&web, RecordType::A), Lookup::NxDomain);
    let mut endpoints = slice(json!({
        "metadata": {"name": "web-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.0.5"], "hostname": "web-0"}]
    }));
    index.apply_endpoint_slice(&endpoints);
    assert_eq!(
        answers(index.lookup(&web, RecordType::A)),
        vec!["10.244.0.5"]
    );
    assert_eq!(
        answers(index.lookup(&name("web-0.web.default.svc.cluster.local."), RecordType::A)),
        vec!["10.244.0.5"]
    );
    endpoints.endpoints[0].conditions = Some(Default::default());
    endpoints.endpoints[0].conditions.as_mut().unwrap().ready = Some(false);
    index.apply_endpoint_slice(&endpoints);
    assert_eq!(index.lookup(&web, RecordType::A), Lookup::NxDomain);
    assert_eq!(
        index.lookup(&name("web-0.web.default.svc.cluster.local."), RecordType::A),
        Lookup::NxDomain
    );
    index.delete_endpoint_slice(&endpoints);
    index.replace_endpoint_slices(&[]);
    assert_eq!(index.lookup(&web, RecordType::A), Lookup::NxDomain);
}

#[test]
fn headless_without_ready_endpoints_is_nxdomain() {
    let index = index();
    index.apply_service(&service(json!({
        "metadata": {"name": "db", "namespace": "shop"},
        "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}
    })));
    let mut endpoints = slice(json!({
        "metadata": {"name": "db-1", "namespace": "shop",
                     "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.0.7"], "hostname": "db-0",
                       "conditions": {"ready": false}}],
        "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]
    }));
    index.apply_endpoint_slice(&endpoints);
    let db = name("db.shop.svc.cluster.local.");
    // Specification 2.4.1: no ready endpoint, NXDOMAIN; the name holds no
    // record of any type, as CoreDNS answers.
    for rtype in [
        RecordType::A,
        RecordType::AAAA,
        RecordType::SRV,
        RecordType::ANY,
    ] {
        assert_eq!(index.lookup(&db, rtype), Lookup::NxDomain, "{rtype}");
    }
    assert_eq!(
        index.lookup(
            &name("_pg._tcp.db.shop.svc.cluster.local."),
            RecordType::SRV
        ),
        Lookup::NxDomain
    );
    assert_eq!(
        index.lookup(&name("db-0.db.shop.svc.cluster.local."), RecordType::A),
        Lookup::NxDomain
    );
    assert_eq!(
        index.lookup(&name("7.0.244.10.in-addr.arpa."), RecordType::PTR),
        Lookup::Outside
    );
    // The namespace the Service lives in still exists.
    assert_eq!(
        index.lookup(&name("shop.svc.cluster.local."), RecordType::A),
        Lookup::NoData
    );

    endpoints.endpoints[0].conditions.as_mut().unwrap().ready = Some(true);
    index.apply_endpoint_slice(&endpoints);
    assert_eq!(
        answers(index.lookup(&db, RecordType::A)),
        vec!["10.244.0.7"]
    );
    assert_eq!(
        index.lookup(&db, RecordType::AAAA),
        Lookup::NoData,
        "a name with IPv4 endpoints only has no AAAA"
    );
    assert_eq!(
        answers(index.lookup(
            &name("_pg._tcp.db.shop.svc.cluster.local."),
            RecordType::SRV
        )),
        vec!["0 100 5432 db-0.db.shop.svc.cluster.local."]
    );

    // publishNotReadyAddresses makes a not-ready endpoint count.
    endpoints.endpoints[0].conditions.as_mut().unwrap().ready = Some(false);
    index.apply_endpoint_slice(&endpoints);
    assert_eq!(index.lookup(&db, RecordType::A), Lookup::NxDomain);
    index.apply_service(&service(json!({
        "metadata": {"name": "db", "namespace": "shop"},
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": true}
    })));
    assert_eq!(
        answers(index.lookup(&db, RecordType::A)),
        vec!["10.244.0.7"]
    );

    // Deleting the Service takes the namespace name with it.
    index.delete_service(&service(json!({
        "metadata": {"name": "db", "namespace": "shop"},
        "spec": {"clusterIP": "None"}
    })));
    assert_eq!(
        index.lookup(&name("shop.svc.cluster.local."), RecordType::A),
        Lookup::NxDomain
    );
}

#[test]
fn cluster_ip_service_without_address_yet_is_nodata() {
    let index = index();
    index.apply_service(&service(json!({
        "metadata": {"name": "pending", "namespace": "default"},
        "spec": {}
    })));
    assert_eq!(
        index.lookup(&name("pending.default.svc.cluster.local."), RecordType::A),
        Lookup::NoData
    );
}

#[test]
fn relist_drops_what_is_gone() {
    let index = index();
    index.apply_service(&mysql());
    let other = service(json!({
        "metadata": {"name": "other", "namespace": "default"},
        "spec": {"clusterIP": "10.96.0.30"}
    }));
    index.replace_services(std::slice::from_ref(&other));
    assert_eq!(
        index.lookup(&name("mysql.luffy.svc.cluster.local."), RecordType::A),
        Lookup::NxDomain
    );
    assert_eq!(
        answers(index.lookup(&name("other.default.svc.cluster.local."), RecordType::A)),
        vec!["10.96.0.30"]
    );
}

#[test]
fn external_name_cname_chain() {
    let index = index();
    index.apply_service(&mysql());
    index.apply_service(&service(json!({
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {"type": "ExternalName", "externalName": "mysql.luffy.svc.cluster.local"}
    })));
    index.apply_service(&service(json!({
        "metadata": {"name": "ext", "namespace": "default"},
        "spec": {"type": "ExternalName", "externalName": "db.example.com"}
    })));
    assert_eq!(
        answers(index.lookup(&name("db.default.svc.cluster.local."), RecordType::A)),
        vec!["mysql.luffy.svc.cluster.local.", "10.96.0.20"]
    );
    match index.lookup(&name("ext.default.svc.cluster.local."), RecordType::A) {
        Lookup::Answer {
            records,
            external_target,
        } => {
            assert_eq!(records.len(), 1);
            assert_eq!(external_target.unwrap().to_string(), "db.example.com.");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn pod_names_and_dns_version() {
    let index = index();
    assert_eq!(
        answers(index.lookup(
            &name("10-244-0-5.default.pod.cluster.local."),
            RecordType::A
        )),
        vec!["10.244.0.5"]
    );
    assert_eq!(
        index.lookup(
            &name("10-244-0-5.default.pod.cluster.local."),
            RecordType::AAAA
        ),
        Lookup::NoData
    );
    assert_eq!(
        index.lookup(&name("not-an-ip.default.pod.cluster.local."), RecordType::A),
        Lookup::NxDomain
    );
    assert_eq!(
        index.lookup(&name("default.pod.cluster.local."), RecordType::A),
        Lookup::NoData
    );
    assert_eq!(
        answers(index.lookup(&name("dns-version.cluster.local."), RecordType::TXT)),
        vec!["1.1.0"]
    );
    assert_eq!(
        answers(index.lookup(&name("cluster.local."), RecordType::SOA)).len(),
        1
    );
}

#[test]
fn slice_moving_to_another_service() {
    let index = index();
    for svc in ["a", "b"] {
        index.apply_service(&service(json!({
            "metadata": {"name": svc, "namespace": "default"},
            "spec": {"clusterIP": "None"}
        })));
    }
    let mut endpoints = slice(json!({
        "metadata": {"name": "s", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "a"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.0.9"]}]
    }));
    index.apply_endpoint_slice(&endpoints);
    endpoints
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("kubernetes.io/service-name".into(), "b".into());
    index.apply_endpoint_slice(&endpoints);
    assert_eq!(
        index.lookup(&name("a.default.svc.cluster.local."), RecordType::A),
        Lookup::NxDomain
    );
    assert_eq!(
        answers(index.lookup(&name("b.default.svc.cluster.local."), RecordType::A)),
        vec!["10.244.0.9"]
    );
}
