//! Names outside the cluster domain go to upstream resolvers: UDP first,
//! TCP when the upstream truncates, each upstream in turn, and answers
//! kept in a small cache for as long as their TTLs allow — and a while
//! longer, to be served stale when no upstream answers (RFC 8767).

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_server::proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::metrics::Metrics;

/// The longest a positive answer is cached, whatever its TTL.
const MAX_POSITIVE_TTL: u32 = 3600;
/// The longest a negative answer (NXDOMAIN, NODATA) is cached.
const MAX_NEGATIVE_TTL: u32 = 1800;
/// How long past its TTL an answer is kept to be served when no upstream
/// answers (RFC 8767; CoreDNS's `serve_stale` default).
const STALE_WINDOW: Duration = Duration::from_secs(3600);
/// The TTL a stale answer is served with (RFC 8767 recommends 30 s).
const STALE_TTL: u32 = 30;
/// The UDP payload size offered to upstreams (the DNS flag day value).
const UPSTREAM_PAYLOAD: u16 = 1232;

/// Why no upstream answered.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No upstream resolver is configured.
    #[error("no upstream resolvers configured")]
    NoUpstreams,
    /// The upstream did not answer in time.
    #[error("upstream {upstream} timed out")]
    Timeout {
        /// The upstream asked.
        upstream: SocketAddr,
    },
    /// Sending to or receiving from the upstream failed.
    #[error("exchange with upstream {upstream}")]
    Io {
        /// The upstream asked.
        upstream: SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The upstream's answer could not be read.
    #[error("malformed answer from upstream {upstream}")]
    Malformed {
        /// The upstream asked.
        upstream: SocketAddr,
    },
    /// The upstream answered SERVFAIL.
    #[error("upstream {upstream} answered SERVFAIL")]
    ServerFailure {
        /// The upstream asked.
        upstream: SocketAddr,
    },
    /// The query could not be encoded.
    #[error("encoding the query")]
    Encode(#[source] hickory_server::proto::ProtoError),
}

/// An upstream's answer, as it is replayed to clients.
#[derive(Debug, Clone)]
pub struct Forwarded {
    /// The upstream's response code.
    pub rcode: ResponseCode,
    /// The answer section.
    pub answers: Vec<Record>,
    /// The authority section.
    pub authorities: Vec<Record>,
    /// The additional section, without the OPT record.
    pub additionals: Vec<Record>,
}

impl Forwarded {
    /// Every record of the three sections.
    fn records_mut(&mut self) -> impl Iterator<Item = &mut Record> {
        self.answers
            .iter_mut()
            .chain(self.authorities.iter_mut())
            .chain(self.additionals.iter_mut())
    }
}

/// Sends queries to the upstream resolvers, through the cache.
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
    cache: ResponseCache,
    metrics: Arc<Metrics>,
}

// === impl Forwarder ===

impl Forwarder {
    /// A forwarder asking `upstreams` in order, waiting `timeout` for each,
    /// caching up to `cache_size` answers.
    pub fn new(
        upstreams: Vec<SocketAddr>,
        timeout: Duration,
        cache_size: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            upstreams,
            timeout,
            cache: ResponseCache::new(cache_size),
            metrics,
        }
    }

    /// The upstream resolvers, in the order they are asked.
    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// The answer for a name and type, from the cache or the upstreams.
    pub async fn resolve(
        &self,
        name: &LowerName,
        rtype: RecordType,
    ) -> Result<Forwarded, ForwardError> {
        let key = (name.clone(), rtype);
        if let Some(hit) = self.cache.get(&key) {
            self.metrics.observe_cache(true);
            return Ok(hit);
        }
        self.metrics.observe_cache(false);
        match self.exchange(&Name::from(name.clone()), rtype).await {
            Ok(answer) => {
                self.cache.insert(key, &answer);
                Ok(answer)
            }
            Err(error) => match self.cache.get_stale(&key) {
                Some(stale) => {
                    tracing::debug!(%error, %name, "no upstream answered; serving a stale answer");
                    self.metrics.observe_forward("stale");
                    Ok(stale)
                }
                None => Err(error),
            },
        }
    }

    /// The cached answer for a name and type, if one is fresh (counted as
    /// a cache hit; a miss is counted by [`resolve`](Self::resolve)).
    pub(crate) fn cached(&self, name: &LowerName, rtype: RecordType) -> Option<Forwarded> {
        let hit = self.cache.get(&(name.clone(), rtype))?;
        self.metrics.observe_cache(true);
        Some(hit)
    }

    async fn exchange(&self, name: &Name, rtype: RecordType) -> Result<Forwarded, ForwardError> {
        let mut last = ForwardError::NoUpstreams;
        for upstream in &self.upstreams {
            let id: u16 = rand::random();
            let query = encode_query(id, name, rtype)?;
            match self.exchange_one(*upstream, id, &query).await {
                Ok(message) => {
                    // A SERVFAIL from one upstream may be its own trouble.
                    if message.metadata.response_code == ResponseCode::ServFail {
                        self.metrics.observe_forward("servfail");
                        last = ForwardError::ServerFailure {
                            upstream: *upstream,
                        };
                        continue;
                    }
                    self.metrics.observe_forward("ok");
                    return Ok(Forwarded::from(message));
                }
                Err(error) => {
                    self.metrics.observe_forward("error");
                    tracing::debug!(%error, "upstream exchange failed");
                    last = error;
                }
            }
        }
        Err(last)
    }

    async fn exchange_one(
        &self,
        upstream: SocketAddr,
        id: u16,
        query: &[u8],
    ) -> Result<Message, ForwardError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let io = |source| ForwardError::Io { upstream, source };
        let local: SocketAddr = if upstream.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local).await.map_err(io)?;
        socket.connect(upstream).await.map_err(io)?;
        socket.send(query).await.map_err(io)?;
        let mut buf = vec![0u8; 4096];
        loop {
            let received = tokio::time::timeout_at(deadline, socket.recv(&mut buf))
                .await
                .map_err(|_| ForwardError::Timeout { upstream })?
                .map_err(io)?;
            // Anything not answering our query (stray or spoofed) is ignored.
            let Ok(message) = Message::from_vec(&buf[..received]) else {
                continue;
            };
            if message.metadata.id != id || message.metadata.message_type != MessageType::Response {
                continue;
            }
            if message.metadata.truncation {
                self.metrics.observe_forward("truncated_retry");
                return tokio::time::timeout_at(deadline, exchange_tcp(upstream, id, query))
                    .await
                    .map_err(|_| ForwardError::Timeout { upstream })?;
            }
            return Ok(message);
        }
    }
}

async fn exchange_tcp(
    upstream: SocketAddr,
    id: u16,
    query: &[u8],
) -> Result<Message, ForwardError> {
    let io = |source| ForwardError::Io { upstream, source };
    let mut stream = TcpStream::connect(upstream).await.map_err(io)?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&(query.len() as u16).to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).await.map_err(io)?;
    let length = stream.read_u16().await.map_err(io)? as usize;
    let mut buf = vec![0u8; length];
    stream.read_exact(&mut buf).await.map_err(io)?;
    let message = Message::from_vec(&buf).map_err(|_| ForwardError::Malformed { upstream })?;
    if message.metadata.id != id {
        return Err(ForwardError::Malformed { upstream });
    }
    Ok(message)
}

fn encode_query(id: u16, name: &Name, rtype: RecordType) -> Result<Vec<u8>, ForwardError> {
    let mut message = Message::query();
    message.metadata.id = id;
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name.clone(), rtype));
    let mut edns = Edns::new();
    edns.set_max_payload(UPSTREAM_PAYLOAD);
    message.set_edns(edns);
    message.to_vec().map_err(ForwardError::Encode)
}

impl From<Message> for Forwarded {
    fn from(mut message: Message) -> Self {
        Self {
            rcode: message.metadata.response_code,
            answers: std::mem::take(&mut message.answers),
            authorities: std::mem::take(&mut message.authorities),
            additionals: std::mem::take(&mut message.additionals)
                .into_iter()
                .filter(|r| r.record_type() != RecordType::OPT)
                .collect(),
        }
    }
}

// === impl ResponseCache ===

type CacheKey = (LowerName, RecordType);

struct Entry {
    answer: Forwarded,
    stored: Instant,
    ttl: u32,
}

impl Entry {
    /// Within its TTL plus the stale window.
    fn servable_stale(&self) -> bool {
        self.stored.elapsed() < Duration::from_secs(u64::from(self.ttl)) + STALE_WINDOW
    }
}

/// Upstream answers by name and type, bounded in entries; each lives for
/// the smallest TTL of its records, and comes back with TTLs lowered by
/// its age.
pub struct ResponseCache {
    capacity: usize,
    entries: Mutex<HashMap<CacheKey, Entry>>,
}

impl ResponseCache {
    /// A cache of at most `capacity` answers (0 disables it).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &CacheKey) -> Option<Forwarded> {
        let mut entries = self.entries.lock();
        let entry = entries.get(key)?;
        let age = entry.stored.elapsed().as_secs() as u32;
        if age >= entry.ttl {
            if !entry.servable_stale() {
                entries.remove(key);
            }
            return None;
        }
        let mut answer = entry.answer.clone();
        drop(entries);
        answer.records_mut().for_each(|r| {
            r.decrement_ttl(age);
        });
        Some(answer)
    }

    /// An expired answer still inside the stale window, its TTLs set to
    /// [`STALE_TTL`].
    fn get_stale(&self, key: &CacheKey) -> Option<Forwarded> {
        let entries = self.entries.lock();
        let entry = entries.get(key).filter(|e| e.servable_stale())?;
        let mut answer = entry.answer.clone();
        drop(entries);
        answer.records_mut().for_each(|r| r.ttl = STALE_TTL);
        Some(answer)
    }

    fn insert(&self, key: CacheKey, answer: &Forwarded) {
        if self.capacity == 0 {
            return;
        }
        let Some(ttl) = cache_ttl(answer).filter(|ttl| *ttl > 0) else {
            return;
        };
        let mut entries = self.entries.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            // Expired answers go first, stale or not.
            entries.retain(|_, e| e.stored.elapsed().as_secs() < u64::from(e.ttl));
            if entries.len() >= self.capacity {
                // Still full: drop an arbitrary entry (hash order).
                if let Some(victim) = entries.keys().next().cloned() {
                    entries.remove(&victim);
                }
            }
        }
        entries.insert(
            key,
            Entry {
                answer: answer.clone(),
                stored: Instant::now(),
                ttl,
            },
        );
    }

    /// How many answers are held.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Whether no answer is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How long an answer may be cached: the smallest TTL of its answers, or
/// for a negative answer the SOA's negative TTL (RFC 2308); nothing for
/// other response codes.
fn cache_ttl(answer: &Forwarded) -> Option<u32> {
    match answer.rcode {
        ResponseCode::NoError if !answer.answers.is_empty() => answer
            .answers
            .iter()
            .map(|r| r.ttl)
            .min()
            .map(|ttl| ttl.min(MAX_POSITIVE_TTL)),
        ResponseCode::NoError | ResponseCode::NXDomain => answer
            .authorities
            .iter()
            .find_map(|r| match &r.data {
                RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                _ => None,
            })
            .map(|ttl| ttl.min(MAX_NEGATIVE_TTL)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a_record(ttl: u32) -> Record {
        Record::from_rdata(
            Name::from_ascii("example.com.").unwrap(),
            ttl,
            RData::A(hickory_server::proto::rr::rdata::A::new(192, 0, 2, 1)),
        )
    }

    fn answer(ttl: u32) -> Forwarded {
        Forwarded {
            rcode: ResponseCode::NoError,
            answers: vec![a_record(ttl)],
            authorities: vec![],
            additionals: vec![],
        }
    }

    fn key(name: &str) -> CacheKey {
        (
            LowerName::new(&Name::from_ascii(name).unwrap()),
            RecordType::A,
        )
    }

    #[test]
    fn cache_honours_ttl_and_bound() {
        let cache = ResponseCache::new(2);
        cache.insert(key("a.example."), &answer(300));
        cache.insert(key("b.example."), &answer(0));
        assert!(
            cache.get(&key("b.example.")).is_none(),
            "TTL 0 is not cached"
        );
        cache.insert(key("c.example."), &answer(300));
        cache.insert(key("d.example."), &answer(300));
        assert_eq!(cache.len(), 2, "bounded");
        let hit = cache.get(&key("d.example.")).unwrap();
        assert_eq!(hit.answers[0].ttl, 300);
    }

    #[test]
    fn expired_answers_are_served_stale_only_when_asked() {
        let cache = ResponseCache::new(8);
        cache.insert(key("a.example."), &answer(300));
        // Age it past its TTL.
        cache
            .entries
            .lock()
            .get_mut(&key("a.example."))
            .unwrap()
            .stored -= Duration::from_secs(301);
        assert!(cache.get(&key("a.example.")).is_none(), "expired");
        let stale = cache.get_stale(&key("a.example.")).unwrap();
        assert_eq!(stale.answers[0].ttl, STALE_TTL);
        // Past the stale window it is gone.
        cache
            .entries
            .lock()
            .get_mut(&key("a.example."))
            .unwrap()
            .stored -= STALE_WINDOW;
        assert!(cache.get_stale(&key("a.example.")).is_none());
        assert!(cache.get(&key("a.example.")).is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn servfail_is_not_cached() {
        let cache = ResponseCache::new(8);
        let mut failed = answer(300);
        failed.rcode = ResponseCode::ServFail;
        cache.insert(key("a.example."), &failed);
        assert!(cache.is_empty());
    }
}
