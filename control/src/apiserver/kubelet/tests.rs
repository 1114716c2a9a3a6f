use serde_json::json;

use super::*;

fn pod(status: Value) -> Value {
    json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "nodeName": "node-a",
            "initContainers": [{"name": "setup"}],
            "containers": [{"name": "app"}, {"name": "sidecar"}],
        },
        "status": status,
    })
}

fn running(name: &str) -> Value {
    json!({"name": name, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}})
}

fn message(r: ApiResult<impl std::fmt::Debug>) -> String {
    let e = r.expect_err("an error");
    assert_eq!(e.code, 400, "{}", e.message);
    e.message
}

#[test]
fn picks_the_container_as_kubernetes_does() {
    let one = json!({"spec": {"containers": [{"name": "only"}]}});
    assert_eq!(pick_container(&one, "p", None).unwrap(), "only");
    let p = pod(json!({}));
    assert_eq!(pick_container(&p, "web", Some("setup")).unwrap(), "setup");
    assert_eq!(
        message(pick_container(&p, "web", None)),
        "a container name must be specified for pod web, choose one of: [setup app sidecar]"
    );
    assert_eq!(
        message(pick_container(&p, "web", Some("db"))),
        "container db is not valid for pod web"
    );
}

#[test]
fn an_unscheduled_pod_has_no_host() {
    let mut p = pod(json!({"phase": "Pending"}));
    p["spec"].as_object_mut().unwrap().remove("nodeName");
    assert_eq!(
        message(locate(&p, "web", Some("app"), Purpose::Exec)),
        "pod web does not have a host assigned"
    );
}

#[test]
fn containers_must_be_able_to_serve() {
    let creating = pod(json!({"phase": "Pending", "containerStatuses": [
        {"name": "app", "state": {"waiting": {"reason": "ContainerCreating"}}},
        {"name": "sidecar", "state": {"waiting": {"reason": "ImagePullBackOff"}}},
    ]}));
    for purpose in [Purpose::Exec, Purpose::Logs { previous: false }] {
        assert_eq!(
            message(locate(&creating, "web", Some("app"), purpose)),
            "container \"app\" in pod \"web\" is waiting to start: ContainerCreating"
        );
    }
    assert_eq!(
        message(locate(&creating, "web", Some("sidecar"), Purpose::Exec)),
        "container \"sidecar\" in pod \"web\" is waiting to start: trying and failing to pull image"
    );
    assert_eq!(
        message(locate(
            &creating,
            "web",
            Some("app"),
            Purpose::Logs { previous: true }
        )),
        "previous terminated container \"app\" in pod \"web\" not found"
    );

    let unreported = pod(json!({"phase": "Pending"}));
    assert!(
        message(locate(&unreported, "web", Some("app"), Purpose::Exec))
            .ends_with("is waiting to start: ContainerCreating")
    );

    let up = pod(json!({"phase": "Running", "containerStatuses": [running("app")]}));
    assert_eq!(
        locate(&up, "web", Some("app"), Purpose::Exec).unwrap(),
        Location {
            node: "node-a".into(),
            container: "app".into()
        }
    );
    assert!(
        message(locate(&up, "web", Some("sidecar"), Purpose::Exec)).ends_with("is not available")
    );
}

#[test]
fn a_restarting_container_serves_its_last_logs() {
    let crashing = pod(json!({"phase": "Running", "containerStatuses": [{
        "name": "app",
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1, "containerID": "docker://abc"}},
    }, {
        "name": "sidecar",
        "state": {"terminated": {"exitCode": 0}},
    }]}));
    assert!(locate(
        &crashing,
        "web",
        Some("app"),
        Purpose::Logs { previous: false }
    )
    .is_ok());
    assert!(locate(
        &crashing,
        "web",
        Some("app"),
        Purpose::Logs { previous: true }
    )
    .is_ok());
    assert_eq!(
        message(locate(&crashing, "web", Some("app"), Purpose::Exec)),
        "container \"app\" in pod \"web\" is waiting to start: CrashLoopBackOff"
    );
    assert!(locate(
        &crashing,
        "web",
        Some("sidecar"),
        Purpose::Logs { previous: false }
    )
    .is_ok());
    assert_eq!(
        message(locate(&crashing, "web", Some("sidecar"), Purpose::Exec)),
        "container \"sidecar\" in pod \"web\" is not running"
    );
}

#[test]
fn finds_the_kubelet_endpoint() {
    let node = json!({"status": {
        "addresses": [
            {"type": "Hostname", "address": "node-a"},
            {"type": "InternalIP", "address": "10.0.0.5"},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10350}},
    }});
    let e = endpoint_of(&node).unwrap();
    assert_eq!(e.to_string(), "10.0.0.5:10350");

    let bare = json!({"status": {"addresses": [{"type": "Hostname", "address": "node-b"}]}});
    assert_eq!(endpoint_of(&bare).unwrap().to_string(), "node-b:10250");

    let v6 = json!({"status": {"addresses": [{"type": "InternalIP", "address": "fd00::5"}]}});
    assert_eq!(endpoint_of(&v6).unwrap().to_string(), "[fd00::5]:10250");

    assert!(endpoint_of(&json!({"status": {}})).is_none());
}

#[test]
fn forwards_only_what_the_kubelet_reads() {
    let q = forward_query(
        Some("command=sh&command=-c&command=echo+a%26b&container=app&stdin=true&stdout=true&tty=false&&x=1"),
        &EXEC_PARAMS,
    );
    assert_eq!(
        q,
        "command=sh&command=-c&command=echo+a%26b&stdin=true&stdout=true&tty=false"
    );
    let q = forward_query(
        Some("container=app&follow=true&tailLines=10&limitBytes=5&pretty=true"),
        &LOG_PARAMS,
    );
    assert_eq!(q, "follow=true&tailLines=10&limitBytes=5");
}
