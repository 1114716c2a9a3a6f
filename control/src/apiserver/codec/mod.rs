//! Request and response bodies: JSON and YAML (`body`), and kubectl's
//! protobuf bodies turned into Go-exact JSON (`protobuf`).

pub mod body;
pub mod protobuf;
