//! The controller loop: Ingresses, IngressClasses, Services,
//! EndpointSlices and Secrets watched through the API; each burst of
//! changes compiles one new route table and swaps it in; Ingresses served
//! get their load-balancer status, and problems become Warning events.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kedge_config::events::{reference, EventType, Recorder};
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};

use crate::metrics::Metrics;
use crate::table::{self, ClassConfig, EndpointRegistry, ObjectKey, Snapshot, SERVICE_NAME_LABEL};
use crate::tls::TlsCert;
use crate::Routes;

/// What the controller watches for and writes.
#[derive(Clone, Debug, Default)]
pub struct ControllerConfig {
    /// Which Ingresses are kedge's.
    pub classes: ClassConfig,
    /// The addresses written to served Ingresses'
    /// `status.loadBalancer.ingress`; empty: status is left alone.
    pub status_addresses: Vec<IpAddr>,
    /// The name events are reported under (the node, for a DaemonSet pod).
    pub host: Option<String>,
}

/// Errors that stop the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A watch stream ended, which only happens when the client is gone.
    #[error("the {0} watch ended")]
    WatchEnded(&'static str),
}

#[derive(Clone, Copy)]
enum Kind {
    Ingress,
    Class,
    Service,
    Slice,
    Secret,
}

const KINDS: usize = 5;

/// The stores the watches fill.
struct Stores {
    ingresses: Store<Ingress>,
    classes: Store<IngressClass>,
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    secrets: Store<Secret>,
}

impl Stores {
    fn snapshot(&self) -> Snapshot {
        let key = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            ObjectKey::new(
                m.namespace.as_deref().unwrap_or_default(),
                m.name.as_deref().unwrap_or_default(),
            )
        };
        let mut snap = Snapshot {
            ingresses: self.ingresses.state(),
            classes: self.classes.state(),
            services: self
                .services
                .state()
                .into_iter()
                .map(|s| (key(&s.metadata), s))
                .collect(),
            secrets: self
                .secrets
                .state()
                .into_iter()
                .filter(|s| s.type_.as_deref() == Some("kubernetes.io/tls"))
                .map(|s| (key(&s.metadata), s))
                .collect(),
            ..Default::default()
        };
        for slice in self.slices.state() {
            snap.add_slice(slice);
        }
        snap
    }
}

/// Watch the API and keep `routes` current until the client goes away.
pub async fn run(
    client: Client,
    cfg: ControllerConfig,
    routes: Arc<Routes>,
    metrics: Arc<Metrics>,
    fallback: Arc<TlsCert>,
) -> Result<(), Error> {
    fn watch<K>(
        api: Api<K>,
        wc: watcher::Config,
        kind: Kind,
    ) -> (Store<K>, futures::stream::BoxStream<'static, (Kind, bool)>)
    where
        K: kube::Resource<DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned
            + Send
            + Sync
            + 'static,
    {
        let (store, writer) = reflector::store();
        let stream = reflector::reflector(writer, watcher(api, wc))
            .default_backoff()
            .map(move |e| (kind, matches!(e, Ok(watcher::Event::InitDone))))
            .boxed();
        (store, stream)
    }
    let (ingresses, s1) = watch(Api::all(client.clone()), Default::default(), Kind::Ingress);
    let (classes, s2) = watch(Api::all(client.clone()), Default::default(), Kind::Class);
    let (services, s3) = watch(Api::all(client.clone()), Default::default(), Kind::Service);
    let (slices, s4) = watch(
        Api::all(client.clone()),
        watcher::Config::default().labels(SERVICE_NAME_LABEL),
        Kind::Slice,
    );
    let (secrets, s5) = watch(Api::all(client.clone()), Default::default(), Kind::Secret);
    let stores = Stores {
        ingresses,
        classes,
        services,
        slices,
        secrets,
    };
    let mut events = futures::stream::select_all([s1, s2, s3, s4, s5]);

    let registry = EndpointRegistry::default();
    let recorder = Recorder::new(client.clone(), "kedge-ingress", cfg.host.as_deref());
    let mut reporter = Reporter {
        client,
        recorder,
        status_written: HashMap::new(),
        problems_reported: HashSet::new(),
    };
    let mut listed = [false; KINDS];
    loop {
        let Some((kind, init_done)) = events.next().await else {
            return Err(Error::WatchEnded("Ingress"));
        };
        listed[kind as usize] |= init_done;
        // Take whatever else has already arrived, so a burst of changes
        // is one compile.
        while let Some(Some((kind, init_done))) = events.next().now_or_never() {
            listed[kind as usize] |= init_done;
        }
        // Until every kind is listed a partial table would answer 404 or
        // 503 for routes that exist.
        if !listed.iter().all(|l| *l) {
            continue;
        }
        let started = Instant::now();
        let compiled = table::compile(
            &stores.snapshot(),
            &cfg.classes,
            &registry,
            fallback.clone(),
        );
        let live = compiled.table.location_labels();
        routes.store(Arc::new(compiled.table));
        metrics.swapped(started.elapsed(), compiled.served.len(), &live);
        tracing::debug!(
            ingresses = compiled.served.len(),
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "route table swapped"
        );
        reporter
            .report(&stores, &cfg, &compiled.served, &compiled.problems)
            .await;
    }
}

/// Writes status and events, each only when it changes.
struct Reporter {
    client: Client,
    recorder: Recorder,
    /// The addresses last written per Ingress.
    status_written: HashMap<ObjectKey, Vec<String>>,
    problems_reported: HashSet<table::Problem>,
}

impl Reporter {
    async fn report(
        &mut self,
        stores: &Stores,
        cfg: &ControllerConfig,
        served: &[ObjectKey],
        problems: &[table::Problem],
    ) {
        let find = |k: &ObjectKey| {
            stores.ingresses.find(|i| {
                i.metadata.namespace.as_deref() == Some(k.namespace.as_str())
                    && i.metadata.name.as_deref() == Some(k.name.as_str())
            })
        };
        for p in problems {
            if self.problems_reported.contains(p) {
                continue;
            }
            if let Some(ing) = find(&p.ingress) {
                tracing::warn!(ingress = %p.ingress, reason = p.reason, "{}", p.message);
                let r = reference("networking.k8s.io/v1", "Ingress", &ing.metadata);
                self.recorder
                    .record(&r, EventType::Warning, p.reason, &p.message)
                    .await;
            }
            self.problems_reported.insert(p.clone());
        }
        // Forget problems that went away, so that they are reported again
        // if they come back.
        self.problems_reported.retain(|p| problems.contains(p));

        if cfg.status_addresses.is_empty() {
            return;
        }
        let wanted: Vec<String> = cfg.status_addresses.iter().map(|a| a.to_string()).collect();
        for key in served {
            let Some(ing) = find(key) else { continue };
            let current: Vec<String> = ing
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .map(|v| v.iter().filter_map(|i| i.ip.clone()).collect())
                .unwrap_or_default();
            if current == wanted || self.status_written.get(key) == Some(&wanted) {
                continue;
            }
            let api: Api<Ingress> = Api::namespaced(self.client.clone(), &key.namespace);
            let ips: Vec<_> = wanted
                .iter()
                .map(|ip| serde_json::json!({"ip": ip}))
                .collect();
            let patch = serde_json::json!({"status": {"loadBalancer": {"ingress": ips}}});
            match api
                .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    self.status_written.insert(key.clone(), wanted.clone());
                }
                Err(e) => tracing::warn!(ingress = %key, error = %e, "writing status"),
            }
        }
    }
}
