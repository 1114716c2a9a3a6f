//! The node IPAM controller against an in-process API server: nodes that
//! register without a pod CIDR get the next subnet of the cluster CIDR,
//! nodes with their own keep it (and it is not handed out again), a
//! deleted node's subnet comes back to the pool, and an exhausted pool
//! says so in an event.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Event, Node};
use kedge_control::controllers::nodeipam::{self, NodeCidrs};
use kedge_control::controllers::Context;
use kedge_control::testing::{self, eventually_some};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

async fn register(nodes: &Api<Node>, name: &str, cidr: Option<&str>) {
    let mut node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}});
    if let Some(c) = cidr {
        node["spec"] = json!({"podCIDR": c, "podCIDRs": [c]});
    }
    nodes
        .create(
            &PostParams::default(),
            &serde_json::from_value(node).unwrap(),
        )
        .await
        .unwrap();
}

async fn cidr_of(nodes: &Api<Node>, name: &str) -> String {
    let nodes = nodes.clone();
    let name = name.to_string();
    eventually_some(&format!("a pod CIDR on {name}"), move || {
        let nodes = nodes.clone();
        let name = name.clone();
        async move {
            let spec = nodes.get(&name).await.ok()?.spec?;
            assert_eq!(spec.pod_cidrs.as_ref().map(Vec::len), Some(1), "{spec:?}");
            assert_eq!(spec.pod_cidrs.as_ref()?[0], *spec.pod_cidr.as_ref()?);
            spec.pod_cidr
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_get_subnets_of_the_cluster_cidr_until_none_is_left() {
    let api = testing::start().await;
    let client = api.client.clone();
    let nodes: Api<Node> = Api::all(client.clone());
    // Registered before the controller starts: its subnet is taken.
    register(&nodes, "own", Some("10.250.0.0/24")).await;
    // A /22 in /24s: four subnets, one reserved for the control plane's node.
    let ctx = Context::new(client.clone()).with_node_cidrs(NodeCidrs {
        cluster: (Ipv4Addr::new(10, 250, 0, 0), 22),
        node_prefix: 24,
        reserved: vec![(Ipv4Addr::new(10, 250, 1, 0), 24)],
    });
    tokio::spawn(nodeipam::run(ctx));

    register(&nodes, "a", None).await;
    assert_eq!(cidr_of(&nodes, "a").await, "10.250.2.0/24");
    register(&nodes, "b", None).await;
    assert_eq!(cidr_of(&nodes, "b").await, "10.250.3.0/24");
    // Outside the cluster CIDR: kept as it is.
    register(&nodes, "elsewhere", Some("10.201.7.0/24")).await;
    assert_eq!(cidr_of(&nodes, "elsewhere").await, "10.201.7.0/24");

    // Every subnet is taken: the node is told so.
    register(&nodes, "c", None).await;
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    eventually_some("a CIDRNotAvailable event", || {
        let events = events.clone();
        async move {
            events
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .find(|e| {
                    e.reason.as_deref() == Some("CIDRNotAvailable")
                        && e.involved_object.name.as_deref() == Some("c")
                })
        }
    })
    .await;

    // A deleted node's subnet is given to the next node that registers.
    nodes.delete("a", &DeleteParams::default()).await.unwrap();
    nodes.delete("c", &DeleteParams::default()).await.unwrap();
    register(&nodes, "d", None).await;
    assert_eq!(cidr_of(&nodes, "d").await, "10.250.2.0/24");
    assert_eq!(cidr_of(&nodes, "own").await, "10.250.0.0/24");
}
