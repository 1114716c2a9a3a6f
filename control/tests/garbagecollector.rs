//! The garbage collector against an in-process API server: dependents of a
//! deleted owner go (Background), are kept without the reference
//! (Orphan), or go before the owner (Foreground).

use k8s_openapi::api::core::v1::ConfigMap;
use kedge_control::controllers::{garbagecollector, Context};
use kedge_control::testing::{self, eventually, TestServer};
use kube::api::{Api, DeleteParams, PostParams};
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
    tokio::spawn(garbagecollector::run(Context::new(client.clone())));
    (server, client, dir)
}

/// An owner ConfigMap and a dependent naming it.
async fn owner_and_dependent(api: &Api<ConfigMap>) -> String {
    let owner: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "owner"}})).unwrap();
    let owner = api.create(&PostParams::default(), &owner).await.unwrap();
    let uid = owner.metadata.uid.unwrap();
    let dependent: ConfigMap = serde_json::from_value(json!({
        "metadata": {
            "name": "dependent",
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid,
                "blockOwnerDeletion": true,
            }],
        },
    }))
    .unwrap();
    api.create(&PostParams::default(), &dependent)
        .await
        .unwrap();
    uid
}

#[tokio::test(flavor = "multi_thread")]
async fn background_deletes_dependents_after_the_owner() {
    let (_server, client, _dir) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    owner_and_dependent(&api).await;
    api.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    assert!(api.get_opt("owner").await.unwrap().is_none());
    eventually("dependent deleted", || async {
        api.get_opt("dependent").await.unwrap().is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dependent_of_an_owner_that_never_existed_is_deleted() {
    let (_server, client, _dir) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let dependent: ConfigMap = serde_json::from_value(json!({
        "metadata": {
            "name": "stray",
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "ghost", "uid": "no-such-uid"}],
        },
    }))
    .unwrap();
    api.create(&PostParams::default(), &dependent)
        .await
        .unwrap();
    eventually("stray deleted", || async {
        api.get_opt("stray").await.unwrap().is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn orphan_keeps_dependents_without_the_reference() {
    let (_server, client, _dir) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    owner_and_dependent(&api).await;
    api.delete("owner", &DeleteParams::orphan()).await.unwrap();
    eventually("owner deleted", || async {
        api.get_opt("owner").await.unwrap().is_none()
    })
    .await;
    let dependent = api.get("dependent").await.unwrap();
    assert!(dependent
        .metadata
        .owner_references
        .unwrap_or_default()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn foreground_deletes_dependents_before_the_owner() {
    let (_server, client, _dir) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    owner_and_dependent(&api).await;
    api.delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();
    eventually("both deleted", || async {
        let owner = api.get_opt("owner").await.unwrap();
        let dependent = api.get_opt("dependent").await.unwrap();
        // The owner may only go once its blocking dependent has.
        assert!(
            !(owner.is_none() && dependent.is_some()),
            "owner went first"
        );
        owner.is_none() && dependent.is_none()
    })
    .await;
}
