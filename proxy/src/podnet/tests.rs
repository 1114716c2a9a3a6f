use super::*;

use k8s_openapi::api::core::v1::NodeSpec;
use kube::api::ObjectMeta;

fn cfg(backend: Backend) -> PodNetworkConfig {
    PodNetworkConfig {
        node_name: "one".into(),
        public_ip: Ipv4Addr::new(10, 123, 0, 1),
        pod_cidr: (Ipv4Addr::new(10, 244, 0, 0), 24),
        cluster_cidr: (Ipv4Addr::new(10, 244, 0, 0), 16),
        backend,
    }
}

const VXLAN: Backend = Backend::Vxlan { vni: 1, port: 8472 };

/// A Node as another node of `backend` publishes itself.
fn node(name: &str, index: u8, backend: Backend) -> Node {
    let mut published = cfg(backend);
    published.node_name = name.into();
    published.public_ip = Ipv4Addr::new(10, 123, 0, index);
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            annotations: Some(annotations(&published)),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: Some(format!("10.244.{index}.0/24")),
            pod_cidrs: Some(vec![format!("10.244.{index}.0/24")]),
            ..Default::default()
        }),
        status: None,
    }
}

#[test]
fn a_node_publishes_its_address_and_vtep() {
    let a = annotations(&cfg(VXLAN));
    assert_eq!(a[ANNOTATION_BACKEND_TYPE], "vxlan");
    assert_eq!(a[ANNOTATION_PUBLIC_IP], "10.123.0.1");
    assert_eq!(
        a[ANNOTATION_BACKEND_DATA],
        r#"{"VNI":1,"VtepMAC":"0e:6b:0a:7b:00:01"}"#
    );
    let a = annotations(&cfg(Backend::HostGw));
    assert_eq!(a[ANNOTATION_BACKEND_TYPE], "host-gw");
    assert!(!a.contains_key(ANNOTATION_BACKEND_DATA));
}

#[test]
fn another_node_of_the_same_backend_is_a_peer() {
    let peer = peer_of(&cfg(VXLAN), &node("two", 2, VXLAN)).unwrap();
    assert_eq!(peer.cidr, (Ipv4Addr::new(10, 244, 2, 0), 24));
    assert_eq!(peer.public_ip, Ipv4Addr::new(10, 123, 0, 2));
    assert_eq!(peer.vtep_mac.as_deref(), Some("0e:6b:0a:7b:00:02"));
    let peer = peer_of(&cfg(Backend::HostGw), &node("three", 3, Backend::HostGw)).unwrap();
    assert_eq!(peer.vtep_mac, None);
}

#[test]
fn nodes_that_cannot_be_routed_are_not_peers() {
    let c = cfg(VXLAN);
    // Itself.
    assert_eq!(peer_of(&c, &node("one", 1, VXLAN)), None);
    // Another backend, another VNI.
    assert_eq!(peer_of(&c, &node("two", 2, Backend::HostGw)), None);
    assert_eq!(
        peer_of(&c, &node("two", 2, Backend::Vxlan { vni: 7, port: 8472 })),
        None
    );
    // Nothing published, no pod CIDR yet, or the node's own CIDR.
    let mut n = node("two", 2, VXLAN);
    n.metadata.annotations = None;
    assert_eq!(peer_of(&c, &n), None);
    let mut n = node("two", 2, VXLAN);
    n.spec = None;
    assert_eq!(peer_of(&c, &n), None);
    let n = node("zero", 0, VXLAN);
    assert_eq!(peer_of(&c, &n), None);
    // A MAC that is not one.
    let mut n = node("two", 2, VXLAN);
    n.metadata.annotations.as_mut().unwrap().insert(
        ANNOTATION_BACKEND_DATA.into(),
        r#"{"VNI":1,"VtepMAC":"0e:6b:0a:7b:00:02; rm -rf /"}"#.into(),
    );
    assert_eq!(peer_of(&c, &n), None);
}

#[test]
fn cidrs_parse_and_overlap() {
    assert_eq!(
        parse_cidr("10.244.3.7/24"),
        Some((Ipv4Addr::new(10, 244, 3, 0), 24))
    );
    assert_eq!(parse_cidr("10.244.3.0"), None);
    assert_eq!(parse_cidr("10.244.3.0/33"), None);
    assert!(overlaps(
        (Ipv4Addr::new(10, 244, 0, 0), 16),
        (Ipv4Addr::new(10, 244, 9, 0), 24)
    ));
    assert!(!overlaps(
        (Ipv4Addr::new(10, 244, 1, 0), 24),
        (Ipv4Addr::new(10, 244, 2, 0), 24)
    ));
}
