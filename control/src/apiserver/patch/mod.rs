//! Patches beyond JSON Patch and JSON merge patch: strategic merge patch
//! (`strategic`), and server-side apply with field ownership
//! (`fieldmanager`).

pub mod fieldmanager;
pub mod strategic;
