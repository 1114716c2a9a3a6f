//! The API server: Kubernetes REST over HTTPS, the only component that
//! touches the store.

pub mod admission;
mod allocator;
mod auth;
mod codec;
mod componentstatus;
mod dashboard;
mod definitions;
mod discovery;
mod eviction;
mod http;
mod kubelet;
pub mod kubernetes_service;
pub mod mesh_trust;
mod meta;
mod namespaces;
mod objects;
mod patch;
mod printers;
mod registry;
pub mod resource_metrics;

use self::auth::authn::UserInfo;
pub use self::auth::{authn, certs, serviceaccount, tokens};
use self::auth::{authz, impersonation, reviews, tokenrequest};
use self::codec::{body, protobuf};
use self::discovery::openapi;
use self::http::{linger, request, status, watch};
use self::patch::{fieldmanager, strategic};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use kedge_config::cluster::ClusterConfig;

use self::body::{error_response, json_response, json_response_typed, Body};
use self::objects::Part;
use self::request::{Query, ResourceRequest, Target};
use self::status::{ApiError, ApiResult};
use crate::metrics::Metrics;
use crate::store::{durable, WatchCache};

pub use self::kubelet::KubeletClient;

/// Largest request body accepted (Kubernetes' limit is 3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// How much of a body over [`MAX_BODY`] is read and dropped before the 413,
/// and for how long: a client that reads only once it has sent everything
/// then gets its answer on a connection that stays open. Past these the
/// answer goes at once, and the connection closes (HTTP/1.1, lingering)
/// or the stream is reset with NO_ERROR (HTTP/2), as kube-apiserver does.
const MAX_DISCARD: u64 = 64 * 1024 * 1024;
const DISCARD_TIME: std::time::Duration = std::time::Duration::from_secs(30);

/// Shared state of all request handlers.
pub struct ApiState {
    /// The objects.
    pub cache: Arc<WatchCache>,
    /// Who requests come from (client certificates, tokens).
    authn: authn::Authenticator,
    /// Signs ServiceAccount tokens (the TokenRequest API).
    pub tokens: Arc<tokens::TokenIssuer>,
    /// Cluster-wide settings (service CIDR, NodePort range, …).
    pub cluster: ClusterConfig,
    /// Serialises Service address allocation.
    alloc: Mutex<()>,
    /// Request metrics.
    pub metrics: Arc<Metrics>,
    /// The URL clients reach the server on.
    pub server_url: String,
    /// How pods/log and pods/exec reach kubelets; without it they are
    /// refused.
    kubelet_client: Option<KubeletClient>,
    /// What nodes and containers use, scraped from kubelets
    /// (`metrics.k8s.io`).
    pub resource_metrics: resource_metrics::ResourceMetrics,
    /// The kinds served: built-in and custom.
    pub registry: registry::Registry,
    /// Set once the server drains: listeners stop accepting, open
    /// connections finish their requests, watches end.
    draining: tokio::sync::watch::Sender<bool>,
    /// Connections still open, to wait for while draining.
    connections: tokio::sync::watch::Sender<usize>,
}

impl ApiState {
    /// New state over an opened cache.
    pub fn new(
        cache: Arc<WatchCache>,
        static_tokens: Vec<(String, UserInfo)>,
        tokens: Arc<tokens::TokenIssuer>,
        cluster: ClusterConfig,
        server_url: String,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            cache,
            authn: authn::Authenticator::new(static_tokens, tokens.clone()),
            tokens,
            cluster,
            alloc: Mutex::new(()),
            metrics,
            server_url,
            kubelet_client: None,
            resource_metrics: Default::default(),
            registry: registry::Registry::new(),
            draining: tokio::sync::watch::channel(false).0,
            connections: tokio::sync::watch::channel(0).0,
        }
    }

    /// Resolves once the server has started draining.
    pub fn drained(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.draining.subscribe();
        async move {
            let _ = rx.wait_for(|d| *d).await;
        }
    }

    /// Stop accepting connections, end watches and let open requests
    /// finish; returns once every connection has closed (the caller bounds
    /// the wait with its grace period).
    pub async fn drain(&self) {
        self.draining.send_replace(true);
        let mut open = self.connections.subscribe();
        let _ = open.wait_for(|n| *n == 0).await;
    }

    /// A superuser's static bearer token (`--token-auth-file`), empty
    /// without one.
    pub fn admin_token(&self) -> &str {
        self.authn.admin_token()
    }

    /// Serve pods/log and pods/exec by passing them to kubelets with
    /// `client`.
    pub fn with_kubelet_client(mut self, client: KubeletClient) -> Self {
        self.kubelet_client = Some(client);
        self
    }
}

/// Create the namespaces and Services every cluster starts with.
pub fn bootstrap(state: &ApiState) -> Result<(), ApiError> {
    let ns = registry::builtin::find("", "v1", "namespaces").expect("namespaces are served");
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        if state.cache.get(&ns.key(None, name)).is_none() {
            create_as_apiserver(
                state,
                ns,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
            )?;
        }
    }
    kubernetes_service::ensure_service(state, server_port(&state.server_url))?;
    auth::rbac::policy::reconcile(state)?;
    ensure_default_storage_class(state)?;
    ensure_mesh_definitions(state)?;
    Ok(())
}

/// The mesh's custom resources (its AuthorizationPolicy), installed as
/// Istio's are, so policies can be written on any cluster.
fn ensure_mesh_definitions(state: &ApiState) -> Result<(), ApiError> {
    let definitions =
        registry::builtin::find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            .expect("served");
    let definition: Value =
        serde_yaml::from_str(include_str!("mesh-authorization-policy.yaml")).expect("valid YAML");
    let name = definition["metadata"]["name"].as_str().expect("named");
    if state.cache.get(&definitions.key(None, name)).is_some() {
        return Ok(());
    }
    create_as_apiserver(state, definitions, definition)
}

/// The StorageClass a cluster starts with, as k3s ships one: `local-path`,
/// the default, provisioned by the volume controller as a directory on the
/// node of a claim's first pod; its claims may grow (a directory has no
/// size of its own to change).
fn ensure_default_storage_class(state: &ApiState) -> Result<(), ApiError> {
    let classes =
        registry::builtin::find("storage.k8s.io", "v1", "storageclasses").expect("served");
    if state.cache.get(&classes.key(None, "local-path")).is_some() {
        return Ok(());
    }
    create_as_apiserver(
        state,
        classes,
        json!({
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": "local-path",
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": kedge_config::storage::LOCAL_PATH_PROVISIONER,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer",
            "allowVolumeExpansion": true,
        }),
    )?;
    Ok(())
}

/// Create a cluster-scoped object of `resource` as the API server itself.
fn create_as_apiserver(
    state: &ApiState,
    resource: &'static registry::Resource,
    obj: Value,
) -> Result<(), ApiError> {
    let req = ResourceRequest {
        resource,
        namespace: None,
        name: None,
        subresource: None,
        legacy_watch: false,
        user: crate::apiserver::auth::authn::UserInfo::apiserver(),
    };
    objects::create(state, &req, &Query::default(), obj)?;
    Ok(())
}

/// The port of a server URL (6443 if it names none).
pub fn server_port(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(6443)
}

/// Serve the API on `listener` with TLS until the task is dropped.
pub async fn serve(
    state: Arc<ApiState>,
    listener: TcpListener,
    tls: Arc<tokio_rustls::rustls::ServerConfig>,
) {
    tokio::spawn(namespaces::run(state.clone()));
    tokio::spawn(definitions::run(state.clone()));
    accept(state, listener, tls).await
}

/// Serve the API on one more listener (the control loops started by
/// [`serve`] are not started again).
pub async fn accept(
    state: Arc<ApiState>,
    listener: TcpListener,
    tls: Arc<tokio_rustls::rustls::ServerConfig>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let drained = state.drained();
    tokio::pin!(drained);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            // Draining: the listener closes, so new connections are
            // refused while open ones finish.
            () = &mut drained => return,
        };
        let (tcp, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let tcp = linger::Lingering::new(tcp);
        let acceptor = acceptor.clone();
        let state = state.clone();
        let state_for_drain = state.clone();
        let open = OpenConnection::new(&state);
        tokio::spawn(async move {
            let _open = open;
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            // The client certificate (verified against the cluster CA in
            // the handshake) names the user of every request on the
            // connection.
            let certificate_user = CertificateUser(
                tls.get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|c| authn::user_of_certificate(c))
                    .map(Arc::new),
            );
            let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                let state = state.clone();
                req.extensions_mut().insert(certificate_user.clone());
                async move { Ok::<_, std::convert::Infallible>(handle(state, req).await) }
            });
            let drained = state_for_drain.drained();
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = drained => {
                    // Finish the requests in flight, then close (HTTP/1.1
                    // `Connection: close`, HTTP/2 GOAWAY).
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

/// The user a connection's client certificate names, if it has one.
#[derive(Clone)]
struct CertificateUser(Option<Arc<UserInfo>>);

/// Counts an open connection for as long as it lives.
struct OpenConnection(tokio::sync::watch::Sender<usize>);

impl OpenConnection {
    fn new(state: &ApiState) -> Self {
        state.connections.send_modify(|n| *n += 1);
        Self(state.connections.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

fn header<'a>(req: &'a Request<Incoming>, name: &str) -> &'a str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Handle one request: authenticate, route, and answer (errors as Status).
pub async fn handle(state: Arc<ApiState>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = match route(state.clone(), req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    let code = resp.status().as_u16();
    state
        .metrics
        .observe_request(method.as_str(), code, started.elapsed());
    tracing::debug!(%method, %path, code, elapsed_ms = started.elapsed().as_secs_f64() * 1000.0, "request");
    resp
}

/// Who a request comes from (after impersonation), and whether they may
/// make it: 401 for credentials that do not authenticate, 403 for what
/// they may not do.
fn authenticate_and_authorize(state: &ApiState, req: &Request<Incoming>) -> ApiResult<UserInfo> {
    let certificate = req
        .extensions()
        .get::<CertificateUser>()
        .and_then(|c| c.0.as_deref());
    // A browser's WebSocket carries its token in a subprotocol.
    let authorization = match header(req, "authorization") {
        "" => authn::websocket_bearer(header(req, "sec-websocket-protocol")).unwrap_or_default(),
        a => a.to_string(),
    };
    let user = state
        .authn
        .authenticate(certificate, &authorization, &state.cache)
        .map_err(|e| {
            tracing::debug!(error = %e, path = req.uri().path(), "request not authenticated");
            ApiError::unauthorized()
        })?;
    let user = impersonation::act_as(state, user, req.headers())?;
    let attrs =
        authz::request_attributes(req.method().as_str(), req.uri().path(), req.uri().query());
    authz::require(state, &user, &attrs)?;
    Ok(user)
}

/// The request body, up to [`MAX_BODY`] as kube-apiserver reads it.
async fn read_body(req: Request<Incoming>) -> ApiResult<Bytes> {
    let mut body = req.into_body();
    let advertised = body.size_hint().lower();
    if advertised <= MAX_BODY as u64 {
        match Limited::new(&mut body, MAX_BODY).collect().await {
            Ok(c) => return Ok(c.to_bytes()),
            Err(e) if e.is::<LengthLimitError>() => {}
            Err(e) => {
                return Err(ApiError::bad_request(format!(
                    "error reading the request body: {e}"
                )))
            }
        }
    }
    if advertised <= MAX_DISCARD {
        let _ = tokio::time::timeout(DISCARD_TIME, discard(&mut body, MAX_DISCARD)).await;
    }
    Err(ApiError::request_entity_too_large(MAX_BODY))
}

/// Read and drop up to `limit` bytes of a body, until its end.
async fn discard(body: &mut Incoming, limit: u64) {
    let mut read = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        read += frame.data_ref().map_or(0, |d| d.len() as u64);
        if read > limit {
            break;
        }
    }
}

async fn route(state: Arc<ApiState>, req: Request<Incoming>) -> ApiResult<Response<Body>> {
    if req.method() == Method::GET {
        if let Some(page) = dashboard::serve(req.uri().path(), header(&req, "accept")) {
            return Ok(page);
        }
    }
    let user = authenticate_and_authorize(&state, &req)?;
    let target = parse_target(&state, &req)?;
    if let Target::Resource(_) = target {
        return handle_resource(state, req, Arc::new(user)).await;
    }
    let accept = header(&req, "accept").to_string();
    let get = req.method() == Method::GET;
    match target {
        Target::Version => Ok(json_response(200, &discovery::version())),
        Target::Health => Ok(Response::builder()
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(body::full("ok"))
            .expect("static response")),
        Target::Metrics => Ok(Response::builder()
            .header(
                "Content-Type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
            .body(body::full(state.metrics.encode()))
            .expect("static response")),
        _ if !get => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
        Target::CoreVersions if discovery::wants_aggregated(&accept) => Ok(json_response_typed(
            200,
            &discovery::aggregated(true, &state.registry),
            discovery::AGGREGATED_CONTENT_TYPE,
        )),
        Target::CoreVersions => Ok(json_response(
            200,
            &discovery::core_versions(state.server_url.trim_start_matches("https://")),
        )),
        Target::Groups if discovery::wants_aggregated(&accept) => Ok(json_response_typed(
            200,
            &discovery::aggregated(false, &state.registry),
            discovery::AGGREGATED_CONTENT_TYPE,
        )),
        Target::Groups => Ok(json_response(200, &discovery::groups(&state.registry))),
        Target::Group(g) => discovery::group(&g, &state.registry)
            .map(|v| json_response(200, &v))
            .ok_or_else(ApiError::no_route),
        Target::ResourceList(g, v) => discovery::resource_list(&g, &v, &state.registry)
            .map(|v| json_response(200, &v))
            .ok_or_else(ApiError::no_route),
        // Service account issuer discovery, as Kubernetes serves it (to
        // authenticated clients).
        Target::OpenIdConfiguration => Ok(json_response(
            200,
            &json!({
                "issuer": state.tokens.issuer,
                "jwks_uri": format!("{}/openid/v1/jwks", state.server_url),
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["ES256"],
            }),
        )),
        Target::Jwks => Ok(json_response_typed(
            200,
            &json!({"keys": [state.tokens.jwk()]}),
            "application/jwk-set+json",
        )),
        Target::OpenApiV3Index => Ok(json_response(200, &openapi::index(&state.registry))),
        Target::OpenApiV3(p) => openapi::document(&p, &state.registry)
            .map(|v| json_response(200, &v))
            .ok_or_else(ApiError::no_route),
        // kubectl reads v2 only as protobuf, and only when v3 lacks a kind
        // (an unknown kind): an empty Document (zero bytes) lets it report
        // the unknown kind instead of failing to download OpenAPI.
        Target::OpenApiV2 => Ok(Response::builder()
            .header(
                "Content-Type",
                "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
            )
            .body(body::full(Bytes::new()))
            .expect("static response")),
        Target::Resource(_) => unreachable!("resources are routed before this match"),
    }
}

fn parse_target(state: &ApiState, req: &Request<Incoming>) -> ApiResult<Target> {
    request::parse_path(req.uri().path(), &state.registry).ok_or_else(ApiError::no_route)
}

/// How a response for an object or list should be rendered.
struct Accept {
    table: bool,
    include_object: String,
}

fn parse_accept(accept: &str, q: &Query) -> Accept {
    Accept {
        table: accept.contains("as=Table"),
        include_object: q.get("includeObject").unwrap_or("Metadata").to_string(),
    }
}

fn object_response(
    state: &ApiState,
    code: u16,
    r: &registry::Resource,
    obj: &Value,
    accept: &Accept,
) -> Response<Body> {
    let converted = registry::custom::present(r, obj);
    let obj = converted.as_ref().unwrap_or(obj);
    if accept.table {
        let rv = obj
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let custom = state.registry.custom(r);
        let t = printers::table(
            printers::Printer::of(r.plural, custom.as_ref().map(|v| v.columns.as_slice())),
            std::slice::from_ref(obj),
            rv,
            None,
            &accept.include_object,
            true,
            jiff::Timestamp::now(),
        );
        return json_response(code, &t);
    }
    json_response(code, obj)
}

/// An object or list worked out when read (never stored), as JSON or,
/// when asked, as a Table printed by `printer`.
fn computed_response(printer: &str, found: &Value, accept: &Accept) -> Response<Body> {
    if !accept.table {
        return json_response(200, found);
    }
    let items = match found.get("items").and_then(Value::as_array) {
        Some(items) => items.clone(),
        None => vec![found.clone()],
    };
    let t = printers::table(
        printers::Printer::of(printer, None),
        &items,
        "",
        None,
        &accept.include_object,
        true,
        jiff::Timestamp::now(),
    );
    json_response(200, &t)
}

/// Resource requests (the verbs on collections, objects and subresources)
/// of an authenticated and authorized `user`.
pub async fn handle_resource(
    state: Arc<ApiState>,
    req: Request<Incoming>,
    user: Arc<UserInfo>,
) -> ApiResult<Response<Body>> {
    let Target::Resource(mut rr) = parse_target(&state, &req)? else {
        return Err(ApiError::no_route());
    };
    rr.user = user;
    let mut q = Query::parse(req.uri().query());
    // Writes without a fieldManager are owned by the client's name, the
    // User-Agent up to its first '/', as Kubernetes does.
    let agent = header(&req, "user-agent");
    let agent = agent.split('/').next().unwrap_or("").trim();
    q.set_default(
        "fieldManager",
        if agent.is_empty() { "unknown" } else { agent },
    );
    let accept = parse_accept(header(&req, "accept"), &q);
    let content_type = header(&req, "content-type").to_string();
    let method = req.method().clone();
    let r = rr.resource;
    let sub = rr.subresource.clone();
    let state_ref = &*state;
    if componentstatus::serves(r) {
        if method != Method::GET || q.flag("watch") || rr.legacy_watch {
            return Err(ApiError::method_not_allowed(format!(
                "{method} is not supported on componentstatuses"
            )));
        }
        let found = componentstatus::get(state_ref, &rr)?;
        let mut response = computed_response(r.plural, &found, &accept);
        response.headers_mut().insert(
            "Warning",
            hyper::header::HeaderValue::from_static(componentstatus::WARNING),
        );
        return Ok(response);
    }
    // The resource metrics are read, never stored.
    if resource_metrics::serves(r) {
        if method != Method::GET || sub.is_some() || q.flag("watch") || rr.legacy_watch {
            return Err(ApiError::method_not_allowed(format!(
                "{method} is not supported on {}.{}",
                r.plural,
                resource_metrics::GROUP
            )));
        }
        let found = resource_metrics::get(state_ref, &rr, &q)?;
        return Ok(computed_response(r.singular, &found, &accept));
    }
    match (method, rr.name.is_some(), sub.as_deref()) {
        // === collections ===
        (Method::GET, false, None) => {
            if q.flag("watch") || rr.legacy_watch {
                let rendering = watch::Rendering {
                    table: accept.table,
                    include_object: accept.include_object,
                };
                return watch::watch(state.clone(), &rr, &q, rendering);
            }
            let page = objects::list(state_ref, &rr, &q)?;
            if accept.table {
                let items: Vec<Value> = page.items.iter().map(|o| (**o).clone()).collect();
                let custom = state.registry.custom(r);
                let t = printers::table(
                    printers::Printer::of(r.plural, custom.as_ref().map(|v| v.columns.as_slice())),
                    &items,
                    &page.revision.to_string(),
                    page.continue_token.as_deref(),
                    &accept.include_object,
                    true,
                    jiff::Timestamp::now(),
                );
                return Ok(json_response(200, &t));
            }
            Ok(Response::builder()
                .header("Content-Type", "application/json")
                .body(body::full(objects::list_bytes(r, &page)))
                .expect("static response parts are valid"))
        }
        (Method::POST, false, None) if registry::kinds::is_review(r) => {
            let body = read_body(req).await?;
            let obj = body::decode_object(&content_type, &body)?;
            Ok(json_response(201, &reviews::create(state_ref, &rr, obj)?))
        }
        (Method::POST, false, None) => {
            let body = read_body(req).await?;
            let obj = body::decode_object(&content_type, &body)?;
            // Writes wait for their commit without holding a thread (`durable`).
            let out = durable(async { objects::create(state_ref, &rr, &q, obj) }).await?;
            Ok(object_response(
                state_ref,
                out.code,
                r,
                &out.object,
                &accept,
            ))
        }
        (Method::DELETE, false, None) => {
            let body = read_body(req).await?;
            let options = delete_options(&body)?;
            Ok(json_response(
                200,
                &objects::delete_collection(state_ref, &rr, &q, &options)?,
            ))
        }
        // === objects ===
        (Method::GET, true, None) => {
            if rr.legacy_watch || q.flag("watch") {
                let rendering = watch::Rendering {
                    table: accept.table,
                    include_object: accept.include_object,
                };
                return watch::watch(state.clone(), &rr, &q, rendering);
            }
            let obj = objects::get(state_ref, &rr)?;
            Ok(object_response(state_ref, 200, r, &obj, &accept))
        }
        (Method::PUT, true, None) => {
            let body = read_body(req).await?;
            let obj = body::decode_object(&content_type, &body)?;
            let out =
                durable(async { objects::update(state_ref, &rr, &q, Part::Main, obj) }).await?;
            Ok(object_response(
                state_ref,
                out.code,
                r,
                &out.object,
                &accept,
            ))
        }
        (Method::PATCH, true, None) => {
            let body = read_body(req).await?;
            let out = durable(async {
                objects::patch(state_ref, &rr, &q, Part::Main, &content_type, &body)
            })
            .await?;
            Ok(object_response(
                state_ref,
                out.code,
                r,
                &out.object,
                &accept,
            ))
        }
        (Method::DELETE, true, None) => {
            let body = read_body(req).await?;
            let options = delete_options(&body)?;
            let out = durable(async { objects::delete(state_ref, &rr, &q, &options) }).await?;
            Ok(object_response(
                state_ref,
                out.code,
                r,
                &out.object,
                &accept,
            ))
        }
        // === subresources ===
        (Method::GET, true, Some("status" | "approval")) => {
            Ok(json_response(200, &*objects::get(state_ref, &rr)?))
        }
        (Method::PUT, true, Some("status" | "approval")) => {
            let body = read_body(req).await?;
            let obj = body::decode_object(&content_type, &body)?;
            let out =
                durable(async { objects::update(state_ref, &rr, &q, Part::Status, obj) }).await?;
            // In the requested version (a custom resource is stored in its
            // storage version).
            Ok(json_response(200, &objects::present_value(r, out.object)))
        }
        (Method::PATCH, true, Some("status" | "approval")) => {
            let body = read_body(req).await?;
            let out = durable(async {
                objects::patch(state_ref, &rr, &q, Part::Status, &content_type, &body)
            })
            .await?;
            // In the requested version (a custom resource is stored in its
            // storage version).
            Ok(json_response(200, &objects::present_value(r, out.object)))
        }
        (Method::GET, true, Some("scale")) => Ok(json_response(
            200,
            &objects::scale_of(state_ref, r, &*objects::get(state_ref, &rr)?),
        )),
        (Method::PUT, true, Some("scale")) => {
            let body = read_body(req).await?;
            let scale = body::decode_object(&content_type, &body)?;
            let out = durable(async {
                objects::update_scale(state_ref, &rr, &q, move |_| Ok(scale.clone()))
            })
            .await?;
            Ok(json_response(200, &out))
        }
        (Method::PATCH, true, Some("scale")) => {
            let body = read_body(req).await?;
            let patch: Value = serde_json::from_slice(&body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            let ct = content_type.clone();
            let out = durable(async {
                objects::update_scale(state_ref, &rr, &q, move |current| {
                    let ct = if ct.starts_with("application/strategic-merge-patch")
                        || ct.starts_with("application/apply-patch")
                    {
                        "application/merge-patch+json"
                    } else {
                        ct.as_str()
                    };
                    objects::apply_patch(r, ct, current, &patch)
                })
            })
            .await?;
            Ok(json_response(200, &out))
        }
        (Method::POST, true, Some("eviction")) => {
            let body = read_body(req).await?;
            let eviction = body::decode_object(&content_type, &body)?;
            let out = durable(async { eviction::evict(state_ref, &rr, &q, &eviction) }).await?;
            Ok(json_response(201, &out))
        }
        (Method::POST, true, Some("binding")) => {
            let body = read_body(req).await?;
            let binding = body::decode_object(&content_type, &body)?;
            let out = durable(async { objects::bind(state_ref, &rr, &q, &binding) }).await?;
            Ok(json_response(201, &out))
        }
        (Method::PUT, true, Some("finalize")) => {
            let body = read_body(req).await?;
            let obj = body::decode_object(&content_type, &body)?;
            Ok(json_response(
                200,
                &objects::finalize_namespace(state_ref, &rr, &q, obj)?.object,
            ))
        }
        (Method::POST, true, Some("token")) => {
            let body = read_body(req).await?;
            let request = body::decode_object(&content_type, &body)?;
            Ok(json_response(
                201,
                &tokenrequest::create(state_ref, &rr, &q, request)?,
            ))
        }
        (Method::GET, true, Some("log")) => {
            kubelet::logs(state_ref, &rr, &q, req.uri().query()).await
        }
        (Method::GET | Method::DELETE, true, Some("proxy")) => {
            kubelet::node_proxy(state_ref, &rr, req.method().clone(), req.uri()).await
        }
        (Method::GET | Method::POST, true, Some("exec")) => {
            kubelet::exec(state_ref, &rr, &q, req).await
        }
        (Method::GET | Method::POST, true, Some("portforward")) => {
            kubelet::port_forward(state_ref, &rr, req).await
        }
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}

fn delete_options(body: &[u8]) -> ApiResult<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))
}

/// The address the server listens on, resolved (port 0 picks a free one).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Run `pass` now, on every change below `prefix`, and at least every second
/// (what a pass waits for, such as objects going away, may finish without an
/// event here), until the store closes: the loops the server runs on its
/// own objects (namespace and definition lifecycles).
async fn run_passes(state: Arc<ApiState>, prefix: String, pass: fn(&ApiState)) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let Ok(stream) = state.cache.watch(&prefix, None) else {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            continue;
        };
        let mut live = stream.live;
        pass(&state);
        loop {
            match tokio::time::timeout(std::time::Duration::from_secs(1), live.recv()).await {
                Ok(Ok(_)) | Err(_) | Ok(Err(RecvError::Lagged(_))) => pass(&state),
                // The cache is gone: the server is shutting down, and a
                // timer made now would find no runtime to run it.
                Ok(Err(RecvError::Closed)) => return,
            }
        }
    }
}
