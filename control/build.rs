//! Stamps the binary with where it was built from, as Kubernetes' own build
//! does (`hack/lib/version.sh`): the git commit, whether the tree had
//! uncommitted changes, and the build time. `/version` reports them.
//!
//! Outside a git checkout (a source archive, no git installed) the commit
//! and tree state are empty, as in a Kubernetes binary not built from git;
//! never a made-up value.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));

    let (commit, tree_state) = match git_checkout(&dir) {
        Some(watched) => {
            // Rerun when HEAD moves (checkout, commit, reset) and when this
            // crate's sources change (to notice a dirty tree), not on
            // every change elsewhere in the workspace.
            for path in watched {
                println!("cargo:rerun-if-changed={}", path.display());
            }
            println!("cargo:rerun-if-changed=src");
            let commit = git(&dir, &["rev-parse", "HEAD"]).unwrap_or_default();
            // Untracked files count, as in Kubernetes; no optional locks, so
            // a build never holds the index lock against a commit.
            let state = match git(&dir, &["--no-optional-locks", "status", "--porcelain"]) {
                Some(changes) if changes.is_empty() => "clean",
                Some(_) => "dirty",
                None => "",
            };
            (commit, state)
        }
        None => {
            println!("cargo:rerun-if-changed=build.rs");
            (String::new(), "")
        }
    };
    println!("cargo:rustc-env=KEDGE_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=KEDGE_GIT_TREE_STATE={tree_state}");

    // Reproducible builds pin the time (https://reproducible-builds.org).
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        });
    println!("cargo:rustc-env=KEDGE_BUILD_DATE={}", rfc3339(epoch));

    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let compiler = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        // `rustc 1.88.0 (6b00bc388 2025-06-23)` -> `rustc 1.88.0`
        .map(|v| v.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    println!("cargo:rustc-env=KEDGE_RUSTC_VERSION={compiler}");
}

/// The git files whose change means HEAD moved, when this crate is tracked
/// by a git repository; `None` otherwise, including when the sources sit
/// untracked inside some other repository (a vendored copy).
fn git_checkout(dir: &Path) -> Option<Vec<PathBuf>> {
    git(dir, &["ls-files", "--error-unmatch", "Cargo.toml"])?;
    let path = |p: &str| {
        git(dir, &["rev-parse", "--git-path", p]).map(|found| {
            let found = PathBuf::from(found);
            if found.is_absolute() {
                found
            } else {
                dir.join(found)
            }
        })
    };
    let mut watched = vec![path("HEAD")?];
    // On a branch, a commit rewrites the branch's ref, not HEAD. A ref
    // with no file of its own is packed; a new commit writes the file, so
    // watch the directory it will appear in.
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        if let Some(file) = path(&branch) {
            if file.exists() {
                watched.push(file);
            } else if let Some(parent) = file.parent().filter(|p| p.exists()) {
                watched.push(parent.to_path_buf());
            }
        }
    }
    // A path that does not exist would rerun the script on every build.
    watched.extend(path("packed-refs").filter(|p| p.exists()));
    Some(watched)
}

/// The trimmed output of a successful git command.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    Some(String::from_utf8(output.stdout).ok()?.trim().to_string())
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`, the form of
/// Kubernetes' buildDate (`date -u +'%Y-%m-%dT%H:%M:%SZ'`).
fn rfc3339(epoch: i64) -> String {
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}
