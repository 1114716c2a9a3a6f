//! The UDP listener. One loop per socket reads the datagrams that are
//! waiting and answers cluster names from answers encoded once (see
//! [`wire`](crate::wire)) with no task, lock or allocation per query; the
//! rest (forwarded names, unusual messages) goes to the hickory handler in
//! a task of its own, as every query did before.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
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
use prometheus_client::metrics::counter::Counter;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::handler::{rcode_label, ClusterDnsHandler, Resolution, MAX_UDP_PAYLOAD};
use crate::index::ClusterIndex;
use crate::wire::{self, Answer, Query};

/// The largest datagram read; a query is far smaller, but one cut short
/// must not look like a different, valid query.
const RECEIVE_BUFFER: usize = 65_535;
/// Answers kept per loop; pod names (`1-2-3-4.ns.pod...`) are unbounded,
/// so the cache starts over when it is full.
const CACHE_ENTRIES: usize = 16_384;
/// Forwarded and unusual queries in flight per socket; past this, new ones
/// are dropped (the client retries) rather than queued without bound.
const MAX_TASKS: usize = 4_096;

/// Serve one socket until `stop` turns true or the socket fails; queries
/// handed to tasks are finished before it returns.
pub(crate) async fn serve(
    socket: UdpSocket,
    handler: ClusterDnsHandler,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let socket = Arc::new(socket);
    let mut answers = AnswerCache::new(handler.index().clone());
    let mut tasks = JoinSet::new();
    let mut packet = vec![0u8; RECEIVE_BUFFER];
    let mut out = Vec::with_capacity(MAX_UDP_PAYLOAD as usize);
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
        // Everything waiting, then back to waiting for readiness; sends
        // take from tokio's cooperative budget, so a flood still yields.
        loop {
            let (len, src) = match socket.try_recv_from(&mut packet) {
                Ok(received) => received,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                // ICMP errors of earlier sends surface here; they are about
                // one client, not the socket.
                Err(error) => {
                    tracing::debug!(%error, "receiving a DNS query");
                    continue;
                }
            };
            if src.port() == 0 {
                continue;
            }
            let started = Instant::now();
            let datagram = &packet[..len];
            match wire::parse_query(datagram) {
                Some(query) => match answers.get(&handler, &query) {
                    Some(cached) => {
                        cached.answer.respond(&query, MAX_UDP_PAYLOAD, &mut out);
                        send(&socket, &out, src).await;
                        cached.requests.inc();
                        handler.metrics().observe_duration(started.elapsed());
                    }
                    None => spawn_full(&mut tasks, &socket, &handler, datagram, src),
                },
                None => spawn_full(&mut tasks, &socket, &handler, datagram, src),
            }
            while tasks.try_join_next().is_some() {}
        }
    };
    while tasks.join_next().await.is_some() {}
    result
}

async fn send(socket: &UdpSocket, datagram: &[u8], to: SocketAddr) {
    if let Err(error) = socket.send_to(datagram, to).await {
        tracing::debug!(%error, %to, "sending a DNS answer");
    }
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
    if tasks.len() >= MAX_TASKS {
        tracing::debug!(%src, "too many DNS queries in flight; dropping one");
        return;
    }
    let max_payload = request
        .edns
        .as_ref()
        .map_or(wire::CLASSIC_UDP_PAYLOAD, |edns| {
            edns.max_payload()
                .clamp(wire::CLASSIC_UDP_PAYLOAD, MAX_UDP_PAYLOAD)
        });
    let responder = UdpResponder {
        socket: socket.clone(),
        to: src,
        max_payload,
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
                tracing::error!(%error, "encoding a DNS response");
                bytes.clear();
                let mut metadata = Metadata::new(0, MessageType::Response, OpCode::Query);
                metadata.response_code = ResponseCode::ServFail;
                let header = Header {
                    metadata,
                    counts: HeaderCounts::default(),
                };
                ResponseInfo::from(header)
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
        }
    }

    /// The answer to a query the index alone answers, encoded on first use;
    /// `None` when it needs an upstream (or a record this encoder does not
    /// write).
    fn get(&mut self, handler: &ClusterDnsHandler, query: &Query<'_>) -> Option<&Cached> {
        let generation = self.index.generation();
        if generation != self.generation {
            self.entries.clear();
            self.generation = generation;
        }
        query.key_into(&mut self.key);
        if !self.entries.contains_key(self.key.as_slice()) {
            let cached = encode(handler, query)?;
            if self.entries.len() >= CACHE_ENTRIES {
                self.entries.clear();
            }
            self.entries
                .insert(self.key.clone().into_boxed_slice(), cached);
        }
        self.entries.get(self.key.as_slice())
    }
}

fn encode(handler: &ClusterDnsHandler, query: &Query<'_>) -> Option<Cached> {
    let name = Name::from_labels(wire::labels(query.name())).ok()?;
    let rtype = RecordType::from(query.qtype);
    let Resolution::Local(reply) = handler.resolve_locally(&LowerName::new(&name), rtype) else {
        return None;
    };
    let answer = Answer::encode(
        query.name(),
        reply.authoritative,
        reply.rcode.low(),
        [&reply.answers, &reply.authorities, &reply.additionals],
    )?;
    Some(Cached {
        answer,
        requests: handler
            .metrics()
            .request_counter(rtype.into(), rcode_label(reply.rcode)),
    })
}
