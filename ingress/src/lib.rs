//! kedge's ingress controller on Pingora. Ingresses of kedge's classes,
//! with the Services, EndpointSlices and Secrets they name, are compiled
//! into a route table ([`table`]); the proxy ([`proxy`]) matches each
//! request against whatever table is current and sends it straight to a
//! ready endpoint. A change compiles a new table and swaps it in: no
//! reload, no dropped connection.

#![deny(missing_docs)]

use std::sync::Arc;

pub mod annotations;
pub mod path;
pub mod table;
pub mod tls;

pub use table::{ClassConfig, RouteTable};

/// The `spec.controller` of kedge's IngressClasses.
pub const CONTROLLER_NAME: &str = "kedge.io/ingress";

/// The current route table, swapped whole on every change.
pub type Routes = arc_swap::ArcSwap<RouteTable>;

/// A fresh table store holding the empty table.
pub fn new_routes(fallback: Arc<tls::TlsCert>) -> Arc<Routes> {
    Arc::new(arc_swap::ArcSwap::from_pointee(RouteTable::empty(fallback)))
}
