//! Validation of CertificateSigningRequests (`certificates.k8s.io/v1`), as
//! Kubernetes' `pkg/apis/certificates/validation`.

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;

use super::meta::{validate_object_meta, NameRule};
use super::FieldError;

const USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

/// CertificateSigningRequest.
pub fn validate_certificate_signing_request(csr: &CertificateSigningRequest) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&csr.metadata, NameRule::Any, "metadata");
    let spec = &csr.spec;
    let request = String::from_utf8_lossy(&spec.request.0);
    if !request.contains("-----BEGIN CERTIFICATE REQUEST-----") {
        errs.push(FieldError::invalid(
            "spec.request",
            "[]byte{...}",
            "PEM block type must be CERTIFICATE REQUEST",
        ));
    }
    if spec.signer_name.is_empty() {
        errs.push(FieldError::required("spec.signerName", ""));
    } else if !spec.signer_name.contains('/') {
        errs.push(FieldError::invalid_str(
            "spec.signerName",
            &spec.signer_name,
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        ));
    }
    if let Some(s) = spec.expiration_seconds {
        if s < 600 {
            errs.push(FieldError::invalid_int(
                "spec.expirationSeconds",
                i64::from(s),
                "may not specify a duration less than 600 seconds (10 minutes)",
            ));
        }
    }
    for (i, u) in spec.usages.iter().flatten().enumerate() {
        if !USAGES.contains(&u.as_str()) {
            errs.push(FieldError::not_supported(
                format!("spec.usages[{i}]"),
                u,
                USAGES,
            ));
        }
    }
    errs
}
