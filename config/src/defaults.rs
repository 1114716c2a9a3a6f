//! Defaults (stub).
use k8s_openapi::api::core::v1::PodSpec;
pub fn add_default_tolerations(_spec: &mut PodSpec) {}
