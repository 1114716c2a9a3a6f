//! What the mesh's tests share: workload certificates issued by a real
//! mesh CA, as the signer issues them.

use std::time::{Duration, SystemTime};

use kedge_control::apiserver::certs::MeshCa;

use super::identity::{spiffe_id, workload_request, WorkloadCertificate};

/// A ten-minute certificate of ServiceAccount `team/<account>`.
pub(crate) fn issue(ca: &MeshCa, account: &str) -> WorkloadCertificate {
    let id = spiffe_id("cluster.local", "team", account);
    let (key, csr) = workload_request(&id).unwrap();
    WorkloadCertificate {
        cert_pem: ca.sign_workload(&csr, &id, 600).unwrap(),
        spiffe_id: id,
        key_pem: key.serialize_pem(),
        not_before: SystemTime::now(),
        not_after: SystemTime::now() + Duration::from_secs(600),
    }
}

/// Remove the `kedge-mesh-<pid>-…` namespaces of test processes that are
/// gone (a crashed run), once per process.
pub(crate) fn sweep_namespaces() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Ok(out) = std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
        else {
            return;
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some(name) = line.split_whitespace().next() else {
                continue;
            };
            let Some(pid) = name
                .strip_prefix("kedge-mesh-")
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::process::Command::new("ip")
                    .args(["netns", "del", name])
                    .status();
            }
        }
    });
}
