//! Leader election on a `coordination.k8s.io` Lease (client-go's
//! `leaderelection` with its Lease lock): every control plane runs the
//! scheduler and the controller manager, and only the holder of the
//! component's Lease in `kube-system` acts. The holder renews the Lease
//! every retry period; the others take it over once it has not been
//! renewed for the lease duration. A holder that cannot renew within the
//! renew deadline stops acting before anyone else may start.

use std::future::Future;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};

/// Where the control plane's Leases live.
pub const NAMESPACE: &str = "kube-system";

/// How a component elects its leader (Kubernetes' defaults: 15 s, 10 s, 2 s).
#[derive(Debug, Clone)]
pub struct LeaderElectionConfig {
    /// The Lease's name: the component (`kube-scheduler`).
    pub name: String,
    /// Who this candidate is (`<host>_<id>`).
    pub identity: String,
    /// How long a Lease holds without renewal.
    pub lease_duration: Duration,
    /// How long the holder keeps trying to renew before it stops acting.
    pub renew_deadline: Duration,
    /// How often candidates try, and the holder renews.
    pub retry_period: Duration,
}

impl LeaderElectionConfig {
    /// Kubernetes' defaults for the component `name`.
    pub fn new(name: &str, identity: &str) -> Self {
        Self {
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// Run `lead` whenever this candidate holds the Lease, until the future is
/// dropped: `lead` starts when the Lease is taken and is dropped when it
/// is lost (then the candidate tries again). On drop, a held Lease is not
/// released: it simply expires.
pub async fn run<F, Fut>(client: kube::Client, cfg: LeaderElectionConfig, mut lead: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let leases: Api<Lease> = Api::namespaced(client, NAMESPACE);
    loop {
        acquire(&leases, &cfg).await;
        tracing::info!(lease = %cfg.name, identity = %cfg.identity, "became leader");
        tokio::select! {
            _ = lead() => {
                tracing::warn!(lease = %cfg.name, "the leader's work ended");
                return;
            }
            _ = keep(&leases, &cfg) => {
                tracing::warn!(lease = %cfg.name, identity = %cfg.identity, "lost the lease; stopped acting");
            }
        }
    }
}

/// Try every retry period until this candidate holds the Lease.
async fn acquire(leases: &Api<Lease>, cfg: &LeaderElectionConfig) {
    let mut waiting_logged = false;
    loop {
        match try_acquire_or_renew(leases, cfg).await {
            Ok(true) => return,
            Ok(false) => {
                if !waiting_logged {
                    tracing::info!(lease = %cfg.name, "another candidate leads; waiting");
                    waiting_logged = true;
                }
            }
            Err(e) => tracing::debug!(lease = %cfg.name, error = %e, "taking the lease"),
        }
        tokio::time::sleep(cfg.retry_period).await;
    }
}

/// Renew every retry period; return once no renewal succeeded for the
/// renew deadline (or another candidate holds the Lease).
async fn keep(leases: &Api<Lease>, cfg: &LeaderElectionConfig) {
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(cfg.retry_period).await;
        match try_acquire_or_renew(leases, cfg).await {
            Ok(true) => last = tokio::time::Instant::now(),
            Ok(false) => return,
            Err(e) => {
                tracing::debug!(lease = %cfg.name, error = %e, "renewing the lease");
                if last.elapsed() >= cfg.renew_deadline {
                    return;
                }
            }
        }
    }
}

/// One attempt (client-go's `tryAcquireOrRenew`): whether this candidate
/// holds the Lease afterwards.
async fn try_acquire_or_renew(
    leases: &Api<Lease>,
    cfg: &LeaderElectionConfig,
) -> Result<bool, kube::Error> {
    let duration = cfg.lease_duration.as_secs() as i32;
    let Some(mut lease) = leases.get_opt(&cfg.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(cfg.name.clone()),
                namespace: Some(NAMESPACE.to_string()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(cfg.identity.clone()),
                lease_duration_seconds: Some(duration),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        leases.create(&PostParams::default(), &lease).await?;
        return Ok(true);
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    let ours = spec.holder_identity.as_deref() == Some(cfg.identity.as_str());
    let held_by_other = !ours
        && spec
            .holder_identity
            .as_deref()
            .is_some_and(|h| !h.is_empty());
    if held_by_other {
        let valid_for =
            Duration::from_secs(spec.lease_duration_seconds.unwrap_or(duration).max(0) as u64);
        let renewed = spec
            .renew_time
            .as_ref()
            .or(spec.acquire_time.as_ref())
            .map(|t| t.0);
        let expired = match renewed {
            Some(t) => Timestamp::now().duration_since(t).unsigned_abs() > valid_for,
            None => true,
        };
        if !expired {
            return Ok(false);
        }
    }
    if !ours {
        spec.acquire_time = Some(now());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        spec.holder_identity = Some(cfg.identity.clone());
    }
    spec.lease_duration_seconds = Some(duration);
    spec.renew_time = Some(now());
    // The resourceVersion read above makes this a compare-and-swap: of two
    // candidates taking an expired Lease, one gets a conflict.
    match leases
        .replace(&cfg.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// A candidate identity that stays the same across restarts of one
/// control plane (its host and data dir), so a restarted server renews its
/// own Lease at once instead of waiting out its earlier self; a second
/// control plane, with a data dir of its own, is another candidate.
pub fn identity(data_dir: &std::path::Path) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_lowercase())
        .unwrap_or_else(|_| "kedge".into());
    let dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    // FNV-1a: stable across builds, unlike the standard hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in dir.to_string_lossy().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{host}_{h:016x}")
}
