//! kedge's control plane: the API server (the only component that touches
//! the store), the storage backends and the watch cache.
#![forbid(unsafe_code)]

pub mod apiserver;
pub mod metrics;
pub mod server;
pub mod store;
