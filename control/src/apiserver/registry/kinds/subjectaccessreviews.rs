//! SubjectAccessReviews (authorization.k8s.io/v1): asked, answered, never stored.

use k8s_openapi::api::authorization;

use super::super::Resource;
use super::{openapi, Kind, REVIEW};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "subjectaccessreviews",
        singular: "subjectaccessreview",
        kind: "SubjectAccessReview",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        verbs: &["create"],
        custom: false,
        selectable_fields: &[],
    },
    openapi: openapi::<authorization::v1::SubjectAccessReview>,
    ..REVIEW
};
