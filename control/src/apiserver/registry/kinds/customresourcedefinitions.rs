//! CustomResourceDefinitions: their admission and lifecycle are in `apiserver::definitions`, the kinds they add in `registry::custom`. (apiextensions.k8s.io/v1)

use serde_json::Value;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;

use super::super::{Resource, ALL_VERBS, STATUS};
use super::{openapi, Admission, Kind, OnCreate};
use crate::apiserver::status::ApiResult;
use crate::apiserver::{definitions, ApiState};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "apiextensions.k8s.io",
        version: "v1",
        plural: "customresourcedefinitions",
        singular: "customresourcedefinition",
        kind: "CustomResourceDefinition",
        namespaced: false,
        short_names: &["crd", "crds"],
        categories: &["api-extensions"],
        subresources: &[STATUS],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &[],
    },
    admission: Admission::Rules {
        admit: definitions::admit,
        prepare_update: definitions::prepare_update,
        validate_update: definitions::validate_update,
    },
    openapi: openapi::<apiextensions::v1::CustomResourceDefinition>,
    pod_spec: "",
    generation: true,
    on_create: OnCreate::Prepare(prepare_create),
};

/// A new definition starts with an empty status and the cleanup finalizer.
fn prepare_create(_: &ApiState, crd: &mut Value) -> ApiResult<()> {
    definitions::prepare_create(crd);
    Ok(())
}
