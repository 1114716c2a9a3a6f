//! Images the end-to-end tests run, built on this machine with no
//! registry: a busybox image from Debian's busybox-static binary, and the
//! project's echo server compiled as a static binary. Each is imported
//! with `docker import` under a tag naming its content, so a second run
//! (or a second test binary) reuses it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The busybox applets the tests use, as symlinks to the one binary.
const APPLETS: &[&str] = &[
    "sh", "sleep", "echo", "cat", "env", "httpd", "nc", "wget", "nslookup", "ls", "hostname", "ps",
    "kill", "timeout", "touch", "mkdir", "rm", "date", "id", "true", "false", "test", "grep",
    "head", "tail", "wc", "trap", "printf", "ip", "ifconfig", "seq", "tee", "sed", "tar",
];

fn fingerprint(parts: &[&[u8]]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{:012x}", h & 0xffff_ffff_ffff)
}

fn image_exists(reference: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", reference])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `docker import` a root filesystem directory as `reference`.
fn import(root: &Path, reference: &str, changes: &[&str]) {
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(root)
        .args(["-cf", "-", "."])
        .stdout(Stdio::piped())
        .spawn()
        .expect("running tar");
    let mut cmd = Command::new("docker");
    cmd.arg("import");
    for c in changes {
        cmd.args(["-c", c]);
    }
    let out = cmd
        .args(["-", reference])
        .stdin(tar.stdout.take().unwrap())
        .output()
        .expect("running docker import");
    let _ = tar.wait();
    assert!(
        out.status.success(),
        "docker import {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("image-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn busybox_binary() -> Vec<u8> {
    let binary = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox is not installed: apt-get install busybox-static");
    std::fs::read(binary).unwrap()
}

/// Lay out busybox and its applets under `root`.
fn busybox_root(root: &Path, busybox: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    for d in ["bin", "tmp", "etc", "proc", "sys", "dev"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("bin/busybox"), busybox).unwrap();
    std::fs::set_permissions(
        root.join("bin/busybox"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    for a in APPLETS {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
}

/// `kedge-test/busybox:<hash>`: sh, httpd, nc, wget, nslookup and friends.
pub fn busybox() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let bytes = busybox_binary();
        let reference = format!(
            "kedge-test/busybox:{}",
            fingerprint(&[&bytes, APPLETS.join(",").as_bytes()])
        );
        if image_exists(&reference) {
            return reference;
        }
        let root = scratch_dir("busybox");
        busybox_root(&root, &bytes);
        import(
            &root,
            &reference,
            &[
                "ENV PATH=/bin",
                r#"CMD ["/bin/sh"]"#,
                "LABEL io.kedge.managed=true",
            ],
        );
        let _ = std::fs::remove_dir_all(&root);
        reference
    })
}

/// The statically linked kubectl 1.32 of this machine (the one `kubectl`
/// dispatches to for a 1.32 server), if there is one.
pub fn kubectl_binary() -> Option<PathBuf> {
    [
        "/usr/lib/google-cloud-sdk/bin/kubectl.1.32",
        "/usr/local/bin/kubectl",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// `kedge-test/kubectl:<hash>`: busybox plus a static kubectl at
/// /bin/kubectl, an in-cluster API client (client-go's in-cluster config).
pub fn kubectl() -> Option<&'static str> {
    static IMAGE: OnceLock<Option<String>> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let kubectl = std::fs::read(kubectl_binary()?).ok()?;
            let bytes = busybox_binary();
            let reference = format!(
                "kedge-test/kubectl:{}",
                fingerprint(&[&bytes, APPLETS.join(",").as_bytes(), &kubectl])
            );
            if image_exists(&reference) {
                return Some(reference);
            }
            let root = scratch_dir("kubectl");
            busybox_root(&root, &bytes);
            std::fs::write(root.join("bin/kubectl"), &kubectl).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                root.join("bin/kubectl"),
                std::fs::Permissions::from_mode(0o755),
            )
            .unwrap();
            import(
                &root,
                &reference,
                &[
                    "ENV PATH=/bin",
                    "ENV HOME=/tmp",
                    r#"CMD ["/bin/sh"]"#,
                    "LABEL io.kedge.managed=true",
                ],
            );
            let _ = std::fs::remove_dir_all(&root);
            Some(reference)
        })
        .as_deref()
}

/// `kedge-test/echo:<hash>`: the echo server (tests/images/echo.rs) on
/// port 8080.
pub fn echo() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| program_image("echo"))
}

/// `kedge-test/netbench:<hash>`: the network measurement of the benches
/// (tests/images/netbench.rs), at /netbench.
pub fn netbench() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| program_image("netbench"))
}

/// `kedge-test/<name>:<hash>`: tests/images/<name>.rs compiled as a static
/// binary, alone in its image as `/<name>`, its entrypoint.
fn program_image(name: &str) -> String {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/images/{name}.rs"));
    let code = std::fs::read(&source).unwrap();
    let reference = format!("kedge-test/{name}:{}", fingerprint(&[&code]));
    if image_exists(&reference) {
        return reference;
    }
    let root = scratch_dir(name);
    // A static binary needs nothing else in the image.
    let status = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args([
            "--edition",
            "2021",
            "-O",
            "-C",
            "target-feature=+crt-static",
            "-C",
            "strip=symbols",
        ])
        .arg(&source)
        .arg("-o")
        .arg(root.join(name))
        .status()
        .expect("running rustc");
    assert!(status.success(), "building {name}");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    let entrypoint = format!(r#"ENTRYPOINT ["/{name}"]"#);
    import(
        &root,
        &reference,
        &[entrypoint.as_str(), "LABEL io.kedge.managed=true"],
    );
    let _ = std::fs::remove_dir_all(&root);
    reference
}
