//! Admission that depends on other objects of the namespace, as
//! kube-apiserver's plugins of the same names: LimitRanger (defaults and
//! bounds of requests and limits) and ResourceQuota (charging creates to
//! the namespace's quotas).

pub mod limitranger;
pub mod resourcequota;
