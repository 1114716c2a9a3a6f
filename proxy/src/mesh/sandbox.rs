//! Where a pod's network namespace is: the namespace of its sandbox (the
//! infra container the kubelet starts first, whose namespace the pod's
//! containers join), found in the node's Docker Engine by the labels the
//! kubelet puts on it. This is what a CNI plugin hands ztunnel in Istio's
//! ambient mode.

use std::collections::HashMap;
use std::path::PathBuf;

use bollard::query_parameters::ListContainersOptionsBuilder;
use bollard::Docker;
use futures::future::BoxFuture;

/// The pod UID label on the kubelet's containers.
const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
/// The kubelet's container kind label, and its value for sandboxes.
const LABEL_TYPE: (&str, &str) = ("io.kedge.type", "podsandbox");
/// The node label on everything the kubelet creates.
const LABEL_NODE: &str = "io.kedge.node";

/// A pod's sandbox as running now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sandbox {
    /// The sandbox's container: a new one means a new namespace.
    pub id: String,
    /// Its namespace file.
    pub netns: PathBuf,
}

/// Finds pods' sandboxes.
pub trait Sandboxes: Send + Sync {
    /// The running sandboxes of this node's pods, by pod UID.
    fn running(&self) -> BoxFuture<'_, std::io::Result<HashMap<String, Sandbox>>>;
}

/// The sandboxes in the node's Docker Engine (the one the kubelet uses:
/// `DOCKER_HOST`, or the local socket).
pub struct DockerSandboxes {
    docker: Docker,
    node: String,
    /// Sandbox container → its namespace file, so only new sandboxes are
    /// inspected.
    known: parking_lot::Mutex<HashMap<String, PathBuf>>,
}

impl DockerSandboxes {
    /// The sandboxes of `node`'s pods.
    pub fn connect(node: &str) -> std::io::Result<Self> {
        Ok(Self {
            docker: Docker::connect_with_local_defaults().map_err(std::io::Error::other)?,
            node: node.to_string(),
            known: Default::default(),
        })
    }
}

impl Sandboxes for DockerSandboxes {
    fn running(&self) -> BoxFuture<'_, std::io::Result<HashMap<String, Sandbox>>> {
        Box::pin(async move {
            let filters = HashMap::from([(
                "label".to_string(),
                vec![
                    format!("{}={}", LABEL_TYPE.0, LABEL_TYPE.1),
                    format!("{LABEL_NODE}={}", self.node),
                ],
            )]);
            let options = ListContainersOptionsBuilder::default()
                .filters(&filters)
                .build();
            let listed = self
                .docker
                .list_containers(Some(options))
                .await
                .map_err(std::io::Error::other)?;
            let mut out = HashMap::new();
            let mut seen = Vec::new();
            for container in listed {
                let (Some(id), Some(uid)) = (
                    container.id,
                    container.labels.and_then(|mut l| l.remove(LABEL_POD_UID)),
                ) else {
                    continue;
                };
                seen.push(id.clone());
                let known = self.known.lock().get(&id).cloned();
                let netns = match known {
                    Some(netns) => netns,
                    None => {
                        let inspected = match self.docker.inspect_container(&id, None).await {
                            Ok(inspected) => inspected,
                            // Gone between the list and the inspect.
                            Err(_) => continue,
                        };
                        let Some(pid) = inspected.state.and_then(|s| s.pid).filter(|pid| *pid > 0)
                        else {
                            continue;
                        };
                        let netns = PathBuf::from(format!("/proc/{pid}/ns/net"));
                        self.known.lock().insert(id.clone(), netns.clone());
                        netns
                    }
                };
                out.insert(uid, Sandbox { id, netns });
            }
            self.known.lock().retain(|id, _| seen.contains(id));
            Ok(out)
        })
    }
}
