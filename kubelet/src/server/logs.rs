//! `GET /containerLogs/{namespace}/{pod}/{container}`: a container's
//! output as text/plain, streamed (chunked) as it comes.

use std::future::ready;

use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::{Response, StatusCode};
use jiff::Timestamp;

use super::{
    container_not_found, parse_bool, query_pairs, runtime_error_response, status_response, Body,
    StreamingBackend,
};
use crate::runtime::LogOptions;

/// What a `containerLogs` query asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct LogQuery {
    /// Passed to the runtime.
    pub options: LogOptions,
    /// The container that ended before the current one.
    pub previous: bool,
}

/// Parse the query of a `containerLogs` request, validated as Kubernetes
/// validates `PodLogOptions`; unknown parameters are ignored.
pub(super) fn parse_query(raw: Option<&str>, now: Timestamp) -> Result<LogQuery, String> {
    let mut q = LogQuery::default();
    let mut since_time = None;
    let int = |key: &str, value: &str| {
        value
            .parse::<i64>()
            .map_err(|_| format!("{key}: invalid integer {value:?}"))
    };
    for (key, value) in query_pairs(raw) {
        match key.as_str() {
            "follow" => q.options.follow = parse_bool(&key, &value)?,
            "timestamps" => q.options.timestamps = parse_bool(&key, &value)?,
            "previous" => q.previous = parse_bool(&key, &value)?,
            "tailLines" => {
                let n = int(&key, &value)?;
                if n < 0 {
                    return Err("tailLines: must be greater than or equal to 0".into());
                }
                q.options.tail_lines = Some(n);
            }
            "limitBytes" => {
                let n = int(&key, &value)?;
                if n < 1 {
                    return Err("limitBytes: must be greater than 0".into());
                }
                q.options.limit_bytes = Some(n);
            }
            "sinceSeconds" => {
                let n = int(&key, &value)?;
                if n < 1 {
                    return Err("sinceSeconds: must be greater than 0".into());
                }
                q.options.since_seconds = Some(n);
            }
            "sinceTime" => {
                let t: Timestamp = value
                    .parse()
                    .map_err(|e| format!("sinceTime: invalid time {value:?}: {e}"))?;
                since_time = Some(t);
            }
            _ => {}
        }
    }
    if let Some(t) = since_time {
        if q.options.since_seconds.is_some() {
            return Err("at most one of sinceTime or sinceSeconds may be specified".into());
        }
        // The runtime takes an age; round it up so the line written at
        // `sinceTime` is kept.
        let age = now.duration_since(t).as_secs_f64().ceil() as i64;
        q.options.since_seconds = Some(age.max(1));
    }
    Ok(q)
}

/// Answer a logs request.
pub(super) async fn handle<B: StreamingBackend>(
    backend: &B,
    namespace: &str,
    pod: &str,
    container: &str,
    query: Option<&str>,
) -> Response<Body> {
    let q = match parse_query(query, Timestamp::now()) {
        Ok(q) => q,
        Err(message) => return status_response(StatusCode::BAD_REQUEST, "BadRequest", &message),
    };
    let id = backend
        .find_container(namespace, pod, Some(container), q.previous)
        // A container waiting to restart has no current instance; its logs
        // are the last one's, as Kubernetes shows for CrashLoopBackOff.
        .or_else(|| {
            (!q.previous)
                .then(|| backend.find_container(namespace, pod, Some(container), true))
                .flatten()
        });
    let Some(id) = id else {
        return container_not_found(namespace, pod, container);
    };
    let stream = match backend.container_logs(&id, &q.options).await {
        Ok(s) => s,
        Err(e) => return runtime_error_response(&e),
    };
    let (namespace, pod, container) = (
        namespace.to_string(),
        pod.to_string(),
        container.to_string(),
    );
    // An error mid-stream ends the output cleanly: a cut chunked body would
    // only make kubectl report "unexpected EOF" instead of the cause.
    let frames = stream.scan((), move |_, item| {
        ready(match item {
            Ok(chunk) => Some(Ok::<_, std::io::Error>(Frame::data(chunk))),
            Err(e) => {
                tracing::warn!(%namespace, %pod, %container, error = %e, "streaming logs");
                None
            }
        })
    });
    Response::builder()
        .header("Content-Type", "text/plain")
        .body(StreamBody::new(frames).boxed_unsync())
        .expect("static response parts are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<LogQuery, String> {
        parse_query(Some(raw), "2026-01-01T00:01:00Z".parse().unwrap())
    }

    #[test]
    fn parses_every_option() {
        let q = parse("follow=true&tailLines=10&timestamps=1&previous=false&sinceSeconds=30&limitBytes=500&container=x").unwrap();
        assert_eq!(
            q,
            LogQuery {
                options: LogOptions {
                    follow: true,
                    tail_lines: Some(10),
                    timestamps: true,
                    since_seconds: Some(30),
                    limit_bytes: Some(500),
                },
                previous: false,
            }
        );
        assert_eq!(parse("").unwrap(), LogQuery::default());
        assert!(parse("&&previous=true").unwrap().previous);
    }

    #[test]
    fn since_time_becomes_an_age() {
        let q = parse("sinceTime=2026-01-01T00:00:00Z").unwrap();
        assert_eq!(q.options.since_seconds, Some(60));
        let q = parse("sinceTime=2026-01-01T00:00:59.5Z").unwrap();
        assert_eq!(q.options.since_seconds, Some(1));
        let q = parse("sinceTime=2027-01-01T00:00:00Z").unwrap();
        assert_eq!(q.options.since_seconds, Some(1));
    }

    #[test]
    fn rejects_what_kubernetes_rejects() {
        for bad in [
            "tailLines=-1",
            "tailLines=ten",
            "limitBytes=0",
            "sinceSeconds=0",
            "follow=maybe",
            "sinceTime=yesterday",
            "sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
