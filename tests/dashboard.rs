//! The dashboard in a real browser (Debian's Chromium, headless, driven over
//! its DevTools protocol): the README's walkthrough on `kedge up`, signed in
//! with a ServiceAccount token; the pods seen, the Deployment scaled from
//! the page and followed, a pod's logs read, a shell run, a ConfigMap edited
//! (a bad edit refused at its field), a Secret's value hidden until asked;
//! then a token bound to `view` in one namespace, which sees that namespace
//! only, no Secrets, and is refused scaling with the API's message.
//! Screenshots of the main pages are saved under the test's output
//! directory (`target/tmp/dashboard/`).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::browser::Browser;
use common::{eventually, images, Cluster};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(120);

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard")
}

/// A fresh token of a ServiceAccount `sa` in `ns`.
fn token(c: &Cluster, ns: &str, sa: &str) -> String {
    c.kubectl(&["-n", ns, "create", "token", sa])
        .trim()
        .to_string()
}

fn sign_in(b: &mut Browser, url: &str, token: &str) {
    b.open_until(
        &format!("{url}/dashboard/#/login"),
        "the sign-in form",
        "!!document.getElementById('token')",
        WAIT,
    );
    b.type_into("token", token);
    b.click_button("Sign in");
    b.wait_for(
        "the overview",
        "document.querySelector('main h1')?.textContent === 'Cluster overview'",
        WAIT,
    );
}

/// Open the page at `hash` and wait until it is drawn.
fn go(b: &mut Browser, hash: &str) {
    b.eval(&format!("location.hash = {}", json!(hash)));
    b.wait_for(
        &format!("page {hash}"),
        &format!("document.documentElement.dataset.page === {}", json!(hash)),
        WAIT,
    );
}

/// Wait until the page's main text contains `needle`; that text.
fn wait_text(b: &mut Browser, needle: &str) -> String {
    b.wait_for(
        &format!("{needle:?} on the page"),
        &format!(
            "(t => t.includes({}) && t)(document.querySelector('main')?.innerText || '')",
            json!(needle)
        ),
        WAIT,
    )
    .as_str()
    .unwrap_or("")
    .to_string()
}

#[test]
fn the_dashboard_shows_and_changes_the_cluster_in_a_browser() {
    let busybox = images::busybox();
    let c = Cluster::up_with(&["--demo-images"]);
    c.kubectl(&["create", "namespace", "luffy"]);
    c.kubectl(&["apply", "-f", &Cluster::fixture("myblog.yaml")]);
    c.kubectl(&[
        "-n",
        "luffy",
        "run",
        "client",
        &format!("--image={busybox}"),
        "--",
        "sleep",
        "3600",
    ]);
    c.kubectl(&[
        "-n",
        "kube-system",
        "create",
        "serviceaccount",
        "dashboard-admin",
    ]);
    c.kubectl(&[
        "create",
        "clusterrolebinding",
        "dashboard-admin",
        "--clusterrole=cluster-admin",
        "--serviceaccount=kube-system:dashboard-admin",
    ]);
    let admin = token(&c, "kube-system", "dashboard-admin");
    c.wait_ready(&["-n", "luffy", "pod/client"], WAIT);

    let mut b = Browser::start(&c.data_dir.join("apiserver.crt"), &screenshots());

    // A browser at the server's root is sent to the dashboard's sign-in.
    b.open_until(
        &format!("{}/", c.url),
        "the sign-in form",
        "!!document.getElementById('token')",
        WAIT,
    );
    assert!(b.eval("location.pathname").as_str() == Some("/dashboard/"));
    b.screenshot("sign-in");
    // Every node opens it on the NodePort of `kedge-dashboard`, as the
    // tutorials reach theirs.
    let node_port = c.kubectl(&[
        "-n",
        "kube-system",
        "get",
        "svc",
        "kedge-dashboard",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    let node = c.node.as_ref().unwrap().address();
    b.open_until(
        &format!("https://{node}:{node_port}/"),
        "the sign-in form through the NodePort",
        "!!document.getElementById('token')",
        WAIT,
    );
    b.open_until(
        &format!("{}/dashboard/", c.url),
        "the sign-in form",
        "!!document.getElementById('token')",
        WAIT,
    );
    // A token that is not one is refused with the API's answer.
    b.type_into("token", "not-a-token");
    b.click_button("Sign in");
    let refused = b.wait_for(
        "the refusal",
        "document.querySelector('[role=alert]')?.innerText",
        WAIT,
    );
    assert!(
        refused.as_str().unwrap().contains("Unauthorized"),
        "{refused}"
    );

    sign_in(&mut b, &c.url, &admin);
    wait_text(&mut b, "system:serviceaccount:kube-system:dashboard-admin");
    wait_text(&mut b, "myblog");
    // Node usage from the metrics API once the first scrape is in.
    b.wait_for(
        "the node's usage",
        "[...document.querySelectorAll('[role=meter]')].some(m => Number(m.getAttribute('aria-valuenow')) > 0)",
        WAIT,
    );
    b.screenshot("overview");

    // The walkthrough's pods, as kubectl's columns.
    go(&mut b, "#/ns/luffy/pods");
    let pods = wait_text(&mut b, "client");
    assert!(pods.contains("READY") && pods.contains("STATUS"), "{pods}");
    assert_eq!(pods.matches("myblog-").count(), 2, "{pods}");
    b.screenshot("pods");

    // Scale from the page; the pods follow and so does the page.
    go(&mut b, "#/ns/luffy/deployments/myblog");
    wait_text(&mut b, "Owned objects");
    b.type_into("replicas", "3");
    b.click_button("Scale");
    wait_text(&mut b, "Scaled Deployment myblog to 3 replicas.");
    assert!(eventually(WAIT, || {
        c.kubectl(&[
            "-n",
            "luffy",
            "get",
            "deploy",
            "myblog",
            "-o",
            "jsonpath={.status.readyReplicas}",
        ]) == "3"
    }));
    let page = wait_text(&mut b, "3 ready of 3 desired");
    assert_eq!(page.matches("Pod myblog-").count(), 3, "{page}");
    b.screenshot("deployment");

    // A pod's logs.
    let pod = c.kubectl(&[
        "-n",
        "luffy",
        "get",
        "pods",
        "-l",
        "app=myblog",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    go(&mut b, &format!("#/ns/luffy/pods/{pod}"));
    b.wait_for(
        "the pod's logs",
        "document.querySelector('pre.logs')?.textContent.includes('demo server listening')",
        WAIT,
    );
    b.screenshot("pod");

    // A shell in the browser (exec over the API's WebSocket).
    go(&mut b, "#/ns/luffy/pods/client");
    wait_text(&mut b, "Shell");
    b.click_button("Connect");
    b.wait_for(
        "the shell",
        "document.getElementById('exec-input') && !document.getElementById('exec-input').disabled",
        WAIT,
    );
    b.type_into("exec-input", "echo dashboard-$((6*7))");
    b.press_enter();
    b.wait_for(
        "the shell's answer",
        "document.querySelector('pre.console')?.textContent.includes('dashboard-42')",
        WAIT,
    );

    // Edit a ConfigMap: a key the API refuses is shown at its field, then a
    // good edit lands.
    go(&mut b, "#/ns/luffy/configmaps/myblog-config");
    wait_text(&mut b, "MYSQL_PORT");
    b.click_button("Edit");
    b.eval(
        "(e => { e.value = e.value.replace('MYSQL_PORT:', 'bad key!:'); })(document.getElementById('yaml-editor'))",
    );
    b.click_button("Apply");
    let error = b.wait_for(
        "the API's refusal",
        "document.querySelector('.alert.error')?.innerText",
        WAIT,
    );
    let error = error.as_str().unwrap();
    assert!(
        error.contains("ConfigMap \"myblog-config\" is invalid"),
        "{error}"
    );
    assert!(error.contains("data[bad key!]"), "{error}");
    assert!(error.contains("At line"), "{error}");
    // The line with the bad key is the one selected.
    let selected = b.eval(
        "(e => e.value.slice(e.selectionStart, e.selectionEnd))(document.getElementById('yaml-editor'))",
    );
    assert!(
        selected.as_str().unwrap().contains("bad key!"),
        "{selected}"
    );
    b.screenshot("edit-refused");
    b.eval(
        "(e => { e.value = e.value.replace('bad key!:', 'MYSQL_PORT:').replace('MYSQL_HOST: mysql', 'MYSQL_HOST: mysql-primary'); })(document.getElementById('yaml-editor'))",
    );
    b.click_button("Apply");
    wait_text(&mut b, "Applied ConfigMap myblog-config.");
    assert_eq!(
        c.kubectl(&[
            "-n",
            "luffy",
            "get",
            "configmap",
            "myblog-config",
            "-o",
            "jsonpath={.data.MYSQL_HOST}"
        ]),
        "mysql-primary"
    );
    wait_text(&mut b, "mysql-primary");

    // A Secret's values stay hidden until asked for.
    go(&mut b, "#/ns/luffy/secrets/myblog-secret");
    let page = wait_text(&mut b, "MYSQL_PASSWD");
    assert!(!page.contains("123456"), "{page}");
    b.click_button("Reveal MYSQL_PASSWD");
    wait_text(&mut b, "123456");

    // A token bound to `view` in team-a sees team-a only.
    c.kubectl(&["create", "namespace", "team-a"]);
    c.kubectl(&["-n", "team-a", "create", "serviceaccount", "viewer"]);
    c.kubectl(&[
        "-n",
        "team-a",
        "create",
        "rolebinding",
        "viewer",
        "--clusterrole=view",
        "--serviceaccount=team-a:viewer",
    ]);
    c.kubectl(&[
        "-n",
        "team-a",
        "create",
        "deployment",
        "app",
        &format!("--image={busybox}"),
        "--",
        "sleep",
        "3600",
    ]);
    c.kubectl(&[
        "-n",
        "team-a",
        "create",
        "secret",
        "generic",
        "keys",
        "--from-literal=password=s3cr3t",
    ]);
    c.wait_ready(&["-n", "team-a", "pod", "-l", "app=app"], WAIT);
    let viewer = token(&c, "team-a", "viewer");
    b.click_button("Sign out");
    b.wait_for(
        "the sign-in form",
        "!!document.getElementById('token')",
        WAIT,
    );
    b.type_into("token", &viewer);
    b.click_button("Sign in");
    wait_text(&mut b, "Cluster overview");
    // Cluster-wide lists are refused with the API's own message.
    wait_text(
        &mut b,
        "cannot list resource \"nodes\" in API group \"\" at the cluster scope",
    );
    go(&mut b, "#/ns/team-a/pods");
    wait_text(&mut b, "app-");
    go(&mut b, "#/ns/luffy/pods");
    wait_text(&mut b, "pods is forbidden: User \"system:serviceaccount:team-a:viewer\" cannot list resource \"pods\" in API group \"\" in the namespace \"luffy\"");
    go(&mut b, "#/ns/team-a/secrets");
    let page = wait_text(&mut b, "cannot list resource \"secrets\"");
    assert!(!page.contains("keys"), "{page}");
    go(&mut b, "#/ns/team-a/deployments/app");
    wait_text(&mut b, "Owned objects");
    b.type_into("replicas", "3");
    b.click_button("Scale");
    wait_text(&mut b, "deployments.apps \"app\" is forbidden: User \"system:serviceaccount:team-a:viewer\" cannot patch resource \"deployments/scale\" in API group \"apps\" in the namespace \"team-a\"");
    b.screenshot("scale-refused");
    assert_eq!(
        c.kubectl(&[
            "-n",
            "team-a",
            "get",
            "deploy",
            "app",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "1"
    );
}
