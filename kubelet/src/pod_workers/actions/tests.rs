//! Unit tests of the pod actions: restart policies, init containers,
//! sandbox changes, spec changes, back-off, and the order a pod stops in.

use super::*;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

const BACKOFF: Backoff = Backoff {
    initial: Duration::from_secs(10),
    max: Duration::from_secs(300),
};

fn now() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

/// `now` plus `secs` (negative: before).
fn at(secs: i64) -> Timestamp {
    now() + SignedDuration::from_secs(secs)
}

/// A pod with `restartPolicy: policy`, init containers and app containers
/// given as (name, image).
fn pod(policy: &str, init: &[(&str, &str)], containers: &[(&str, &str)]) -> Pod {
    let list = |cs: &[(&str, &str)]| -> Vec<serde_json::Value> {
        cs.iter()
            .map(|(name, image)| json!({"name": name, "image": image}))
            .collect()
    };
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "default", "uid": "uid-1"},
        "spec": {
            "restartPolicy": policy,
            "terminationGracePeriodSeconds": 7,
            "initContainers": list(init),
            "containers": list(containers),
        },
    }))
    .unwrap()
}

fn running(id: &str, image: &str) -> ObservedContainer {
    ObservedContainer {
        id: Some(id.into()),
        state: Some(ContainerState::Running {
            started_at: at(-60),
        }),
        image: image.into(),
        ..Default::default()
    }
}

/// A container that ran from a minute ago until `ended` seconds from now.
fn exited(id: &str, image: &str, exit_code: i32, ended: i64) -> ObservedContainer {
    ObservedContainer {
        id: Some(id.into()),
        state: Some(ContainerState::Exited {
            started_at: Some(at(-60)),
            finished_at: at(ended),
            exit_code,
            reason: if exit_code == 0 { "Completed" } else { "Error" }.into(),
        }),
        image: image.into(),
        ..Default::default()
    }
}

/// A running sandbox holding `containers`.
fn observed(containers: &[(&str, ObservedContainer)]) -> Observed {
    Observed {
        sandbox: ObservedSandbox::Ready { id: "sb".into() },
        sandbox_outdated: false,
        containers: containers
            .iter()
            .map(|(n, c)| (n.to_string(), c.clone()))
            .collect(),
    }
}

fn compute_now(pod: &Pod, observed: &Observed) -> PodActions {
    compute(pod, observed, &BACKOFF, now())
}

fn started(actions: &PodActions) -> Vec<&str> {
    actions.start.iter().map(|s| s.name.as_str()).collect()
}

fn start(name: &str, init: bool, replaces: Option<&str>) -> ContainerToStart {
    ContainerToStart {
        name: name.into(),
        init,
        replaces: replaces.map(str::to_string),
        retry_at: None,
    }
}

// === Sandbox ===

#[test]
fn a_new_pod_gets_a_sandbox_and_every_app_container() {
    let p = pod("Always", &[], &[("a", "img:1"), ("b", "img:1")]);
    let actions = compute_now(&p, &Observed::default());
    assert_eq!(actions.sandbox, SandboxAction::Create);
    assert_eq!(actions.init, Init::Done);
    assert_eq!(
        actions.start,
        vec![start("a", false, None), start("b", false, None)]
    );
    assert!(actions.kill.is_empty());
    assert_eq!(actions.finished, None);
}

#[test]
fn a_running_pod_is_kept_and_its_containers_probed() {
    let p = pod("Always", &[], &[("a", "img:1")]);
    let actions = compute_now(&p, &observed(&[("a", running("c1", "img:1"))]));
    assert_eq!(actions.sandbox, SandboxAction::Keep);
    assert!(actions.start.is_empty() && actions.kill.is_empty());
    assert_eq!(
        actions.probe,
        vec![Running {
            name: "a".into(),
            id: "c1".into(),
            started_at: at(-60),
        }]
    );
}

#[test]
fn an_outdated_sandbox_config_is_updated() {
    let p = pod("Always", &[], &[("a", "img:1")]);
    let mut o = observed(&[("a", running("c1", "img:1"))]);
    o.sandbox_outdated = true;
    assert_eq!(compute_now(&p, &o).sandbox, SandboxAction::Update);
}

#[test]
fn a_lost_sandbox_is_recreated_and_every_container_starts_afresh() {
    // Whatever the policy and however the containers ended: the rule of
    // kedge (Kubernetes would leave a Never pod's ended containers).
    for policy in ["Always", "OnFailure", "Never"] {
        let p = pod(policy, &[], &[("a", "img:1"), ("b", "img:1")]);
        let mut o = observed(&[
            ("a", running("c1", "img:1")),
            ("b", exited("c2", "img:1", 0, -5)),
        ]);
        o.sandbox = ObservedSandbox::Lost { id: "sb".into() };
        let actions = compute_now(&p, &o);
        assert_eq!(
            actions.sandbox,
            SandboxAction::Recreate { old: "sb".into() },
            "{policy}"
        );
        // The executor counts their restarts while replacing the sandbox,
        // so the new containers replace nothing.
        assert_eq!(
            actions.start,
            vec![start("a", false, None), start("b", false, None)],
            "{policy}"
        );
        assert!(actions.kill.is_empty() && actions.probe.is_empty());
        assert_eq!(actions.finished, None, "{policy}");
    }
}

#[test]
fn a_lost_sandbox_runs_the_init_containers_again_from_the_first() {
    let p = pod(
        "Always",
        &[("i1", "img:1"), ("i2", "img:1")],
        &[("a", "img:1")],
    );
    let mut o = observed(&[
        ("i1", exited("c1", "img:1", 0, -50)),
        ("i2", exited("c2", "img:1", 0, -40)),
        ("a", running("c3", "img:1")),
    ]);
    o.sandbox = ObservedSandbox::Lost { id: "sb".into() };
    let actions = compute_now(&p, &o);
    assert_eq!(actions.start, vec![start("i1", true, None)]);
    assert_eq!(actions.init, Init::Pending);
}

// === Init containers ===

#[test]
fn init_containers_run_one_at_a_time_in_order() {
    let p = pod(
        "Always",
        &[("i1", "img:1"), ("i2", "img:1")],
        &[("a", "img:1")],
    );
    // Nothing yet: the first init container only.
    let actions = compute_now(&p, &observed(&[]));
    assert_eq!(actions.start, vec![start("i1", true, None)]);
    assert_eq!(actions.init, Init::Pending);

    // The first runs: nothing else starts.
    let actions = compute_now(&p, &observed(&[("i1", running("c1", "img:1"))]));
    assert!(actions.start.is_empty(), "{actions:?}");
    assert!(actions.probe.is_empty());
    assert_eq!(actions.init, Init::Pending);

    // The first completed: the second.
    let actions = compute_now(&p, &observed(&[("i1", exited("c1", "img:1", 0, -5))]));
    assert_eq!(actions.start, vec![start("i2", true, None)]);
    assert_eq!(actions.init, Init::Pending);

    // Both completed: the app containers.
    let actions = compute_now(
        &p,
        &observed(&[
            ("i1", exited("c1", "img:1", 0, -5)),
            ("i2", exited("c2", "img:1", 0, -2)),
        ]),
    );
    assert_eq!(actions.init, Init::Done);
    assert_eq!(actions.start, vec![start("a", false, None)]);
}

#[test]
fn a_failed_init_container_restarts_unless_the_pod_never_restarts() {
    for policy in ["Always", "OnFailure"] {
        let p = pod(
            policy,
            &[("i1", "img:1"), ("i2", "img:1")],
            &[("a", "img:1")],
        );
        let actions = compute_now(&p, &observed(&[("i1", exited("c1", "img:1", 1, -5))]));
        assert_eq!(
            actions.start,
            vec![start("i1", true, Some("c1"))],
            "{policy}"
        );
        assert_eq!(actions.init, Init::Pending, "{policy}");
        assert_eq!(actions.finished, None, "{policy}");
    }
    let p = pod(
        "Never",
        &[("i1", "img:1"), ("i2", "img:1")],
        &[("a", "img:1")],
    );
    let actions = compute_now(&p, &observed(&[("i1", exited("c1", "img:1", 1, -5))]));
    assert!(actions.start.is_empty(), "{actions:?}");
    assert_eq!(actions.init, Init::Failed("i1".into()));
    assert_eq!(actions.finished, Some(Outcome::Failed));
}

#[test]
fn a_failed_init_container_backs_off_like_an_app_container() {
    let p = pod("OnFailure", &[("i1", "img:1")], &[("a", "img:1")]);
    let mut i1 = exited("c1", "img:1", 1, -5);
    i1.restart_count = 1;
    let actions = compute_now(&p, &observed(&[("i1", i1)]));
    assert!(actions.start.is_empty());
    assert_eq!(
        actions.backing_off,
        vec![BackingOff {
            name: "i1".into(),
            until: at(5),
        }]
    );
    assert_eq!(actions.init, Init::Pending);
}

// === Restart policies ===

#[test]
fn ended_containers_follow_the_restart_policy() {
    // (policy, exit code, restarts, finished)
    let cases = [
        ("Always", 0, true, None),
        ("Always", 1, true, None),
        ("OnFailure", 0, false, Some(Outcome::Succeeded)),
        ("OnFailure", 1, true, None),
        ("Never", 0, false, Some(Outcome::Succeeded)),
        ("Never", 1, false, Some(Outcome::Failed)),
    ];
    for (policy, code, restarts, finished) in cases {
        let p = pod(policy, &[], &[("a", "img:1")]);
        let actions = compute_now(&p, &observed(&[("a", exited("c1", "img:1", code, -5))]));
        let expected = if restarts {
            vec![start("a", false, Some("c1"))]
        } else {
            vec![]
        };
        assert_eq!(actions.start, expected, "{policy} exit {code}");
        assert_eq!(actions.finished, finished, "{policy} exit {code}");
        assert_eq!(actions.init, Init::Done);
    }
}

#[test]
fn a_pod_is_finished_only_when_every_container_ended_for_good() {
    let p = pod("Never", &[], &[("a", "img:1"), ("b", "img:1")]);
    // One still runs.
    let actions = compute_now(
        &p,
        &observed(&[
            ("a", exited("c1", "img:1", 0, -5)),
            ("b", running("c2", "img:1")),
        ]),
    );
    assert_eq!(actions.finished, None);
    // Both ended, one failed.
    let actions = compute_now(
        &p,
        &observed(&[
            ("a", exited("c1", "img:1", 0, -5)),
            ("b", exited("c2", "img:1", 2, -5)),
        ]),
    );
    assert_eq!(actions.finished, Some(Outcome::Failed));
    // One was never made: it starts.
    let actions = compute_now(&p, &observed(&[("a", exited("c1", "img:1", 0, -5))]));
    assert_eq!(started(&actions), ["b"]);
    assert_eq!(actions.finished, None);
}

#[test]
fn a_container_whose_successor_could_not_be_made_keeps_the_pod_going() {
    // Its status shows why it waits (ErrImagePull, …), so the pod's phase
    // does not end either.
    let p = pod("OnFailure", &[], &[("a", "img:2")]);
    let mut a = exited("c1", "img:1", 0, -5);
    a.retry_at = Some(at(-1));
    let actions = compute_now(&p, &observed(&[("a", a)]));
    assert_eq!(actions.finished, None);
}

// === Spec changes ===

#[test]
fn a_new_image_in_the_spec_replaces_the_container_whatever_the_policy() {
    for policy in ["Always", "OnFailure", "Never"] {
        let p = pod(policy, &[], &[("a", "img:2"), ("b", "img:1")]);
        let actions = compute_now(
            &p,
            &observed(&[("a", running("c1", "img:1")), ("b", running("c2", "img:1"))]),
        );
        assert_eq!(
            actions.kill,
            vec![ContainerToKill {
                name: "a".into(),
                id: "c1".into(),
                reason: KillReason::SpecChanged,
                grace: Duration::ZERO,
                graceful: false,
            }],
            "{policy}"
        );
        assert_eq!(
            actions.start,
            vec![start("a", false, Some("c1"))],
            "{policy}"
        );
        // Only the unchanged one is kept (and probed).
        let probed: Vec<&str> = actions.probe.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(probed, ["b"], "{policy}");
    }
}

#[test]
fn a_created_container_waits_unless_its_image_changed() {
    let created = |image: &str| ObservedContainer {
        id: Some("c1".into()),
        state: Some(ContainerState::Created),
        image: image.into(),
        ..Default::default()
    };
    let p = pod("Always", &[], &[("a", "img:2")]);
    let actions = compute_now(&p, &observed(&[("a", created("img:2"))]));
    assert!(actions.start.is_empty() && actions.kill.is_empty() && actions.probe.is_empty());
    let actions = compute_now(&p, &observed(&[("a", created("img:1"))]));
    assert_eq!(actions.kill.len(), 1);
    assert_eq!(actions.start, vec![start("a", false, Some("c1"))]);
}

// === Back-off ===

#[test]
fn the_first_restart_is_immediate() {
    let p = pod("Always", &[], &[("a", "img:1")]);
    let actions = compute_now(&p, &observed(&[("a", exited("c1", "img:1", 1, 0))]));
    assert_eq!(started(&actions), ["a"]);
    assert!(actions.backing_off.is_empty());
}

#[test]
fn later_restarts_wait_for_a_doubling_back_off() {
    let p = pod("Always", &[], &[("a", "img:1")]);
    // Two restarts so far: the third waits 20 s from the end of the run.
    let mut a = exited("c1", "img:1", 1, -5);
    a.restart_count = 2;
    let actions = compute_now(&p, &observed(&[("a", a.clone())]));
    assert!(actions.start.is_empty(), "{actions:?}");
    assert_eq!(
        actions.backing_off,
        vec![BackingOff {
            name: "a".into(),
            until: at(15),
        }]
    );
    assert_eq!(actions.finished, None);

    // Once it is over, the container restarts.
    let actions = compute(&p, &observed(&[("a", a)]), &BACKOFF, at(15));
    assert_eq!(actions.start, vec![start("a", false, Some("c1"))]);
    assert!(actions.backing_off.is_empty());
}

#[test]
fn back_off_counts_from_where_it_last_started_afresh() {
    let p = pod("Always", &[], &[("a", "img:1")]);
    let mut a = exited("c1", "img:1", 1, -5);
    a.restart_count = 7;
    a.backoff_base = 6;
    let actions = compute_now(&p, &observed(&[("a", a)]));
    assert_eq!(actions.backing_off[0].until, at(5));
}

#[test]
fn a_long_run_starts_the_back_off_afresh() {
    let p = pod("Always", &[], &[("a", "img:1")]);
    let mut a = exited("c1", "img:1", 1, -5);
    a.restart_count = 9;
    // It ran for twice the longest back-off.
    a.state = Some(ContainerState::Exited {
        started_at: Some(at(-605)),
        finished_at: at(-5),
        exit_code: 1,
        reason: "Error".into(),
    });
    let actions = compute_now(&p, &observed(&[("a", a)]));
    assert_eq!(actions.backoff_resets, ["a"]);
    assert_eq!(started(&actions), ["a"]);
}

#[test]
fn a_failed_attempt_defers_the_next_until_its_retry() {
    let p = pod("Always", &[], &[("a", "img:1")]);
    let waiting = |retry: i64| ObservedContainer {
        retry_at: Some(at(retry)),
        ..Default::default()
    };
    let actions = compute_now(&p, &observed(&[("a", waiting(30))]));
    assert_eq!(actions.start[0].retry_at, Some(at(30)));
    let actions = compute_now(&p, &observed(&[("a", waiting(-1))]));
    assert_eq!(actions.start[0].retry_at, None);
}

#[test]
fn back_off_doubles_up_to_the_longest() {
    assert_eq!(BACKOFF.delay(1), Duration::from_secs(10));
    assert_eq!(BACKOFF.delay(2), Duration::from_secs(20));
    assert_eq!(BACKOFF.delay(5), Duration::from_secs(160));
    assert_eq!(BACKOFF.delay(6), Duration::from_secs(300));
    assert_eq!(BACKOFF.delay(u32::MAX), Duration::from_secs(300));
}

// === Lifecycle and stopping ===

#[test]
fn the_lifecycle_follows_deletion_then_the_phase() {
    let mut p = pod("Always", &[], &[("a", "img:1")]);
    assert_eq!(lifecycle(&p, false), Lifecycle::Run);
    assert_eq!(lifecycle(&p, true), Lifecycle::Finished);
    p.status = Some(k8s_openapi::api::core::v1::PodStatus {
        phase: Some("Succeeded".into()),
        ..Default::default()
    });
    assert_eq!(lifecycle(&p, false), Lifecycle::EnsureStopped);
    p.metadata.deletion_timestamp = Some(Time(now()));
    p.metadata.deletion_grace_period_seconds = Some(12);
    for terminal in [false, true] {
        assert_eq!(
            lifecycle(&p, terminal),
            Lifecycle::Terminate {
                grace: Duration::from_secs(12)
            }
        );
    }
}

#[test]
fn a_pod_stops_its_containers_together_then_its_sandbox() {
    let p = pod(
        "Always",
        &[("i1", "img:1")],
        &[("a", "img:1"), ("b", "img:1")],
    );
    let held = [("zz-adopted", "c9"), ("b", "c3"), ("i1", "c1"), ("a", "c2")];
    let grace = Duration::from_secs(5);
    let plan = stop_pod(Some(&p), held, Some("sb"), grace);
    let order: Vec<(&str, bool)> = plan
        .containers
        .iter()
        .map(|k| (k.name.as_str(), k.graceful))
        .collect();
    // The spec's order; one the spec does not know stops without hooks.
    assert_eq!(
        order,
        [
            ("i1", true),
            ("a", true),
            ("b", true),
            ("zz-adopted", false)
        ]
    );
    assert!(plan
        .containers
        .iter()
        .all(|k| k.grace == grace && k.reason == KillReason::PodStopping));
    assert_eq!(plan.sandbox.as_deref(), Some("sb"));

    // Gone from the API, or no grace period: nothing is graceful.
    let plan = stop_pod(None, held, Some("sb"), grace);
    assert!(plan.containers.iter().all(|k| !k.graceful));
    let plan = stop_pod(Some(&p), held, None, Duration::ZERO);
    assert!(plan.containers.iter().all(|k| !k.graceful));
    assert_eq!(plan.sandbox, None);
}

#[test]
fn a_probe_kill_gets_the_pods_grace_period() {
    let p = pod("Always", &[], &[("a", "img:1")]);
    let k = probe_kill(&p, "a", "c1", ProbeKind::Liveness, "failed".into());
    assert_eq!(k.grace, Duration::from_secs(7));
    assert!(k.graceful);
    assert_eq!(
        k.reason,
        KillReason::Probe {
            kind: ProbeKind::Liveness,
            message: "failed".into()
        }
    );
}
