//! Container lifecycle hooks: postStart right after a container starts,
//! preStop before it is stopped. A handler is a command in the container,
//! an HTTP GET to the pod, or a sleep.

use std::net::IpAddr;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Container, LifecycleHandler};

use super::error::HookError;
use crate::prober;
use crate::runtime::{ExecOutput, ExecRequest, Runtime};

/// Run a hook handler against container `id`; the error says why it
/// failed, in the words of the kubelet's FailedPostStartHook /
/// FailedPreStopHook events.
pub(super) async fn run(
    runtime: &dyn Runtime,
    c: &Container,
    id: &str,
    handler: &LifecycleHandler,
    pod_ip: Option<IpAddr>,
) -> Result<(), HookError> {
    if let Some(exec) = &handler.exec {
        let command = exec.command.clone().unwrap_or_default();
        let request = ExecRequest {
            command: command.clone(),
            stdin: false,
            tty: false,
        };
        let mut session = runtime
            .exec(id, &request)
            .await
            .map_err(|source| HookError::Exec {
                command: command.clone(),
                container: c.name.clone(),
                source,
            })?;
        let mut output = Vec::new();
        while let Some(chunk) = session.output.next().await {
            match chunk {
                Ok(ExecOutput::Stdout(b) | ExecOutput::Stderr(b)) => {
                    if output.len() < 4096 {
                        output.extend_from_slice(&b);
                    }
                }
                Err(e) => return Err(HookError::Output(e)),
            }
        }
        let code = session.exit_code.await.map_err(HookError::Output)?;
        if code != 0 {
            return Err(HookError::Exited {
                command,
                container: c.name.clone(),
                code,
                output: String::from_utf8_lossy(&output).trim().to_string(),
            });
        }
        return Ok(());
    }
    if let Some(http) = &handler.http_get {
        let probe = k8s_openapi::api::core::v1::Probe {
            http_get: Some(http.clone()),
            // Hooks have no timeout of their own; the grace period bounds
            // preStop, and postStart gets a generous one.
            timeout_seconds: Some(30),
            ..Default::default()
        };
        let probe = super::probes::resolve_ports_of(c, &probe);
        return match prober::run(runtime, id, &probe, pod_ip).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(HookError::Http {
                path: http.path.as_deref().unwrap_or("/").to_string(),
                container: c.name.clone(),
            }),
            Err(e) => Err(HookError::HttpRequest(e)),
        };
    }
    if let Some(sleep) = &handler.sleep {
        let secs = u64::try_from(sleep.seconds).unwrap_or_default();
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }
    Ok(())
}
