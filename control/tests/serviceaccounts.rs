//! ServiceAccounts against an in-process API server: the serviceaccount and
//! root-ca-cert-publisher controllers, the ServiceAccount admission of
//! pods, the TokenRequest API and the authentication of its tokens.

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ServiceAccount};
use kedge_control::controllers::{rootcacertpublisher, serviceaccount, Context};
use kedge_control::testing::{self, eventually, TestServer};
use kube::api::{Api, DeleteParams, PostParams};
use kube::Client;
use serde_json::json;

struct Server {
    running: kedge_control::server::RunningServer,
    client: Client,
    dir: tempfile::TempDir,
}

async fn start() -> Server {
    let TestServer {
        server,
        client,
        dir,
    } = testing::start().await;
    let ca = std::fs::read_to_string(dir.path().join("ca.crt")).unwrap();
    let ctx = Context::with_root_ca(client.clone(), ca.clone());
    tokio::spawn(serviceaccount::run(ctx.clone()));
    tokio::spawn(rootcacertpublisher::run(ctx, ca));
    Server {
        running: server,
        client,
        dir,
    }
}

impl Server {
    /// A client that authenticates with `token` alone.
    async fn client_with_token(&self, token: &str) -> Client {
        let kc = kube::config::Kubeconfig::read_from(self.running.kubeconfig.clone()).unwrap();
        let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        // The token alone: the admin's client certificate would
        // authenticate first.
        cfg.auth_info = kube::config::AuthInfo {
            token: Some(token.to_string().into()),
            ..Default::default()
        };
        Client::try_from(cfg).unwrap()
    }

    async fn authenticates(&self, token: &str) -> bool {
        let api: Api<Pod> = Api::namespaced(self.client_with_token(token).await, "default");
        match api.list(&Default::default()).await {
            // Authenticated: RBAC then allows it or not.
            Ok(_) => true,
            Err(kube::Error::Api(s)) if s.code == 403 => true,
            Err(kube::Error::Api(s)) if s.code == 401 => false,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
}

fn token_request(spec: serde_json::Value) -> TokenRequest {
    serde_json::from_value(json!({"spec": spec})).unwrap()
}

async fn request_token(
    client: &Client,
    ns: &str,
    sa: &str,
    spec: serde_json::Value,
) -> Result<TokenRequest, kube::Error> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    api.create_token_request(sa, &PostParams::default(), &token_request(spec))
        .await
}

fn code(e: kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("not an API error: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_namespace_gets_a_default_service_account_and_the_root_ca() {
    let s = start().await;
    let ca = std::fs::read_to_string(s.dir.path().join("ca.crt")).unwrap();
    let namespaces: Api<Namespace> = Api::all(s.client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(s.client.clone(), "team");
    let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "team");
    eventually("the default ServiceAccount and root CA", || async {
        sas.get_opt("default").await.unwrap().is_some()
            && cms
                .get_opt("kube-root-ca.crt")
                .await
                .unwrap()
                .and_then(|cm| cm.data)
                .and_then(|d| d.get("ca.crt").cloned())
                .as_deref()
                == Some(ca.as_str())
    })
    .await;

    // Deleted or edited, they come back.
    sas.delete("default", &DeleteParams::default())
        .await
        .unwrap();
    let edited: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": "mine"}}),
    )
    .unwrap();
    cms.replace("kube-root-ca.crt", &PostParams::default(), &edited)
        .await
        .unwrap();
    eventually("both restored", || async {
        sas.get_opt("default").await.unwrap().is_some()
            && cms.get("kube-root-ca.crt").await.unwrap().data.unwrap()["ca.crt"] == ca
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_are_admitted_with_their_service_account_token_volume() {
    let s = start().await;
    let sas: Api<ServiceAccount> = Api::namespaced(s.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(s.client.clone(), "default");
    let pod = |name: &str, extra: serde_json::Value| -> Pod {
        let mut spec = json!({"containers": [{"name": "c", "image": "busybox"}],
                              "initContainers": [{"name": "i", "image": "busybox"}]});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
    };

    let p = pods
        .create(&PostParams::default(), &pod("plain", json!({})))
        .await
        .unwrap();
    let spec = p.spec.unwrap();
    assert_eq!(spec.service_account_name.as_deref(), Some("default"));
    let volumes = spec.volumes.unwrap();
    let name = &volumes[0].name;
    assert!(name.starts_with("kube-api-access-"));
    let sources = volumes[0]
        .projected
        .as_ref()
        .unwrap()
        .sources
        .as_ref()
        .unwrap();
    let token = sources[0].service_account_token.as_ref().unwrap();
    assert_eq!(
        (token.path.as_str(), token.expiration_seconds),
        ("token", Some(3607))
    );
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let m = &c.volume_mounts.as_ref().unwrap()[0];
        assert_eq!(&m.name, name);
        assert_eq!(
            m.mount_path,
            "/var/run/secrets/kubernetes.io/serviceaccount"
        );
        assert_eq!(m.read_only, Some(true));
    }

    // Turned off on the pod, or on its ServiceAccount.
    let p = pods
        .create(
            &PostParams::default(),
            &pod("off", json!({"automountServiceAccountToken": false})),
        )
        .await
        .unwrap();
    assert!(p.spec.unwrap().volumes.is_none());
    let quiet: ServiceAccount = serde_json::from_value(json!({
        "metadata": {"name": "quiet"},
        "automountServiceAccountToken": false,
        "imagePullSecrets": [{"name": "regcred"}],
    }))
    .unwrap();
    sas.create(&PostParams::default(), &quiet).await.unwrap();
    let p = pods
        .create(
            &PostParams::default(),
            &pod("quiet", json!({"serviceAccountName": "quiet"})),
        )
        .await
        .unwrap();
    let spec = p.spec.unwrap();
    assert!(spec.volumes.is_none());
    assert_eq!(spec.image_pull_secrets.unwrap()[0].name, "regcred");
    // ... unless the pod asks for it.
    let p = pods
        .create(
            &PostParams::default(),
            &pod(
                "quiet-but-mounted",
                json!({"serviceAccountName": "quiet", "automountServiceAccountToken": true}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(p.spec.unwrap().volumes.unwrap().len(), 1);

    // A ServiceAccount that does not exist is refused.
    let err = pods
        .create(
            &PostParams::default(),
            &pod("ghost", json!({"serviceAccountName": "ghost"})),
        )
        .await
        .unwrap_err();
    assert_eq!(code(err), 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn token_requests_and_what_their_tokens_prove() {
    let s = start().await;
    let sas: Api<ServiceAccount> = Api::namespaced(s.client.clone(), "default");
    eventually("the default ServiceAccount", || async {
        sas.get_opt("default").await.unwrap().is_some()
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(s.client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap();
    let pod = pods.create(&PostParams::default(), &pod).await.unwrap();
    let uid = pod.metadata.uid.clone().unwrap();

    // Defaults: an hour, the API server's audience.
    let tr = request_token(&s.client, "default", "default", json!({}))
        .await
        .unwrap();
    assert_eq!(tr.spec.expiration_seconds, Some(3600));
    assert_eq!(
        tr.spec.audiences,
        ["https://kubernetes.default.svc.cluster.local"]
    );
    let status = tr.status.unwrap();
    let lifetime = status.expiration_timestamp.0.as_second() - jiff::Timestamp::now().as_second();
    assert!((3590..=3600).contains(&lifetime), "{lifetime}");
    assert!(s.authenticates(&status.token).await);
    assert!(!s.authenticates("garbage").await);
    assert!(!s.authenticates("a.b.c").await);

    // Bound to the pod: good while the pod lives.
    let bound = json!({"expirationSeconds": 600, "boundObjectRef": {
        "apiVersion": "v1", "kind": "Pod", "name": "web", "uid": uid,
    }});
    let tr = request_token(&s.client, "default", "default", bound)
        .await
        .unwrap();
    let pod_token = tr.status.unwrap().token;
    assert!(s.authenticates(&pod_token).await);

    // Refusals, with Kubernetes' codes.
    let too_short = request_token(
        &s.client,
        "default",
        "default",
        json!({"expirationSeconds": 599}),
    );
    assert_eq!(code(too_short.await.unwrap_err()), 422);
    let missing = request_token(&s.client, "default", "nobody", json!({}));
    assert_eq!(code(missing.await.unwrap_err()), 404);
    let stale =
        json!({"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "old"}});
    assert_eq!(
        code(
            request_token(&s.client, "default", "default", stale)
                .await
                .unwrap_err()
        ),
        409
    );
    let other: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "other"}})).unwrap();
    sas.create(&PostParams::default(), &other).await.unwrap();
    let wrong_account =
        json!({"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web"}});
    assert_eq!(
        code(
            request_token(&s.client, "default", "other", wrong_account)
                .await
                .unwrap_err()
        ),
        400
    );
    let node = json!({"boundObjectRef": {"apiVersion": "v1", "kind": "Node", "name": "n"}});
    assert_eq!(
        code(
            request_token(&s.client, "default", "default", node)
                .await
                .unwrap_err()
        ),
        400
    );
    let vault = request_token(
        &s.client,
        "default",
        "default",
        json!({"audiences": ["vault"]}),
    )
    .await
    .unwrap();
    assert!(!s.authenticates(&vault.status.unwrap().token).await);

    // The pod goes, and its token with it; the account's other tokens stay.
    pods.delete("web", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    eventually("the pod gone", || async {
        pods.get_opt("web").await.unwrap().is_none()
    })
    .await;
    assert!(!s.authenticates(&pod_token).await);
    assert!(s.authenticates(&status.token).await);

    // A ServiceAccount made again under the same name is another account.
    let other_token = request_token(&s.client, "default", "other", json!({}))
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    assert!(s.authenticates(&other_token).await);
    sas.delete("other", &DeleteParams::default()).await.unwrap();
    assert!(!s.authenticates(&other_token).await);
    sas.create(&PostParams::default(), &other).await.unwrap();
    assert!(!s.authenticates(&other_token).await);

    // The key is the data dir's: a server started on it again (which
    // loads the same key) takes the tokens of this one.
    let issuer = kedge_control::apiserver::tokens::TokenIssuer::ensure(
        s.dir.path(),
        "https://kubernetes.default.svc.cluster.local".into(),
    )
    .unwrap();
    assert!(issuer
        .verify(&status.token, jiff::Timestamp::now().as_second())
        .is_ok());
}
