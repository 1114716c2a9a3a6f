//! LocalSubjectAccessReviews (authorization.k8s.io/v1): asked, answered, never stored.

use k8s_openapi::api::authorization;

use super::super::Resource;
use super::{openapi, Kind, REVIEW};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "localsubjectaccessreviews",
        singular: "localsubjectaccessreview",
        kind: "LocalSubjectAccessReview",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        verbs: &["create"],
        custom: false,
        selectable_fields: &[],
    },
    openapi: openapi::<authorization::v1::LocalSubjectAccessReview>,
    ..REVIEW
};
