//! Workload status as Go's encoding leaves it. kube-apiserver decodes every
//! write into the Go types and encodes it back, so a zero in a plain
//! `omitempty` field never reaches a client (`readyReplicas: 0` reads back as
//! absent, and `jsonpath='{.status.readyReplicas}'` prints nothing), while
//! an int without `omitempty` is always there, 0 when unset.
//!
//! One table, by JSON name, from the Go types (k8s.io/api apps/v1 and batch/v1
//! `types.go`). Pointer fields (`collisionCount`, `terminatingReplicas`, Job's
//! `ready` and `terminating`) are not listed: Go keeps an explicit 0 there.
//! The protobuf decoder's field tables (`protobuf.rs`) say the same of the same
//! types; a test below holds the two together.

use serde_json::{json, Map, Value};

/// The status fields of one kind whose encoding depends on their value.
struct StatusFields {
    /// Plain (non-pointer) fields with `omitempty`: left out when 0, "" or
    /// an empty list. A dotted name reaches into a pointer struct, which
    /// itself stays even when empty.
    omitempty: &'static [&'static str],
    /// Plain ints without `omitempty`: always written, 0 when unset.
    always: &'static [&'static str],
}

fn status_fields(group: &str, kind: &str) -> Option<StatusFields> {
    Some(match (group, kind) {
        ("apps", "Deployment") => StatusFields {
            omitempty: &[
                "observedGeneration",
                "replicas",
                "updatedReplicas",
                "readyReplicas",
                "availableReplicas",
                "unavailableReplicas",
                "conditions",
            ],
            always: &[],
        },
        ("apps", "ReplicaSet") | ("", "ReplicationController") => StatusFields {
            omitempty: &[
                "fullyLabeledReplicas",
                "readyReplicas",
                "availableReplicas",
                "observedGeneration",
                "conditions",
            ],
            always: &["replicas"],
        },
        ("apps", "StatefulSet") => StatusFields {
            omitempty: &[
                "observedGeneration",
                "readyReplicas",
                "currentReplicas",
                "updatedReplicas",
                "currentRevision",
                "updateRevision",
                "conditions",
            ],
            always: &["replicas", "availableReplicas"],
        },
        ("apps", "DaemonSet") => StatusFields {
            omitempty: &[
                "observedGeneration",
                "updatedNumberScheduled",
                "numberAvailable",
                "numberUnavailable",
                "conditions",
            ],
            always: &[
                "currentNumberScheduled",
                "numberMisscheduled",
                "desiredNumberScheduled",
                "numberReady",
            ],
        },
        ("batch", "Job") => StatusFields {
            omitempty: &[
                "conditions",
                "active",
                "succeeded",
                "failed",
                "completedIndexes",
                "uncountedTerminatedPods.succeeded",
                "uncountedTerminatedPods.failed",
            ],
            always: &[],
        },
        ("batch", "CronJob") => StatusFields {
            omitempty: &["active"],
            always: &[],
        },
        _ => return None,
    })
}

/// Drop the lists and maps of `metadata` Go omits when empty (a
/// dependent orphaned of its last owner has no `ownerReferences: []`).
pub fn normalize_meta(obj: &mut Value) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    for field in ["labels", "annotations", "ownerReferences", "finalizers"] {
        let empty = match meta.get(field) {
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Object(o)) => o.is_empty(),
            Some(Value::Null) => true,
            _ => false,
        };
        if empty {
            meta.remove(field);
        }
    }
}

/// Bring `obj.status` to the shape Go's round trip gives it, for the kinds in
/// the table; other kinds are left alone. The status struct itself is never
/// omitted by Go, so a missing one becomes `{}` first.
pub fn normalize_status(group: &str, kind: &str, obj: &mut Value) {
    let Some(fields) = status_fields(group, kind) else {
        return;
    };
    let Some(o) = obj.as_object_mut() else {
        return;
    };
    let status = o.entry("status").or_insert_with(|| json!({}));
    if !status.is_object() {
        *status = json!({});
    }
    let Some(status) = status.as_object_mut() else {
        return;
    };
    for name in fields.omitempty {
        let (parent, field) = match name.split_once('.') {
            Some((p, f)) => match status.get_mut(p).and_then(Value::as_object_mut) {
                Some(inner) => (inner, f),
                None => continue,
            },
            None => (&mut *status, *name),
        };
        if parent.get(field).is_some_and(is_go_zero) {
            parent.remove(field);
        }
    }
    for name in fields.always {
        fill_zero(status, name);
    }
}

/// Whether Go's `omitempty` drops this value (decoding `null` into a plain
/// field leaves its zero, so that goes too).
fn is_go_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(_) => false,
    }
}

fn fill_zero(o: &mut Map<String, Value>, name: &str) {
    match o.get(name) {
        Some(v) if !v.is_null() => {}
        _ => {
            o.insert(name.into(), json!(0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalized(group: &str, kind: &str, status: Value) -> Value {
        let mut obj = json!({"metadata": {"name": "x"}, "status": status});
        normalize_status(group, kind, &mut obj);
        obj["status"].clone()
    }

    #[test]
    fn zero_counters_are_dropped_and_others_kept() {
        let s = normalized(
            "apps",
            "Deployment",
            json!({
                "observedGeneration": 2, "replicas": 3, "updatedReplicas": 3,
                "readyReplicas": 0, "availableReplicas": 0, "unavailableReplicas": 3,
                "collisionCount": 0, "terminatingReplicas": 0, "conditions": [],
            }),
        );
        assert_eq!(
            s,
            json!({
                "observedGeneration": 2, "replicas": 3, "updatedReplicas": 3,
                "unavailableReplicas": 3, "collisionCount": 0, "terminatingReplicas": 0,
            })
        );
        let s = normalized("apps", "Deployment", json!({"readyReplicas": 2}));
        assert_eq!(s, json!({"readyReplicas": 2}));
    }

    #[test]
    fn plain_ints_without_omitempty_are_always_there() {
        assert_eq!(
            normalized("apps", "ReplicaSet", json!({"readyReplicas": 0})),
            json!({"replicas": 0})
        );
        assert_eq!(
            normalized(
                "apps",
                "StatefulSet",
                json!({"replicas": 2, "readyReplicas": 0})
            ),
            json!({"replicas": 2, "availableReplicas": 0})
        );
        assert_eq!(
            normalized("apps", "DaemonSet", json!({"numberReady": null})),
            json!({
                "currentNumberScheduled": 0, "numberMisscheduled": 0,
                "desiredNumberScheduled": 0, "numberReady": 0,
            })
        );
    }

    #[test]
    fn job_pointers_keep_zero_and_empty_lists_go() {
        let s = normalized(
            "batch",
            "Job",
            json!({
                "active": 0, "succeeded": 1, "failed": 0, "ready": 0, "terminating": 0,
                "completedIndexes": "", "failedIndexes": "",
                "uncountedTerminatedPods": {"succeeded": [], "failed": ["u1"]},
            }),
        );
        assert_eq!(
            s,
            json!({
                "succeeded": 1, "ready": 0, "terminating": 0, "failedIndexes": "",
                "uncountedTerminatedPods": {"failed": ["u1"]},
            })
        );
        let s = normalized(
            "batch",
            "Job",
            json!({"uncountedTerminatedPods": {"succeeded": [], "failed": []}}),
        );
        assert_eq!(s, json!({"uncountedTerminatedPods": {}}));
        assert_eq!(
            normalized("batch", "CronJob", json!({"active": []})),
            json!({})
        );
    }

    #[test]
    fn missing_status_is_created_and_other_kinds_untouched() {
        let mut rs = json!({"metadata": {"name": "x"}});
        normalize_status("apps", "ReplicaSet", &mut rs);
        assert_eq!(rs["status"], json!({"replicas": 0}));
        let mut pod = json!({"metadata": {"name": "x"}, "status": {"restartCount": 0}});
        let before = pod.clone();
        normalize_status("", "Pod", &mut pod);
        assert_eq!(pod, before);
    }

    /// Every status field at its zero value, as the typed (k8s-openapi)
    /// status writes it, normalized here, must equal what the protobuf
    /// decoder makes of the same all-zero status from its own field tables.
    /// Both structs are listed field by field (no `..Default::default()`), so
    /// a field added to either type fails to compile until it is considered.
    mod against_protobuf {
        use super::*;
        use crate::apiserver::protobuf;
        use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch};
        use k8s_pb::api::{apps::v1 as pb_apps, batch::v1 as pb_batch};
        use k8s_pb::apimachinery::pkg::runtime;
        use prost::Message;

        /// The status the protobuf decoder writes for `object`.
        fn decoded<M: Message>(api_version: &str, kind: &str, object: &M) -> Value {
            let unknown = runtime::Unknown {
                type_meta: Some(runtime::TypeMeta {
                    api_version: Some(api_version.into()),
                    kind: Some(kind.into()),
                }),
                raw: Some(object.encode_to_vec()),
                content_encoding: Some(String::new()),
                content_type: Some(String::new()),
            };
            let mut body = b"k8s\0".to_vec();
            body.extend(unknown.encode_to_vec());
            protobuf::decode(&body).unwrap()["status"].clone()
        }

        /// `go` is the decoder's all-zero status, `unset` its status with
        /// nothing set (where only the always-present ints show).
        fn check(group: &str, kind: &str, typed: impl serde::Serialize, go: Value, unset: Value) {
            let ours = normalized(group, kind, serde_json::to_value(typed).unwrap());
            assert_eq!(ours, go, "{kind} status, all zero");
            assert_eq!(
                normalized(group, kind, json!({})),
                unset,
                "{kind} status, unset"
            );
        }

        #[test]
        fn deployment() {
            let typed = apps::DeploymentStatus {
                available_replicas: Some(0),
                collision_count: Some(0),
                conditions: Some(vec![]),
                observed_generation: Some(0),
                ready_replicas: Some(0),
                replicas: Some(0),
                terminating_replicas: Some(0),
                unavailable_replicas: Some(0),
                updated_replicas: Some(0),
            };
            let pb = pb_apps::Deployment {
                metadata: None,
                spec: None,
                status: Some(pb_apps::DeploymentStatus {
                    observed_generation: Some(0),
                    replicas: Some(0),
                    updated_replicas: Some(0),
                    ready_replicas: Some(0),
                    available_replicas: Some(0),
                    unavailable_replicas: Some(0),
                    terminating_replicas: Some(0),
                    conditions: vec![],
                    collision_count: Some(0),
                }),
            };
            let unset = pb_apps::Deployment {
                status: Some(Default::default()),
                ..Default::default()
            };
            check(
                "apps",
                "Deployment",
                typed,
                decoded("apps/v1", "Deployment", &pb),
                decoded("apps/v1", "Deployment", &unset),
            );
        }

        #[test]
        fn replica_set() {
            let typed = apps::ReplicaSetStatus {
                available_replicas: Some(0),
                conditions: Some(vec![]),
                fully_labeled_replicas: Some(0),
                observed_generation: Some(0),
                ready_replicas: Some(0),
                replicas: 0,
                terminating_replicas: Some(0),
            };
            let pb = pb_apps::ReplicaSet {
                metadata: None,
                spec: None,
                status: Some(pb_apps::ReplicaSetStatus {
                    replicas: Some(0),
                    fully_labeled_replicas: Some(0),
                    ready_replicas: Some(0),
                    available_replicas: Some(0),
                    terminating_replicas: Some(0),
                    observed_generation: Some(0),
                    conditions: vec![],
                }),
            };
            let unset = pb_apps::ReplicaSet {
                status: Some(Default::default()),
                ..Default::default()
            };
            check(
                "apps",
                "ReplicaSet",
                typed,
                decoded("apps/v1", "ReplicaSet", &pb),
                decoded("apps/v1", "ReplicaSet", &unset),
            );
        }

        #[test]
        fn stateful_set() {
            let typed = apps::StatefulSetStatus {
                available_replicas: Some(0),
                collision_count: Some(0),
                conditions: Some(vec![]),
                current_replicas: Some(0),
                current_revision: Some(String::new()),
                observed_generation: Some(0),
                ready_replicas: Some(0),
                replicas: 0,
                update_revision: Some(String::new()),
                updated_replicas: Some(0),
            };
            let pb = pb_apps::StatefulSet {
                metadata: None,
                spec: None,
                status: Some(pb_apps::StatefulSetStatus {
                    observed_generation: Some(0),
                    replicas: Some(0),
                    ready_replicas: Some(0),
                    current_replicas: Some(0),
                    updated_replicas: Some(0),
                    current_revision: Some(String::new()),
                    update_revision: Some(String::new()),
                    collision_count: Some(0),
                    conditions: vec![],
                    available_replicas: Some(0),
                }),
            };
            let unset = pb_apps::StatefulSet {
                status: Some(Default::default()),
                ..Default::default()
            };
            check(
                "apps",
                "StatefulSet",
                typed,
                decoded("apps/v1", "StatefulSet", &pb),
                decoded("apps/v1", "StatefulSet", &unset),
            );
        }

        #[test]
        fn daemon_set() {
            let typed = apps::DaemonSetStatus {
                collision_count: Some(0),
                conditions: Some(vec![]),
                current_number_scheduled: 0,
                desired_number_scheduled: 0,
                number_available: Some(0),
                number_misscheduled: 0,
                number_ready: 0,
                number_unavailable: Some(0),
                observed_generation: Some(0),
                updated_number_scheduled: Some(0),
            };
            let pb = pb_apps::DaemonSet {
                metadata: None,
                spec: None,
                status: Some(pb_apps::DaemonSetStatus {
                    current_number_scheduled: Some(0),
                    number_misscheduled: Some(0),
                    desired_number_scheduled: Some(0),
                    number_ready: Some(0),
                    observed_generation: Some(0),
                    updated_number_scheduled: Some(0),
                    number_available: Some(0),
                    number_unavailable: Some(0),
                    collision_count: Some(0),
                    conditions: vec![],
                }),
            };
            let unset = pb_apps::DaemonSet {
                status: Some(Default::default()),
                ..Default::default()
            };
            check(
                "apps",
                "DaemonSet",
                typed,
                decoded("apps/v1", "DaemonSet", &pb),
                decoded("apps/v1", "DaemonSet", &unset),
            );
        }

        #[test]
        fn job() {
            // Times are pointers kept as written; left unset on both sides
            // as they have no zero worth comparing.
            let typed = batch::JobStatus {
                active: Some(0),
                completed_indexes: Some(String::new()),
                completion_time: None,
                conditions: Some(vec![]),
                failed: Some(0),
                failed_indexes: Some(String::new()),
                ready: Some(0),
                start_time: None,
                succeeded: Some(0),
                terminating: Some(0),
                uncounted_terminated_pods: Some(batch::UncountedTerminatedPods {
                    failed: Some(vec![]),
                    succeeded: Some(vec![]),
                }),
            };
            let pb = pb_batch::Job {
                metadata: None,
                spec: None,
                status: Some(pb_batch::JobStatus {
                    conditions: vec![],
                    start_time: None,
                    completion_time: None,
                    active: Some(0),
                    succeeded: Some(0),
                    failed: Some(0),
                    terminating: Some(0),
                    completed_indexes: Some(String::new()),
                    failed_indexes: Some(String::new()),
                    uncounted_terminated_pods: Some(pb_batch::UncountedTerminatedPods {
                        succeeded: vec![],
                        failed: vec![],
                    }),
                    ready: Some(0),
                }),
            };
            let unset = pb_batch::Job {
                status: Some(Default::default()),
                ..Default::default()
            };
            check(
                "batch",
                "Job",
                typed,
                decoded("batch/v1", "Job", &pb),
                decoded("batch/v1", "Job", &unset),
            );
        }

        #[test]
        fn cron_job() {
            let typed = batch::CronJobStatus {
                active: Some(vec![]),
                last_schedule_time: None,
                last_successful_time: None,
            };
            let pb = pb_batch::CronJob {
                metadata: None,
                spec: None,
                status: Some(pb_batch::CronJobStatus {
                    active: vec![],
                    last_schedule_time: None,
                    last_successful_time: None,
                }),
            };
            let unset = pb_batch::CronJob {
                status: Some(Default::default()),
                ..Default::default()
            };
            check(
                "batch",
                "CronJob",
                typed,
                decoded("batch/v1", "CronJob", &pb),
                decoded("batch/v1", "CronJob", &unset),
            );
        }
    }
}
