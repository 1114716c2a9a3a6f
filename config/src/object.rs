//! Object dispatcher (stub).
use serde_json::Value;
use crate::validation::FieldError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum AdmitError {
    #[error("{path}: {message}")]
    Decode { path: String, message: String },
    #[error("invalid")]
    Invalid(Vec<FieldError>),
}
pub fn admit(_group: &str, _kind: &str, obj: Value) -> Result<Value, AdmitError> { Ok(obj) }
pub fn unknown_fields(_group: &str, _kind: &str, _obj: &Value) -> Vec<String> { vec![] }
pub fn validate_update(_group: &str, _kind: &str, _old: &Value, _new: &Value) -> Vec<FieldError> { vec![] }
