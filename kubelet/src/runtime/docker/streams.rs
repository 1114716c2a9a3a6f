//! The streaming calls of the Docker runtime: a container's logs and exec
//! sessions, shaped as the [`Runtime`](crate::runtime::Runtime) trait
//! returns them.

use std::time::Duration;

use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::LogsOptionsBuilder;
use bollard::Docker;
use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};

use crate::runtime::{
    ExecOutput, ExecRequest, ExecSession, LogOptions, ResizeFn, Result, RuntimeError,
};

/// A container's output as `kubectl logs` shows it: stdout and stderr
/// interleaved as Docker recorded them, raw bytes without Docker's stream
/// headers.
pub async fn logs(
    docker: &Docker,
    id: &str,
    options: &LogOptions,
) -> Result<BoxStream<'static, Result<Bytes>>> {
    // The log stream only fails once polled; asking first turns a missing
    // container into an error the caller can answer before streaming.
    docker
        .inspect_container(id, None)
        .await
        .map_err(|e| runtime_error(e, id))?;
    let mut query = LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .follow(options.follow)
        .timestamps(options.timestamps);
    if let Some(n) = options.tail_lines {
        query = query.tail(&n.max(0).to_string());
    }
    if let Some(since) = options.since_seconds.filter(|s| *s > 0) {
        let from = jiff::Timestamp::now().as_second().saturating_sub(since);
        // Docker reads 0 as "from the start", so a start before 1970 is
        // sent as 1.
        query = query.since(i32::try_from(from.max(1)).unwrap_or(i32::MAX));
    }
    let owned = id.to_string();
    let output = docker
        .logs(id, Some(query.build()))
        .map_ok(LogOutput::into_bytes)
        .map_err(move |e| runtime_error(e, &owned))
        .boxed();
    Ok(match options.limit_bytes {
        Some(limit) => limit_bytes(output, u64::try_from(limit).unwrap_or(0)),
        None => output,
    })
}

/// Ends `stream` after `limit` bytes, cutting the last chunk; it ends as
/// soon as the limit is reached instead of waiting for one more chunk.
fn limit_bytes(
    stream: BoxStream<'static, Result<Bytes>>,
    limit: u64,
) -> BoxStream<'static, Result<Bytes>> {
    stream::unfold((stream, limit), |(mut stream, left)| async move {
        if left == 0 {
            return None;
        }
        match stream.next().await? {
            Ok(mut chunk) => {
                let keep = usize::try_from(left).unwrap_or(usize::MAX).min(chunk.len());
                chunk.truncate(keep);
                Some((Ok(chunk), (stream, left - keep as u64)))
            }
            Err(e) => Some((Err(e), (stream, left))),
        }
    })
    .boxed()
}

/// Run a command in a running container, attached: its output, its stdin
/// when asked for, a resize call when it has a TTY, and its exit code.
pub async fn exec(docker: &Docker, id: &str, request: &ExecRequest) -> Result<ExecSession> {
    let config = CreateExecOptions {
        attach_stdin: Some(request.stdin),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(request.tty),
        cmd: Some(request.command.clone()),
        ..Default::default()
    };
    let exec_id = docker
        .create_exec(id, config)
        .await
        .map_err(|e| runtime_error(e, id))?
        .id;
    let start = StartExecOptions {
        detach: false,
        tty: request.tty,
        output_capacity: None,
    };
    let (output, input) = match docker
        .start_exec(&exec_id, Some(start))
        .await
        .map_err(|e| runtime_error(e, id))?
    {
        StartExecResults::Attached { output, input } => (output, input),
        StartExecResults::Detached => {
            return Err(RuntimeError::Failed(format!(
                "exec in container {id} started detached"
            )))
        }
    };
    let owned = id.to_string();
    let output = output
        .map_err(move |e| runtime_error(e, &owned))
        .try_filter_map(|out| async move {
            Ok(match out {
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    Some(ExecOutput::Stdout(message))
                }
                LogOutput::StdErr { message } => Some(ExecOutput::Stderr(message)),
                LogOutput::StdIn { .. } => None,
            })
        })
        .boxed();
    let resize: Option<ResizeFn> = request.tty.then(|| {
        let docker = docker.clone();
        let exec_id = exec_id.clone();
        Box::new(move |width: u16, height: u16| {
            let docker = docker.clone();
            let exec_id = exec_id.clone();
            Box::pin(async move {
                docker
                    .resize_exec(&exec_id, ResizeExecOptions { width, height })
                    .await
                    .map_err(|e| exec_error(e, &exec_id))
            }) as futures::future::BoxFuture<'static, Result<()>>
        }) as ResizeFn
    });
    let exit_code = {
        let docker = docker.clone();
        Box::pin(async move { exit_code(&docker, &exec_id).await })
    };
    Ok(ExecSession {
        output,
        // Dropping the unused writer leaves the connection open: the reader
        // half still holds it.
        stdin: request.stdin.then_some(input),
        resize,
        exit_code,
    })
}

/// The exit code of an exec; Docker may still report it running for a
/// moment after its output has ended, so this polls until it is not.
async fn exit_code(docker: &Docker, exec_id: &str) -> Result<i32> {
    let mut wait = Duration::from_millis(10);
    loop {
        let info = docker
            .inspect_exec(exec_id)
            .await
            .map_err(|e| exec_error(e, exec_id))?;
        if info.running != Some(true) {
            let code = info.exit_code.ok_or_else(|| {
                RuntimeError::Failed(format!("exec {exec_id} ended without an exit code"))
            })?;
            return Ok(i32::try_from(code).unwrap_or(-1));
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(1));
    }
}

/// A Docker error as a runtime error: 404 is a missing container (or exec).
fn runtime_error(e: DockerError, id: &str) -> RuntimeError {
    match e {
        DockerError::DockerResponseServerError {
            status_code: 404, ..
        } => RuntimeError::NotFound {
            kind: "container",
            id: id.to_string(),
        },
        DockerError::DockerResponseServerError { message, .. } => RuntimeError::Failed(message),
        other => RuntimeError::Failed(other.to_string()),
    }
}

/// A Docker error of a call on an exec instance (not a container).
fn exec_error(e: DockerError, exec_id: &str) -> RuntimeError {
    RuntimeError::Failed(format!("exec {exec_id}: {e}"))
}

#[cfg(test)]
mod tests;
