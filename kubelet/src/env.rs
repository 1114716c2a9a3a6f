//! A container's environment, resolved as the kubelet does before it
//! creates the container: `envFrom` sources first, then `env` entries in
//! order, each overriding what came before. `value`s expand `$(VAR)`
//! references to variables defined earlier; `valueFrom` reads a ConfigMap
//! or Secret key, a pod field or a container resource.
//!
//! A failure here keeps the container from being created; the pod shows it
//! as `CreateContainerConfigError` with the error's message.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kedge_config::validation::is_env_var_name;

use crate::downward::{self, DownwardError, DownwardInputs};
use crate::objects::{ObjectError, ObjectSource};

/// Why a container's environment cannot be made (the kubelet's wording).
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// A ConfigMap that is not optional does not exist.
    #[error("configmap {0:?} not found")]
    ConfigMapNotFound(String),
    /// A Secret that is not optional does not exist.
    #[error("secret {0:?} not found")]
    SecretNotFound(String),
    /// A `configMapKeyRef` key that is not optional is not in the ConfigMap.
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKeyNotFound {
        /// The key.
        key: String,
        /// The pod's namespace.
        namespace: String,
        /// The ConfigMap.
        name: String,
    },
    /// A `secretKeyRef` key that is not optional is not in the Secret.
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKeyNotFound {
        /// The key.
        key: String,
        /// The pod's namespace.
        namespace: String,
        /// The Secret.
        name: String,
    },
    /// A `fieldRef` or `resourceFieldRef` has no value.
    #[error(transparent)]
    Downward(#[from] DownwardError),
    /// A ConfigMap or Secret could not be read.
    #[error(transparent)]
    Object(#[from] ObjectError),
}

/// Result of resolving an environment.
pub type Result<T, E = EnvError> = std::result::Result<T, E>;

/// The environment of `container` in `pod`, in the order Kubernetes builds
/// it: `envFrom` variables, then `env` variables (a name defined twice keeps
/// its first place and its last value).
///
/// `inputs` gives the pod's and node's IPs (`status.podIP`, `status.hostIP`)
/// and the node's allocatable resources (unset limits in
/// `resourceFieldRef`).
pub async fn make_environment_variables(
    pod: &Pod,
    container: &Container,
    inputs: &DownwardInputs,
    objects: &dyn ObjectSource,
) -> Result<Vec<(String, String)>> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut cache = Objects {
        source: objects,
        namespace,
        config_maps: HashMap::new(),
        secrets: HashMap::new(),
    };
    let mut env = Env::default();
    // Service variables come last and never override the container's own,
    // but `$(VAR)` references see them.
    let services = services::service_environment(pod, objects).await?;
    let service_env: HashMap<&str, &str> = services
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();

    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            let Some(cm) = cache.config_map(&r.name, r.optional).await? else {
                continue;
            };
            let data = cm.data.iter().flatten();
            let invalid = env.set_all(prefix, data.map(|(k, v)| (k.as_str(), v.clone())));
            warn_invalid(&invalid, "configMap", namespace, &r.name);
        } else if let Some(r) = &from.secret_ref {
            let Some(secret) = cache.secret(&r.name, r.optional).await? else {
                continue;
            };
            let data = secret.data.iter().flatten();
            let invalid = env.set_all(
                prefix,
                data.map(|(k, v)| (k.as_str(), String::from_utf8_lossy(&v.0).into_owned())),
            );
            warn_invalid(&invalid, "secret", namespace, &r.name);
        }
    }

    for var in container.env.iter().flatten() {
        let value = match (var.value.as_deref(), &var.value_from) {
            (Some(v), _) if !v.is_empty() => expand(v, |name| {
                env.get(name)
                    .or_else(|| service_env.get(name).copied())
                    .map(str::to_string)
            }),
            (_, Some(from)) => {
                if let Some(sel) = &from.field_ref {
                    downward::pod_field_value(pod, sel, inputs)?
                } else if let Some(sel) = &from.resource_field_ref {
                    downward::container_resource_value(
                        sel,
                        pod,
                        Some(container),
                        &inputs.allocatable,
                    )?
                } else if let Some(sel) = &from.config_map_key_ref {
                    let optional = sel.optional.unwrap_or(false);
                    let Some(cm) = cache.config_map(&sel.name, sel.optional).await? else {
                        continue;
                    };
                    match cm.data.as_ref().and_then(|d| d.get(&sel.key)) {
                        Some(v) => v.clone(),
                        // An optional key that is missing leaves the
                        // variable undefined, not empty.
                        None if optional => continue,
                        None => {
                            return Err(EnvError::ConfigMapKeyNotFound {
                                key: sel.key.clone(),
                                namespace: namespace.to_string(),
                                name: sel.name.clone(),
                            })
                        }
                    }
                } else if let Some(sel) = &from.secret_key_ref {
                    let optional = sel.optional.unwrap_or(false);
                    let Some(secret) = cache.secret(&sel.name, sel.optional).await? else {
                        continue;
                    };
                    match secret.data.as_ref().and_then(|d| d.get(&sel.key)) {
                        Some(v) => String::from_utf8_lossy(&v.0).into_owned(),
                        None if optional => continue,
                        None => {
                            return Err(EnvError::SecretKeyNotFound {
                                key: sel.key.clone(),
                                namespace: namespace.to_string(),
                                name: sel.name.clone(),
                            })
                        }
                    }
                } else {
                    String::new()
                }
            }
            _ => String::new(),
        };
        env.set(&var.name, value);
    }
    for (k, v) in &services {
        if env.get(k).is_none() {
            env.set(k, v.clone());
        }
    }
    Ok(env.vars)
}

fn warn_invalid(invalid: &[String], kind: &str, namespace: &str, name: &str) {
    if !invalid.is_empty() {
        tracing::warn!(
            keys = ?invalid,
            "keys from the envFrom {kind} {namespace}/{name} were skipped since they are considered invalid environment variable names"
        );
    }
}

/// Expands `$(VAR)` references in `input` with `mapping`, as Kubernetes
/// does for `env[].value`, `command`, `args` and `subPathExpr`: `$$` is a
/// literal `$`, and a reference `mapping` does not know is left as written.
pub fn expand(input: &str, mapping: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match after.chars().next() {
            // A trailing `$` is kept.
            None => {
                out.push('$');
                rest = after;
            }
            Some('$') => {
                out.push('$');
                rest = &after[1..];
            }
            Some('(') => match after.find(')') {
                Some(close) => {
                    let name = &after[1..close];
                    match mapping(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &after[close + 1..];
                }
                // An unclosed reference is kept as written.
                None => {
                    out.push_str("$(");
                    rest = &after[1..];
                }
            },
            Some(c) => {
                out.push('$');
                out.push(c);
                rest = &after[c.len_utf8()..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Variables in first-definition order.
#[derive(Default)]
struct Env {
    vars: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

// === impl Env ===

impl Env {
    fn get(&self, name: &str) -> Option<&str> {
        self.index.get(name).map(|&i| self.vars[i].1.as_str())
    }

    fn set(&mut self, name: &str, value: String) {
        match self.index.get(name) {
            Some(&i) => self.vars[i].1 = value,
            None => {
                self.index.insert(name.to_string(), self.vars.len());
                self.vars.push((name.to_string(), value));
            }
        }
    }

    /// Set `prefix + key` for every entry; returns the names skipped as
    /// invalid, sorted.
    fn set_all<'a>(
        &mut self,
        prefix: &str,
        entries: impl Iterator<Item = (&'a str, String)>,
    ) -> Vec<String> {
        let mut invalid = Vec::new();
        for (k, v) in entries {
            let name = format!("{prefix}{k}");
            if is_env_var_name(&name).is_empty() {
                self.set(&name, v);
            } else {
                invalid.push(name);
            }
        }
        invalid.sort();
        invalid
    }
}

/// ConfigMaps and Secrets read once per resolution, as the kubelet does.
struct Objects<'a> {
    source: &'a dyn ObjectSource,
    namespace: &'a str,
    config_maps: HashMap<String, Option<Arc<ConfigMap>>>,
    secrets: HashMap<String, Option<Arc<Secret>>>,
}

// === impl Objects ===

impl Objects<'_> {
    /// The ConfigMap, or `None` when it is missing and optional.
    async fn config_map(
        &mut self,
        name: &str,
        optional: Option<bool>,
    ) -> Result<Option<Arc<ConfigMap>>> {
        let found = match self.config_maps.get(name) {
            Some(found) => found.clone(),
            None => {
                let found = self.source.config_map(self.namespace, name).await?;
                self.config_maps.insert(name.to_string(), found.clone());
                found
            }
        };
        match found {
            Some(cm) => Ok(Some(cm)),
            None if optional.unwrap_or(false) => Ok(None),
            None => Err(EnvError::ConfigMapNotFound(name.to_string())),
        }
    }

    /// The Secret, or `None` when it is missing and optional.
    async fn secret(&mut self, name: &str, optional: Option<bool>) -> Result<Option<Arc<Secret>>> {
        let found = match self.secrets.get(name) {
            Some(found) => found.clone(),
            None => {
                let found = self.source.secret(self.namespace, name).await?;
                self.secrets.insert(name.to_string(), found.clone());
                found
            }
        };
        match found {
            Some(s) => Ok(Some(s)),
            None if optional.unwrap_or(false) => Ok(None),
            None => Err(EnvError::SecretNotFound(name.to_string())),
        }
    }
}

/// `command` and `args` with `$(VAR)` references expanded from the
/// container's resolved environment, as the kubelet passes them to the
/// runtime.
pub fn expand_command_and_args(
    container: &Container,
    env: &[(String, String)],
) -> (Vec<String>, Vec<String>) {
    let vars: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mapping = |name: &str| vars.get(name).map(|v| v.to_string());
    let expand_all = |list: &Option<Vec<String>>| -> Vec<String> {
        list.iter().flatten().map(|s| expand(s, mapping)).collect()
    };
    (expand_all(&container.command), expand_all(&container.args))
}

pub mod services;

#[cfg(test)]
mod tests;
