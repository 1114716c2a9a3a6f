//! The route table: every Ingress of kedge's classes, with the Services,
//! EndpointSlices and Secrets they name, compiled into servers (one per
//! host) and locations (one per path) that a request is matched against
//! without locks. A change anywhere compiles a new table, which replaces
//! the old one in one pointer swap ([`crate::Routes`]).
//!
//! Matching follows ingress-nginx, which follows nginx:
//! - a host is matched exactly, then by wildcard (`*.foo.com` covers one
//!   label), then falls to the catch-all server of rules without a host;
//! - a Prefix path `/foo` becomes the exact location `/foo` plus the prefix
//!   location `/foo/`, which is what makes prefixes element-wise; `/foo/`
//!   does the same, as the Ingress API ignores a Prefix's trailing slash;
//! - an Exact path `/foo` takes the place of any Prefix's exact `/foo`;
//! - an exact location wins, else the longest prefix;
//! - once any path of a host uses a regex (`use-regex`, or a
//!   `rewrite-target`), every path of that host is the case-insensitive
//!   regex `^path`, tried longest first;
//! - each host has a root location `/` going to the Ingress's
//!   `defaultBackend` or, failing that, the built-in 404.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{
    Ingress, IngressBackend, IngressClass, IngressServiceBackend,
};
use parking_lot::Mutex;
use regex::Regex;

use crate::annotations::{self, LoadBalance, LocationConfig};
use crate::metrics::{LocationLabels, LocationStats};
use crate::tls::{CertStore, TlsCert};

/// The annotation that marks an IngressClass as the default.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// The class annotation that predates `spec.ingressClassName`.
pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
/// The label EndpointSlices carry with their Service's name.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Which Ingresses are kedge's.
#[derive(Clone, Debug)]
pub struct ClassConfig {
    /// The `spec.controller` of IngressClasses kedge serves.
    pub controller: String,
    /// Class names served whatever their IngressClass says (e.g. `nginx`,
    /// to take over from ingress-nginx).
    pub extra_classes: Vec<String>,
    /// Serve Ingresses that name no class even without a default class.
    pub watch_without_class: bool,
}

impl Default for ClassConfig {
    fn default() -> Self {
        Self {
            controller: crate::CONTROLLER_NAME.into(),
            extra_classes: Vec::new(),
            watch_without_class: false,
        }
    }
}

/// Namespace and name of an object.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
}

impl ObjectKey {
    /// A key from parts.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What the compiler reads: the objects as the watches last saw them.
#[derive(Default)]
pub struct Snapshot {
    /// Every Ingress (the compiler picks kedge's).
    pub ingresses: Vec<Arc<Ingress>>,
    /// Every IngressClass.
    pub classes: Vec<Arc<IngressClass>>,
    /// Services by namespace and name.
    pub services: HashMap<ObjectKey, Arc<Service>>,
    /// EndpointSlices by the namespace and name of their Service.
    pub slices: HashMap<ObjectKey, Vec<Arc<EndpointSlice>>>,
    /// `kubernetes.io/tls` Secrets by namespace and name.
    pub secrets: HashMap<ObjectKey, Arc<Secret>>,
}

impl Snapshot {
    /// Add an EndpointSlice under its Service.
    pub fn add_slice(&mut self, slice: Arc<EndpointSlice>) {
        let ns = slice.metadata.namespace.clone().unwrap_or_default();
        let Some(svc) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
        else {
            return;
        };
        let key = ObjectKey::new(&ns, svc);
        self.slices.entry(key).or_default().push(slice);
    }
}

/// One endpoint's running figures, kept across table swaps so that EWMA
/// does not forget what it learned every time anything changes.
#[derive(Debug)]
pub struct Endpoint {
    /// Where the pod listens.
    pub addr: SocketAddr,
    /// Moving average of response time, microseconds (f64 bits).
    ewma_us: AtomicU64,
    /// Requests in flight.
    inflight: AtomicUsize,
}

impl Endpoint {
    fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            ewma_us: AtomicU64::new(0f64.to_bits()),
            inflight: AtomicUsize::new(0),
        }
    }

    /// A request to this endpoint starts.
    pub fn start(&self) {
        self.inflight.fetch_add(1, Ordering::Relaxed);
    }

    /// A request to this endpoint ended after `micros`.
    pub fn finish(&self, micros: f64) {
        self.inflight.fetch_sub(1, Ordering::Relaxed);
        // Weight 0.2: a handful of slow answers move it, one does not.
        let _ = self
            .ewma_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                let old = f64::from_bits(old);
                let new = if old == 0.0 {
                    micros
                } else {
                    old * 0.8 + micros * 0.2
                };
                Some(new.to_bits())
            });
    }

    fn score(&self) -> f64 {
        let ewma = f64::from_bits(self.ewma_us.load(Ordering::Relaxed));
        (ewma + 1.0) * (self.inflight.load(Ordering::Relaxed) as f64 + 1.0)
    }
}

/// Endpoint figures by address, shared by every table compiled.
#[derive(Default)]
pub struct EndpointRegistry {
    endpoints: Mutex<HashMap<SocketAddr, Arc<Endpoint>>>,
}

impl EndpointRegistry {
    fn get(&self, addr: SocketAddr) -> Arc<Endpoint> {
        self.endpoints
            .lock()
            .entry(addr)
            .or_insert_with(|| Arc::new(Endpoint::new(addr)))
            .clone()
    }

    /// Forget endpoints no table uses.
    fn retain(&self, live: &HashSet<SocketAddr>) {
        self.endpoints.lock().retain(|a, _| live.contains(a));
    }
}

/// A Service port's ready endpoints and how to pick one.
#[derive(Debug)]
pub struct Backend {
    /// `namespace/service:port`, for logs and metrics.
    pub name: String,
    /// The ready endpoints.
    pub endpoints: Vec<Arc<Endpoint>>,
    next: AtomicUsize,
    balance: LoadBalance,
}

impl Backend {
    /// The endpoint for the next request, avoiding `tried` where another
    /// one exists.
    pub fn pick(&self, tried: &[SocketAddr]) -> Option<&Arc<Endpoint>> {
        let n = self.endpoints.len();
        if n == 0 {
            return None;
        }
        let fresh = |e: &&Arc<Endpoint>| !tried.contains(&e.addr);
        match self.balance {
            LoadBalance::RoundRobin => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                (0..n)
                    .map(|i| &self.endpoints[(start + i) % n])
                    .find(fresh)
                    .or_else(|| Some(&self.endpoints[start % n]))
            }
            LoadBalance::Ewma => {
                // Power of two choices: two endpoints in turn, the better one.
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                let i = start % n;
                // The second choice is always another endpoint (when
                // there is one), walking through all the others in turn.
                let j = if n > 1 {
                    (i + 1 + (start / n) % (n - 1)) % n
                } else {
                    i
                };
                let (a, b) = (&self.endpoints[i], &self.endpoints[j]);
                let best = if b.score() < a.score() { b } else { a };
                if fresh(&best) {
                    Some(best)
                } else {
                    self.endpoints.iter().find(fresh).or(Some(best))
                }
            }
        }
    }
}

/// Where a location sends requests.
#[derive(Debug, Clone)]
pub enum Target {
    /// A Service port (which may have no ready endpoint: 503).
    Backend(Arc<Backend>),
    /// The built-in default backend: 404.
    NotFound,
}

/// How a location's path is compared with the request's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    /// `location = /path`.
    Exact,
    /// `location /path`: a plain string prefix.
    Prefix,
    /// `location ~* "^/path"`.
    Regex,
}

/// One path of one host.
#[derive(Debug)]
pub struct Location {
    /// The Ingress it came from; `None` for the built-in root location.
    pub ingress: Option<ObjectKey>,
    /// The path as written in the Ingress, for metrics.
    pub ingress_path: String,
    /// The path as matched.
    pub path: String,
    /// How it is matched.
    pub kind: MatchKind,
    regex: Option<Regex>,
    /// The rewrite's regex, when `rewrite-target` changes the path.
    pub rewrite: Option<Regex>,
    /// The Ingress's annotations.
    pub config: Arc<LocationConfig>,
    /// Where requests go.
    pub target: Target,
    /// Its metric labels.
    pub labels: LocationLabels,
    /// Its metric handles.
    pub stats: LocationStats,
}

impl Location {
    fn matches(&self, path: &str) -> bool {
        match self.kind {
            MatchKind::Exact => self.path == path,
            MatchKind::Prefix => path.starts_with(&self.path),
            MatchKind::Regex => self.regex.as_ref().is_some_and(|r| r.is_match(path)),
        }
    }

    /// The path to send upstream for a request path (normalized), or `None`
    /// when this location does not rewrite.
    pub fn rewritten(&self, path: &str) -> Option<String> {
        let re = self.rewrite.as_ref()?;
        let target = self.config.rewrite_target.as_deref()?;
        let caps = re.captures(path)?;
        Some(crate::path::expand(target, &caps))
    }
}

/// The locations of one host.
#[derive(Debug)]
pub struct Server {
    /// The host (`""` for the catch-all server).
    pub host: String,
    /// Whether the host is listed in some Ingress's `spec.tls`.
    pub tls: bool,
    /// Exact locations.
    exact: HashMap<String, Arc<Location>>,
    /// Prefix locations, longest first.
    prefixes: Vec<Arc<Location>>,
    /// Regex locations in the order nginx tries them.
    regexes: Vec<Arc<Location>>,
}

impl Server {
    /// The location a (normalized) request path goes to.
    pub fn locate(&self, path: &str) -> &Arc<Location> {
        if let Some(l) = self.exact.get(path) {
            return l;
        }
        let prefix = self.prefixes.iter().find(|l| l.matches(path));
        if let Some(l) = self.regexes.iter().find(|l| l.matches(path)) {
            return l;
        }
        // The root location matches every path, so there is always one.
        prefix
            .or_else(|| self.regexes.last())
            .expect("root location")
    }

    /// Every location, for tests and diagnostics.
    pub fn locations(&self) -> impl Iterator<Item = &Arc<Location>> {
        self.exact
            .values()
            .chain(self.prefixes.iter())
            .chain(self.regexes.iter())
    }
}

/// The compiled routes of every served Ingress.
pub struct RouteTable {
    exact: HashMap<String, Arc<Server>>,
    /// `*.foo.com` servers under `foo.com`.
    wildcard: HashMap<String, Arc<Server>>,
    catch_all: Arc<Server>,
    /// The certificates by host, for the TLS handshake.
    pub certs: CertStore,
}

impl RouteTable {
    /// A table that answers everything with the default backend.
    pub fn empty(fallback: Arc<TlsCert>) -> Self {
        Self {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            catch_all: Arc::new(root_only_server("", Target::NotFound)),
            certs: CertStore::new(fallback),
        }
    }

    /// The server for a request's host (no port, any case).
    pub fn server(&self, host: &str) -> &Arc<Server> {
        let host = host.trim_end_matches('.');
        let lower;
        let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = host.to_ascii_lowercase();
            lower.as_str()
        } else {
            host
        };
        if let Some(s) = self.exact.get(host) {
            return s;
        }
        if let Some((_, parent)) = host.split_once('.') {
            if let Some(s) = self.wildcard.get(parent) {
                return s;
            }
        }
        &self.catch_all
    }

    /// How many servers (hosts) the table has, catch-all included.
    pub fn server_count(&self) -> usize {
        self.exact.len() + self.wildcard.len() + 1
    }

    /// The metric labels of every location, to let go of the metrics of
    /// locations that are gone.
    pub fn location_labels(&self) -> HashSet<LocationLabels> {
        self.exact
            .values()
            .chain(self.wildcard.values())
            .chain(std::iter::once(&self.catch_all))
            .flat_map(|s| s.locations())
            .map(|l| l.labels.clone())
            .collect()
    }
}

/// A problem with one Ingress, for a Warning event on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Problem {
    /// The Ingress.
    pub ingress: ObjectKey,
    /// The event reason.
    pub reason: &'static str,
    /// What is wrong.
    pub message: String,
}

/// A compiled table and what the compiler found on the way.
pub struct Compiled {
    /// The table.
    pub table: RouteTable,
    /// The Ingresses served, for their status.
    pub served: Vec<ObjectKey>,
    /// Problems to report.
    pub problems: Vec<Problem>,
}

/// One path before the host's locations are put in order.
struct Draft {
    ingress: ObjectKey,
    ingress_path: String,
    path: String,
    exact: bool,
    /// The exact half of a Prefix path, which gives way to an Exact path
    /// of the same string wherever that is declared.
    from_prefix: bool,
    config: Arc<LocationConfig>,
    target: Target,
    /// Its own Ingress asks for regex matching.
    regex: bool,
}

#[derive(Default)]
struct HostDraft {
    paths: Vec<Draft>,
    /// The root location's target, from an Ingress's `defaultBackend`.
    default: Option<Target>,
    tls: bool,
}

/// Whether an Ingress belongs to kedge.
pub fn is_ours(ing: &Ingress, classes: &[Arc<IngressClass>], cfg: &ClassConfig) -> bool {
    let ours_by_name = |name: &str| {
        cfg.extra_classes.iter().any(|c| c == name)
            || classes.iter().any(|c| {
                c.metadata.name.as_deref() == Some(name)
                    && c.spec.as_ref().and_then(|s| s.controller.as_deref())
                        == Some(cfg.controller.as_str())
            })
    };
    if let Some(name) = ing
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref())
    {
        return ours_by_name(name);
    }
    if let Some(name) = ing
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LEGACY_CLASS_ANNOTATION))
    {
        return ours_by_name(name);
    }
    cfg.watch_without_class
        || classes.iter().any(|c| {
            c.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(cfg.controller.as_str())
                && c.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                    .is_some_and(|v| v == "true")
        })
}

/// Compile the table from a snapshot.
pub fn compile(
    snap: &Snapshot,
    cfg: &ClassConfig,
    registry: &EndpointRegistry,
    fallback: Arc<TlsCert>,
) -> Compiled {
    let mut problems = Vec::new();
    let mut served = Vec::new();
    let mut hosts: BTreeMap<String, HostDraft> = BTreeMap::new();
    let mut catch_all_default: Option<Target> = None;
    let mut certs = CertStore::new(fallback);
    let mut cert_cache: HashMap<ObjectKey, Option<Arc<TlsCert>>> = HashMap::new();
    let mut live = HashSet::new();
    let mut backends: HashMap<(ObjectKey, String, LoadBalance), Arc<Backend>> = HashMap::new();

    // Oldest first: on a path two Ingresses both claim, the older one wins,
    // as in ingress-nginx.
    let mut ingresses: Vec<&Arc<Ingress>> = snap
        .ingresses
        .iter()
        .filter(|i| i.metadata.deletion_timestamp.is_none())
        .filter(|i| is_ours(i, &snap.classes, cfg))
        .collect();
    ingresses.sort_by(|a, b| {
        let key = |i: &Ingress| {
            (
                i.metadata.creation_timestamp.clone().map(|t| t.0),
                i.metadata.namespace.clone().unwrap_or_default(),
                i.metadata.name.clone().unwrap_or_default(),
            )
        };
        key(a).cmp(&key(b))
    });

    for ing in ingresses {
        let ns = ing.metadata.namespace.clone().unwrap_or_default();
        let key = ObjectKey::new(&ns, ing.metadata.name.as_deref().unwrap_or_default());
        let parsed = annotations::parse(&ing.metadata.annotations.clone().unwrap_or_default());
        if let Some(reason) = parsed.refused {
            problems.push(Problem {
                ingress: key,
                reason: "Rejected",
                message: reason,
            });
            continue;
        }
        for w in parsed.warnings {
            problems.push(Problem {
                ingress: key.clone(),
                reason: "InvalidAnnotation",
                message: w,
            });
        }
        let config = Arc::new(parsed.config);
        let regex = config.use_regex || config.rewrite_target.is_some();
        let spec = ing.spec.clone().unwrap_or_default();
        let mut resolve = |b: &IngressBackend, problems: &mut Vec<Problem>| {
            resolve_backend(
                snap,
                &ns,
                b,
                config.load_balance,
                registry,
                &mut backends,
                &mut live,
            )
            .unwrap_or_else(|message| {
                problems.push(Problem {
                    ingress: key.clone(),
                    reason: "InvalidBackend",
                    message,
                });
                Target::NotFound
            })
        };

        let default = spec
            .default_backend
            .as_ref()
            .map(|b| resolve(b, &mut problems));
        if let Some(d) = &default {
            if catch_all_default.is_none() {
                catch_all_default = Some(d.clone());
            }
        }
        for rule in spec.rules.iter().flatten() {
            let host = rule.host.as_deref().unwrap_or("").to_ascii_lowercase();
            let draft = hosts.entry(host).or_default();
            if draft.default.is_none() {
                draft.default.clone_from(&default);
            }
            for p in rule.http.iter().flat_map(|h| h.paths.iter()) {
                let path = p.path.clone().unwrap_or_else(|| "/".into());
                if regex {
                    if let Err(e) = Regex::new(&format!("(?i)^{path}")) {
                        problems.push(Problem {
                            ingress: key.clone(),
                            reason: "InvalidPath",
                            message: format!("path {path:?} is not a regular expression: {e}"),
                        });
                        continue;
                    }
                } else if !path.starts_with('/') {
                    problems.push(Problem {
                        ingress: key.clone(),
                        reason: "InvalidPath",
                        message: format!("path {path:?} must start with /"),
                    });
                    continue;
                }
                let target = resolve(&p.backend, &mut problems);
                let draft_path = Draft {
                    ingress: key.clone(),
                    ingress_path: path.clone(),
                    path: path.clone(),
                    exact: p.path_type == "Exact",
                    from_prefix: false,
                    config: config.clone(),
                    target,
                    regex,
                };
                // A Prefix path turns into "/foo/" plus an exact "/foo"
                // unless it uses a regex (ingress-nginx's rule). A trailing
                // slash is ignored, so "/foo/" does the same: the Ingress
                // API has Prefix "/aaa/bbb/" match "/aaa/bbb", where
                // ingress-nginx would make the exact location "/aaa/bbb/".
                let base = path.trim_end_matches('/');
                if p.path_type == "Prefix" && !base.is_empty() && !regex {
                    draft.paths.push(Draft {
                        path: base.to_string(),
                        exact: true,
                        from_prefix: true,
                        ..clone_draft(&draft_path)
                    });
                    draft.paths.push(Draft {
                        path: format!("{base}/"),
                        ..draft_path
                    });
                } else if p.path_type == "Prefix" && !regex {
                    // "/" (or "//"): the root location.
                    draft.paths.push(Draft {
                        path: "/".into(),
                        ..draft_path
                    });
                } else {
                    draft.paths.push(draft_path);
                }
            }
        }
        for tls in spec.tls.iter().flatten() {
            let cert = tls.secret_name.as_ref().and_then(|name| {
                let sk = ObjectKey::new(&ns, name);
                cert_cache
                    .entry(sk.clone())
                    .or_insert_with(|| match snap.secrets.get(&sk) {
                        None => {
                            problems.push(Problem {
                                ingress: key.clone(),
                                reason: "InvalidTLS",
                                message: format!(
                                    "secret {sk} not found; serving the fallback certificate"
                                ),
                            });
                            None
                        }
                        Some(s) => match TlsCert::from_secret(s) {
                            Ok(c) => Some(Arc::new(c)),
                            Err(e) => {
                                problems.push(Problem {
                                    ingress: key.clone(),
                                    reason: "InvalidTLS",
                                    message: format!(
                                        "secret {sk}: {e}; serving the fallback certificate"
                                    ),
                                });
                                None
                            }
                        },
                    })
                    .clone()
            });
            for host in tls.hosts.iter().flatten() {
                let host = host.to_ascii_lowercase();
                hosts.entry(host.clone()).or_default().tls = true;
                if let Some(c) = &cert {
                    certs.insert_if_absent(&host, c.clone());
                }
            }
        }
        served.push(key);
    }
    registry.retain(&live);

    let mut exact = HashMap::new();
    let mut wildcard = HashMap::new();
    let mut catch_all = None;
    for (host, draft) in hosts {
        let server = Arc::new(build_server(&host, draft, catch_all_default.clone()));
        if host.is_empty() {
            catch_all = Some(server);
        } else if let Some(parent) = host.strip_prefix("*.") {
            wildcard.insert(parent.to_string(), server);
        } else {
            exact.insert(host, server);
        }
    }
    let catch_all = catch_all.unwrap_or_else(|| {
        Arc::new(root_only_server(
            "",
            catch_all_default.unwrap_or(Target::NotFound),
        ))
    });
    Compiled {
        table: RouteTable {
            exact,
            wildcard,
            catch_all,
            certs,
        },
        served,
        problems,
    }
}

fn clone_draft(d: &Draft) -> Draft {
    Draft {
        ingress: d.ingress.clone(),
        ingress_path: d.ingress_path.clone(),
        path: d.path.clone(),
        exact: d.exact,
        from_prefix: d.from_prefix,
        config: d.config.clone(),
        target: d.target.clone(),
        regex: d.regex,
    }
}

fn root_location(host: &str, target: Target, kind: MatchKind) -> Location {
    Location {
        labels: LocationLabels {
            namespace: String::new(),
            ingress: String::new(),
            host: host.into(),
            path: "/".into(),
        },
        ingress: None,
        ingress_path: "/".into(),
        path: "/".into(),
        kind,
        regex: (kind == MatchKind::Regex).then(|| Regex::new("^/").expect("literal regex")),
        rewrite: None,
        config: Arc::new(LocationConfig::default()),
        target,
        stats: LocationStats::default(),
    }
}

fn root_only_server(host: &str, target: Target) -> Server {
    Server {
        host: host.into(),
        tls: false,
        exact: HashMap::new(),
        prefixes: vec![Arc::new(root_location(host, target, MatchKind::Prefix))],
        regexes: Vec::new(),
    }
}

fn build_server(host: &str, draft: HostDraft, catch_all_default: Option<Target>) -> Server {
    let regex_mode = draft.paths.iter().any(|d| d.regex);
    // An Exact path beats the exact half of a Prefix path on the same
    // string, whichever rule or Ingress comes first (ingress-nginx adds no
    // exact location for a Prefix when an Exact one exists on the host).
    let declared_exact: HashSet<String> = draft
        .paths
        .iter()
        .filter(|d| d.exact && !d.from_prefix)
        .map(|d| d.path.clone())
        .collect();
    // Otherwise the first claim on a (path, kind) wins; the drafts are
    // oldest first.
    let mut seen = HashSet::new();
    // Each location with whether it is exact, which orders regexes of the
    // same path.
    let mut locations: Vec<(Location, bool)> = Vec::new();
    for d in draft.paths {
        if d.from_prefix && declared_exact.contains(&d.path) {
            continue;
        }
        if !seen.insert((d.path.clone(), d.exact)) {
            continue;
        }
        let needs_rewrite = d
            .config
            .rewrite_target
            .as_deref()
            .is_some_and(|t| t != d.path);
        let kind = if regex_mode {
            MatchKind::Regex
        } else if d.exact {
            MatchKind::Exact
        } else {
            MatchKind::Prefix
        };
        let regex = (kind == MatchKind::Regex)
            .then(|| Regex::new(&format!("(?i)^{}", d.path)).ok())
            .flatten();
        let rewrite = needs_rewrite
            .then(|| Regex::new(&format!("(?i){}", d.path)).ok())
            .flatten();
        let exact = d.exact;
        locations.push((
            Location {
                labels: LocationLabels {
                    namespace: d.ingress.namespace.clone(),
                    ingress: d.ingress.name.clone(),
                    host: host.into(),
                    path: d.ingress_path.clone(),
                },
                ingress: Some(d.ingress),
                ingress_path: d.ingress_path,
                path: d.path,
                kind,
                regex,
                rewrite,
                config: d.config,
                target: d.target,
                stats: LocationStats::default(),
            },
            exact,
        ));
    }
    // Every host answers for "/", with its Ingress's default backend when
    // no rule claims "/" itself.
    if !locations
        .iter()
        .any(|(l, _)| l.path == "/" && l.kind != MatchKind::Exact)
    {
        let target = draft
            .default
            .or(catch_all_default)
            .unwrap_or(Target::NotFound);
        let kind = if regex_mode {
            MatchKind::Regex
        } else {
            MatchKind::Prefix
        };
        locations.push((root_location(host, target, kind), false));
    }
    // ingress-nginx's order: by path descending, then (stably) longest
    // first. In regex mode an Exact and a Prefix path of the same string
    // are the same regex, and only the first is ever tried: the Exact one
    // goes first, as an exact location wins outside regex mode.
    locations.sort_by(|(a, a_exact), (b, b_exact)| b.path.cmp(&a.path).then(b_exact.cmp(a_exact)));
    locations.sort_by_key(|(l, _)| std::cmp::Reverse(l.path.len()));

    let mut server = Server {
        host: host.into(),
        tls: draft.tls,
        exact: HashMap::new(),
        prefixes: Vec::new(),
        regexes: Vec::new(),
    };
    for (l, _) in locations {
        let l = Arc::new(l);
        match l.kind {
            MatchKind::Exact => {
                server.exact.entry(l.path.clone()).or_insert(l);
            }
            MatchKind::Prefix => server.prefixes.push(l),
            MatchKind::Regex => server.regexes.push(l),
        }
    }
    server
}

/// A Service backend as a target: its ready endpoints on the port named.
#[allow(clippy::too_many_arguments)]
fn resolve_backend(
    snap: &Snapshot,
    ns: &str,
    backend: &IngressBackend,
    balance: LoadBalance,
    registry: &EndpointRegistry,
    backends: &mut HashMap<(ObjectKey, String, LoadBalance), Arc<Backend>>,
    live: &mut HashSet<SocketAddr>,
) -> Result<Target, String> {
    let Some(IngressServiceBackend { name, port }) = &backend.service else {
        return Err("only Service backends are supported".into());
    };
    let key = ObjectKey::new(ns, name);
    let port_desc = match port.as_ref() {
        Some(p) => match (&p.name, p.number) {
            (Some(n), _) if !n.is_empty() => n.clone(),
            (_, Some(n)) => n.to_string(),
            _ => return Err(format!("service {key}: no port given")),
        },
        None => return Err(format!("service {key}: no port given")),
    };
    if let Some(b) = backends.get(&(key.clone(), port_desc.clone(), balance)) {
        return Ok(Target::Backend(b.clone()));
    }
    let mut endpoints = Vec::new();
    match snap.services.get(&key) {
        // A Service that does not exist (yet) is a backend without
        // endpoints: 503 until it appears, as in ingress-nginx.
        None => {}
        Some(svc) => {
            let spec = svc.spec.clone().unwrap_or_default();
            let svc_port = spec.ports.iter().flatten().find(|sp| {
                sp.name.as_deref() == Some(port_desc.as_str()) || sp.port.to_string() == port_desc
            });
            let Some(svc_port) = svc_port else {
                return Err(format!("service {key} has no port {port_desc}"));
            };
            let port_name = svc_port.name.clone().filter(|n| !n.is_empty());
            let mut seen = HashSet::new();
            for slice in snap.slices.get(&key).into_iter().flatten() {
                let Some(target_port) = slice.ports.iter().flatten().find_map(|p| {
                    let name = p.name.clone().filter(|n| !n.is_empty());
                    let tcp = p.protocol.as_deref().unwrap_or("TCP") == "TCP";
                    (tcp && name == port_name).then_some(p.port).flatten()
                }) else {
                    continue;
                };
                for ep in &slice.endpoints {
                    // Ready unset means ready; terminating endpoints get
                    // no new requests.
                    let c = ep.conditions.as_ref();
                    if c.and_then(|c| c.ready) == Some(false)
                        || c.and_then(|c| c.terminating) == Some(true)
                    {
                        continue;
                    }
                    let Some(ip) = ep.addresses.first().and_then(|a| a.parse::<IpAddr>().ok())
                    else {
                        continue;
                    };
                    let Ok(port) = u16::try_from(target_port) else {
                        continue;
                    };
                    let addr = SocketAddr::new(ip, port);
                    if seen.insert(addr) {
                        live.insert(addr);
                        endpoints.push(registry.get(addr));
                    }
                }
            }
        }
    }
    // Sorted so that round-robin order does not depend on watch order.
    endpoints.sort_by_key(|e| e.addr);
    let b = Arc::new(Backend {
        name: format!("{key}:{port_desc}"),
        endpoints,
        // Tables are rebuilt on any change anywhere; starting every one at
        // the first endpoint would send it more than its share.
        next: AtomicUsize::new(rand::random::<u32>() as usize),
        balance,
    });
    backends.insert((key, port_desc, balance), b.clone());
    Ok(Target::Backend(b))
}

#[cfg(test)]
mod tests;
