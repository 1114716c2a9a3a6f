//! Running one probe action against a container, as the kubelet's prober
//! does: an HTTP GET or a TCP connect to the pod's IP, or a command inside
//! the container. Each is bounded by the probe's `timeoutSeconds`; a
//! timeout is a failure. When and how often probes run, and what their
//! results do, is the pod worker's business.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{HTTPGetAction, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::runtime::{ExecRequest, Result, Runtime};

/// The User-Agent of HTTP probes, as the kubelet sends it.
const USER_AGENT: &str = "kube-probe/1.32";

/// The longest answer head read from an HTTP probe.
const MAX_HEAD: usize = 16 * 1024;

/// Run `probe` once against container `id` of a pod at `pod_ip`; `true`
/// on success. Named ports must have been resolved to numbers.
pub async fn run<R: Runtime + ?Sized>(
    runtime: &R,
    id: &str,
    probe: &Probe,
    pod_ip: Option<IpAddr>,
) -> Result<bool> {
    let timeout = Duration::from_secs(
        probe
            .timeout_seconds
            .and_then(|t| u64::try_from(t).ok())
            .filter(|t| *t > 0)
            .unwrap_or(1),
    );
    let outcome = tokio::time::timeout(timeout, async {
        if let Some(exec) = &probe.exec {
            return exec_probe(runtime, id, exec.command.clone().unwrap_or_default()).await;
        }
        if let Some(http) = &probe.http_get {
            return Ok(http_probe(runtime, http, pod_ip).await);
        }
        if let Some(tcp) = &probe.tcp_socket {
            let host = tcp.host.as_deref().and_then(|h| h.parse().ok()).or(pod_ip);
            let Some((host, port)) = host.zip(port_number(&tcp.port)) else {
                return Ok(false);
            };
            let source = runtime.probe_source(host);
            return Ok(connect(source, SocketAddr::new(host, port)).await.is_ok());
        }
        // A probe with no action (or grpc, not supported) never passes.
        Ok(false)
    })
    .await;
    match outcome {
        Ok(r) => r,
        Err(_) => Ok(false),
    }
}

fn port_number(port: &IntOrString) -> Option<u16> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).ok(),
        IntOrString::String(s) => s.parse().ok(),
    }
}

/// Exit code 0 is success.
async fn exec_probe<R: Runtime + ?Sized>(
    runtime: &R,
    id: &str,
    command: Vec<String>,
) -> Result<bool> {
    let request = ExecRequest {
        command,
        stdin: false,
        tty: false,
    };
    let mut session = runtime.exec(id, &request).await?;
    while let Some(chunk) = session.output.next().await {
        chunk?;
    }
    Ok(session.exit_code.await? == 0)
}

/// A TCP connection to `target`, from `source` when given.
async fn connect(source: Option<IpAddr>, target: SocketAddr) -> std::io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(target).await;
    };
    let socket = match source {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(target).await
}

/// A status from 200 to 399 is success, as in Kubernetes (redirects are
/// not followed: a 3xx already passes).
async fn http_probe<R: Runtime + ?Sized>(
    runtime: &R,
    http: &HTTPGetAction,
    pod_ip: Option<IpAddr>,
) -> bool {
    if http
        .scheme
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("HTTPS"))
    {
        // TLS probes are not supported yet; say so rather than pass.
        tracing::debug!("HTTPS probes are not supported");
        return false;
    }
    let host = http.host.as_deref().and_then(|h| h.parse().ok()).or(pod_ip);
    let Some((host, port)) = host.zip(port_number(&http.port)) else {
        return false;
    };
    let source = runtime.probe_source(host);
    let Ok(mut stream) = connect(source, SocketAddr::new(host, port)).await else {
        return false;
    };
    let path = http
        .path
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or("/");
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let mut request = format!("GET {path} HTTP/1.1\r\n");
    let headers = http.http_headers.as_deref().unwrap_or_default();
    let has = |name: &str| headers.iter().any(|h| h.name.eq_ignore_ascii_case(name));
    if !has("host") {
        request.push_str(&format!("Host: {}\r\n", SocketAddr::new(host, port)));
    }
    if !has("user-agent") {
        request.push_str(&format!("User-Agent: {USER_AGENT}\r\n"));
    }
    if !has("accept") {
        request.push_str("Accept: */*\r\n");
    }
    for h in headers {
        // Header names and values with line breaks would split the request.
        if h.name.contains(['\r', '\n']) || h.value.contains(['\r', '\n']) {
            continue;
        }
        request.push_str(&format!("{}: {}\r\n", h.name, h.value));
    }
    request.push_str("Connection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 1024];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < MAX_HEAD {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    status_code(&head).is_some_and(|code| (200..400).contains(&code))
}

/// The status code of an HTTP/1.x status line.
fn status_code(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(
            status_code(b"HTTP/1.0 302 Found\r\nLocation: /\r\n"),
            Some(302)
        );
        assert_eq!(status_code(b"garbage"), None);
        assert_eq!(status_code(b""), None);
    }
}
