//! The dependency graph (Kubernetes' `GraphBuilder` state): every object the
//! monitors see, by uid, with its ownerReferences, and for every owner uid —
//! observed or not — the uids of the objects that name it.

use std::collections::{HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// The orphan finalizer: dependents lose their ownerReference to the owner.
pub(crate) const ORPHAN: &str = "orphan";
/// The foreground finalizer: dependents are deleted before the owner.
pub(crate) const FOREGROUND: &str = "foregroundDeletion";

/// One observed object.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// Index of its resource in the discovered resource list.
    pub resource: usize,
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Its ownerReferences.
    pub owners: Vec<OwnerReference>,
    /// `deletionTimestamp` is set.
    pub being_deleted: bool,
    /// Being deleted in the foreground: waits for its blocking dependents.
    pub deleting_dependents: bool,
}

/// What a graph change asks the workers to do.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Work {
    /// Uids to check for deletion.
    pub attempt_to_delete: Vec<String>,
    /// Uids whose dependents are to be orphaned.
    pub attempt_to_orphan: Vec<String>,
}

/// Nodes by uid, and dependents by owner uid.
#[derive(Debug, Default)]
pub(crate) struct Graph {
    nodes: HashMap<String, Node>,
    dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    /// A node by uid.
    pub(crate) fn node(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    /// The uids of the objects that name `owner` as an owner.
    pub(crate) fn dependents(&self, owner: &str) -> Vec<String> {
        self.dependents
            .get(owner)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Dependents whose reference to `owner` blocks its foreground deletion.
    pub(crate) fn blocking_dependents(&self, owner: &str) -> Vec<String> {
        self.dependents(owner)
            .into_iter()
            .filter(|d| {
                self.nodes.get(d).is_some_and(|n| {
                    n.owners
                        .iter()
                        .any(|o| o.uid == owner && o.block_owner_deletion == Some(true))
                })
            })
            .collect()
    }

    /// An object was added or changed (Kubernetes' `processGraphChanges`
    /// for add/update events).
    pub(crate) fn upsert(&mut self, uid: &str, node: Node, finalizers: &[String]) -> Work {
        let mut work = Work::default();
        let old = self.nodes.remove(uid);
        let old_owners = old.as_ref().map(|o| o.owners.clone()).unwrap_or_default();
        for o in &old_owners {
            if !node.owners.iter().any(|n| n.uid == o.uid) {
                self.unlink(&o.uid, uid);
                // An owner waiting for its dependents may now be done.
                if self
                    .nodes
                    .get(&o.uid)
                    .is_some_and(|n| n.deleting_dependents)
                {
                    work.attempt_to_delete.push(o.uid.clone());
                }
            }
        }
        let mut unseen_owner = false;
        for o in &node.owners {
            self.dependents
                .entry(o.uid.clone())
                .or_default()
                .insert(uid.to_string());
            let added = !old_owners.iter().any(|p| p.uid == o.uid);
            let unblocked = old_owners.iter().any(|p| {
                p.uid == o.uid
                    && p.block_owner_deletion == Some(true)
                    && o.block_owner_deletion != Some(true)
            });
            if (added && !self.nodes.contains_key(&o.uid)) || unblocked {
                unseen_owner |= added;
            }
            if unblocked
                && self
                    .nodes
                    .get(&o.uid)
                    .is_some_and(|n| n.deleting_dependents)
            {
                work.attempt_to_delete.push(o.uid.clone());
            }
        }
        // An owner never observed may not exist: check the dependent, which
        // looks its owners up live.
        if unseen_owner {
            work.attempt_to_delete.push(uid.to_string());
        }
        let orphan = node.being_deleted && finalizers.iter().any(|f| f == ORPHAN);
        let foreground = node.being_deleted && finalizers.iter().any(|f| f == FOREGROUND);
        let starts_foreground = foreground && !old.as_ref().is_some_and(|o| o.deleting_dependents);
        // Orphaning is idempotent, so every update of such an owner queues it.
        if orphan {
            work.attempt_to_orphan.push(uid.to_string());
        }
        let mut node = node;
        node.deleting_dependents = foreground;
        if starts_foreground {
            work.attempt_to_delete.extend(self.dependents(uid));
        }
        if foreground {
            work.attempt_to_delete.push(uid.to_string());
        }
        self.nodes.insert(uid.to_string(), node);
        work
    }

    /// An object is gone: its dependents are checked, and owners waiting
    /// for it in the foreground are rechecked.
    pub(crate) fn remove(&mut self, uid: &str) -> Work {
        let mut work = Work::default();
        let Some(node) = self.nodes.remove(uid) else {
            work.attempt_to_delete.extend(self.dependents(uid));
            return work;
        };
        for o in &node.owners {
            self.unlink(&o.uid, uid);
            if self
                .nodes
                .get(&o.uid)
                .is_some_and(|n| n.deleting_dependents)
            {
                work.attempt_to_delete.push(o.uid.clone());
            }
        }
        work.attempt_to_delete.extend(self.dependents(uid));
        work
    }

    fn unlink(&mut self, owner: &str, dependent: &str) {
        if let Some(set) = self.dependents.get_mut(owner) {
            set.remove(dependent);
            if set.is_empty() {
                self.dependents.remove(owner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(owners: &[&str]) -> Node {
        Node {
            resource: 0,
            namespace: "default".into(),
            name: "x".into(),
            owners: owners
                .iter()
                .map(|u| OwnerReference {
                    api_version: "v1".into(),
                    kind: "ConfigMap".into(),
                    name: "owner".into(),
                    uid: u.to_string(),
                    block_owner_deletion: Some(true),
                    controller: None,
                })
                .collect(),
            being_deleted: false,
            deleting_dependents: false,
        }
    }

    #[test]
    fn deleting_an_owner_queues_its_dependents() {
        let mut g = Graph::default();
        g.upsert("owner", node(&[]), &[]);
        assert!(g
            .upsert("dep", node(&["owner"]), &[])
            .attempt_to_delete
            .is_empty());
        assert_eq!(g.remove("owner").attempt_to_delete, vec!["dep".to_string()]);
    }

    #[test]
    fn an_unseen_owner_queues_the_dependent() {
        let mut g = Graph::default();
        assert_eq!(
            g.upsert("dep", node(&["ghost"]), &[]).attempt_to_delete,
            vec!["dep".to_string()]
        );
    }

    #[test]
    fn foreground_deletion_queues_dependents_then_owner() {
        let mut g = Graph::default();
        g.upsert("owner", node(&[]), &[]);
        g.upsert("dep", node(&["owner"]), &[]);
        let mut deleting = node(&[]);
        deleting.being_deleted = true;
        let work = g.upsert("owner", deleting, &[FOREGROUND.to_string()]);
        assert_eq!(
            work.attempt_to_delete,
            vec!["dep".to_string(), "owner".to_string()]
        );
        assert_eq!(g.blocking_dependents("owner"), vec!["dep".to_string()]);
        assert_eq!(g.remove("dep").attempt_to_delete, vec!["owner".to_string()]);
    }
}
