//! batch/v1: Job and CronJob, with a cron schedule parser (the standard five fields, or
//! `@hourly`-style descriptors and `@every <duration>`).

use k8s_openapi::api::batch::v1::{CronJob, Job, JobSpec};

use super::meta::{
    selector_is_empty, selector_matches, validate_label_selector, validate_labels,
    validate_object_meta, NameRule,
};
use super::pod::validate_pod_template_spec;
use super::{child, go_quote, render_map, validate_nonnegative, FieldError};

/// Validates a Job. The selector is required unless it has not been generated yet (the
/// server generates it from the Job's uid when `manualSelector` is not true).
pub fn validate_job(job: &Job) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&job.metadata, NameRule::Subdomain, "metadata");
    let default = JobSpec::default();
    let spec = job.spec.as_ref().unwrap_or(&default);
    let manual = spec.manual_selector == Some(true);
    if spec.selector.is_none() && manual {
        errs.push(FieldError::required("spec.selector", ""));
    }
    errs.extend(validate_job_spec(spec, "spec"));
    errs
}

fn validate_job_spec(spec: &JobSpec, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (field, v) in [
        ("parallelism", spec.parallelism.map(i64::from)),
        ("completions", spec.completions.map(i64::from)),
        ("activeDeadlineSeconds", spec.active_deadline_seconds),
        ("backoffLimit", spec.backoff_limit.map(i64::from)),
        (
            "ttlSecondsAfterFinished",
            spec.ttl_seconds_after_finished.map(i64::from),
        ),
    ] {
        if let Some(v) = v {
            errs.extend(validate_nonnegative(v, &child(path, field)));
        }
    }
    match spec.completion_mode.as_deref() {
        None | Some("NonIndexed") => {}
        Some("Indexed") => {
            if spec.completions.is_none() {
                errs.push(FieldError::required(
                    child(path, "completions"),
                    "when completion mode is Indexed",
                ));
            }
        }
        Some(other) => errs.push(FieldError::not_supported(
            child(path, "completionMode"),
            other,
            &["NonIndexed", "Indexed"],
        )),
    }
    if let Some(p) = spec.pod_replacement_policy.as_deref() {
        if p != "TerminatingOrFailed" && p != "Failed" {
            errs.push(FieldError::not_supported(
                child(path, "podReplacementPolicy"),
                p,
                &["Failed", "TerminatingOrFailed"],
            ));
        }
    }
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref());
    if let Some(sel) = &spec.selector {
        errs.extend(validate_label_selector(sel, &child(path, "selector")));
        if !selector_is_empty(sel) && !selector_matches(sel, labels) {
            errs.push(FieldError::invalid(
                child(path, "template.metadata.labels"),
                render_map(labels),
                "`selector` does not match template `labels`",
            ));
        }
    }
    let tpath = child(path, "template");
    errs.extend(validate_pod_template_spec(&spec.template, &tpath));
    let rp = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("");
    if rp != "OnFailure" && rp != "Never" {
        errs.push(FieldError::required(
            child(&tpath, "spec.restartPolicy"),
            "valid values: \"OnFailure\", \"Never\"",
        ));
    }
    errs
}

/// Validates a CronJob: name at most 52 characters, schedule, concurrency policy, history
/// limits and the job template.
pub fn validate_cron_job(cj: &CronJob) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&cj.metadata, NameRule::Subdomain, "metadata");
    if let Some(name) = cj.metadata.name.as_deref() {
        if name.len() > 52 {
            errs.push(FieldError::invalid_str(
                "metadata.name",
                name,
                "must be no more than 52 characters",
            ));
        }
    }
    let default = Default::default();
    let spec = cj.spec.as_ref().unwrap_or(&default);
    if spec.schedule.is_empty() {
        errs.push(FieldError::required("spec.schedule", ""));
    } else {
        if spec.schedule.contains("TZ") {
            errs.push(FieldError::invalid_str(
                "spec.schedule",
                &spec.schedule,
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
        if let Err(e) = parse_cron_schedule(&spec.schedule) {
            errs.push(FieldError::invalid_str("spec.schedule", &spec.schedule, e));
        }
    }
    if let Some(tz) = spec.time_zone.as_deref() {
        if tz.is_empty() || tz.contains(' ') || tz.starts_with('/') || tz.contains("..") {
            errs.push(FieldError::invalid_str(
                "spec.timeZone",
                tz,
                "unknown time zone ".to_string() + tz,
            ));
        }
    }
    match spec.concurrency_policy.as_deref().unwrap_or("") {
        "Allow" | "Forbid" | "Replace" => {}
        "" => errs.push(FieldError::required("spec.concurrencyPolicy", "")),
        other => errs.push(FieldError::not_supported(
            "spec.concurrencyPolicy",
            other,
            &["Allow", "Forbid", "Replace"],
        )),
    }
    for (field, v) in [
        ("startingDeadlineSeconds", spec.starting_deadline_seconds),
        (
            "successfulJobsHistoryLimit",
            spec.successful_jobs_history_limit.map(i64::from),
        ),
        (
            "failedJobsHistoryLimit",
            spec.failed_jobs_history_limit.map(i64::from),
        ),
    ] {
        if let Some(v) = v {
            errs.extend(validate_nonnegative(v, &child("spec", field)));
        }
    }
    let jt = &spec.job_template;
    if let Some(m) = &jt.metadata {
        errs.extend(validate_labels(
            m.labels.as_ref(),
            "spec.jobTemplate.metadata.labels",
        ));
    }
    let job_default = JobSpec::default();
    errs.extend(validate_job_spec(
        jt.spec.as_ref().unwrap_or(&job_default),
        "spec.jobTemplate.spec",
    ));
    errs
}

/// Checks a cron schedule the way the CronJob controller's parser does; returns its error
/// message on failure.
pub fn parse_cron_schedule(schedule: &str) -> Result<(), String> {
    let s = schedule.trim();
    if s.is_empty() {
        return Err("empty spec string".into());
    }
    if let Some(rest) = s.strip_prefix('@') {
        if let Some(d) = rest.strip_prefix("every ") {
            return parse_go_duration(d.trim())
                .map(|_| ())
                .map_err(|e| format!("failed to parse duration {s}: {e}"));
        }
        return match rest {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => {
                Ok(())
            }
            _ => Err(format!("unrecognized descriptor: {s}")),
        };
    }
    let fields: Vec<&str> = s.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    const MONTHS: &[&str] = &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let bounds: [(u32, u32, &[&str], u32); 5] = [
        (0, 59, &[], 0),
        (0, 23, &[], 0),
        (1, 31, &[], 0),
        (1, 12, MONTHS, 1),
        (0, 6, DAYS, 0),
    ];
    for (field, (min, max, names, name_base)) in fields.iter().zip(bounds) {
        for expr in field.split(',') {
            parse_cron_range(expr, min, max, names, name_base)?;
        }
    }
    Ok(())
}

fn parse_cron_value(s: &str, names: &[&str], name_base: u32) -> Result<u32, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(i as u32 + name_base);
    }
    s.parse::<u32>().map_err(|_| {
        format!(
            "failed to parse int from {s}: strconv.Atoi: parsing {}: invalid syntax",
            go_quote(s)
        )
    })
}

fn parse_cron_range(
    expr: &str,
    min: u32,
    max: u32,
    names: &[&str],
    name_base: u32,
) -> Result<(), String> {
    let parts: Vec<&str> = expr.split('/').collect();
    if parts.len() > 2 {
        return Err(format!("too many slashes: {expr}"));
    }
    let range: Vec<&str> = parts[0].split('-').collect();
    if range.len() > 2 {
        return Err(format!("too many hyphens: {expr}"));
    }
    let (start, end) = if range[0] == "*" || range[0] == "?" {
        if range.len() > 1 {
            return Err(format!("too many hyphens: {expr}"));
        }
        (min, max)
    } else {
        let start = parse_cron_value(range[0], names, name_base)?;
        let end = if range.len() == 2 {
            parse_cron_value(range[1], names, name_base)?
        } else {
            start
        };
        (start, end)
    };
    if parts.len() == 2 {
        let step = parts[1].parse::<u32>().map_err(|_| {
            format!(
                "failed to parse int from {}: strconv.Atoi: parsing {}: invalid syntax",
                parts[1],
                go_quote(parts[1])
            )
        })?;
        if step == 0 {
            return Err(format!("step of range should be a positive number: {expr}"));
        }
    }
    if start < min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({min}): {expr}"
        ));
    }
    if end > max {
        return Err(format!(
            "end of range ({end}) above maximum ({max}): {expr}"
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    Ok(())
}

/// Parses a Go duration (`1h30m`, `90s`, `1.5h`) into seconds.
fn parse_go_duration(s: &str) -> Result<f64, String> {
    if s.is_empty() {
        return Err("time: invalid duration \"\"".into());
    }
    if s == "0" {
        return Ok(0.0);
    }
    let bad = || format!("time: invalid duration {}", go_quote(s));
    let mut total = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * mult;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron() {
        for ok in [
            "*/5 * * * *",
            "0 0 * * 0",
            "@hourly",
            "@every 1h30m",
            "0 9-17 * JAN-MAR mon-fri",
            "15,45 * 1 * ?",
        ] {
            assert!(
                parse_cron_schedule(ok).is_ok(),
                "{ok}: {:?}",
                parse_cron_schedule(ok)
            );
        }
        for bad in [
            "",
            "* * * *",
            "61 * * * *",
            "@often",
            "@every x",
            "* * * * * *",
            "*/0 * * * *",
            "5-1 * * * *",
            "a * * * *",
        ] {
            assert!(parse_cron_schedule(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_cron_schedule("* * *").unwrap_err(),
            "expected exactly 5 fields, found 3: [* * *]"
        );
    }
}
