//! The CronJob controller against an in-process API server, on a clock the
//! test moves. No Job controller runs: the test finishes Jobs itself
//! through jobs/status.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Event;
use kedge_control::controllers::cronjob::{self, ManualClock, SCHEDULED_TIMESTAMP};
use kedge_control::controllers::Context;
use kedge_control::testing::{self, eventually_within};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

mod raw_status;

async fn job_names(api: &Api<Job>) -> Vec<String> {
    let mut names: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|j| j.metadata.deletion_timestamp.is_none())
        .filter_map(|j| j.metadata.name)
        .collect();
    names.sort();
    names
}

/// Reasons of the events about the CronJob `tick`.
async fn reasons(events: &Api<Event>) -> Vec<String> {
    events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some("tick"))
        .filter_map(|e| e.reason)
        .collect()
}

async fn complete(api: &Api<Job>, name: &str) {
    let now = Timestamp::now().to_string();
    let patch = json!({"status": {"startTime": now, "completionTime": now, "succeeded": 1,
    "conditions": [
        {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now},
        {"type": "Complete", "status": "True", "lastTransitionTime": now}
    ]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn schedules_forbids_overlap_and_trims_history() {
    let api = testing::start().await;
    let client = api.client.clone();
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    tokio::spawn(cronjob::run_with_clock(
        Context::new(client.clone()),
        clock.clone(),
    ));

    let cjs: Api<CronJob> = Api::namespaced(client.clone(), "default");
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let cj: CronJob = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "tick", "namespace": "default"},
        "spec": {
            "schedule": "*/1 * * * *",
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 1,
            "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox"}]
            }}}}
        }
    }))
    .unwrap();
    cjs.create(&PostParams::default(), &cj).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(job_names(&jobs).await.is_empty(), "nothing is due yet");

    // The next minute comes: its Job is created, named by the minute.
    let minute = Timestamp::now().as_second() / 60 + 1;
    let m1 = Timestamp::from_second(minute * 60).unwrap();
    clock.set(m1 + SignedDuration::from_secs(1));
    let first = format!("tick-{minute}");
    eventually_within(10, "the first job", || async {
        job_names(&jobs).await == [first.clone()]
    })
    .await;
    let j = jobs.get(&first).await.unwrap();
    assert_eq!(
        j.metadata.annotations.unwrap()[SCHEDULED_TIMESTAMP],
        m1.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    );
    let owner = &j.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("CronJob", Some(true))
    );
    eventually_within(10, "active and lastScheduleTime", || async {
        let st = cjs.get("tick").await.unwrap().status.unwrap_or_default();
        st.active.is_some_and(|a| a.len() == 1) && st.last_schedule_time.is_some_and(|t| t.0 == m1)
    })
    .await;

    // Forbid: the next minute passes while the first Job still runs.
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    clock.set(m1 + SignedDuration::from_secs(61));
    // The controller has seen the due minute once it says why it waits.
    eventually_within(10, "a JobAlreadyActive event", || async {
        reasons(&events)
            .await
            .iter()
            .any(|r| r == "JobAlreadyActive")
    })
    .await;
    assert_eq!(job_names(&jobs).await, std::slice::from_ref(&first));

    // Once it completes, the missed minute's Job runs.
    complete(&jobs, &first).await;
    let second = format!("tick-{}", minute + 1);
    eventually_within(10, "the second job", || async {
        job_names(&jobs).await == [first.clone(), second.clone()]
    })
    .await;
    eventually_within(10, "lastSuccessfulTime", || async {
        let st = cjs.get("tick").await.unwrap().status.unwrap_or_default();
        st.last_successful_time.is_some() && st.active.is_some_and(|a| a.len() == 1)
    })
    .await;

    // History limit 1: completing the second deletes the first.
    complete(&jobs, &second).await;
    eventually_within(10, "history trimmed", || async {
        job_names(&jobs).await == [second.clone()]
    })
    .await;
    // Nothing runs: `active` is an omitempty list, absent when empty.
    eventually_within(10, "no active jobs", || async {
        let raw = raw_status::raw_status::<CronJob>(&client, "tick").await;
        raw.get("active").is_none() && raw.get("lastSuccessfulTime").is_some()
    })
    .await;

    // Events are recorded after the writes they report.
    for r in [
        "SuccessfulCreate",
        "SawCompletedJob",
        "SuccessfulDelete",
        "JobAlreadyActive",
    ] {
        eventually_within(10, &format!("a {r} event"), || async {
            reasons(&events).await.iter().any(|x| x == r)
        })
        .await;
    }
    drop(api);
}
