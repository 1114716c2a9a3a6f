//! Watch streams: newline-delimited JSON events over a chunked response,
//! from a resourceVersion or from the current state, with bookmarks, the
//! Table form kubectl asks for, and the 410 ERROR event once the history
//! is compacted.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::Response;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use crate::apiserver::body::Body;
use crate::apiserver::objects::{self, requested_revision, ListFilter};
use crate::apiserver::registry::custom;
use crate::apiserver::registry::Resource;
use crate::apiserver::request::{Query, ResourceRequest};
use crate::apiserver::status::{ApiError, ApiResult};
use crate::apiserver::{printers, ApiState};
use crate::store::{EventType, StoreError, WatchEvent};

/// How watch events are rendered.
#[derive(Clone)]
pub struct Rendering {
    /// Render objects as meta.k8s.io Tables (`kubectl get -w`).
    pub table: bool,
    /// `includeObject` for Tables.
    pub include_object: String,
}

fn bookmark(r: &Resource, revision: u64, initial_end: bool) -> Value {
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if initial_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({
        "type": "BOOKMARK",
        "object": {"kind": r.kind, "apiVersion": r.api_version(), "metadata": metadata},
    })
}

struct Renderer {
    resource: &'static Resource,
    /// A custom resource's definition (its printer columns).
    custom: Option<Arc<custom::Version>>,
    rendering: Rendering,
    columns_sent: bool,
}

/// The event that tells a watcher its revision is gone from the history.
/// Expiry is an ERROR event inside a 200 stream: a bare 410 makes kubectl
/// fail and kube-rs retry the same revision.
fn expired(requested: u64, oldest: u64) -> Result<Frame<Bytes>, std::io::Error> {
    let status =
        ApiError::expired(format!("too old resource version: {requested} ({oldest})")).to_status();
    line(&json!({"type": "ERROR", "object": status}))
}

impl Renderer {
    /// One line of the stream. A plain watch sends the object's committed
    /// JSON as it is; only a Table is built from the parsed object.
    fn line(&mut self, event_type: &str, e: &WatchEvent) -> Result<Frame<Bytes>, std::io::Error> {
        if self.rendering.table {
            let obj = objects::present(self.resource, e.object().clone());
            return line(&self.event(event_type, &obj));
        }
        if let Some(converted) = custom::present(self.resource, e.object()) {
            return line(&json!({"type": event_type, "object": converted}));
        }
        let mut b = Vec::with_capacity(e.raw.len() + 40);
        b.extend_from_slice(b"{\"type\":\"");
        b.extend_from_slice(event_type.as_bytes());
        b.extend_from_slice(b"\",\"object\":");
        b.extend_from_slice(&e.raw);
        b.extend_from_slice(b"}\n");
        Ok(Frame::data(Bytes::from(b)))
    }

    fn event(&mut self, event_type: &str, obj: &Value) -> Value {
        let object = if self.rendering.table {
            let rv = obj
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("");
            let t = printers::table(
                printers::Printer::of(
                    self.resource.plural,
                    self.custom.as_ref().map(|v| v.columns.as_slice()),
                ),
                std::slice::from_ref(obj),
                rv,
                None,
                &self.rendering.include_object,
                !self.columns_sent,
                jiff::Timestamp::now(),
            );
            self.columns_sent = true;
            t
        } else {
            obj.clone()
        };
        json!({"type": event_type, "object": object})
    }
}

fn line(v: &Value) -> Result<Frame<Bytes>, std::io::Error> {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Ok(Frame::data(Bytes::from(b)))
}

/// Decide how a change looks to a watcher with a filter: an object that
/// starts matching is ADDED, one that stops matching is DELETED.
fn filtered(
    r: &Resource,
    filter: &ListFilter,
    name: Option<&str>,
    e: &WatchEvent,
) -> Option<&'static str> {
    let name_ok = |o: &Value| {
        name.is_none_or(|n| o.pointer("/metadata/name").and_then(Value::as_str) == Some(n))
    };
    let now = name_ok(e.object()) && filter.matches(r, e.object());
    let before = e
        .previous()
        .is_some_and(|p| name_ok(p) && filter.matches(r, p));
    match e.event_type {
        EventType::Added => now.then_some("ADDED"),
        EventType::Deleted => (now || before).then_some("DELETED"),
        EventType::Modified => match (before, now) {
            (true, true) => Some("MODIFIED"),
            (false, true) => Some("ADDED"),
            (true, false) => Some("DELETED"),
            (false, false) => None,
        },
    }
}

/// Start a watch and return the streaming response.
pub fn watch(
    state: Arc<ApiState>,
    req: &ResourceRequest,
    q: &Query,
    rendering: Rendering,
) -> ApiResult<Response<Body>> {
    let r = req.resource;
    let filter = ListFilter::from_query(r, q)?;
    let name = req.name.clone();
    let prefix = r.namespace_prefix(req.namespace.as_deref());
    let rv = requested_revision(q)?;
    let send_initial = q.flag("sendInitialEvents");
    let bookmarks = q.flag("allowWatchBookmarks");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t > 0)
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    // rv 0 and no rv both mean "from the current state" (with the initial
    // ADDED events); any other rv resumes after that revision.
    let from = match rv {
        Some(0) | None => None,
        Some(_) if send_initial => None,
        Some(n) => Some(n),
    };
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(64);
    let mut renderer = Renderer {
        resource: r,
        custom: state.registry.custom(r),
        rendering,
        columns_sent: false,
    };
    let start = state.cache.watch(&prefix, from);
    let response = Response::builder()
        .status(200)
        .header("Content-Type", "application/json")
        .header("Cache-Control", "no-cache, private")
        .body(StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let stream = match start {
        Ok(s) => s,
        Err(StoreError::Expired { requested, oldest }) => {
            tracing::debug!(prefix = %prefix, requested, oldest, "watch from a compacted revision");
            let _ = tx.try_send(expired(requested, oldest));
            return Ok(response);
        }
        Err(e) => return Err(ApiError::internal(e.to_string())),
    };
    let counted = state.metrics.watcher(r.group, r.version, r.kind);
    let drained = state.drained();
    tokio::spawn(async move {
        let _counted = counted;
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        tokio::pin!(drained);
        let mut last_rv = stream.revision;
        for e in &stream.initial {
            let Some(t) = filtered(r, &filter, name.as_deref(), e) else {
                continue;
            };
            if tx.send(renderer.line(t, e)).await.is_err() {
                return;
            }
        }
        if send_initial && bookmarks {
            let _ = tx.send(line(&bookmark(r, last_rv, true))).await;
        }
        let mut live = stream.live;
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        tick.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                // A draining server ends its watches; clients resume them
                // (from their last revision) on a server that is up.
                () = &mut drained => return,
                _ = tx.closed() => return,
                _ = tick.tick(), if bookmarks => {
                    let rv = state.cache.revision().max(last_rv);
                    if tx.send(line(&bookmark(r, rv, false))).await.is_err() {
                        return;
                    }
                }
                ev = live.recv() => match ev {
                    Ok(e) => {
                        if e.revision <= last_rv || !e.key.starts_with(&prefix) {
                            continue;
                        }
                        last_rv = e.revision;
                        let Some(t) = filtered(r, &filter, name.as_deref(), &e) else { continue };
                        if tx.send(renderer.line(t, &e)).await.is_err() {
                            return;
                        }
                    }
                    // A watcher that fell behind catches up from the
                    // history at once, while the missed events are still
                    // there: closing it would have the client come back
                    // later, likely past the history, and relist.
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let resumed = match state.cache.watch(&prefix, Some(last_rv)) {
                            Ok(s) => s,
                            Err(e) => {
                                tracing::debug!(prefix = %prefix, missed = n, error = %e, "watcher fell behind the history; closing it");
                                if let StoreError::Expired { requested, oldest } = e {
                                    let _ = tx.send(expired(requested, oldest)).await;
                                }
                                return;
                            }
                        };
                        tracing::debug!(prefix = %prefix, missed = n, replay = resumed.initial.len(), "watcher fell behind; catching up from the history");
                        for e in &resumed.initial {
                            if e.revision <= last_rv {
                                continue;
                            }
                            last_rv = e.revision;
                            let Some(t) = filtered(r, &filter, name.as_deref(), e) else { continue };
                            if tx.send(renderer.line(t, e)).await.is_err() {
                                return;
                            }
                        }
                        last_rv = last_rv.max(resumed.revision);
                        live = resumed.live;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    Ok(response)
}
