//! Jobs. (batch/v1)

use k8s_openapi::api::batch;
use kedge_config::object;

use super::super::{Resource, ALL_VERBS, STATUS};
use super::{openapi, Admission, Kind, OnCreate};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "batch",
        version: "v1",
        plural: "jobs",
        singular: "job",
        kind: "Job",
        namespaced: true,
        short_names: &[],
        categories: &["all"],
        subresources: &[STATUS],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &["status.successful"],
    },
    admission: Admission::Typed(object::JOB),
    openapi: openapi::<batch::v1::Job>,
    pod_spec: "spec.template.spec",
    generation: true,
    on_create: OnCreate::EmptyStatus,
};
