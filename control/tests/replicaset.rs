//! The ReplicaSet controller against an in-process API server.

mod raw_status;
#[path = "deployment_support.rs"]
mod support;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kedge_control::testing::eventually_within;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn rs(name: &str, replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}
            }
        }
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn keeps_replicas_replaces_and_scales() {
    let c = support::start().await;
    let api: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    api.create(&PostParams::default(), &rs("web", 3))
        .await
        .unwrap();
    let client = c.client.clone();
    eventually_within(30, "3 ready pods", || {
        let api = api.clone();
        let client = client.clone();
        async move {
            let pods = support::active_pods(&client, "app=web").await;
            let st = api.get("web").await.unwrap().status.unwrap_or_default();
            pods.len() == 3 && st.ready_replicas == Some(3) && st.available_replicas == Some(3)
        }
    })
    .await;
    let pods = support::active_pods(&c.client, "app=web").await;
    for p in &pods {
        assert!(p.metadata.name.as_ref().unwrap().starts_with("web-"));
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.kind, "ReplicaSet");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.block_owner_deletion, Some(true));
    }

    // A deleted pod is replaced.
    let pod_api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let victim = pods[0].metadata.name.clone().unwrap();
    pod_api
        .delete(&victim, &DeleteParams::default())
        .await
        .unwrap();
    eventually_within(30, "a replacement pod", || {
        let client = client.clone();
        let victim = victim.clone();
        async move {
            let pods = support::active_pods(&client, "app=web").await;
            pods.len() == 3
                && pods
                    .iter()
                    .all(|p| p.metadata.name.as_ref() != Some(&victim))
        }
    })
    .await;

    // Scale up and down.
    for n in [5, 1] {
        api.patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": n}})),
        )
        .await
        .unwrap();
        eventually_within(30, &format!("{n} pods"), || {
            let client = client.clone();
            let api = api.clone();
            async move {
                let pods = support::active_pods(&client, "app=web").await;
                let st = api.get("web").await.unwrap().status.unwrap_or_default();
                pods.len() == n as usize && st.replicas == n && st.ready_replicas == Some(n)
            }
        })
        .await;
    }
    // Never more than wanted, even after things settle.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(support::active_pods(&c.client, "app=web").await.len(), 1);
    let st = api.get("web").await.unwrap();
    assert_eq!(
        st.status.unwrap().observed_generation,
        st.metadata.generation
    );
    let raw = raw_status::raw_status::<ReplicaSet>(&c.client, "web").await;
    assert_eq!(
        (
            &raw["replicas"],
            &raw["readyReplicas"],
            &raw["availableReplicas"]
        ),
        (&json!(1), &json!(1), &json!(1)),
        "{raw}"
    );

    // At zero the counters Kubernetes omits are gone; `replicas` stays.
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 0}})),
    )
    .await
    .unwrap();
    eventually_within(30, "0 pods", || {
        let client = client.clone();
        async move {
            let raw = raw_status::raw_status::<ReplicaSet>(&client, "web").await;
            support::active_pods(&client, "app=web").await.is_empty()
                && raw["replicas"] == json!(0)
                && raw["observedGeneration"] == json!(4)
        }
    })
    .await;
    let raw = raw_status::raw_status::<ReplicaSet>(&c.client, "web").await;
    let shown = raw_status::present(
        &raw,
        &["readyReplicas", "availableReplicas", "fullyLabeledReplicas"],
    );
    assert!(shown.is_empty(), "{shown:?} in {raw}");
}

#[tokio::test(flavor = "multi_thread")]
async fn adopts_orphans_and_releases_mismatches() {
    let c = support::start().await;
    let pod_api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let orphan: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "orphan", "labels": {"app": "db"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    pod_api
        .create(&PostParams::default(), &orphan)
        .await
        .unwrap();
    let api: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    api.create(&PostParams::default(), &rs("db", 2))
        .await
        .unwrap();
    let client = c.client.clone();
    eventually_within(30, "adoption", || {
        let pod_api = pod_api.clone();
        let client = client.clone();
        async move {
            let p = pod_api.get("orphan").await.unwrap();
            let owned = p
                .metadata
                .owner_references
                .is_some_and(|o| o.iter().any(|r| r.name == "db"));
            owned && support::active_pods(&client, "app=db").await.len() == 2
        }
    })
    .await;
    // Relabel: released, and replaced.
    pod_api
        .patch(
            "orphan",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"app": "other"}}})),
        )
        .await
        .unwrap();
    eventually_within(30, "release", || {
        let pod_api = pod_api.clone();
        let client = client.clone();
        async move {
            let p = pod_api.get("orphan").await.unwrap();
            let owned = p.metadata.owner_references.is_some_and(|o| !o.is_empty());
            !owned && support::active_pods(&client, "app=db").await.len() == 2
        }
    })
    .await;
}
