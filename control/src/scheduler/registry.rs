//! The plugin registry (plugin name → factory) and the default profile: which
//! plugins run, in which order, and with which score weights.

use std::collections::BTreeMap;

use super::framework::{FilterPlugin, Framework, ScorePlugin};
use super::plugins::{
    least_allocated, node_affinity, node_ports, node_ready, node_resources_fit, node_unschedulable,
    selector_spread, taint_toleration,
};

/// Builds a filter plugin.
pub type FilterFactory = fn() -> Box<dyn FilterPlugin>;
/// Builds a score plugin.
pub type ScoreFactory = fn() -> Box<dyn ScorePlugin>;

/// Plugin factories by name.
#[derive(Default)]
pub struct Registry {
    filters: BTreeMap<&'static str, FilterFactory>,
    scorers: BTreeMap<&'static str, ScoreFactory>,
}

/// The scheduler name pods get when they name none.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

/// Which plugins a scheduler runs.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The `spec.schedulerName` this profile serves.
    pub scheduler_name: String,
    /// Filters in the order they run.
    pub filters: Vec<&'static str>,
    /// Scorers with their weights.
    pub scorers: Vec<(&'static str, i64)>,
}

impl Default for Profile {
    /// kube-scheduler's default order: cheap checks that rule out many
    /// nodes first, resources last; weights as in its default profile.
    fn default() -> Self {
        Profile {
            scheduler_name: DEFAULT_SCHEDULER_NAME.to_string(),
            filters: vec![
                node_unschedulable::NAME,
                taint_toleration::NAME,
                node_ready::NAME,
                node_affinity::NAME,
                node_ports::NAME,
                node_resources_fit::NAME,
            ],
            scorers: vec![
                (taint_toleration::NAME, 3),
                (node_affinity::NAME, 2),
                (selector_spread::NAME, 2),
                (least_allocated::NAME, 1),
            ],
        }
    }
}

/// A registry or profile mistake.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    /// Two plugins registered under one name.
    #[error("a plugin named {0:?} already exists")]
    Duplicate(&'static str),
    /// A profile names a plugin that is not registered.
    #[error("{kind} plugin {name:?} does not exist")]
    NotFound {
        /// "filter" or "score".
        kind: &'static str,
        /// The missing name.
        name: &'static str,
    },
}

impl Registry {
    /// The plugins that come with the scheduler.
    pub fn in_tree() -> Self {
        let mut r = Registry::default();
        let filters: [(&'static str, FilterFactory); 6] = [
            (node_unschedulable::NAME, || {
                Box::new(node_unschedulable::NodeUnschedulable)
            }),
            (node_ready::NAME, || Box::new(node_ready::NodeReady)),
            (taint_toleration::NAME, || {
                Box::new(taint_toleration::TaintToleration)
            }),
            (node_affinity::NAME, || {
                Box::new(node_affinity::NodeAffinity)
            }),
            (node_resources_fit::NAME, || {
                Box::new(node_resources_fit::NodeResourcesFit)
            }),
            (node_ports::NAME, || Box::new(node_ports::NodePorts)),
        ];
        for (name, f) in filters {
            r.register_filter(name, f)
                .expect("in-tree names are distinct");
        }
        let scorers: [(&'static str, ScoreFactory); 4] = [
            (least_allocated::NAME, || {
                Box::new(least_allocated::NodeResourcesLeastAllocated)
            }),
            (selector_spread::NAME, || {
                Box::new(selector_spread::SelectorSpread)
            }),
            (taint_toleration::NAME, || {
                Box::new(taint_toleration::TaintToleration)
            }),
            (node_affinity::NAME, || {
                Box::new(node_affinity::NodeAffinity)
            }),
        ];
        for (name, f) in scorers {
            r.register_score(name, f)
                .expect("in-tree names are distinct");
        }
        r
    }

    /// Add a filter plugin.
    pub fn register_filter(
        &mut self,
        name: &'static str,
        f: FilterFactory,
    ) -> Result<(), RegistryError> {
        if self.filters.insert(name, f).is_some() {
            return Err(RegistryError::Duplicate(name));
        }
        Ok(())
    }

    /// Add a score plugin.
    pub fn register_score(
        &mut self,
        name: &'static str,
        f: ScoreFactory,
    ) -> Result<(), RegistryError> {
        if self.scorers.insert(name, f).is_some() {
            return Err(RegistryError::Duplicate(name));
        }
        Ok(())
    }

    /// Instantiate a profile's plugins.
    pub fn framework(&self, profile: &Profile) -> Result<Framework, RegistryError> {
        let filters = profile
            .filters
            .iter()
            .map(|name| {
                self.filters
                    .get(name)
                    .map(|f| f())
                    .ok_or(RegistryError::NotFound {
                        kind: "filter",
                        name,
                    })
            })
            .collect::<Result<_, _>>()?;
        let scorers = profile
            .scorers
            .iter()
            .map(|(name, weight)| {
                self.scorers
                    .get(name)
                    .map(|f| (f(), *weight))
                    .ok_or(RegistryError::NotFound {
                        kind: "score",
                        name,
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Framework { filters, scorers })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_profile_builds() {
        let fw = Registry::in_tree()
            .framework(&Profile::default())
            .expect("framework");
        let names: Vec<&str> = fw.filters.iter().map(|p| p.name()).collect();
        assert_eq!(names, Profile::default().filters);
        assert_eq!(fw.scorers.len(), 4);
    }

    #[test]
    fn duplicates_and_unknown_names_are_errors() {
        let mut r = Registry::in_tree();
        assert_eq!(
            r.register_filter(node_ports::NAME, || Box::new(node_ports::NodePorts))
                .unwrap_err(),
            RegistryError::Duplicate(node_ports::NAME)
        );
        let profile = Profile {
            filters: vec!["Nope"],
            ..Profile::default()
        };
        assert!(matches!(
            r.framework(&profile),
            Err(RegistryError::NotFound { .. })
        ));
    }
}
