//! The UDP listener. Loops read the datagrams waiting on a socket in
//! batches (`recvmmsg`), answer cluster names from answers encoded once
//! (see [`wire`](crate::wire)) with no task or allocation per query,
//! and send the answers in one `sendmmsg`; the rest (forwarded names,
//! unusual messages) goes to the hickory handler in a task of its own, as
//! every query did before.

use std::collections::HashMap;
use std::io;
use std::io::{IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Instant;

use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::net::NetError;
use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::op::{Header, HeaderCounts, MessageType, Metadata, OpCode};
use hickory_server::proto::rr::{LowerName, Name, Record, RecordType};
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use nix::sys::socket::{recvmmsg, sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
use prometheus_client::metrics::counter::Counter;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::handler::{rcode_label, ClusterDnsHandler, Reply, Resolution, MAX_UDP_PAYLOAD};
use crate::index::{ClusterIndex, Lookup};
use crate::wire::{self, Answer, Query};

/// Datagrams read (and answers sent) per system call.
const BATCH: usize = 32;
/// The largest datagram taken; a query is far smaller, and one cut short
/// is dropped rather than read as a different query.
const DATAGRAM: usize = 4096;
/// Answers kept per loop; pod names (`1-2-3-4.ns.pod...`) are unbounded,
/// so the cache starts over when it is full.
const CACHE_ENTRIES: usize = 16_384;
/// Forwarded and unusual queries in flight per socket; past this, new ones
/// are dropped (the client retries) rather than queued without bound.
const MAX_TASKS: usize = 4_096;

/// Serve one socket until `stop` turns true or the socket fails; queries
/// handed to tasks are finished before it returns. Several loops may serve
/// the same socket, one per runtime worker: the kernel hands each datagram
/// to one of them (no `SO_REUSEPORT`, which would also let a second
/// process bind the port silently instead of failing).
pub(crate) async fn serve(
    socket: Arc<UdpSocket>,
    handler: ClusterDnsHandler,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let mut answers = AnswerCache::new(handler.index().clone());
    let mut tasks = JoinSet::new();
    let mut batch = Batch::new();
    let result = loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => break Ok(()),
            ready = socket.readable() => {
                if let Err(error) = ready {
                    break Err(error);
                }
            }
        }
        // Everything waiting, a batch at a time, then back to waiting for
        // readiness; sends take from tokio's cooperative budget, so a flood
        // still yields to other tasks.
        loop {
            match socket.try_io(Interest::READABLE, || batch.receive(socket.as_raw_fd())) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => {
                    tracing::debug!(%error, "receiving DNS queries");
                    break;
                }
            }
            let started = Instant::now();
            let mut answered = 0;
            for slot in 0..batch.received.len() {
                let (len, src, truncated) = batch.received[slot];
                if src.port() == 0 || truncated {
                    // No reply possible, or bigger than any query we take.
                    continue;
                }
                let datagram = &batch.buffers[slot][..len];
                let cached = wire::parse_query(datagram)
                    .and_then(|query| Some((answers.get(&handler, &query)?, query)));
                match cached {
                    Some((cached, query)) => {
                        batch.destinations[answered] = Some(SockaddrStorage::from(src));
                        let out = &mut batch.replies[answered];
                        cached.answer.respond(&query, MAX_UDP_PAYLOAD, out);
                        cached.requests.inc();
                        answered += 1;
                    }
                    None => spawn_full(&mut tasks, &socket, &handler, datagram, src),
                }
            }
            batch.send(&socket, answered).await;
            let elapsed = started.elapsed();
            for _ in 0..answered {
                handler.metrics().observe_duration(elapsed);
            }
            while tasks.try_join_next().is_some() {}
        }
    };
    while tasks.join_next().await.is_some() {}
    result
}

/// Datagrams read with one `recvmmsg` and answers sent with one `sendmmsg`.
struct Batch {
    buffers: Vec<Box<[u8]>>,
    /// Length, source and whether it was cut short, per buffer filled.
    received: Vec<(usize, SocketAddr, bool)>,
    replies: Vec<Vec<u8>>,
    destinations: Vec<Option<SockaddrStorage>>,
}

impl Batch {
    fn new() -> Self {
        Self {
            buffers: (0..BATCH)
                .map(|_| vec![0u8; DATAGRAM].into_boxed_slice())
                .collect(),
            received: Vec::with_capacity(BATCH),
            replies: (0..BATCH)
                .map(|_| Vec::with_capacity(MAX_UDP_PAYLOAD as usize))
                .collect(),
            destinations: vec![None; BATCH],
        }
    }

    /// Read what is waiting, up to a batch; `WouldBlock` when nothing is.
    fn receive(&mut self, fd: RawFd) -> io::Result<()> {
        self.received.clear();
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .buffers
            .iter_mut()
            .map(|buffer| [IoSliceMut::new(buffer)])
            .collect();
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let results = recvmmsg(
            fd,
            &mut headers,
            slices.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )
        .map_err(io::Error::from)?;
        for message in results {
            let Some(src) = message.address.as_ref().and_then(socket_addr) else {
                continue;
            };
            let truncated = message.flags.contains(MsgFlags::MSG_TRUNC);
            self.received.push((message.bytes, src, truncated));
        }
        Ok(())
    }

    /// Send the first `count` replies, waiting when the socket's buffer is
    /// full; a reply the kernel refuses is logged and skipped.
    async fn send(&mut self, socket: &UdpSocket, count: usize) {
        let mut sent = 0;
        while sent < count {
            let replies = &self.replies[sent..count];
            let destinations = &self.destinations[sent..count];
            match socket.try_io(Interest::WRITABLE, || {
                send_batch(socket.as_raw_fd(), replies, destinations)
            }) {
                Ok(n) => sent += n.max(1),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    if socket.writable().await.is_err() {
                        return;
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "sending a DNS answer");
                    sent += 1;
                }
            }
        }
    }
}

fn send_batch(
    fd: RawFd,
    replies: &[Vec<u8>],
    destinations: &[Option<SockaddrStorage>],
) -> io::Result<usize> {
    let slices: Vec<[IoSlice<'_>; 1]> = replies.iter().map(|r| [IoSlice::new(r)]).collect();
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(replies.len(), None);
    let results = sendmmsg(
        fd,
        &mut headers,
        slices.iter(),
        destinations,
        [],
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(io::Error::from)?;
    Ok(results.count())
}

fn socket_addr(address: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    address
        .as_sockaddr_in6()
        .map(|v6| SocketAddr::V6((*v6).into()))
}

/// Answer through hickory's decoder and the handler, in a task: forwarded
/// names wait for an upstream, and unusual messages get hickory's handling.
fn spawn_full(
    tasks: &mut JoinSet<()>,
    socket: &Arc<UdpSocket>,
    handler: &ClusterDnsHandler,
    datagram: &[u8],
    src: SocketAddr,
) {
    if tasks.len() >= MAX_TASKS {
        tracing::debug!(%src, "too many DNS queries in flight; dropping one");
        return;
    }
    let request = match Request::from_bytes(datagram.to_vec(), src, Protocol::Udp) {
        Ok(request) => request,
        Err(error) => {
            // A header was there (twelve bytes) but the rest did not parse.
            tracing::debug!(%error, %src, "malformed DNS query");
            if let Some(answer) = wire::error_response(datagram, ResponseCode::FormErr.low()) {
                let _ = socket.try_send_to(&answer, src);
            }
            return;
        }
    };
    if request.metadata.message_type == MessageType::Response {
        // Never answer a response: that would make this a reflector.
        return;
    }
    let max_payload = request
        .edns
        .as_ref()
        .map_or(wire::CLASSIC_UDP_PAYLOAD, |edns| {
            edns.max_payload()
                .clamp(wire::CLASSIC_UDP_PAYLOAD, MAX_UDP_PAYLOAD)
        });
    let mut query_header = [0u8; wire::HEADER_LEN];
    query_header.copy_from_slice(&datagram[..wire::HEADER_LEN]);
    let responder = UdpResponder {
        socket: socket.clone(),
        to: src,
        max_payload,
        query_header,
    };
    let handler = handler.clone();
    tasks.spawn(async move {
        handler
            .handle_request::<_, TokioTime>(&request, responder)
            .await;
    });
}

/// Sends one hickory response as a datagram, cut to what the client
/// accepts.
#[derive(Clone)]
struct UdpResponder {
    socket: Arc<UdpSocket>,
    to: SocketAddr,
    max_payload: u16,
    /// The query's header, for an error answer of last resort.
    query_header: [u8; wire::HEADER_LEN],
}

#[async_trait::async_trait]
impl ResponseHandler for UdpResponder {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(self.max_payload);
        let info = match response.destructive_emit(&mut encoder) {
            Ok(info) => info,
            Err(error) => {
                // What hickory's own encoder does then: a bare SERVFAIL,
                // with the query's ID so the client takes it.
                tracing::error!(%error, "encoding a DNS response");
                bytes = wire::error_response(&self.query_header, ResponseCode::ServFail.low())
                    .unwrap_or_default();
                let id = u16::from_be_bytes([self.query_header[0], self.query_header[1]]);
                let mut metadata = Metadata::new(id, MessageType::Response, OpCode::Query);
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        };
        self.socket.send_to(&bytes, self.to).await?;
        Ok(info)
    }
}

/// Answers encoded from the index, valid while its generation holds.
struct AnswerCache {
    index: Arc<ClusterIndex>,
    generation: u64,
    entries: HashMap<Box<[u8]>, Cached>,
    key: Vec<u8>,
    /// The last answer encoded from the forwarder's cache.
    forwarded: Option<Cached>,
}

struct Cached {
    answer: Answer,
    /// `kedge_dns_requests` of this answer's type and response code.
    requests: Counter,
}

impl AnswerCache {
    fn new(index: Arc<ClusterIndex>) -> Self {
        Self {
            generation: index.generation(),
            index,
            entries: HashMap::new(),
            key: Vec::with_capacity(260),
            forwarded: None,
        }
    }

    /// The answer to a query the index alone answers, encoded on first use;
    /// else one the forwarder holds in its cache, encoded for this query
    /// (its TTLs age, so it is not kept here); `None` when it needs an
    /// upstream (or has a record this encoder does not write).
    fn get(&mut self, handler: &ClusterDnsHandler, query: &Query<'_>) -> Option<&Cached> {
        let generation = self.index.generation();
        if generation != self.generation {
            self.entries.clear();
            self.generation = generation;
        }
        query.key_into(&mut self.key);
        if !self.entries.contains_key(self.key.as_slice()) {
            match encode(handler, query)? {
                Encoded::Zone(cached) => {
                    if self.entries.len() >= CACHE_ENTRIES {
                        self.entries.clear();
                    }
                    self.entries
                        .insert(self.key.clone().into_boxed_slice(), cached);
                }
                Encoded::Forwarded(cached) => return Some(self.forwarded.insert(cached)),
            }
        }
        self.entries.get(self.key.as_slice())
    }
}

/// An answer encoded from the zone (kept until it changes), or from the
/// forwarder's cache (for this query only).
enum Encoded {
    Zone(Cached),
    Forwarded(Cached),
}

fn encode(handler: &ClusterDnsHandler, query: &Query<'_>) -> Option<Encoded> {
    let name = LowerName::new(&Name::from_labels(wire::labels(query.name())).ok()?);
    let rtype = RecordType::from(query.qtype);
    let (reply, kept) = match handler.resolve_locally(&name, rtype) {
        Resolution::Local(reply) => (reply, Encoded::Zone as fn(Cached) -> Encoded),
        // A name outside the cluster domain whose answer the forwarder
        // holds: answered here too, without a task (ExternalName targets
        // and misses go to the handler).
        Resolution::Upstream(Lookup::Outside) => {
            let forwarded = handler.forwarder().cached(&name, rtype)?;
            let reply = Reply {
                rcode: forwarded.rcode,
                authoritative: false,
                answers: forwarded.answers,
                authorities: forwarded.authorities,
                additionals: forwarded.additionals,
            };
            (reply, Encoded::Forwarded as fn(Cached) -> Encoded)
        }
        Resolution::Upstream(_) => return None,
    };
    let answer = Answer::encode(
        query.name(),
        reply.authoritative,
        reply.rcode.low(),
        [&reply.answers, &reply.authorities, &reply.additionals],
    )?;
    Some(kept(Cached {
        answer,
        requests: handler
            .metrics()
            .request_counter(rtype.into(), rcode_label(reply.rcode)),
    }))
}
