//! Unit tests of pod phase and condition computation.

use super::*;
use k8s_openapi::api::core::v1::{Container, PodSpec};

fn pod(policy: &str, containers: &[&str], inits: &[&str]) -> Pod {
    let c = |n: &&str| Container {
        name: n.to_string(),
        ..Default::default()
    };
    Pod {
        spec: Some(PodSpec {
            restart_policy: Some(policy.into()),
            containers: containers.iter().map(c).collect(),
            init_containers: (!inits.is_empty()).then(|| inits.iter().map(c).collect()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn status(name: &str, state: ContainerState, last: Option<ContainerState>) -> ContainerStatus {
    ContainerStatus {
        name: name.into(),
        state: Some(state),
        last_state: last,
        ..Default::default()
    }
}

fn running() -> ContainerState {
    api_state(&runtime::ContainerState::Running {
        started_at: Timestamp::now(),
    })
}

fn exited(code: i32) -> ContainerState {
    api_state(&runtime::ContainerState::Exited {
        started_at: None,
        finished_at: Timestamp::now(),
        exit_code: code,
        reason: "Error".into(),
    })
}

#[test]
fn phases_follow_restart_policy() {
    let p = pod("Always", &["a"], &[]);
    assert_eq!(pod_phase(&p, &[], &[], false), phase::PENDING);
    let creating = status("a", waiting("ContainerCreating", None), None);
    assert_eq!(pod_phase(&p, &[], &[creating], false), phase::PENDING);
    let run = status("a", running(), None);
    assert_eq!(pod_phase(&p, &[], &[run], false), phase::RUNNING);
    let failed = status("a", exited(1), None);
    assert_eq!(
        pod_phase(&p, &[], std::slice::from_ref(&failed), false),
        phase::RUNNING
    );
    assert_eq!(
        pod_phase(&p, &[], std::slice::from_ref(&failed), true),
        phase::FAILED
    );
    let never = pod("Never", &["a"], &[]);
    assert_eq!(
        pod_phase(&never, &[], std::slice::from_ref(&failed), false),
        phase::FAILED
    );
    let done = status("a", exited(0), None);
    assert_eq!(pod_phase(&never, &[], &[done], false), phase::SUCCEEDED);
    let on_failure = pod("OnFailure", &["a"], &[]);
    assert_eq!(
        pod_phase(&on_failure, &[], &[failed], false),
        phase::RUNNING
    );
    let backoff = status("a", waiting("CrashLoopBackOff", None), Some(exited(1)));
    assert_eq!(
        pod_phase(&on_failure, &[], &[backoff], false),
        phase::RUNNING
    );
}

#[test]
fn init_containers_hold_the_pod_pending() {
    let p = pod("Never", &["a"], &["i"]);
    let init_running = status("i", running(), None);
    assert_eq!(pod_phase(&p, &[init_running], &[], false), phase::PENDING);
    let init_failed = status("i", exited(2), None);
    assert_eq!(pod_phase(&p, &[init_failed], &[], false), phase::FAILED);
}

#[test]
fn transition_times_stay_while_status_holds() {
    let t0 = Timestamp::from_second(1_000).unwrap();
    let mut c = Conditions::new(&[], t0);
    c.set("Ready", true, None, None);
    let first = c.finish();
    let t1 = Timestamp::from_second(2_000).unwrap();
    let mut c = Conditions::new(&first, t1);
    c.set("Ready", true, None, None);
    let same = c.finish();
    assert_eq!(same[0].last_transition_time, Some(Time(t0)));
    let mut c = Conditions::new(&same, t1);
    c.set("Ready", false, Some("ContainersNotReady"), None);
    let flipped = c.finish();
    assert_eq!(flipped[0].last_transition_time, Some(Time(t1)));
}
