//! The walkthrough's demo web app (`kedge demo-server`), and the images
//! `up` makes of it: `kedge/echo:v1` and `kedge/echo:v2`, kedge's own
//! binary with this command as entrypoint, so that the README's manifests
//! run on a machine with no registry.
//!
//! Every request gets `200` and a JSON body saying which pod answered
//! (its hostname, which Kubernetes sets to the pod's name), which version
//! of the image it runs, and the request as it arrived (method, path,
//! headers), which makes load balancing, rolling updates and an
//! ingress's rewrites visible with `curl`.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// The demo images' repository.
pub const REPOSITORY: &str = "kedge/echo";

/// The tags `up` imports, each saying its own version in every answer.
pub const VERSIONS: &[&str] = &["v1", "v2"];

/// Headers larger than this end the connection: a demo has no use for them.
const MAX_HEAD: usize = 64 * 1024;

/// Import `kedge/echo:v1` and `:v2` from this very binary.
pub async fn import_images() -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding kedge's own binary")?;
    for version in VERSIONS {
        let image = kedge_kubelet::runtime::docker::ProgramImage {
            repository: REPOSITORY,
            tag: Some(version),
            args: &["demo-server"],
            env: &[("KEDGE_DEMO_VERSION", version)],
        };
        let reference = image
            .ensure(&exe)
            .await
            .with_context(|| format!("importing {REPOSITORY}:{version}"))?;
        tracing::debug!(image = %reference, "demo image ready");
    }
    Ok(())
}

/// Serve on `listen` until the process ends.
pub async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    tracing::info!(%listen, "demo server listening");
    let version = std::env::var("KEDGE_DEMO_VERSION").unwrap_or_else(|_| "dev".into());
    let hostname = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .unwrap_or_default()
        .trim()
        .to_string();
    let identity: std::sync::Arc<(String, String)> = (version, hostname).into();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let identity = identity.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, peer, &identity.0, &identity.1).await {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
    }
}

/// Answer requests on one connection until the client closes it or asks to.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    version: &str,
    hostname: &str,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        let mut line = String::new();
        if read.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, path, protocol) = (
            parts.next().unwrap_or_default().to_string(),
            parts.next().unwrap_or_default().to_string(),
            parts.next().unwrap_or_default().to_string(),
        );
        let mut headers = Vec::new();
        let mut size = line.len();
        loop {
            let mut h = String::new();
            let n = read.read_line(&mut h).await?;
            size += n;
            if n == 0 || size > MAX_HEAD {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        // A body is read and dropped, so the next request starts clean.
        if let Some(len) = header("content-length").and_then(|v| v.parse::<u64>().ok()) {
            tokio::io::copy(&mut (&mut read).take(len), &mut tokio::io::sink()).await?;
        }
        let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"))
            || protocol == "HTTP/1.0";
        let body = serde_json::json!({
            "app": "kedge demo",
            "version": version,
            "hostname": hostname,
            "client": peer.to_string(),
            "method": method,
            "path": path,
            "headers": headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), serde_json::Value::from(v.as_str())))
                .collect::<serde_json::Map<_, _>>(),
        })
        .to_string()
            + "\n";
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        write.write_all(head.as_bytes()).await?;
        if method != "HEAD" {
            write.write_all(body.as_bytes()).await?;
        }
        if close {
            return write.shutdown().await;
        }
    }
}
