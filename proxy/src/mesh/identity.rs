//! Workload identities: for every ServiceAccount with a meshed pod on this
//! node, a certificate naming `spiffe://<trust domain>/ns/<ns>/sa/<sa>`,
//! asked of the Certificates API (signer `kedge.io/mesh-workload`) with
//! the node's own credentials. The signer approves a node only for the
//! ServiceAccounts of its own pods, so this node can hold no other node's
//! identities. A certificate is renewed at half its lifetime (as ztunnel
//! does), a failed request retried with backoff while the old certificate
//! lasts, and an identity dropped once no pod of it is left on the node.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use k8s_openapi::ByteString;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::reflector::Store;
use kube::Client;
use parking_lot::{Mutex, RwLock};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use super::is_meshed;

/// The signer of workload certificates.
pub const SIGNER: &str = "kedge.io/mesh-workload";
/// The shortest lifetime the Certificates API takes.
const MIN_LIFETIME: Duration = Duration::from_secs(600);
/// How long a request may wait for its certificate.
const ISSUE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a pending request is looked at.
const POLL: Duration = Duration::from_millis(250);
/// Where the API servers publish the trust bundle, and its key.
const TRUST_BUNDLE: (&str, &str, &str) = ("kube-system", "kedge-mesh-ca", "ca.crt");
/// How often the trust bundle is read again.
const TRUST_BUNDLE_REFRESH: Duration = Duration::from_secs(60);
/// The first retry after a failure, doubled up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(2);
const MAX_RETRY: Duration = Duration::from_secs(150);

/// What the node asks for.
#[derive(Clone, Debug)]
pub struct IdentityConfig {
    /// This node's name: only its pods' identities are asked for.
    pub node_name: String,
    /// The trust domain of the SPIFFE IDs (the cluster domain).
    pub trust_domain: String,
    /// The lifetime asked for (at least ten minutes).
    pub lifetime: Duration,
}

/// A namespace and a ServiceAccount in it.
pub type Account = (String, String);

/// One workload's certificate and key.
#[derive(Debug)]
pub struct WorkloadCertificate {
    /// `spiffe://<trust domain>/ns/<namespace>/sa/<account>`.
    pub spiffe_id: String,
    /// The private key (PKCS#8 PEM), made on this node and never sent.
    pub key_pem: String,
    /// The certificate (PEM) the signer issued.
    pub cert_pem: String,
    /// Its validity.
    pub not_before: SystemTime,
    /// Its validity.
    pub not_after: SystemTime,
}

impl WorkloadCertificate {
    /// When to ask for the next one: half way through its validity.
    pub fn renew_at(&self) -> SystemTime {
        let lifetime = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or_default();
        self.not_before + lifetime / 2
    }
}

/// The SPIFFE ID of a ServiceAccount.
pub fn spiffe_id(trust_domain: &str, namespace: &str, account: &str) -> String {
    format!("spiffe://{trust_domain}/ns/{namespace}/sa/{account}")
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountLabels {
    namespace: String,
    service_account: String,
}

/// The certificates this node holds, by ServiceAccount, for the data path
/// to present and for metrics.
pub struct Identities {
    by_account: RwLock<BTreeMap<Account, Arc<WorkloadCertificate>>>,
    /// The mesh CA's certificates (PEM), which peers' certificates chain to.
    trust_bundle: RwLock<Option<String>>,
    trust_bundle_certificates: Gauge,
    registry: Mutex<Registry>,
    expiry: Family<AccountLabels, Gauge>,
    failures: Family<AccountLabels, prometheus_client::metrics::counter::Counter>,
}

impl Default for Identities {
    fn default() -> Self {
        Self::new()
    }
}

impl Identities {
    /// None held yet.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kedge_mesh");
        let expiry = Family::<AccountLabels, Gauge>::default();
        registry.register(
            "workload_certificate_expiry_seconds",
            "When the certificate held for a ServiceAccount expires (Unix time)",
            expiry.clone(),
        );
        let failures = Family::default();
        registry.register(
            "workload_certificate_failures",
            "Certificate requests that failed or were denied, per ServiceAccount",
            failures.clone(),
        );
        let trust_bundle_certificates = Gauge::default();
        registry.register(
            "trust_bundle_certificates",
            "CA certificates in the mesh trust bundle the node holds",
            trust_bundle_certificates.clone(),
        );
        Self {
            by_account: RwLock::new(BTreeMap::new()),
            trust_bundle: RwLock::new(None),
            trust_bundle_certificates,
            registry: Mutex::new(registry),
            expiry,
            failures,
        }
    }

    /// The certificate held for a ServiceAccount.
    pub fn get(&self, namespace: &str, account: &str) -> Option<Arc<WorkloadCertificate>> {
        self.by_account
            .read()
            .get(&(namespace.to_string(), account.to_string()))
            .cloned()
    }

    /// The mesh's trust bundle (PEM), once read.
    pub fn trust_bundle(&self) -> Option<String> {
        self.trust_bundle.read().clone()
    }

    fn set_trust_bundle(&self, pem: String) {
        let count = pem.matches("-----BEGIN CERTIFICATE-----").count();
        self.trust_bundle_certificates.set(count as i64);
        *self.trust_bundle.write() = Some(pem);
    }

    /// The ServiceAccounts a certificate is held for.
    pub fn accounts(&self) -> Vec<Account> {
        self.by_account.read().keys().cloned().collect()
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry.lock());
        out
    }

    fn insert(&self, account: Account, certificate: WorkloadCertificate) {
        let expires = certificate
            .not_after
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.expiry.get_or_create(&labels(&account)).set(expires);
        self.by_account
            .write()
            .insert(account, Arc::new(certificate));
    }

    fn remove(&self, account: &Account) {
        self.by_account.write().remove(account);
        self.expiry.remove(&labels(account));
    }
}

fn labels(account: &Account) -> AccountLabels {
    AccountLabels {
        namespace: account.0.clone(),
        service_account: account.1.clone(),
    }
}

/// Why a certificate could not be had.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Making the key or the request failed.
    #[error("making the certificate request: {0}")]
    Request(#[from] rcgen::Error),
    /// The API refused or failed a call.
    #[error("certificates API: {0}")]
    Api(#[from] kube::Error),
    /// The signer denied the request, or failed it.
    #[error("request {name} {condition}: {message}")]
    Refused {
        /// The request's name.
        name: String,
        /// `Denied` or `Failed`.
        condition: String,
        /// The condition's message.
        message: String,
    },
    /// No certificate came in time.
    #[error("request {0} not issued within {ISSUE_TIMEOUT:?}")]
    Timeout(String),
    /// The certificate issued could not be read.
    #[error("request {0}: the issued certificate is not a PEM certificate")]
    Unreadable(String),
}

/// Keep `identities` to the ServiceAccounts of the meshed pods on this
/// node, as `pods` and `namespaces` (caches of the cluster's, woken through
/// `changed`) say, reading the trust bundle with `watch_client` and asking
/// for certificates with `node_client` (the node's own credentials). Runs
/// until dropped.
pub async fn run(
    watch_client: Client,
    node_client: Client,
    config: IdentityConfig,
    identities: Arc<Identities>,
    pods: Store<Pod>,
    namespaces: Store<Namespace>,
    mut changed: watch::Receiver<()>,
) {
    let _ = pods.wait_until_ready().await;
    let _ = namespaces.wait_until_ready().await;
    let csrs: Api<CertificateSigningRequest> = Api::all(node_client);
    let bundles: Api<ConfigMap> = Api::namespaced(watch_client, TRUST_BUNDLE.0);
    let mut bundle_read: Option<std::time::Instant> = None;
    let mut retries: HashMap<Account, (Duration, std::time::Instant)> = HashMap::new();
    loop {
        if bundle_read.is_none_or(|at| at.elapsed() >= TRUST_BUNDLE_REFRESH)
            && read_trust_bundle(&bundles, &identities).await
        {
            bundle_read = Some(std::time::Instant::now());
        }
        let mut next_wake = std::time::Instant::now()
            + if bundle_read.is_some() {
                MAX_RETRY
            } else {
                FIRST_RETRY
            };
        let wanted = wanted_accounts(&pods, &namespaces, &config.node_name);
        for account in identities.accounts() {
            if !wanted.contains(&account) {
                tracing::info!(namespace = %account.0, service_account = %account.1, "no meshed pod of this ServiceAccount left on the node; dropping its certificate");
                identities.remove(&account);
                retries.remove(&account);
            }
        }
        let now = SystemTime::now();
        for account in &wanted {
            let held = identities.get(&account.0, &account.1);
            if let Some(held) = &held {
                if now < held.renew_at() {
                    let due = held.renew_at().duration_since(now).unwrap_or_default();
                    next_wake = next_wake.min(std::time::Instant::now() + due);
                    continue;
                }
            }
            if let Some((_, not_before)) = retries.get(account) {
                if std::time::Instant::now() < *not_before {
                    next_wake = next_wake.min(*not_before);
                    continue;
                }
            }
            match request(&csrs, &config, account).await {
                Ok(certificate) => {
                    tracing::info!(id = %certificate.spiffe_id, not_after = ?certificate.not_after, "workload certificate issued");
                    retries.remove(account);
                    identities.insert(account.clone(), certificate);
                }
                Err(error) => {
                    identities.failures.get_or_create(&labels(account)).inc();
                    let wait = retries
                        .get(account)
                        .map_or(FIRST_RETRY, |(last, _)| (*last * 2).min(MAX_RETRY));
                    tracing::warn!(namespace = %account.0, service_account = %account.1, %error, retry_in = ?wait, "no workload certificate");
                    let at = std::time::Instant::now() + wait;
                    retries.insert(account.clone(), (wait, at));
                    next_wake = next_wake.min(at);
                }
            }
        }
        tokio::select! {
            r = changed.changed() => if r.is_err() { return },
            () = tokio::time::sleep_until(next_wake.into()) => {}
        }
    }
}

/// The identity of the process itself, for a ServiceAccount that is its
/// own workload (the ingress controller, which originates mutual TLS to
/// meshed pods): asked for with the process's own credentials (the signer
/// gives a ServiceAccount its own identity only), renewed half way, with
/// the trust bundle, into `identities`, until dropped.
pub async fn run_own(
    client: Client,
    config: IdentityConfig,
    account: Account,
    identities: Arc<Identities>,
) {
    let csrs: Api<CertificateSigningRequest> = Api::all(client.clone());
    let bundles: Api<ConfigMap> = Api::namespaced(client, TRUST_BUNDLE.0);
    let mut retry = FIRST_RETRY;
    loop {
        read_trust_bundle(&bundles, &identities).await;
        let due = identities
            .get(&account.0, &account.1)
            .map(|held| {
                held.renew_at()
                    .duration_since(SystemTime::now())
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        let wait = if !due.is_zero() {
            due
        } else {
            match request(&csrs, &config, &account).await {
                Ok(certificate) => {
                    tracing::info!(id = %certificate.spiffe_id, not_after = ?certificate.not_after, "own workload certificate issued");
                    identities.insert(account.clone(), certificate);
                    retry = FIRST_RETRY;
                    Duration::ZERO
                }
                Err(error) => {
                    identities.failures.get_or_create(&labels(&account)).inc();
                    tracing::warn!(namespace = %account.0, service_account = %account.1, %error, retry_in = ?retry, "no workload certificate");
                    let wait = retry;
                    retry = (retry * 2).min(MAX_RETRY);
                    wait
                }
            }
        };
        let bundle_wait = if identities.trust_bundle().is_some() {
            TRUST_BUNDLE_REFRESH
        } else {
            FIRST_RETRY
        };
        tokio::time::sleep(wait.min(bundle_wait).max(Duration::from_millis(100))).await;
    }
}

/// Read the published trust bundle into `identities`; whether there was one.
async fn read_trust_bundle(bundles: &Api<ConfigMap>, identities: &Identities) -> bool {
    match bundles.get_opt(TRUST_BUNDLE.1).await {
        Ok(Some(map)) => match map.data.and_then(|mut d| d.remove(TRUST_BUNDLE.2)) {
            Some(pem) => {
                identities.set_trust_bundle(pem);
                true
            }
            None => false,
        },
        Ok(None) => {
            tracing::debug!("no mesh trust bundle published yet");
            false
        }
        Err(error) => {
            tracing::debug!(%error, "reading the mesh trust bundle");
            false
        }
    }
}

/// The ServiceAccounts of the meshed pods (not finished) in `pods` on `node`.
fn wanted_accounts(
    pods: &Store<Pod>,
    namespaces: &Store<Namespace>,
    node: &str,
) -> BTreeSet<Account> {
    let namespace_labels: HashMap<String, BTreeMap<String, String>> = namespaces
        .state()
        .iter()
        .filter_map(|ns| Some((ns.metadata.name.clone()?, ns.metadata.labels.clone()?)))
        .collect();
    pods.state()
        .iter()
        .filter(|pod| pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
        .filter(|pod| {
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Succeeded" | "Failed"))
        })
        .filter_map(|pod| {
            let namespace = pod.metadata.namespace.clone()?;
            is_meshed(pod, namespace_labels.get(&namespace)).then(|| {
                let account = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.service_account_name.clone())
                    .unwrap_or_else(|| "default".to_string());
                (namespace, account)
            })
        })
        .collect()
}

/// A new P-256 key and a certificate request for `id`: no subject, the
/// SPIFFE ID as its one name (what the signer accepts).
pub fn workload_request(id: &str) -> Result<(rcgen::KeyPair, String), rcgen::Error> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.subject_alt_names = vec![rcgen::SanType::URI(id.try_into()?)];
    let pem = params.serialize_request(&key)?.pem()?;
    Ok((key, pem))
}

/// Ask for one ServiceAccount's certificate and wait for it.
async fn request(
    csrs: &Api<CertificateSigningRequest>,
    config: &IdentityConfig,
    account: &Account,
) -> Result<WorkloadCertificate, IdentityError> {
    let id = spiffe_id(&config.trust_domain, &account.0, &account.1);
    let (key, pem) = workload_request(&id)?;
    let seconds = config.lifetime.max(MIN_LIFETIME).as_secs();
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta {
            generate_name: Some(format!("mesh-{}-", config.node_name)),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            signer_name: SIGNER.to_string(),
            request: ByteString(pem.into_bytes()),
            usages: Some(
                [
                    "digital signature",
                    "key encipherment",
                    "client auth",
                    "server auth",
                ]
                .map(String::from)
                .to_vec(),
            ),
            expiration_seconds: Some(i32::try_from(seconds).unwrap_or(i32::MAX)),
            ..Default::default()
        },
        status: None,
    };
    let created = csrs.create(&PostParams::default(), &csr).await?;
    let name = created.metadata.name.unwrap_or_default();
    let deadline = tokio::time::Instant::now() + ISSUE_TIMEOUT;
    loop {
        let current = csrs.get(&name).await?;
        let status = current.status.unwrap_or_default();
        if let Some(refused) = status
            .conditions
            .iter()
            .flatten()
            .find(|c| (c.type_ == "Denied" || c.type_ == "Failed") && c.status == "True")
        {
            return Err(IdentityError::Refused {
                name,
                condition: refused.type_.clone(),
                message: refused.message.clone().unwrap_or_default(),
            });
        }
        if let Some(certificate) = status.certificate.filter(|c| !c.0.is_empty()) {
            let cert_pem = String::from_utf8(certificate.0)
                .map_err(|_| IdentityError::Unreadable(name.clone()))?;
            let (not_before, not_after) =
                validity(&cert_pem).ok_or_else(|| IdentityError::Unreadable(name.clone()))?;
            return Ok(WorkloadCertificate {
                spiffe_id: id,
                key_pem: key.serialize_pem(),
                cert_pem,
                not_before,
                not_after,
            });
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(IdentityError::Timeout(name));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The validity of the first certificate of a PEM chain.
fn validity(pem: &str) -> Option<(SystemTime, SystemTime)> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    let cert = block.parse_x509().ok()?;
    let at = |seconds: i64| -> Option<SystemTime> {
        Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).ok()?))
    };
    let validity = cert.validity();
    Some((
        at(validity.not_before.timestamp())?,
        at(validity.not_after.timestamp())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_half_way_through_the_validity() {
        let start = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let certificate = WorkloadCertificate {
            spiffe_id: spiffe_id("cluster.local", "team-a", "client"),
            key_pem: String::new(),
            cert_pem: String::new(),
            not_before: start,
            not_after: start + Duration::from_secs(24 * 3600),
        };
        assert_eq!(
            certificate.renew_at(),
            start + Duration::from_secs(12 * 3600)
        );
        assert_eq!(
            certificate.spiffe_id,
            "spiffe://cluster.local/ns/team-a/sa/client"
        );
    }
}
