//! The Endpoints and EndpointSlice controllers against an in-process API
//! server: pods are created bound to a node and their status (podIP, Ready)
//! is written through pods/status, as a kubelet would.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kedge_control::controllers::{endpoints, endpointslice, garbagecollector, Context};
use kedge_control::testing::{self, eventually, TestServer};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;

async fn start() -> (
    kedge_control::server::RunningServer,
    Client,
    tempfile::TempDir,
) {
    let TestServer {
        server,
        client,
        dir,
    } = testing::start().await;
    let ctx = Context::new(client.clone());
    tokio::spawn(endpoints::run(ctx.clone()));
    tokio::spawn(endpointslice::run(ctx.clone()));
    tokio::spawn(garbagecollector::run(Arc::clone(&ctx)));
    (server, client, dir)
}

async fn make_node(client: &Client, name: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": "zone-a"}},
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
}

async fn make_pod(client: &Client, name: &str, ip: &str, port_name: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {
            "nodeName": "node-1",
            "containers": [{
                "name": "web", "image": "web",
                "ports": [{"name": port_name, "containerPort": 8080}],
            }],
        },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    set_ready(client, name, Some(ip), true).await;
}

async fn set_ready(client: &Client, name: &str, ip: Option<&str>, ready: bool) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut status = json!({
        "phase": "Running",
        "conditions": [{
            "type": "Ready",
            "status": if ready { "True" } else { "False" },
            "lastTransitionTime": now,
        }],
    });
    if let Some(ip) = ip {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
    }
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": status})),
    )
    .await
    .unwrap();
}

async fn make_service(client: &Client, target_port: serde_json::Value) {
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": target_port}],
        },
    }))
    .unwrap();
    services.create(&PostParams::default(), &svc).await.unwrap();
}

async fn endpoints_of(client: &Client) -> Option<Endpoints> {
    let api: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    api.get_opt("web").await.unwrap()
}

fn ips(list: &Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>) -> Vec<String> {
    let mut v: Vec<String> = list.iter().flatten().map(|a| a.ip.clone()).collect();
    v.sort();
    v
}

async fn slices_of(client: &Client) -> Vec<EndpointSlice> {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default().labels("kubernetes.io/service-name=web"))
        .await
        .unwrap()
        .items
}

/// (ip, ready, serving, terminating) of every endpoint of the Service.
async fn slice_endpoints(client: &Client) -> Vec<(String, bool, bool, bool)> {
    let mut v: Vec<_> = slices_of(client)
        .await
        .iter()
        .flat_map(|s| s.endpoints.clone())
        .map(|e| {
            let c = e.conditions.unwrap_or_default();
            (
                e.addresses[0].clone(),
                c.ready.unwrap_or(false),
                c.serving.unwrap_or(false),
                c.terminating.unwrap_or(false),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoints_and_slices_follow_pods() {
    let (_server, client, _dir) = start().await;
    make_node(&client, "node-1").await;
    make_service(&client, json!(8080)).await;
    for i in 1..=3 {
        make_pod(
            &client,
            &format!("web-{i}"),
            &format!("10.244.0.{i}"),
            "http",
        )
        .await;
    }
    let all = vec!["10.244.0.1", "10.244.0.2", "10.244.0.3"];
    eventually("3 ready addresses", || async {
        endpoints_of(&client).await.is_some_and(|ep| {
            let s = ep.subsets.unwrap_or_default();
            s.len() == 1 && ips(&s[0].addresses) == all
        })
    })
    .await;
    let ep = endpoints_of(&client).await.unwrap();
    let subset = &ep.subsets.as_ref().unwrap()[0];
    assert_eq!(subset.ports.as_ref().unwrap()[0].port, 8080);
    let address = &subset.addresses.as_ref().unwrap()[0];
    assert_eq!(address.node_name.as_deref(), Some("node-1"));
    assert_eq!(
        address.target_ref.as_ref().unwrap().kind.as_deref(),
        Some("Pod")
    );
    assert!(ep
        .metadata
        .annotations
        .unwrap_or_default()
        .contains_key("endpoints.kubernetes.io/last-change-trigger-time"));

    eventually("3 ready slice endpoints", || async {
        slice_endpoints(&client)
            .await
            .iter()
            .filter(|e| e.1)
            .count()
            == 3
    })
    .await;
    let slice = slices_of(&client).await.remove(0);
    assert_eq!(slice.address_type, "IPv4");
    let labels = slice.metadata.labels.clone().unwrap();
    assert_eq!(
        labels["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(slice.metadata.generate_name.as_deref(), Some("web-"));
    let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("Service", Some(true))
    );
    let port = &slice.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.port),
        (Some("http"), Some(8080))
    );
    assert_eq!(slice.endpoints[0].zone.as_deref(), Some("zone-a"));

    // Readiness lost: not ready in both, at once.
    set_ready(&client, "web-2", None, false).await;
    eventually("web-2 not ready", || async {
        let Some(ep) = endpoints_of(&client).await else {
            return false;
        };
        let s = ep.subsets.unwrap_or_default();
        s.len() == 1
            && ips(&s[0].addresses) == vec!["10.244.0.1", "10.244.0.3"]
            && ips(&s[0].not_ready_addresses) == vec!["10.244.0.2"]
    })
    .await;
    eventually("web-2 ready=false in its slice", || async {
        slice_endpoints(&client).await
            == vec![
                ("10.244.0.1".into(), true, true, false),
                ("10.244.0.2".into(), false, false, false),
                ("10.244.0.3".into(), true, true, false),
            ]
    })
    .await;

    // Pod deleted (unbound pods go at once; this one has a node, so force).
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.delete("web-3", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    eventually("web-3 gone", || async {
        let eps = endpoints_of(&client)
            .await
            .and_then(|e| e.subsets)
            .unwrap_or_default();
        let listed: Vec<String> = eps
            .iter()
            .flat_map(|s| {
                ips(&s.addresses)
                    .into_iter()
                    .chain(ips(&s.not_ready_addresses))
            })
            .collect();
        let sliced = slice_endpoints(&client).await;
        !listed.contains(&"10.244.0.3".to_string())
            && !listed.is_empty()
            && sliced.len() == 2
            && sliced.iter().all(|e| e.0 != "10.244.0.3")
    })
    .await;

    // Service deleted: Endpoints by name, slices through their owner.
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    eventually("endpoints and slices gone", || async {
        endpoints_of(&client).await.is_none() && slices_of(&client).await.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn named_target_port_is_resolved_per_pod() {
    let (_server, client, _dir) = start().await;
    make_node(&client, "node-1").await;
    make_service(&client, json!("web-port")).await;
    make_pod(&client, "web-1", "10.244.0.1", "web-port").await;
    // No port of that name: left out of the Endpoints subset for that port,
    // but still sliced, in a slice without that port (Kubernetes'
    // getEndpointPorts skips the port, not the pod).
    make_pod(&client, "web-2", "10.244.0.2", "other").await;
    eventually("only web-1 listed", || async {
        endpoints_of(&client).await.is_some_and(|ep| {
            let s = ep.subsets.unwrap_or_default();
            s.len() == 1
                && ips(&s[0].addresses) == vec!["10.244.0.1"]
                && s[0].ports.as_ref().unwrap()[0].port == 8080
        })
    })
    .await;
    // Exactly these two slices, once converged: no leftover placeholder.
    let want = vec![
        (vec![], vec!["10.244.0.2".to_string()]),
        (
            vec![(Some("http".to_string()), Some(8080))],
            vec!["10.244.0.1".to_string()],
        ),
    ];
    eventually(
        "web-1 sliced with port 8080, web-2 without ports",
        || async {
            let mut got: Vec<_> = slices_of(&client)
                .await
                .into_iter()
                .map(|s| {
                    let ports: Vec<_> = s
                        .ports
                        .unwrap_or_default()
                        .into_iter()
                        .map(|p| (p.name, p.port))
                        .collect();
                    let ips: Vec<String> =
                        s.endpoints.into_iter().flat_map(|e| e.addresses).collect();
                    (ports, ips)
                })
                .collect();
            got.sort();
            got == want
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn service_without_selector_keeps_its_endpoints() {
    let (_server, client, _dir) = start().await;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 80}]},
    }))
    .unwrap();
    services.create(&PostParams::default(), &svc).await.unwrap();
    let api: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let ep: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "subsets": [{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 80}]}],
    }))
    .unwrap();
    api.create(&PostParams::default(), &ep).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ep = endpoints_of(&client).await.unwrap();
    assert_eq!(ips(&ep.subsets.unwrap()[0].addresses), vec!["192.0.2.1"]);
    assert!(slices_of(&client).await.is_empty());
}
