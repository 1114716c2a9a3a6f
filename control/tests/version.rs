//! `GET /version` reports where the binary was built from: the git commit
//! and tree state and the build time, stamped by the build script.

use std::process::Command;

use kedge_control::testing::{self, TestServer};

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_reports_the_build() {
    let TestServer { client, .. } = testing::start().await;
    let info = client.apiserver_version().await.unwrap();

    assert_eq!((info.major.as_str(), info.minor.as_str()), ("1", "32"));
    let dirty = if info.git_tree_state == "dirty" {
        "-dirty"
    } else {
        ""
    };
    assert_eq!(
        info.git_version,
        format!("v1.32.0-kedge.{}{dirty}", env!("CARGO_PKG_VERSION"))
    );

    let built: jiff::Timestamp = info
        .build_date
        .parse()
        .unwrap_or_else(|e| panic!("buildDate {:?}: {e}", info.build_date));
    assert_eq!(
        built.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        info.build_date,
        "Kubernetes' form of RFC 3339"
    );
    assert_ne!(
        info.build_date, "2026-01-01T00:00:00Z",
        "the old placeholder"
    );
    assert!(
        built <= jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60),
        "built in the future: {built}"
    );

    let tracked = git(&["ls-files", "--error-unmatch", "Cargo.toml"]).is_some();
    if !tracked {
        // Not built from git: no commit is claimed.
        assert_eq!(info.git_commit, "");
        assert_eq!(info.git_tree_state, "");
        return;
    }
    assert!(
        ["clean", "dirty"].contains(&info.git_tree_state.as_str()),
        "{:?}",
        info.git_tree_state
    );
    let head = git(&["rev-parse", "HEAD"]).unwrap();
    if info.git_commit != head {
        // Committed to since this was built (a commit during a test run):
        // the reported commit must still be an earlier one of HEAD's
        // history. On a fresh checkout (CI) it is HEAD itself.
        assert!(
            git(&["merge-base", "--is-ancestor", &info.git_commit, &head]).is_some(),
            "gitCommit {} is not in HEAD {head}'s history",
            info.git_commit
        );
        return;
    }
    // The build ran after its commit was made (the script reruns when HEAD
    // moves), unless SOURCE_DATE_EPOCH pinned the time.
    if std::env::var_os("SOURCE_DATE_EPOCH").is_none() {
        let committed: i64 = git(&["show", "-s", "--format=%ct", &head])
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            built.as_second() >= committed,
            "built {built} before its commit"
        );
    }
}
