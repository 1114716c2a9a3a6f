//! SelfSubjectReviews (authentication.k8s.io/v1): asked, answered, never stored.

use k8s_openapi::api::authentication;

use super::super::Resource;
use super::{openapi, Kind, REVIEW};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "authentication.k8s.io",
        version: "v1",
        plural: "selfsubjectreviews",
        singular: "selfsubjectreview",
        kind: "SelfSubjectReview",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        verbs: &["create"],
        custom: false,
        selectable_fields: &[],
    },
    openapi: openapi::<authentication::v1::SelfSubjectReview>,
    ..REVIEW
};
