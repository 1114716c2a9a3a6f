//! Decoding request bodies (JSON, YAML, protobuf) and encoding responses.

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::{Response, StatusCode};
use serde_json::Value;

use crate::apiserver::protobuf;
use crate::apiserver::status::{ApiError, ApiResult};

/// Response body type of every handler: whole or streamed.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// A whole body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A JSON response.
pub fn json_response(code: u16, value: &Value) -> Response<Body> {
    json_response_typed(code, value, "application/json")
}

/// A JSON response with a specific Content-Type.
pub fn json_response_typed(code: u16, value: &Value, content_type: &str) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("Content-Type", content_type)
        .body(full(bytes))
        .expect("static response parts are valid")
}

/// The Status response of an error.
pub fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.to_status())
}

/// Decode an object body by its Content-Type.
pub fn decode_object(content_type: &str, body: &[u8]) -> ApiResult<Value> {
    if protobuf::is_protobuf(content_type) {
        return protobuf::decode(body).map_err(|e| match e {
            // A kind the decoder has no schema for: the client may retry
            // with JSON, as it would for any media type the server lacks.
            protobuf::DecodeError::UnknownKind { .. } => {
                ApiError::unsupported_media_type(e.to_string())
            }
            _ => ApiError::bad_request(format!("error decoding protobuf body: {e}")),
        });
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    let ct = content_type.to_ascii_lowercase();
    let value: Value = if ct.contains("yaml") {
        serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
    } else {
        serde_json::from_slice(body).or_else(|e| {
            // Some clients send YAML without saying so; accept it as
            // Kubernetes' universal decoder does.
            serde_yaml::from_slice(body).map_err(|_| {
                ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
            })
        })?
    };
    if !value.is_object() {
        return Err(ApiError::bad_request("the request body is not an object"));
    }
    Ok(value)
}
