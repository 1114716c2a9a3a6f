//! `kedge-config`: the shared vocabulary of kedge.
//!
//! * [`k8s_openapi`] is re-exported so every crate uses the same API types;
//! * [`manifest`] decodes multi-document YAML / JSON manifests;
//! * [`defaults`] fills in the defaults Kubernetes v1.33 applies on write;
//! * [`validation`] checks objects and reports errors with full field paths, worded as
//!   Kubernetes words them;
//! * [`object`] is the write-path dispatcher (decode, default, validate, re-encode);
//! * [`selector`] parses and evaluates label and field selectors;
//! * [`quantity`] parses resource quantities (`500m`, `1Gi`, `1e3`);
//! * [`cluster`] is the cluster configuration file;
//! * [`events`] records core/v1 Events for any component.

pub use k8s_openapi;

pub mod cluster;
pub mod defaults;
pub mod events;
pub mod manifest;
pub mod object;
pub mod quantity;
pub mod selector;
pub mod storage;
pub mod validation;
