//! `pods/log` and `pods/exec`: the API server checks the pod, finds its
//! node's kubelet (InternalIP and `daemonEndpoints.kubeletEndpoint.Port`)
//! and passes the request on over HTTPS with a client certificate the
//! cluster CA signed. Logs stream back as they come; an exec's WebSocket
//! upgrade is passed through and the two upgraded connections are joined
//! byte for byte, so the API server never parses WebSocket frames.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use hyper::header::{
    HeaderName, CONNECTION, HOST, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION,
    UPGRADE,
};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{self, DigitallySignedStruct, SignatureScheme};
use tokio_rustls::TlsConnector;

use super::body::{self, Body};
use super::certs::{CertError, ClusterCa};
use super::objects;
use super::request::{Query, ResourceRequest};
use super::status::{ApiError, ApiResult};
use super::ApiState;

/// The user the API server is to kubelets, as in Kubernetes.
pub const CLIENT_COMMON_NAME: &str = "kube-apiserver-kubelet-client";

/// The port of a kubelet whose Node does not say.
const DEFAULT_KUBELET_PORT: u16 = 10250;

/// How long reaching a kubelet (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a kubelet may take to answer a request's head.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// The most of a kubelet's answer that `nodes/proxy` passes on.
const MAX_PROXIED_BODY: usize = 16 << 20;

/// The most of a kubelet's error body that is read.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Headers of an upgrade request that the kubelet must see.
const UPGRADE_HEADERS: [HeaderName; 5] = [
    CONNECTION,
    UPGRADE,
    SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_VERSION,
    SEC_WEBSOCKET_PROTOCOL,
];

/// The query parameters of `pods/log` a kubelet reads.
const LOG_PARAMS: [&str; 7] = [
    "follow",
    "previous",
    "timestamps",
    "tailLines",
    "sinceSeconds",
    "sinceTime",
    "limitBytes",
];

/// The query parameters of `pods/exec` a kubelet reads.
const EXEC_PARAMS: [&str; 5] = ["command", "stdin", "stdout", "stderr", "tty"];

/// The API server's HTTPS client to kubelets.
#[derive(Clone)]
pub struct KubeletClient {
    connector: TlsConnector,
}

// === impl KubeletClient ===

impl KubeletClient {
    /// A client presenting a certificate `ca` signs now, for
    /// [`CLIENT_COMMON_NAME`].
    pub fn new(ca: &ClusterCa) -> Result<Self, CertError> {
        let (cert, key) = ca.sign_client(CLIENT_COMMON_NAME, &[])?;
        Self::from_pem(&cert, &key)
    }

    /// A client presenting this certificate and key (PEM).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CertError> {
        let tls = |e: &dyn std::fmt::Display| CertError::Tls(e.to_string());
        let chain: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| tls(&e))?;
        let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
            .map_err(|e| tls(&e))?
            .ok_or_else(|| CertError::Tls("no private key for the kubelet client".into()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls(&e))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCertificate(provider)))
            .with_client_auth_cert(chain, key)
            .map_err(|e| tls(&e))?;
        // Upgrades need HTTP/1.1.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    /// `GET path` of the kubelet of `node` (a Node object): the body, up to
    /// 16 MiB, when it answered 200.
    pub async fn get_text(&self, node: &Value, path: &str) -> Result<String, String> {
        let (status, _, body) = self.get(node, path).await.map_err(|e| e.message)?;
        if status != StatusCode::OK {
            return Err(format!("the kubelet answered {status}"));
        }
        String::from_utf8(body.to_vec()).map_err(|e| e.to_string())
    }

    /// `GET path` (and query) of the kubelet of `node`: its status, content
    /// type and body (up to 16 MiB).
    async fn get(&self, node: &Value, path: &str) -> ApiResult<(StatusCode, String, Bytes)> {
        self.call(hyper::Method::GET, node, path).await
    }

    /// `method path` of the kubelet of `node`, as [`Self::get`].
    async fn call(
        &self,
        method: hyper::Method,
        node: &Value,
        path: &str,
    ) -> ApiResult<(StatusCode, String, Bytes)> {
        let endpoint = endpoint_of(node).ok_or_else(|| {
            ApiError::internal(format!(
                "node {} reports no address for its kubelet",
                node.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
            ))
        })?;
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, endpoint.to_string())
            .body(Empty::new())
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let response = self.send(&endpoint, req).await?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("text/plain")
            .to_string();
        let body = Limited::new(response.into_body(), MAX_PROXIED_BODY)
            .collect()
            .await
            .map_err(|e| {
                ApiError::internal(format!("reading from the kubelet at {endpoint}: {e}"))
            })?;
        Ok((status, content_type, body.to_bytes()))
    }

    /// Send `req` to the kubelet at `endpoint` on a connection of its own
    /// (which lives as long as the response body or the upgrade).
    async fn send(
        &self,
        endpoint: &Endpoint,
        req: Request<Empty<Bytes>>,
    ) -> ApiResult<Response<Incoming>> {
        let dial_error = |e: &dyn std::fmt::Display| {
            ApiError::internal(format!("error dialing backend: {}: {e}", endpoint))
        };
        let connect = async {
            let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
                .await
                .map_err(|e| dial_error(&e))?;
            let _ = tcp.set_nodelay(true);
            let name = ServerName::try_from(endpoint.host.clone()).map_err(|e| dial_error(&e))?;
            self.connector
                .connect(name, tcp)
                .await
                .map_err(|e| dial_error(&e))
        };
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| dial_error(&"timed out"))??;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| dial_error(&e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "kubelet connection ended with an error");
            }
        });
        tokio::time::timeout(RESPONSE_TIMEOUT, sender.send_request(req))
            .await
            .map_err(|_| ApiError::internal(format!("the kubelet at {endpoint} did not answer")))?
            .map_err(|e| {
                ApiError::internal(format!("error talking to the kubelet at {endpoint}: {e}"))
            })
    }
}

/// Accepts any serving certificate of a kubelet, as Kubernetes does without
/// `--kubelet-certificate-authority` (kubelets serve self-signed ones), but
/// still checks that the server holds the certificate's key.
#[derive(Debug)]
struct AnyServerCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Where a node's kubelet listens.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    host: String,
    port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The kubelet endpoint of a Node: its InternalIP (else another address,
/// in Kubernetes' default preference) and its advertised port.
fn endpoint_of(node: &Value) -> Option<Endpoint> {
    let addresses = node.pointer("/status/addresses")?.as_array()?;
    let host = [
        "InternalIP",
        "Hostname",
        "InternalDNS",
        "ExternalDNS",
        "ExternalIP",
    ]
    .iter()
    .find_map(|kind| {
        addresses
            .iter()
            .find(|a| a["type"] == *kind)
            .and_then(|a| a["address"].as_str())
            .filter(|a| !a.is_empty())
    })?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .unwrap_or(DEFAULT_KUBELET_PORT);
    Some(Endpoint {
        host: host.to_string(),
        port,
    })
}

/// What the request is for: the checks on the container differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Logs { previous: bool },
    Exec,
}

/// The node and container a request resolves to.
#[derive(Debug, PartialEq, Eq)]
struct Location {
    node: String,
    container: String,
}

fn names_of(pod: &Value, field: &str) -> Vec<String> {
    pod.pointer(&format!("/spec/{field}"))
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Go's rendering of a string slice: `[a b]`.
fn go_list(names: &[String]) -> String {
    format!("[{}]", names.join(" "))
}

/// The container a request means, as Kubernetes' `validateContainer`
/// picks it.
fn pick_container(pod: &Value, pod_name: &str, requested: Option<&str>) -> ApiResult<String> {
    let containers = names_of(pod, "containers");
    let init = names_of(pod, "initContainers");
    let ephemeral = names_of(pod, "ephemeralContainers");
    match requested {
        Some(name) => {
            if containers
                .iter()
                .chain(&init)
                .chain(&ephemeral)
                .any(|c| c == name)
            {
                Ok(name.to_string())
            } else {
                Err(ApiError::bad_request(format!(
                    "container {name} is not valid for pod {pod_name}"
                )))
            }
        }
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None if containers.is_empty() => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {pod_name}"
        ))),
        None => {
            let all: Vec<String> = init
                .into_iter()
                .chain(containers)
                .chain(ephemeral)
                .collect();
            Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {pod_name}, choose one of: {}",
                go_list(&all)
            )))
        }
    }
}

/// The status of a container in the pod's status, if reported.
fn container_status<'a>(pod: &'a Value, container: &str) -> Option<&'a Value> {
    [
        "containerStatuses",
        "initContainerStatuses",
        "ephemeralContainerStatuses",
    ]
    .iter()
    .filter_map(|f| pod.pointer(&format!("/status/{f}"))?.as_array())
    .flatten()
    .find(|s| s["name"] == container)
}

/// Whether the container can serve the request, judged from the pod's
/// status with the kubelet's own messages (`validateContainerLogStatus`).
fn check_state(pod: &Value, pod_name: &str, container: &str, purpose: Purpose) -> ApiResult<()> {
    let bad = |what: String| {
        Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{pod_name}\" {what}"
        )))
    };
    let Some(status) = container_status(pod, container) else {
        // A pod the kubelet has not reported on yet is still being set up.
        let phase = pod.pointer("/status/phase").and_then(Value::as_str);
        return if matches!(phase, None | Some("Pending")) {
            bad("is waiting to start: ContainerCreating".into())
        } else {
            bad("is not available".into())
        };
    };
    let state = &status["state"];
    let last_terminated = status.pointer("/lastState/terminated").is_some();
    let waiting = || {
        let reason = state
            .pointer("/waiting/reason")
            .and_then(Value::as_str)
            .unwrap_or("");
        match reason {
            "ErrImagePull" => bad("is waiting to start: image can't be pulled".into()),
            "ImagePullBackOff" => {
                bad("is waiting to start: trying and failing to pull image".into())
            }
            "" => bad("is waiting to start - no logs yet".into()),
            reason => bad(format!("is waiting to start: {reason}")),
        }
    };
    match purpose {
        Purpose::Logs { previous: true } if !last_terminated => {
            Err(ApiError::bad_request(format!(
                "previous terminated container \"{container}\" in pod \"{pod_name}\" not found"
            )))
        }
        Purpose::Logs { previous: true } => Ok(()),
        Purpose::Logs { previous: false } => {
            if state.get("running").is_some() || state.get("terminated").is_some() {
                Ok(())
            } else if last_terminated {
                // Waiting to restart: the last run's logs are served.
                Ok(())
            } else {
                waiting()
            }
        }
        Purpose::Exec => {
            if state.get("running").is_some() {
                Ok(())
            } else if state.get("terminated").is_some() {
                bad("is not running".into())
            } else {
                waiting()
            }
        }
    }
}

/// Resolve a pod request to its node and container.
fn locate(
    pod: &Value,
    pod_name: &str,
    requested: Option<&str>,
    purpose: Purpose,
) -> ApiResult<Location> {
    let container = pick_container(pod, pod_name, requested)?;
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(format!("pod {pod_name} does not have a host assigned"))
        })?;
    check_state(pod, pod_name, &container, purpose)?;
    Ok(Location {
        node: node.to_string(),
        container,
    })
}

/// The kubelet query: the parameters of `keep` from the client's query, in
/// their order (`command` repeats).
fn forward_query(raw: Option<&str>, keep: &[&str]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if keep.contains(&k.as_ref()) {
            out.append_pair(&k, &v);
        }
    }
    out.finish()
}

/// The kubelet's answer to a failed request as an API error: its Status
/// when it sent one, else its text.
async fn error_from_kubelet(resp: Response<Incoming>) -> ApiError {
    let code = resp.status().as_u16();
    let body = Limited::new(resp.into_body(), MAX_ERROR_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let status: Option<Value> = serde_json::from_slice(&body).ok();
    let message = status
        .as_ref()
        .and_then(|s| s["message"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
    let reason = match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        503 => "ServiceUnavailable",
        _ => "InternalError",
    };
    ApiError {
        code,
        reason,
        message,
        details: status.and_then(|mut s| s.get_mut("details").map(Value::take)),
    }
}

/// The pod, its node's kubelet endpoint, and the container.
fn resolve(
    state: &ApiState,
    rr: &ResourceRequest,
    q: &Query,
    purpose: Purpose,
) -> ApiResult<(Endpoint, Location)> {
    let pod = objects::get(state, rr)?;
    let name = rr.name.as_deref().unwrap_or("");
    let location = locate(&pod, name, q.non_empty("container"), purpose)?;
    Ok((node_endpoint(state, &location.node)?, location))
}

/// The kubelet endpoint Node `name` reports.
fn node_endpoint(state: &ApiState, name: &str) -> ApiResult<Endpoint> {
    let nodes = super::registry::builtin::find("", "v1", "nodes").expect("nodes are served");
    let node = state
        .cache
        .get(&nodes.key(None, name))
        .ok_or_else(|| ApiError::not_found("nodes", name))?;
    endpoint_of(&node).ok_or_else(|| {
        ApiError::internal(format!("node {name} reports no address for its kubelet"))
    })
}

fn client<'a>(state: &'a ApiState, rr: &ResourceRequest) -> ApiResult<&'a KubeletClient> {
    state.kubelet_client.as_ref().ok_or_else(|| {
        ApiError::bad_request(format!(
            "pod \"{}\" has no node agent to serve this request",
            rr.name.as_deref().unwrap_or("")
        ))
    })
}

/// `GET …/pods/{name}/log`.
pub(super) async fn logs(
    state: &ApiState,
    rr: &ResourceRequest,
    q: &Query,
    raw_query: Option<&str>,
) -> ApiResult<Response<Body>> {
    let client = client(state, rr)?;
    let purpose = Purpose::Logs {
        previous: q.flag("previous"),
    };
    let (endpoint, location) = resolve(state, rr, q, purpose)?;
    let path = format!(
        "/containerLogs/{}/{}/{}?{}",
        rr.namespace.as_deref().unwrap_or(""),
        rr.name.as_deref().unwrap_or(""),
        location.container,
        forward_query(raw_query, &LOG_PARAMS)
    );
    let req = Request::get(path)
        .header(HOST, endpoint.to_string())
        .body(Empty::new())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let resp = client.send(&endpoint, req).await?;
    if resp.status() != StatusCode::OK {
        return Err(error_from_kubelet(resp).await);
    }
    Ok(Response::builder()
        .header("Content-Type", "text/plain")
        .body(resp.into_body().map_err(std::io::Error::other).boxed())
        .expect("static response parts are valid"))
}

/// `GET|POST …/pods/{name}/exec`: pass the upgrade through to the kubelet.
pub(super) async fn exec(
    state: &ApiState,
    rr: &ResourceRequest,
    q: &Query,
    req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    let client = client(state, rr)?;
    // Upgrades exist only in HTTP/1.1; kubectl and kube-rs use it for exec.
    if req.version() != hyper::Version::HTTP_11 {
        return Err(ApiError::bad_request(
            "exec needs an HTTP/1.1 connection upgrade (WebSocket)",
        ));
    }
    let (endpoint, location) = resolve(state, rr, q, Purpose::Exec)?;
    let path = format!(
        "/exec/{}/{}/{}?{}",
        rr.namespace.as_deref().unwrap_or(""),
        rr.name.as_deref().unwrap_or(""),
        location.container,
        forward_query(req.uri().query(), &EXEC_PARAMS)
    );
    upgrade_through(client, &endpoint, path, req, "exec").await
}

/// `GET|POST …/pods/{name}/portforward`: pass the upgrade (SPDY/3.1, or
/// SPDY tunnelled in a WebSocket as kubectl ≥ 1.31 sends it) through to
/// the kubelet of the pod's node, which connects to the pod.
pub(super) async fn port_forward(
    state: &ApiState,
    rr: &ResourceRequest,
    req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    let client = client(state, rr)?;
    if req.version() != hyper::Version::HTTP_11 {
        return Err(ApiError::bad_request(
            "port forwarding needs an HTTP/1.1 connection upgrade",
        ));
    }
    let pod = objects::get(state, rr)?;
    let name = rr.name.as_deref().unwrap_or("");
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(format!("pod {name} does not have a host assigned"))
        })?;
    let endpoint = node_endpoint(state, node)?;
    let path = format!(
        "/portForward/{}/{name}?{}",
        rr.namespace.as_deref().unwrap_or(""),
        forward_query(req.uri().query(), &["port"])
    );
    upgrade_through(client, &endpoint, path, req, "port-forward").await
}

/// Send the upgrade request to the kubelet at `path`; once it switches
/// protocols, answer 101 with its headers and copy bytes both ways.
async fn upgrade_through(
    client: &KubeletClient,
    endpoint: &Endpoint,
    path: String,
    mut req: Request<Incoming>,
    what: &'static str,
) -> ApiResult<Response<Body>> {
    let mut forward = Request::builder()
        .method(req.method().clone())
        .uri(path)
        .header(HOST, endpoint.to_string());
    for name in UPGRADE_HEADERS
        .iter()
        .chain(std::iter::once(&HeaderName::from_static(
            "x-stream-protocol-version",
        )))
    {
        for value in req.headers().get_all(name) {
            // A browser's token stays here: the kubelet gets none.
            if name == SEC_WEBSOCKET_PROTOCOL {
                let protocols = super::authn::without_bearer(value.to_str().unwrap_or(""));
                forward = forward.header(name, protocols);
                continue;
            }
            forward = forward.header(name, value);
        }
    }
    let forward = forward
        .body(Empty::new())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let resp = client.send(endpoint, forward).await?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Err(error_from_kubelet(resp).await);
    }
    let mut answer = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
    for (name, value) in resp.headers() {
        answer = answer.header(name, value);
    }
    let from_client = hyper::upgrade::on(&mut req);
    let from_kubelet = hyper::upgrade::on(resp);
    tokio::spawn(async move {
        let (client_io, kubelet_io) = match tokio::try_join!(from_client, from_kubelet) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, what, "upgrade failed");
                return;
            }
        };
        let mut client_io = TokioIo::new(client_io);
        let mut kubelet_io = TokioIo::new(kubelet_io);
        if let Err(e) = tokio::io::copy_bidirectional(&mut client_io, &mut kubelet_io).await {
            tracing::debug!(error = %e, what, "connection ended with an error");
        }
    });
    answer
        .body(body::full(Bytes::new()))
        .map_err(|e| ApiError::internal(e.to_string()))
}

#[cfg(test)]
mod tests;

/// `GET|DELETE /api/v1/nodes/{name}/proxy/{path}`: the kubelet's answer
/// to `path` (with the query), as kube-apiserver's node proxy passes it on.
pub(super) async fn node_proxy(
    state: &ApiState,
    rr: &ResourceRequest,
    method: hyper::Method,
    uri: &hyper::Uri,
) -> ApiResult<Response<Body>> {
    let name = rr.name.as_deref().unwrap_or("");
    let client = state.kubelet_client.as_ref().ok_or_else(|| {
        ApiError::bad_request(format!("node \"{name}\" has no node agent to proxy to"))
    })?;
    let nodes = super::registry::builtin::find("", "v1", "nodes").expect("nodes are served");
    let node = state
        .cache
        .get(&nodes.key(None, name))
        .ok_or_else(|| ApiError::not_found("nodes", name))?;
    let marker = format!("/nodes/{name}/proxy");
    let path = uri.path();
    let rest = path
        .find(&marker)
        .map(|i| &path[i + marker.len()..])
        .unwrap_or("");
    let rest = if rest.is_empty() { "/" } else { rest };
    let target = match uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };
    let (status, content_type, bytes) = client.call(method, &node, &target).await?;
    Response::builder()
        .status(status)
        .header("Content-Type", content_type)
        .body(body::full(bytes))
        .map_err(|e| ApiError::internal(e.to_string()))
}
