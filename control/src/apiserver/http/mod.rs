//! The HTTP side of the API: what a path and query ask for (`request`),
//! errors as Kubernetes `Status` (`status`), watch streams (`watch`), and
//! the lingering close after an early answer (`linger`).

pub mod linger;
pub mod request;
pub mod status;
pub mod watch;
