//! API errors as `metav1.Status` objects, the shape kubectl and kube-rs read.

use serde_json::{json, Value};

use crate::store::StoreError;
use kedge_config::validation::FieldError;

/// An error answered to an API client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Machine-readable reason (`NotFound`, `Conflict`, `Invalid`, …).
    pub reason: &'static str,
    /// Human-readable message, printed by kubectl.
    pub message: String,
    /// `details` of the Status, if any.
    pub details: Option<Value>,
}

/// Result of a request handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// The same error with `details` in its Status.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 404 NotFound for an object.
    pub fn not_found(plural: &str, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{plural} \"{name}\" not found"))
            .with_details(json!({"name": name, "kind": plural}))
    }

    /// 404 for a path that serves nothing.
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    /// 429 TooManyRequests (an eviction a disruption budget refuses).
    pub fn too_many_requests(message: impl Into<String>) -> Self {
        Self::new(429, "TooManyRequests", message)
    }

    /// The same error naming the object it is about in its details.
    pub fn with_name(mut self, name: &str) -> Self {
        let mut details = self.details.take().unwrap_or_else(|| json!({}));
        details["name"] = json!(name);
        self.details = Some(details);
        self
    }

    /// 413 RequestEntityTooLarge, in kube-apiserver's words.
    pub fn request_entity_too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// 409 AlreadyExists.
    pub fn already_exists(plural: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{plural} \"{name}\" already exists"),
        )
        .with_details(json!({"name": name, "kind": plural}))
    }

    /// 409 Conflict on a stale resourceVersion.
    pub fn conflict(plural: &str, group: &str, name: &str) -> Self {
        let what = if group.is_empty() {
            plural.to_string()
        } else {
            format!("{plural}.{group}")
        };
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {what} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"),
        )
        .with_details(json!({"name": name, "group": group, "kind": plural}))
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// 410 Expired (a watch or continue token too old).
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, "UnsupportedMediaType", message)
    }

    /// 422 Invalid with one cause per field error.
    pub fn invalid(kind: &str, group: &str, name: &str, errors: &[FieldError]) -> Self {
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| json!({"reason": e.reason(), "message": e.message(), "field": e.field}))
            .collect();
        let list = errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let list = if errors.len() > 1 {
            format!("[{list}]")
        } else {
            list
        };
        let mut details = json!({"name": name, "kind": kind, "causes": causes});
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        Self::new(
            422,
            "Invalid",
            format!("{kind} \"{name}\" is invalid: {list}"),
        )
        .with_details(details)
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// The metav1.Status body.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }

    /// Map a storage error for an object.
    pub fn from_store(e: StoreError, plural: &str, group: &str, name: &str) -> Self {
        match e {
            StoreError::AlreadyExists => Self::already_exists(plural, name),
            StoreError::NotFound => Self::not_found(plural, name),
            StoreError::Conflict => Self::conflict(plural, group, name),
            StoreError::Expired { requested, oldest } => {
                Self::expired(format!("too old resource version: {requested} ({oldest})"))
            }
            StoreError::Backend(m) => Self::internal(m),
        }
    }
}

/// A Status reporting success (deletecollection and some deletes).
pub fn success_status(details: Value) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}
