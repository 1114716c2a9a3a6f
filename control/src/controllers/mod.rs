//! Controllers: each reconciles one kind of object towards its desired state
//! through the API (list + watch, then writes), never the store.
//!
//! Each controller is a module with a `run(ctx)` future built on
//! `kube::runtime::Controller` (the reconcile-to-desired loop: a work queue
//! that never runs one object twice at once, requeues with backoff on
//! error, and watches the objects the controller owns).

pub mod bootstraptokens;
pub mod certificates;
pub mod clusterroleaggregation;
pub mod credentials;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub use kedge_config::events;
pub mod garbagecollector;
pub mod history;
pub mod informers;
pub mod job;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod podautoscaler;
pub mod replicaset;
pub mod resourcequota;
pub mod rootcacertpublisher;
pub mod serviceaccount;
pub mod statefulset;
pub mod volume;

use std::sync::Arc;

use kube::Client;

/// What every controller shares.
#[derive(Clone)]
pub struct Context {
    /// The API client of the controller's writes and reads (its own
    /// identity once [`Context::controller`] gave it one).
    pub client: Client,
    /// The client of list+watch (the controller manager's, as Kubernetes'
    /// shared informers: controllers' roles need not list what they
    /// watch).
    pub watch_client: Client,
    /// The cluster CA (PEM) published to every namespace; without it the
    /// root-ca-cert-publisher does not run.
    pub root_ca_pem: Option<String>,
    /// One watch and cache per resource, shared by the controllers.
    pub informers: Arc<informers::Informers>,
    /// Where each controller's own identity comes from; without it every
    /// controller uses `client`.
    pub credentials: Option<Arc<credentials::ServiceAccountCredentials>>,
    /// The cluster CA, with which the certificate signer issues approved
    /// requests; without it nothing is signed.
    pub signing_ca: Option<Arc<crate::apiserver::certs::ClusterCa>>,
    /// The longest certificate the signer issues, in seconds.
    pub signing_seconds: i64,
    /// The mesh CA, with which workload certificates
    /// (`kedge.io/mesh-workload`) are issued; without it none are.
    pub mesh_ca: Option<Arc<crate::apiserver::certs::MeshCa>>,
    /// The trust domain of workload identities (`spiffe://<domain>/…`).
    pub mesh_trust_domain: String,
    /// The subnets the node IPAM controller gives nodes; without them it
    /// does not run.
    pub node_cidrs: Option<nodeipam::NodeCidrs>,
}

impl Context {
    /// A context over a client.
    pub fn new(client: Client) -> Arc<Self> {
        Arc::new(Self {
            informers: Arc::new(informers::Informers::new(client.clone())),
            watch_client: client.clone(),
            client,
            root_ca_pem: None,
            credentials: None,
            signing_ca: None,
            signing_seconds: certificates::DEFAULT_SIGNING_SECONDS,
            mesh_ca: None,
            mesh_trust_domain: certificates::DEFAULT_TRUST_DOMAIN.to_string(),
            node_cidrs: None,
        })
    }

    /// A context whose root-ca-cert-publisher publishes `ca_pem`.
    pub fn with_root_ca(client: Client, ca_pem: String) -> Arc<Self> {
        Arc::new(Self {
            informers: Arc::new(informers::Informers::new(client.clone())),
            watch_client: client.clone(),
            client,
            root_ca_pem: Some(ca_pem),
            credentials: None,
            signing_ca: None,
            signing_seconds: certificates::DEFAULT_SIGNING_SECONDS,
            mesh_ca: None,
            mesh_trust_domain: certificates::DEFAULT_TRUST_DOMAIN.to_string(),
            node_cidrs: None,
        })
    }

    /// This context with each controller acting as its own ServiceAccount.
    pub fn with_credentials(
        self: Arc<Self>,
        c: credentials::ServiceAccountCredentials,
    ) -> Arc<Self> {
        let mut ctx = (*self).clone();
        ctx.credentials = Some(Arc::new(c));
        Arc::new(ctx)
    }

    /// This context with the certificate signer signing with `ca`.
    pub fn with_signing_ca(
        self: Arc<Self>,
        ca: Arc<crate::apiserver::certs::ClusterCa>,
        max_seconds: i64,
    ) -> Arc<Self> {
        let mut ctx = (*self).clone();
        ctx.signing_ca = Some(ca);
        ctx.signing_seconds = max_seconds;
        Arc::new(ctx)
    }

    /// This context with workload certificates issued by `ca` for
    /// identities of `trust_domain`.
    pub fn with_mesh_ca(
        self: Arc<Self>,
        ca: Arc<crate::apiserver::certs::MeshCa>,
        trust_domain: &str,
    ) -> Arc<Self> {
        let mut ctx = (*self).clone();
        ctx.mesh_ca = Some(ca);
        ctx.mesh_trust_domain = trust_domain.to_string();
        Arc::new(ctx)
    }

    /// This context with the node IPAM controller handing out `cidrs`.
    pub fn with_node_cidrs(self: Arc<Self>, cidrs: nodeipam::NodeCidrs) -> Arc<Self> {
        let mut ctx = (*self).clone();
        ctx.node_cidrs = Some(cidrs);
        Arc::new(ctx)
    }

    /// The context of the controller `name` (its Kubernetes name, such as
    /// `deployment-controller`): the same caches, its own client.
    pub async fn controller(self: &Arc<Self>, name: &str) -> Arc<Self> {
        let Some(creds) = &self.credentials else {
            return self.clone();
        };
        let mut ctx = (**self).clone();
        ctx.client = creds.client_for(name).await;
        Arc::new(ctx)
    }

    /// An event recorder for a controller.
    pub fn recorder(&self, component: &str) -> events::Recorder {
        events::Recorder::new(self.client.clone(), component, None)
    }
}

/// A status field the Go types declare plain (not a pointer) with
/// `omitempty`: the API never carries its zero (0, "", an empty list), it
/// reads back absent; so zero is written as `None`, which also keeps a
/// computed status equal to the stored one.
pub fn omit_empty<T: Default + PartialEq>(v: T) -> Option<T> {
    (v != T::default()).then_some(v)
}

/// Write an object's status through the `status` subresource with `set`
/// applied. On failure it retries once on a fresh copy: a conflict means
/// someone wrote meanwhile, and the status is recomputed on the next sync.
pub async fn replace_status_retrying<K>(
    api: &kube::Api<K>,
    obj: &K,
    set: impl Fn(&mut K),
) -> Result<K, kube::Error>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let mut target = obj.clone();
    set(&mut target);
    match api
        .replace_status(&name, &kube::api::PostParams::default(), &target)
        .await
    {
        Ok(o) => Ok(o),
        Err(e) => {
            tracing::debug!(error = %e, name = %name, "status update failed, retrying once");
            let mut fresh = api.get(&name).await?;
            set(&mut fresh);
            api.replace_status(&name, &kube::api::PostParams::default(), &fresh)
                .await
        }
    }
}

/// Run every controller until the future is dropped.
pub async fn run_all(ctx: Arc<Context>) {
    // Each under the name of its ServiceAccount and role in Kubernetes.
    tokio::join!(
        async { replicaset::run(ctx.controller("replicaset-controller").await).await },
        async {
            replicaset::replication::run(ctx.controller("replication-controller").await).await
        },
        async { deployment::run(ctx.controller("deployment-controller").await).await },
        async { endpoints::run(ctx.controller("endpoint-controller").await).await },
        async { endpointslice::run(ctx.controller("endpointslice-controller").await).await },
        async { garbagecollector::run(ctx.controller("generic-garbage-collector").await).await },
        async { nodelifecycle::run(ctx.controller("node-controller").await).await },
        // kube-controller-manager runs node IPAM as the node controller.
        async { nodeipam::run(ctx.controller("node-controller").await).await },
        async { daemonset::run(ctx.controller("daemon-set-controller").await).await },
        async { job::run(ctx.controller("job-controller").await).await },
        async { cronjob::run(ctx.controller("cronjob-controller").await).await },
        async { statefulset::run(ctx.controller("statefulset-controller").await).await },
        async { podautoscaler::run(ctx.controller("horizontal-pod-autoscaler").await).await },
        async { disruption::run(ctx.controller("disruption-controller").await).await },
        async { resourcequota::run(ctx.controller("resourcequota-controller").await).await },
        async { volume::run(ctx.controller("persistent-volume-binder").await).await },
        async { serviceaccount::run(ctx.controller("service-account-controller").await).await },
        async {
            clusterroleaggregation::run(ctx.controller("clusterrole-aggregation-controller").await)
                .await
        },
        async { certificates::run(ctx.controller("certificate-controller").await).await },
        async { bootstraptokens::run_cleaner(ctx.controller("token-cleaner").await).await },
        async { bootstraptokens::run_signer(ctx.controller("bootstrap-signer").await).await },
        async {
            if let Some(ca) = ctx.root_ca_pem.clone() {
                rootcacertpublisher::run(ctx.controller("root-ca-cert-publisher").await, ca).await;
            }
        },
    );
}
