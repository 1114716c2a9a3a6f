//! kedge's control plane: the API server (the only component that touches
//! the store), the storage backends and the watch cache, the scheduler and
//! the controllers (clients of the API like any other).

pub mod apiserver;
pub mod controllers;
pub mod leaderelection;
pub mod metrics;
pub mod scheduler;
pub mod server;
pub mod store;
/// Helpers for the tests of kedge's crates: a throw-away API server and
/// polling until a condition holds (the `test-util` feature).
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
