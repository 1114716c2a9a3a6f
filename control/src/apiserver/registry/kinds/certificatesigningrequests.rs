//! CertificateSigningRequests. (certificates.k8s.io/v1)

use k8s_openapi::api::certificates;
use kedge_config::object;

use super::super::{Resource, Subresource, ALL_VERBS, STATUS, STATUS_VERBS};
use super::{openapi, Admission, Kind, OnCreate};

/// `certificatesigningrequests/approval`: where approvers write the
/// Approved or Denied condition.
const APPROVAL: Subresource = Subresource {
    name: "approval",
    verbs: STATUS_VERBS,
    ..STATUS
};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "certificates.k8s.io",
        version: "v1",
        plural: "certificatesigningrequests",
        singular: "certificatesigningrequest",
        kind: "CertificateSigningRequest",
        namespaced: false,
        short_names: &["csr"],
        categories: &[],
        subresources: &[STATUS, APPROVAL],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &["spec.signerName"],
    },
    admission: Admission::Typed(object::CERTIFICATE_SIGNING_REQUEST),
    openapi: openapi::<certificates::v1::CertificateSigningRequest>,
    pod_spec: "",
    generation: false,
    on_create: OnCreate::EmptyStatus,
};
