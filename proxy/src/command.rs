//! Running the kernel's own tools (`ip`, `bridge`, `nft`) for the parts
//! that program the host: one process per change set, with what it printed
//! on failure.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// A tool that could not be run, or failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The program could not be started.
    #[error("running {program} {args}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Its arguments.
        args: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The program failed.
    #[error("{program} {args}: {stderr}")]
    Failed {
        /// The program.
        program: String,
        /// Its arguments.
        args: String,
        /// What it printed.
        stderr: String,
    },
}

/// Run `program args`, with `input` on its standard input; its standard
/// output.
pub async fn run(
    program: &str,
    args: &[&str],
    input: Option<&str>,
) -> Result<String, CommandError> {
    let joined = args.join(" ");
    let spawn_err = |source| CommandError::Spawn {
        program: program.to_string(),
        args: joined.clone(),
        source,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes()).await.map_err(spawn_err)?;
    }
    let out = child.wait_with_output().await.map_err(spawn_err)?;
    if !out.status.success() {
        return Err(CommandError::Failed {
            program: program.to_string(),
            args: joined,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Run `commands` through `<program> -force -batch -` (`ip`, `bridge`):
/// one process for any number of changes, going on past a failing line.
pub async fn batch(program: &str, commands: &str) -> Result<(), CommandError> {
    run(program, &["-force", "-batch", "-"], Some(commands))
        .await
        .map(drop)
}

/// Run `program args` where nothing can be awaited (in `Drop`); failures
/// are logged as `what`.
pub fn run_blocking(program: &str, args: &[&str], what: &str) {
    let out = std::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => tracing::debug!(program, ?args, "{what}: done"),
        Ok(o) => tracing::warn!(
            program,
            ?args,
            stderr = %String::from_utf8_lossy(&o.stderr).trim(),
            "{what} failed"
        ),
        Err(e) => tracing::warn!(program, ?args, error = %e, "{what} failed"),
    }
}
