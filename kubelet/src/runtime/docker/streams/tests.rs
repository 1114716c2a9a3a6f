//! Logs and exec against a real Docker daemon, in a busybox container built
//! from the node's static busybox (no registry needed). Every container is
//! labelled `kedge.test=1` and removed when its test ends.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{CreateImageOptionsBuilder, RemoveContainerOptionsBuilder};
use bollard::Docker;
use bytes::Bytes;
use futures::{FutureExt, StreamExt, TryStreamExt};
use tokio::io::AsyncWriteExt;
use tokio::sync::OnceCell;

use super::{exec, logs};
use crate::runtime::{ExecOutput, ExecRequest, ExecSession, LogOptions, RuntimeError};

const IMAGE: &str = "kedge-test-busybox:1";
const APPLETS: &[&str] = &["sh", "sleep", "echo", "cat", "env", "stty"];

static IMAGE_READY: OnceCell<()> = OnceCell::const_new();

async fn docker() -> Docker {
    Docker::connect_with_local_defaults()
        .expect("docker client")
        .negotiate_version()
        .await
        .expect("the Docker daemon answers")
}

fn busybox() -> Vec<u8> {
    let paths = std::env::var("BUSYBOX")
        .into_iter()
        .chain(["/bin/busybox".to_string(), "/usr/bin/busybox".to_string()]);
    for path in paths {
        if let Ok(bytes) = std::fs::read(&path) {
            return bytes;
        }
    }
    panic!("a static busybox is needed (apt-get install busybox-static, or set BUSYBOX)");
}

/// One ustar entry: `kind` b'0' file, b'2' symlink, b'5' directory.
fn tar_entry(out: &mut Vec<u8>, name: &str, kind: u8, link: &str, data: &[u8]) {
    let mut header = [0u8; 512];
    let mut put = |at: usize, value: &[u8]| header[at..at + value.len()].copy_from_slice(value);
    put(0, name.as_bytes());
    put(
        100,
        if kind == b'0' {
            b"0000755\0"
        } else {
            b"0000777\0"
        },
    );
    put(108, b"0000000\0");
    put(116, b"0000000\0");
    put(124, format!("{:011o}\0", data.len()).as_bytes());
    put(136, b"00000000000\0");
    put(148, b"        ");
    put(156, &[kind]);
    put(157, link.as_bytes());
    put(257, b"ustar\0");
    put(263, b"00");
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// Import the test image once per test binary.
async fn ensure_image(docker: &Docker) {
    IMAGE_READY
        .get_or_init(|| async {
            if docker.inspect_image(IMAGE).await.is_ok() {
                return;
            }
            let mut tar = Vec::new();
            tar_entry(&mut tar, "bin/", b'5', "", &[]);
            tar_entry(&mut tar, "bin/busybox", b'0', "", &busybox());
            for applet in APPLETS {
                tar_entry(&mut tar, &format!("bin/{applet}"), b'2', "busybox", &[]);
            }
            tar.resize(tar.len() + 1024, 0);
            let (repo, tag) = IMAGE.split_once(':').expect("image has a tag");
            let options = CreateImageOptionsBuilder::new()
                .from_src("-")
                .repo(repo)
                .tag(tag)
                .changes(vec![
                    r#"ENTRYPOINT ["/bin/sh"]"#.to_string(),
                    "ENV PATH=/bin".to_string(),
                    "LABEL kedge.test=1".to_string(),
                ])
                .build();
            docker
                .create_image(Some(options), Some(bollard::body_full(tar.into())), None)
                .try_collect::<Vec<_>>()
                .await
                .expect("importing the busybox image");
        })
        .await;
}

/// Run `test` against a started container running `script`, then remove
/// the container whatever the outcome.
async fn with_container<F, Fut>(script: &str, test: F)
where
    F: FnOnce(Docker, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let docker = docker().await;
    ensure_image(&docker).await;
    let body = ContainerCreateBody {
        image: Some(IMAGE.to_string()),
        cmd: Some(vec!["-c".to_string(), script.to_string()]),
        labels: Some(HashMap::from([("kedge.test".to_string(), "1".to_string())])),
        ..Default::default()
    };
    let id = docker
        .create_container(None, body)
        .await
        .expect("creating the container")
        .id;
    let started = docker.start_container(&id, None).await;
    let outcome = match started {
        Ok(()) => std::panic::AssertUnwindSafe(test(docker.clone(), id.clone()))
            .catch_unwind()
            .await
            .map_err(Some),
        Err(e) => Err(Some(Box::new(format!("starting the container: {e}")) as _)),
    };
    let remove = RemoveContainerOptionsBuilder::new().force(true).build();
    docker
        .remove_container(&id, Some(remove))
        .await
        .expect("removing the container");
    if let Err(Some(panic)) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn read_all(docker: &Docker, id: &str, options: LogOptions) -> String {
    let chunks: Vec<Bytes> = logs(docker, id, &options)
        .await
        .expect("logs")
        .try_collect()
        .await
        .expect("log stream");
    String::from_utf8(chunks.concat()).expect("utf-8 logs")
}

/// Poll the logs until `want` lines were written.
async fn wait_for_lines(docker: &Docker, id: &str, want: usize) -> String {
    for _ in 0..200 {
        let all = read_all(docker, id, LogOptions::default()).await;
        if all.lines().count() >= want {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the container never wrote {want} lines");
}

struct Finished {
    stdout: String,
    stderr: String,
    exit_code: i32,
}

async fn finish(session: ExecSession) -> Finished {
    let ExecSession {
        output, exit_code, ..
    } = session;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let items: Vec<ExecOutput> =
        tokio::time::timeout(Duration::from_secs(20), output.try_collect())
            .await
            .expect("exec output ends")
            .expect("exec output");
    for item in items {
        match item {
            ExecOutput::Stdout(b) => stdout.extend_from_slice(&b),
            ExecOutput::Stderr(b) => stderr.extend_from_slice(&b),
        }
    }
    Finished {
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        exit_code: exit_code.await.expect("exit code"),
    }
}

fn command(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn logs_split_streams_and_apply_options() {
    // stdout and stderr are separate pipes: the pauses fix their order.
    let script = "echo out-1; sleep 0.2; echo err-1 >&2; sleep 0.2; echo out-2; exec sleep 3600";
    with_container(script, |docker, id| async move {
        let all = wait_for_lines(&docker, &id, 3).await;
        assert_eq!(all, "out-1\nerr-1\nout-2\n");

        let tail = LogOptions {
            tail_lines: Some(1),
            ..Default::default()
        };
        assert_eq!(read_all(&docker, &id, tail).await, "out-2\n");

        let limited = LogOptions {
            limit_bytes: Some(8),
            ..Default::default()
        };
        assert_eq!(read_all(&docker, &id, limited).await, "out-1\ner");

        let recent = LogOptions {
            since_seconds: Some(3600),
            ..Default::default()
        };
        assert_eq!(read_all(&docker, &id, recent).await, all);

        let stamped = LogOptions {
            timestamps: true,
            ..Default::default()
        };
        let stamped = read_all(&docker, &id, stamped).await;
        let lines: Vec<&str> = stamped.lines().collect();
        assert_eq!(lines.len(), 3, "{stamped}");
        for (line, text) in lines.iter().zip(["out-1", "err-1", "out-2"]) {
            let (time, rest) = line.split_once(' ').expect("a timestamp prefix");
            time.parse::<jiff::Timestamp>()
                .unwrap_or_else(|e| panic!("{time}: {e}"));
            assert_eq!(rest, text);
        }
    })
    .await;
}

/// Read a following log stream until `want` was seen.
async fn read_until(
    stream: &mut futures::stream::BoxStream<'static, crate::runtime::Result<Bytes>>,
    seen: &mut String,
    want: &str,
) {
    let read = async {
        while !seen.contains(want) {
            let chunk = stream.next().await.expect("stream open").expect("chunk");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    if tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .is_err()
    {
        panic!("{want:?} never came; saw {seen:?}");
    }
}

#[tokio::test]
async fn logs_follow_sees_new_output() {
    with_container("echo first; exec sleep 3600", |docker, id| async move {
        wait_for_lines(&docker, &id, 1).await;
        let follow = LogOptions {
            follow: true,
            ..Default::default()
        };
        let mut stream = logs(&docker, &id, &follow).await.expect("logs");
        let mut seen = String::new();
        read_until(&mut stream, &mut seen, "first\n").await;
        // Output written by a process into the container's stdout (PID 1's).
        let late = ExecRequest {
            command: command(&["sh", "-c", "echo late > /proc/1/fd/1"]),
            ..Default::default()
        };
        let done = finish(exec(&docker, &id, &late).await.expect("exec")).await;
        assert_eq!(done.exit_code, 0, "{}", done.stderr);
        read_until(&mut stream, &mut seen, "late\n").await;
    })
    .await;
}

#[tokio::test]
async fn logs_of_a_missing_container_is_not_found() {
    let docker = docker().await;
    let err = logs(&docker, "kedge-no-such-container", &LogOptions::default())
        .await
        .err()
        .expect("an error");
    assert!(matches!(err, RuntimeError::NotFound { .. }), "{err}");
    let request = ExecRequest {
        command: command(&["true"]),
        ..Default::default()
    };
    let err = exec(&docker, "kedge-no-such-container", &request)
        .await
        .expect_err("an error");
    assert!(matches!(err, RuntimeError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn exec_splits_output_and_reports_the_exit_code() {
    with_container("exec sleep 3600", |docker, id| async move {
        let request = ExecRequest {
            command: command(&["sh", "-c", "echo to-out; echo to-err >&2; exit 3"]),
            ..Default::default()
        };
        let session = exec(&docker, &id, &request).await.expect("exec");
        assert!(session.stdin.is_none() && session.resize.is_none());
        let done = finish(session).await;
        assert_eq!(done.stdout, "to-out\n");
        assert_eq!(done.stderr, "to-err\n");
        assert_eq!(done.exit_code, 3);
    })
    .await;
}

#[tokio::test]
async fn exec_passes_stdin_until_closed() {
    with_container("exec sleep 3600", |docker, id| async move {
        let request = ExecRequest {
            command: command(&["cat"]),
            stdin: true,
            ..Default::default()
        };
        let mut session = exec(&docker, &id, &request).await.expect("exec");
        let mut stdin = session.stdin.take().expect("stdin");
        stdin.write_all(b"hello\nworld\n").await.expect("write");
        stdin.shutdown().await.expect("close stdin");
        let done = finish(session).await;
        assert_eq!(done.stdout, "hello\nworld\n");
        assert_eq!(done.stderr, "");
        assert_eq!(done.exit_code, 0);
    })
    .await;
}

#[tokio::test]
async fn exec_with_a_tty_resizes() {
    with_container("exec sleep 3600", |docker, id| async move {
        let request = ExecRequest {
            command: command(&["sh", "-c", "read line; stty size"]),
            stdin: true,
            tty: true,
        };
        let mut session = exec(&docker, &id, &request).await.expect("exec");
        let resize = session.resize.take().expect("a TTY can be resized");
        resize(100, 40).await.expect("resize");
        let mut stdin = session.stdin.take().expect("stdin");
        stdin.write_all(b"go\n").await.expect("write");
        let done = finish(session).await;
        assert!(done.stdout.contains("40 100"), "{:?}", done.stdout);
        assert_eq!(done.stderr, "", "a TTY merges stderr into stdout");
        assert_eq!(done.exit_code, 0);
    })
    .await;
}
