//! Two API servers on one real etcd (Debian's `etcd-server`), as the
//! control plane of several machines runs: a write on one is seen by a
//! watch on the other, both hand out the same resourceVersions (etcd's
//! revisions), concurrent read-modify-writes through both lose nothing, a
//! stale resourceVersion is a conflict, Secrets reach etcd encrypted, and
//! a server started later loads everything back; over TLS with client
//! certificates as kubeadm's etcd asks.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kedge_control::testing::{self, Etcd, TestServer};
use kube::api::{Api, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

/// A second server's data dir: the first one's CA, keys and encryption
/// configuration (what a second control-plane machine is given), no state.
fn copy_of(dir: &std::path::Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name();
        let keep = name.to_string_lossy();
        if entry.path().is_file() && !keep.ends_with(".redb") {
            std::fs::copy(entry.path(), copy.path().join(&name)).unwrap();
        }
    }
    copy
}

async fn two_servers(etcd: &Etcd) -> (TestServer, TestServer) {
    let a = testing::start_in(tempfile::tempdir().unwrap(), Some(etcd.config())).await;
    let b = testing::start_in(copy_of(a.dir.path()), Some(etcd.config())).await;
    (a, b)
}

fn config_map(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "data": data.iter().cloned().collect::<BTreeMap<_, _>>(),
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_on_one_server_is_seen_on_the_other() {
    let etcd = Etcd::start();
    let (a, b) = two_servers(&etcd).await;
    let on_a: Api<ConfigMap> = Api::namespaced(a.client.clone(), "default");
    let on_b: Api<ConfigMap> = Api::namespaced(b.client.clone(), "default");

    let mut watch = on_b
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let created = on_a
        .create(&PostParams::default(), &config_map("shared", &[("k", "v")]))
        .await
        .unwrap();
    let rv = created.metadata.resource_version.clone().unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(event) = watch.try_next().await.unwrap() {
            if let WatchEvent::Added(cm) = event {
                if cm.metadata.name.as_deref() == Some("shared") {
                    return cm;
                }
            }
        }
        panic!("the watch ended");
    })
    .await
    .expect("the other server's watch saw the write within a second");
    assert_eq!(seen.metadata.resource_version.as_deref(), Some(rv.as_str()));
    let got = on_b.get("shared").await.unwrap();
    assert_eq!(got.metadata.resource_version, Some(rv.clone()));

    // A stale resourceVersion is a conflict on either server.
    on_b.patch(
        "shared",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v2"}})),
    )
    .await
    .unwrap();
    let mut stale = created.clone();
    stale.data = Some(BTreeMap::from([("k".to_string(), "v3".to_string())]));
    let err = on_a
        .replace("shared", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_updates_through_both_servers_lose_nothing() {
    let etcd = Etcd::start();
    let (a, b) = two_servers(&etcd).await;
    let on_a: Api<ConfigMap> = Api::namespaced(a.client.clone(), "default");
    on_a.create(&PostParams::default(), &config_map("counter", &[]))
        .await
        .unwrap();
    // Each writer adds its own keys with read-modify-write patches (no
    // resourceVersion: the server must retry internally when the other
    // server wrote first).
    let writers = [("a", a.client.clone()), ("b", b.client.clone())].map(|(who, client)| {
        tokio::spawn(async move {
            let api: Api<ConfigMap> = Api::namespaced(client, "default");
            for i in 0..50 {
                api.patch(
                    "counter",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"data": {format!("{who}{i}"): "1"}})),
                )
                .await
                .unwrap();
            }
        })
    });
    for w in writers {
        w.await.unwrap();
    }
    let on_b: Api<ConfigMap> = Api::namespaced(b.client.clone(), "default");
    for api in [&on_a, &on_b] {
        let keys = api.get("counter").await.unwrap().data.unwrap_or_default();
        assert_eq!(keys.len(), 100, "{keys:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn state_survives_in_etcd_and_secrets_are_encrypted_there() {
    let etcd = Etcd::start();
    let a = testing::start_in(tempfile::tempdir().unwrap(), Some(etcd.config())).await;
    let secrets: Api<Secret> = Api::namespaced(a.client.clone(), "default");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "stringData": {"password": "not-in-etcd-in-plain-text"},
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    // Read etcd directly: the value is the encrypted form.
    let mut client = etcd_client::Client::connect([etcd.url.as_str()], None)
        .await
        .unwrap();
    let stored = client
        .get("/registry/core/secrets/default/db", None)
        .await
        .unwrap();
    let value = stored.kvs()[0].value();
    assert!(
        value.starts_with(b"k8s:enc:secretbox:v1:"),
        "{}",
        String::from_utf8_lossy(value)
    );
    assert!(!String::from_utf8_lossy(value).contains("not-in-etcd"));

    // Another server started later (another machine) has it all.
    let later = testing::start_in(copy_of(a.dir.path()), Some(etcd.config())).await;
    let secrets: Api<Secret> = Api::namespaced(later.client.clone(), "default");
    let got = secrets.get("db").await.unwrap();
    assert_eq!(
        got.data.unwrap()["password"].0,
        b"not-in-etcd-in-plain-text"
    );
}

/// etcd as kubeadm runs it: TLS only, every client showing a certificate of
/// etcd's CA. The server reaches it with `--etcd-cafile/-certfile/-keyfile`;
/// a client without a certificate is refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_reaches_etcd_over_tls_with_its_client_certificate() {
    let etcd = Etcd::start_tls();
    let pki = etcd.tls.clone().unwrap();
    let a = testing::start_in(tempfile::tempdir().unwrap(), Some(etcd.config())).await;
    let on_a: Api<ConfigMap> = Api::namespaced(a.client.clone(), "default");
    on_a.create(
        &PostParams::default(),
        &config_map("over-tls", &[("k", "v")]),
    )
    .await
    .unwrap();

    let read = |name: &str| std::fs::read(pki.join(name)).unwrap();
    let ca = etcd_client::Certificate::from_pem(read("ca.crt"));
    // With the client certificate, the object is there.
    let tls = etcd_client::TlsOptions::new()
        .ca_certificate(ca.clone())
        .identity(etcd_client::Identity::from_pem(
            read("client.crt"),
            read("client.key"),
        ));
    let mut client = etcd_client::Client::connect(
        [etcd.url.as_str()],
        Some(etcd_client::ConnectOptions::new().with_tls(tls)),
    )
    .await
    .unwrap();
    let stored = client
        .get("/registry/core/configmaps/default/over-tls", None)
        .await
        .unwrap();
    assert_eq!(stored.kvs().len(), 1);

    // Without one, etcd refuses.
    let tls = etcd_client::TlsOptions::new().ca_certificate(ca);
    let refused = async {
        let mut client = etcd_client::Client::connect(
            [etcd.url.as_str()],
            Some(etcd_client::ConnectOptions::new().with_tls(tls)),
        )
        .await?;
        client
            .get("/registry/core/configmaps/default/over-tls", None)
            .await
    };
    let refused = tokio::time::timeout(Duration::from_secs(10), refused).await;
    assert!(
        !matches!(refused, Ok(Ok(_))),
        "etcd answered a client without a certificate"
    );
}
