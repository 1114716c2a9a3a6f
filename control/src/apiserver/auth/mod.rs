//! Who a request comes from, and the credentials the server issues: the
//! admin token and ServiceAccount tokens (`authn`), the cluster CA and
//! serving certificate (`certs`), the token signer (`tokens`) and the
//! TokenRequest API (`tokenrequest`), and the ServiceAccount admission of
//! pods (`serviceaccount`).

pub mod authn;
pub mod certs;
pub mod serviceaccount;
pub mod tokenrequest;
pub mod tokens;
