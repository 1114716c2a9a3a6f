//! Names the local-path storage shares between the control plane's
//! provisioner and the nodes.

/// The provisioner name of kedge's built-in local-path StorageClass.
pub const LOCAL_PATH_PROVISIONER: &str = "kedge.io/local-path";

/// The Node annotation naming the directory where the node keeps
/// local-path volumes (one subdirectory per volume).
pub const LOCAL_PATH_DIR_ANNOTATION: &str = "kedge.io/local-path-dir";

/// The annotation a scheduler puts on a WaitForFirstConsumer claim: the
/// node its first pod goes to.
pub const SELECTED_NODE_ANNOTATION: &str = "volume.kubernetes.io/selected-node";
