//! kedge's node agent (kubelet): registers a Node, keeps its Lease and
//! status fresh, runs the pods bound to it through a container runtime, and
//! reports their status.
#![forbid(unsafe_code)]

pub mod hollow;
