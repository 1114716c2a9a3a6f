//! EndpointSlices. (discovery.k8s.io/v1)

use k8s_openapi::api::discovery;
use kedge_config::object;

use super::super::{Resource, ALL_VERBS};
use super::{openapi, Admission, Kind, OnCreate};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "discovery.k8s.io",
        version: "v1",
        plural: "endpointslices",
        singular: "endpointslice",
        kind: "EndpointSlice",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &[],
    },
    admission: Admission::Typed(object::ENDPOINT_SLICE),
    openapi: openapi::<discovery::v1::EndpointSlice>,
    pod_spec: "",
    generation: false,
    on_create: OnCreate::AsGiven,
};
