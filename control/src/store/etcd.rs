//! etcd as the store of a cluster with several API servers
//! (kube-apiserver's `--etcd-servers`): every object is a key under a prefix
//! (`/registry` by default), its resourceVersion the key's `mod_revision`,
//! so every API server on the same etcd hands out the same versions. A write
//! is one transaction that commits only if the key is still at the revision
//! the writer decided on (etcd batches concurrent transactions into its own
//! group commits); the watch cache is fed by etcd's watch, so each server
//! serves reads and watches from memory and sees the others' writes.
//!
//! The client runs on a runtime of its own, so the cache's synchronous
//! writers can wait for it from any thread.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, Txn, TxnOp, TxnOpResponse,
    WatchOptions,
};

use super::encryption::EncryptionConfig;
use super::{Result, StoreError};

/// kube-apiserver's default `--etcd-prefix`.
pub const DEFAULT_PREFIX: &str = "/registry";
/// kube-apiserver's default `--etcd-compaction-interval`.
pub const COMPACTION_INTERVAL: Duration = Duration::from_secs(300);

/// How to reach etcd.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// Client URLs (`https://10.0.0.1:2379`), any of which serves.
    pub endpoints: Vec<String>,
    /// The CA of etcd's serving certificates (`--etcd-cafile`).
    pub ca_file: Option<PathBuf>,
    /// The API server's client certificate (`--etcd-certfile`).
    pub cert_file: Option<PathBuf>,
    /// Its key (`--etcd-keyfile`).
    pub key_file: Option<PathBuf>,
    /// The prefix of every key (`--etcd-prefix`).
    pub prefix: String,
}

/// The answer to a conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Committed at this revision.
    Committed(u64),
    /// The key had moved on: its current `mod_revision` (None: absent).
    Moved(Option<u64>),
}

/// A key, its document (decrypted) and its `mod_revision`.
pub type Stored = (String, Vec<u8>, u64);

/// A change etcd's watch reports, in revision order.
#[derive(Debug)]
pub enum Change {
    /// The key was written.
    Put {
        /// The key without the prefix.
        key: String,
        /// The document (decrypted).
        value: Vec<u8>,
        /// The write's revision.
        revision: u64,
    },
    /// The key was deleted.
    Delete {
        /// The key without the prefix.
        key: String,
        /// The deletion's revision.
        revision: u64,
    },
    /// The watch fell behind etcd's compaction: everything, read anew at
    /// `revision`.
    Relisted {
        /// The revision of the read.
        revision: u64,
        /// Every object.
        objects: Vec<Stored>,
    },
}

/// A connection to etcd.
pub struct EtcdStore {
    /// Taken only when dropped.
    runtime: Option<tokio::runtime::Runtime>,
    client: Client,
    prefix: String,
    encryption: EncryptionConfig,
}

fn backend<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> StoreError + '_ {
    move |e| StoreError::Backend(format!("etcd: {what}: {e}"))
}

fn read(path: &Option<PathBuf>, what: &str) -> Result<Option<Vec<u8>>> {
    path.as_ref()
        .map(|p| {
            std::fs::read(p).map_err(|e| {
                StoreError::Backend(format!("reading the {what} {}: {e}", p.display()))
            })
        })
        .transpose()
}

impl EtcdStore {
    /// Connect to `cfg`'s endpoints; documents of the resources
    /// `encryption` names are encrypted before they leave the process.
    pub fn connect(cfg: &EtcdConfig, encryption: EncryptionConfig) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("etcd-client")
            .enable_all()
            .build()
            .map_err(backend("starting its runtime"))?;
        let mut options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(30))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        let ca = read(&cfg.ca_file, "etcd CA")?;
        let cert = read(&cfg.cert_file, "etcd client certificate")?;
        let key = read(&cfg.key_file, "etcd client key")?;
        if ca.is_some() || cert.is_some() {
            let mut tls = etcd_client::TlsOptions::new();
            if let Some(ca) = ca {
                tls = tls.ca_certificate(etcd_client::Certificate::from_pem(ca));
            }
            if let (Some(cert), Some(key)) = (cert, key) {
                tls = tls.identity(etcd_client::Identity::from_pem(cert, key));
            }
            options = options.with_tls(tls);
        }
        let endpoints = cfg.endpoints.clone();
        let client = run_on(&runtime, async move {
            Client::connect(&endpoints, Some(options)).await
        })
        .map_err(backend("connecting"))?;
        Ok(Self {
            runtime: Some(runtime),
            client,
            prefix: cfg.prefix.trim_end_matches('/').to_string(),
            encryption,
        })
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime.as_ref().expect("runs until dropped").handle()
    }

    /// Run `fut` on the client's runtime and wait for it, from any thread
    /// (a writer of the cache holds no runtime of its own).
    fn run<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        run_on(self.runtime.as_ref().expect("runs until dropped"), fut)
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn strip(&self, key: &[u8]) -> Option<String> {
        let key = std::str::from_utf8(key).ok()?;
        key.strip_prefix(&self.prefix)
            .filter(|k| k.starts_with('/'))
            .map(str::to_string)
    }

    /// Every key under the prefix (decrypted, with its `mod_revision`) and
    /// the revision they are read at.
    /// At start, etcd may still be coming up (its members elect a leader
    /// after they start): this waits up to a minute for it, as
    /// kube-apiserver does.
    pub fn load(&self) -> Result<(u64, Vec<Stored>)> {
        let mut client = self.client.clone();
        let prefix = format!("{}/", self.prefix);
        let resp = self
            .run(async move {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                loop {
                    match client
                        .get(prefix.clone(), Some(GetOptions::new().with_prefix()))
                        .await
                    {
                        Err(e) if tokio::time::Instant::now() < deadline => {
                            tracing::info!(error = %e, "waiting for etcd");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        other => return other,
                    }
                }
            })
            .map_err(backend("reading every object"))?;
        self.loaded(resp)
    }

    async fn load_async(&self) -> Result<(u64, Vec<Stored>)> {
        let mut client = self.client.clone();
        let prefix = format!("{}/", self.prefix);
        let resp = client
            .get(prefix, Some(GetOptions::new().with_prefix()))
            .await
            .map_err(backend("reading every object"))?;
        self.loaded(resp)
    }

    fn loaded(&self, mut resp: etcd_client::GetResponse) -> Result<(u64, Vec<Stored>)> {
        let revision = resp.header().map_or(0, |h| h.revision()) as u64;
        let mut out = Vec::new();
        for kv in resp.take_kvs() {
            let Some(key) = self.strip(kv.key()) else {
                continue;
            };
            let value = self.encryption.open(&key, kv.value().to_vec())?;
            out.push((key, value, kv.mod_revision() as u64));
        }
        Ok((revision, out))
    }

    /// Whether etcd answers a read within five seconds (kube-apiserver's
    /// `etcd-0` component status).
    pub fn health(&self) -> std::result::Result<(), String> {
        let mut client = self.client.clone();
        let key = format!("{}/health", self.prefix);
        self.run(async move {
            tokio::time::timeout(Duration::from_secs(5), client.get(key, None))
                .await
                .map_err(|_| "etcd did not answer within 5s".to_string())?
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }

    /// Put `value` at `key` if the key is at `expected` (None: absent).
    pub fn put(&self, key: &str, value: &Arc<Vec<u8>>, expected: Option<u64>) -> Result<Outcome> {
        let sealed = self.encryption.seal(key, value)?;
        let full = self.full(key);
        let when = match expected {
            Some(rev) => Compare::mod_revision(full.clone(), CompareOp::Equal, rev as i64),
            None => Compare::create_revision(full.clone(), CompareOp::Equal, 0),
        };
        let txn = Txn::new()
            .when([when])
            .and_then([TxnOp::put(full.clone(), sealed.to_vec(), None)])
            .or_else([TxnOp::get(full, None)]);
        self.transact(txn)
    }

    /// Delete `key` if it is at `expected`.
    pub fn delete(&self, key: &str, expected: u64) -> Result<Outcome> {
        let full = self.full(key);
        let txn = Txn::new()
            .when([Compare::mod_revision(
                full.clone(),
                CompareOp::Equal,
                expected as i64,
            )])
            .and_then([TxnOp::delete(full.clone(), None)])
            .or_else([TxnOp::get(full, None)]);
        self.transact(txn)
    }

    fn transact(&self, txn: Txn) -> Result<Outcome> {
        let mut client = self.client.clone();
        let resp = self
            .run(async move {
                // A member that cannot be connected to never saw the
                // request: try another (the channel balances over every
                // endpoint). Any other failure may have committed, so it
                // is the answer.
                let mut attempt = 0;
                loop {
                    match client.txn(txn.clone()).await {
                        Err(e) if attempt < 5 && e.to_string().contains("connect error") => {
                            attempt += 1;
                            tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                        }
                        other => return other,
                    }
                }
            })
            .map_err(backend("writing"))?;
        if resp.succeeded() {
            let revision = resp.header().map_or(0, |h| h.revision()) as u64;
            return Ok(Outcome::Committed(revision));
        }
        let current = resp.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(g) => Some(g.kvs().first().map(|kv| kv.mod_revision() as u64)),
            _ => None,
        });
        Ok(Outcome::Moved(current.flatten()))
    }

    /// Follow every change after `revision`, calling `apply` with each
    /// response's changes in order, until `apply` returns false. A broken
    /// stream is resumed after the last revision applied; a history etcd
    /// has compacted away ends the feed with an error logged.
    pub fn follow(
        self: &Arc<Self>,
        revision: u64,
        mut apply: impl FnMut(Vec<Change>) -> bool + Send + 'static,
    ) {
        let this = self.clone();
        self.handle().spawn(async move {
            let mut next = revision + 1;
            let mut retry = Duration::from_millis(100);
            loop {
                let mut client = this.client.clone();
                let options = WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(next as i64);
                let stream = client
                    .watch(format!("{}/", this.prefix), Some(options))
                    .await;
                let (_watcher, mut stream) = match stream {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "watching etcd; retrying");
                        tokio::time::sleep(retry).await;
                        retry = (retry * 2).min(Duration::from_secs(5));
                        continue;
                    }
                };
                loop {
                    let resp = match stream.message().await {
                        Ok(Some(r)) => r,
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "etcd's watch broke; resuming");
                            break;
                        }
                    };
                    if resp.compact_revision() > 0 {
                        // The changes since the last one read are gone:
                        // read everything anew and go on from there.
                        tracing::warn!(
                            compacted = resp.compact_revision(),
                            from = next,
                            "etcd compacted history this server had not read; reading everything anew"
                        );
                        match this.load_async().await {
                            Ok((revision, objects)) => {
                                next = revision + 1;
                                if !apply(vec![Change::Relisted { revision, objects }]) {
                                    return;
                                }
                            }
                            Err(e) => tracing::warn!(error = %e, "reading etcd anew; retrying"),
                        }
                        break;
                    }
                    retry = Duration::from_millis(100);
                    let mut changes = Vec::new();
                    for ev in resp.events() {
                        let Some(kv) = ev.kv() else { continue };
                        let Some(key) = this.strip(kv.key()) else {
                            continue;
                        };
                        let revision = kv.mod_revision() as u64;
                        next = next.max(revision + 1);
                        changes.push(match ev.event_type() {
                            EventType::Put => match this.encryption.open(&key, kv.value().to_vec()) {
                                Ok(value) => Change::Put {
                                    key,
                                    value,
                                    revision,
                                },
                                Err(e) => {
                                    tracing::error!(%key, error = %e, "an object in etcd cannot be read; skipped");
                                    continue;
                                }
                            },
                            EventType::Delete => Change::Delete { key, revision },
                        });
                    }
                    if !changes.is_empty() && !apply(changes) {
                        return;
                    }
                }
                tokio::time::sleep(retry).await;
            }
        });
    }

    /// Compact etcd's history every `every` to the revision seen one
    /// interval before (as kube-apiserver does), until the store is dropped.
    pub fn compact_periodically(self: &Arc<Self>, every: Duration) {
        let weak = Arc::downgrade(self);
        let mut client = self.client.clone();
        self.handle().spawn(async move {
            let mut last: Option<i64> = None;
            loop {
                tokio::time::sleep(every).await;
                if weak.upgrade().is_none() {
                    return;
                }
                let now = match client.get("compact_rev_key", None).await {
                    Ok(r) => r.header().map_or(0, |h| h.revision()),
                    Err(_) => continue,
                };
                if let Some(rev) = last.filter(|r| *r > 0) {
                    match client.compact(rev, None).await {
                        Ok(_) => tracing::info!(revision = rev, "compacted etcd"),
                        Err(e) => tracing::debug!(error = %e, "compacting etcd"),
                    }
                }
                last = Some(now);
            }
        });
    }
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        // Dropped inside an async context, a runtime must not wait for
        // its tasks.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn run_on<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv()
        .expect("the etcd client's runtime runs while the store lives")
}
