//! CronJobs. (batch/v1)

use k8s_openapi::api::batch;
use kedge_config::object;

use super::super::{Resource, ALL_VERBS, STATUS};
use super::{openapi, Admission, Kind, OnCreate};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "batch",
        version: "v1",
        plural: "cronjobs",
        singular: "cronjob",
        kind: "CronJob",
        namespaced: true,
        short_names: &["cj"],
        categories: &["all"],
        subresources: &[STATUS],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &[],
    },
    admission: Admission::Typed(object::CRON_JOB),
    openapi: openapi::<batch::v1::CronJob>,
    pod_spec: "spec.jobTemplate.spec.template.spec",
    generation: true,
    on_create: OnCreate::EmptyStatus,
};
