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
