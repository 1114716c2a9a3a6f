//! The request handler: cluster names from the index, everything else
//! forwarded.
//!
//! A direct `RequestHandler` rather than hickory's `Catalog` of zone
//! handlers: one index lookup per query instead of the Catalog's suffix
//! walk, and the handler decides between authoritative and forwarded
//! answers itself (as ztunnel's DNS does).

use std::sync::Arc;
use std::time::Instant;

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::{DNSClass, LowerName, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use crate::forward::Forwarder;
use crate::index::{ClusterIndex, Lookup};
use crate::metrics::Metrics;

/// The largest UDP answer offered, whatever a client's EDNS size says.
pub(crate) const MAX_UDP_PAYLOAD: u16 = 4096;

/// Answers cluster names from a [`ClusterIndex`] and forwards the rest.
#[derive(Clone)]
pub struct ClusterDnsHandler {
    index: Arc<ClusterIndex>,
    forwarder: Arc<Forwarder>,
    metrics: Arc<Metrics>,
}

/// One response, before it is encoded.
pub(crate) struct Reply {
    pub(crate) rcode: ResponseCode,
    pub(crate) authoritative: bool,
    pub(crate) answers: Vec<Record>,
    pub(crate) authorities: Vec<Record>,
    pub(crate) additionals: Vec<Record>,
}

/// What the index alone makes of a question.
pub(crate) enum Resolution {
    /// The whole reply, from cluster records.
    Local(Reply),
    /// A lookup that needs an upstream resolver.
    Upstream(Lookup),
}

// === impl ClusterDnsHandler ===

impl ClusterDnsHandler {
    /// A handler over an index and a forwarder.
    pub fn new(index: Arc<ClusterIndex>, forwarder: Arc<Forwarder>, metrics: Arc<Metrics>) -> Self {
        Self {
            index,
            forwarder,
            metrics,
        }
    }

    /// The reply for a name the index answers alone, or the lookup that
    /// needs an upstream (a name outside the cluster domain, or an
    /// ExternalName target).
    pub(crate) fn resolve_locally(&self, name: &LowerName, rtype: RecordType) -> Resolution {
        match self.index.lookup(name, rtype) {
            Lookup::Answer {
                records,
                external_target: None,
            } => {
                let mut reply = Reply::authoritative(ResponseCode::NoError, records);
                if rtype == RecordType::SRV {
                    reply.additionals = self.srv_additionals(&reply.answers);
                }
                Resolution::Local(reply)
            }
            Lookup::NoData => {
                let mut reply = Reply::authoritative(ResponseCode::NoError, Vec::new());
                reply.authorities.push(self.index.soa().clone());
                Resolution::Local(reply)
            }
            Lookup::NxDomain => {
                let mut reply = Reply::authoritative(ResponseCode::NXDomain, Vec::new());
                reply.authorities.push(self.index.soa().clone());
                Resolution::Local(reply)
            }
            upstream => Resolution::Upstream(upstream),
        }
    }

    async fn reply(&self, name: &LowerName, rtype: RecordType) -> Reply {
        match self.resolve_locally(name, rtype) {
            Resolution::Local(reply) => reply,
            Resolution::Upstream(Lookup::Answer {
                records,
                external_target: Some(target),
            }) => {
                let mut reply = Reply::authoritative(ResponseCode::NoError, records);
                // ExternalName: resolve the target too, so stub resolvers
                // that do not chase CNAMEs get addresses.
                if let Ok(forwarded) = self
                    .forwarder
                    .resolve(&LowerName::new(&target), rtype)
                    .await
                {
                    reply.answers.extend(forwarded.answers);
                }
                reply
            }
            Resolution::Upstream(_) => match self.forwarder.resolve(name, rtype).await {
                Ok(forwarded) => Reply {
                    rcode: forwarded.rcode,
                    authoritative: false,
                    answers: forwarded.answers,
                    authorities: forwarded.authorities,
                    additionals: forwarded.additionals,
                },
                Err(error) => {
                    tracing::debug!(%error, %name, "forwarding failed");
                    Reply::authoritative(ResponseCode::ServFail, Vec::new()).not_authoritative()
                }
            },
        }
    }

    /// The index answered from.
    pub(crate) fn index(&self) -> &Arc<ClusterIndex> {
        &self.index
    }

    /// The forwarder of names outside the cluster domain.
    pub(crate) fn forwarder(&self) -> &Arc<Forwarder> {
        &self.forwarder
    }

    /// The metrics requests are counted in.
    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The addresses of SRV targets inside the cluster domain.
    fn srv_additionals(&self, answers: &[Record]) -> Vec<Record> {
        let mut out = Vec::new();
        for record in answers {
            if let RData::SRV(srv) = &record.data {
                let target = LowerName::new(&srv.target);
                if self.index.in_zone(&target) {
                    for address in self.index.addresses(&target) {
                        if !out.contains(&address) {
                            out.push(address);
                        }
                    }
                }
            }
        }
        out
    }
}

#[async_trait::async_trait]
impl RequestHandler for ClusterDnsHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let started = Instant::now();
        // The response's EDNS size is what hickory truncates UDP answers
        // to; no EDNS in the request means 512 bytes.
        let edns = request.edns.as_ref().map(|requested| {
            let mut edns = Edns::new();
            edns.set_max_payload(requested.max_payload().clamp(512, MAX_UDP_PAYLOAD));
            edns
        });
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = true;

        let queries = request.queries.queries();
        let mut qtype = "none";
        let reply = if request.metadata.op_code != OpCode::Query {
            Reply::error(ResponseCode::NotImp)
        } else if queries.len() != 1 {
            Reply::error(ResponseCode::FormErr)
        } else if queries[0].query_class() != DNSClass::IN {
            Reply::error(ResponseCode::Refused)
        } else {
            let query = &queries[0];
            qtype = query.query_type().into();
            self.reply(query.name(), query.query_type()).await
        };

        metadata.response_code = reply.rcode;
        metadata.authoritative = reply.authoritative;
        let soa: [&Record; 0] = [];
        let response = MessageResponseBuilder::new(&request.queries, edns.as_ref()).build(
            metadata,
            reply.answers.iter(),
            reply.authorities.iter(),
            soa,
            reply.additionals.iter(),
        );
        let info = match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(%error, "sending a response failed");
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        };
        self.metrics
            .observe_request(qtype, rcode_label(reply.rcode), started.elapsed());
        info
    }
}

/// Response codes as dig and CoreDNS's metrics spell them.
pub(crate) fn rcode_label(rcode: ResponseCode) -> &'static str {
    match rcode {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        _ => "OTHER",
    }
}

// === impl Reply ===

impl Reply {
    fn authoritative(rcode: ResponseCode, answers: Vec<Record>) -> Self {
        Self {
            rcode,
            authoritative: true,
            answers,
            authorities: Vec::new(),
            additionals: Vec::new(),
        }
    }

    fn error(rcode: ResponseCode) -> Self {
        Self::authoritative(rcode, Vec::new()).not_authoritative()
    }

    fn not_authoritative(mut self) -> Self {
        self.authoritative = false;
        self
    }
}
