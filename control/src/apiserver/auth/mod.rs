//! Who a request comes from and what it may do: authentication (`authn`:
//! client certificates, ServiceAccount and bootstrap tokens, anonymous),
//! impersonation, authorization (`authz`: the Node authorizer in `node`,
//! RBAC in `rbac`), the review APIs (`reviews`), and the credentials the
//! server issues: the cluster CA and certificates (`certs`), the token
//! signer (`tokens`), the TokenRequest API (`tokenrequest`) and the
//! ServiceAccount admission of pods (`serviceaccount`).

pub mod authn;
pub mod authz;
pub mod certificates;
pub mod certs;
pub mod impersonation;
pub mod node;
pub mod rbac;
pub mod reviews;
pub mod serviceaccount;
pub mod tokenrequest;
pub mod tokens;
