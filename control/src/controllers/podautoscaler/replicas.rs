//! How many replicas a resource metric asks for, and how fast the count
//! may move: Kubernetes' `replica_calculator.go` (ready, unready, missing
//! and ignored pods; the 10 % tolerance) and the `behavior` limits
//! (stabilization windows and scaling policies), as pure functions.

use std::collections::BTreeMap;

use kedge_config::defaults::{ScalingDefaults, HPA_SCALE_DOWN, HPA_SCALE_UP};

/// Ratios this close to 1 leave the count as it is.
pub const TOLERANCE: f64 = 0.1;
/// How long after a pod starts its CPU may be skewed by starting up.
pub const CPU_INITIALIZATION_SECONDS: i64 = 300;
/// A pod's first readiness within this long of its start counts as start.
pub const INITIAL_READINESS_DELAY_SECONDS: i64 = 30;

/// A pod as the calculator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodSample {
    /// Being deleted, or failed: left out.
    pub ignored: bool,
    /// Pending, or (for CPU) not ready yet as the calculator judges it.
    pub unready: bool,
    /// The sum of its containers' requests of the resource, when every
    /// container has one.
    pub request: Option<f64>,
    /// Its usage, when the metrics API has it.
    pub usage: Option<f64>,
}

/// What the metric is measured against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// Percent of the pods' requests.
    Utilization(i32),
    /// An average per pod, in the resource's units.
    AverageValue(f64),
}

/// A metric's proposal.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// The replicas it asks for.
    pub replicas: i32,
    /// The current utilization (percent of requests), for `Utilization`.
    pub utilization: Option<i32>,
    /// The current average per pod.
    pub average: f64,
}

/// Why no count could be proposed.
#[derive(Debug, Clone, PartialEq)]
pub struct NoProposal(pub String);

/// The replicas a resource metric of `pods` asks for, given `current`
/// replicas.
pub fn propose(
    current: i32,
    pods: &BTreeMap<String, PodSample>,
    target: Target,
    resource: &str,
) -> Result<Proposal, NoProposal> {
    let mut metrics: BTreeMap<&str, f64> = BTreeMap::new();
    let mut unready = Vec::new();
    let mut missing = Vec::new();
    let mut ready_count = 0usize;
    for (name, p) in pods {
        if p.ignored {
            continue;
        }
        match p.usage {
            None => missing.push(name.as_str()),
            Some(_) if p.unready => unready.push(name.as_str()),
            Some(u) => {
                ready_count += 1;
                metrics.insert(name, u);
            }
        }
    }
    if let Target::Utilization(_) = target {
        for (name, p) in pods {
            if !p.ignored && p.request.is_none() {
                return Err(NoProposal(format!(
                    "missing request for {resource} in pod {name}"
                )));
            }
        }
    }
    if metrics.is_empty() {
        return Err(NoProposal(
            "did not receive metrics for targeted pods (pods might be unready)".into(),
        ));
    }
    let ratio_of = |m: &BTreeMap<&str, f64>| -> (f64, Option<i32>, f64) {
        let total: f64 = m.values().sum();
        let average = total / m.len() as f64;
        match target {
            Target::Utilization(t) => {
                let requests: f64 = m.keys().map(|n| pods[*n].request.unwrap_or(0.0)).sum();
                let utilization = if requests > 0.0 {
                    (total * 100.0 / requests) as i32
                } else {
                    0
                };
                (
                    f64::from(utilization) / f64::from(t),
                    Some(utilization),
                    average,
                )
            }
            Target::AverageValue(t) => (average / t, None, average),
        }
    };
    let (ratio, utilization, average) = ratio_of(&metrics);
    let proposal = |replicas| Proposal {
        replicas,
        utilization,
        average,
    };
    let scale_up_with_unready = !unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && missing.is_empty() {
        if (1.0 - ratio).abs() <= TOLERANCE {
            return Ok(proposal(current));
        }
        return Ok(proposal((ratio * ready_count as f64).ceil() as i32));
    }
    // Fill in the pods without a usable sample the way that moves the
    // count least: missing ones at their full request when scaling down,
    // at nothing when scaling up; unready ones at nothing.
    let mut filled = metrics.clone();
    for name in &missing {
        let value = if ratio < 1.0 {
            match target {
                Target::Utilization(_) => pods[*name].request.unwrap_or(0.0),
                Target::AverageValue(t) => t,
            }
        } else {
            0.0
        };
        filled.insert(name, value);
    }
    if scale_up_with_unready {
        for name in &unready {
            filled.insert(name, 0.0);
        }
    }
    let (new_ratio, _, _) = ratio_of(&filled);
    if (1.0 - new_ratio).abs() <= TOLERANCE
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Ok(proposal(current));
    }
    let replicas = (new_ratio * filled.len() as f64).ceil() as i32;
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return Ok(proposal(current));
    }
    Ok(proposal(replicas))
}

/// One direction's rules, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Seconds of recommendations looked back over.
    pub stabilization_window_seconds: i64,
    /// `Max`, `Min` or `Disabled`.
    pub select_policy: String,
    /// (type, value, period seconds).
    pub policies: Vec<(String, i32, i64)>,
}

impl Rules {
    /// The rules of `spec` for one direction, defaults where unset.
    pub fn of(
        rules: Option<&k8s_openapi::api::autoscaling::v2::HPAScalingRules>,
        defaults: &ScalingDefaults,
    ) -> Rules {
        let policies = match rules.and_then(|r| r.policies.as_ref()) {
            Some(p) => p
                .iter()
                .map(|p| (p.type_.clone(), p.value, i64::from(p.period_seconds)))
                .collect(),
            None => defaults
                .policies
                .iter()
                .map(|(t, v, p)| (t.to_string(), *v, i64::from(*p)))
                .collect(),
        };
        Rules {
            stabilization_window_seconds: i64::from(
                rules
                    .and_then(|r| r.stabilization_window_seconds)
                    .unwrap_or(defaults.stabilization_window_seconds),
            ),
            select_policy: rules
                .and_then(|r| r.select_policy.clone())
                .unwrap_or_else(|| "Max".into()),
            policies,
        }
    }

    /// The scale-up and scale-down rules of an HPA's `behavior`.
    pub fn both(
        behavior: Option<&k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerBehavior>,
    ) -> (Rules, Rules) {
        (
            Rules::of(behavior.and_then(|b| b.scale_up.as_ref()), &HPA_SCALE_UP),
            Rules::of(
                behavior.and_then(|b| b.scale_down.as_ref()),
                &HPA_SCALE_DOWN,
            ),
        )
    }
}

/// A past recommendation or scaling, at a time (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtTime {
    /// Replicas recommended, or (for scale events) the change.
    pub replicas: i32,
    /// When.
    pub at: i64,
}

/// What limits moved the count, for the `ScalingLimited` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// Within range.
    No,
    /// Held at `minReplicas`.
    TooFew,
    /// Held at `maxReplicas`.
    TooMany,
    /// Held by the scale-up policies.
    ScaleUpLimit,
    /// Held by the scale-down policies.
    ScaleDownLimit,
}

/// The count after `behavior`: the proposal stabilized over the windows
/// (the lowest of recent recommendations when going up, the highest when
/// going down), then held to the policies' rate over their periods and to
/// `[min, max]`. `recommendations` gains this one; `scale_events` are the
/// past changes (positive up, negative down).
#[allow(clippy::too_many_arguments)]
pub fn with_behavior(
    current: i32,
    proposed: i32,
    min: i32,
    max: i32,
    up: &Rules,
    down: &Rules,
    recommendations: &mut Vec<AtTime>,
    scale_events: &[AtTime],
    now: i64,
) -> (i32, Limited, bool) {
    // Stabilization.
    let mut up_rec = proposed;
    let mut down_rec = proposed;
    for r in recommendations.iter() {
        if r.at > now - up.stabilization_window_seconds {
            up_rec = up_rec.min(r.replicas);
        }
        if r.at > now - down.stabilization_window_seconds {
            down_rec = down_rec.max(r.replicas);
        }
    }
    let longest = up
        .stabilization_window_seconds
        .max(down.stabilization_window_seconds);
    recommendations.retain(|r| r.at > now - longest);
    recommendations.push(AtTime {
        replicas: proposed,
        at: now,
    });
    let mut stabilized = current;
    if stabilized < up_rec {
        stabilized = up_rec;
    }
    if stabilized > down_rec {
        stabilized = down_rec;
    }
    let held_by_window = stabilized != proposed;

    // Rate limits.
    let (desired, limited) = if stabilized > current {
        let limit = rate_limit(current, scale_events, up, now, true);
        let limit = limit.min(max);
        if stabilized > limit {
            let why = if limit == max {
                Limited::TooMany
            } else {
                Limited::ScaleUpLimit
            };
            (limit, why)
        } else {
            (stabilized, Limited::No)
        }
    } else if stabilized < current {
        let limit = rate_limit(current, scale_events, down, now, false).max(min);
        if stabilized < limit {
            let why = if limit == min {
                Limited::TooFew
            } else {
                Limited::ScaleDownLimit
            };
            (limit, why)
        } else {
            (stabilized, Limited::No)
        }
    } else {
        (stabilized, Limited::No)
    };
    // The bounds hold whatever the rules say.
    if desired > max {
        (max, Limited::TooMany, held_by_window)
    } else if desired < min {
        (min, Limited::TooFew, held_by_window)
    } else {
        (desired, limited, held_by_window)
    }
}

/// The furthest the count may move from `current` now under `rules`.
fn rate_limit(current: i32, events: &[AtTime], rules: &Rules, now: i64, up: bool) -> i32 {
    if rules.select_policy == "Disabled" {
        return current;
    }
    let mut proposals = Vec::new();
    for (kind, value, period) in &rules.policies {
        let changed: i32 = events
            .iter()
            .filter(|e| e.at > now - period && (e.replicas > 0) == up)
            .map(|e| e.replicas.abs())
            .sum();
        let start = if up {
            current - changed
        } else {
            current + changed
        };
        let proposal = match (kind.as_str(), up) {
            ("Pods", true) => start + value,
            ("Pods", false) => start - value,
            ("Percent", true) => {
                (f64::from(start) * (1.0 + f64::from(*value) / 100.0)).ceil() as i32
            }
            (_, false) => (f64::from(start) * (1.0 - f64::from(*value) / 100.0)) as i32,
            _ => start,
        };
        proposals.push(proposal);
    }
    // `Max` picks the policy allowing the biggest change.
    let biggest = rules.select_policy != "Min";
    let pick = if up == biggest {
        proposals.iter().max()
    } else {
        proposals.iter().min()
    };
    pick.copied().unwrap_or(current)
}

#[cfg(test)]
mod tests;
