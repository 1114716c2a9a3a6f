//! DNS messages on the wire for the UDP fast path: a standard query parsed
//! in place, and answers encoded once with their names compressed against
//! the question, so that a cached answer is sent with only the ID, two
//! flag bits and the question (in the client's own letter case) patched in.
//!
//! Anything the parser does not recognise as a plain one-question query
//! (other opcodes, several questions, EDNS versions above 0, trailing
//! bytes, compression pointers in the question) returns `None` and goes to
//! hickory's full decoder instead, so this file only has to be right about
//! the common case.

use hickory_server::proto::rr::{Name, RData, Record};

/// The fixed DNS header.
pub const HEADER_LEN: usize = 12;
/// The answer size allowed to a client that sent no EDNS (RFC 1035 4.2.1).
pub const CLASSIC_UDP_PAYLOAD: u16 = 512;
/// An encoded OPT record with no options: root name, type, class (payload
/// size), TTL (extended rcode, version, flags), empty rdata.
pub const OPT_LEN: usize = 11;

const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;
/// The largest offset a compression pointer reaches.
const MAX_POINTER: usize = 0x3fff;

/// A standard query with one question, as stub resolvers send them.
#[derive(Debug, PartialEq)]
pub struct Query<'a> {
    /// The message ID, echoed.
    pub id: u16,
    /// The RD and CD bits of the query, echoed in the answer.
    pub echoed_flags: [u8; 2],
    /// The question exactly as received: name, type, class.
    pub question: &'a [u8],
    /// The question's type.
    pub qtype: u16,
    /// The requestor's UDP payload size, when it sent EDNS version 0.
    pub edns_payload: Option<u16>,
}

impl Query<'_> {
    /// The question's name, as received (compression-free wire labels).
    pub fn name(&self) -> &[u8] {
        &self.question[..self.question.len() - 4]
    }

    /// The cache key of the question: its name in lower case, then its type.
    pub fn key_into(&self, key: &mut Vec<u8>) {
        key.clear();
        key.extend(self.name().iter().map(u8::to_ascii_lowercase));
        key.extend_from_slice(&self.qtype.to_be_bytes());
    }
}

/// The labels of an uncompressed wire name, as [`parse_query`] checked it.
pub fn labels(name: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let len = *name.get(at)? as usize;
        if len == 0 {
            return None;
        }
        let label = name.get(at + 1..at + 1 + len)?;
        at += 1 + len;
        Some(label)
    })
}

/// A plain query: QR clear, opcode QUERY, not truncated, one question of
/// class IN with an uncompressed name, no answer or authority records, at
/// most one additional record which is an EDNS(0) OPT, nothing after it.
pub fn parse_query(packet: &[u8]) -> Option<Query<'_>> {
    if packet.len() < HEADER_LEN + 5 {
        return None;
    }
    let flags = packet[2];
    // QR (0x80), opcode (0x78) and TC (0x02) must all be clear.
    if flags & 0xfa != 0 {
        return None;
    }
    let count = |at: usize| u16::from_be_bytes([packet[at], packet[at + 1]]);
    let (questions, answers, authorities, additionals) = (count(4), count(6), count(8), count(10));
    if questions != 1 || answers != 0 || authorities != 0 || additionals > 1 {
        return None;
    }
    let mut at = HEADER_LEN;
    loop {
        let len = *packet.get(at)? as usize;
        if len == 0 {
            at += 1;
            break;
        }
        // Pointers and extended label types are left to the full decoder.
        if len > 63 {
            return None;
        }
        at += 1 + len;
        if at - HEADER_LEN > 255 {
            return None;
        }
    }
    let question_end = at + 4;
    let question = packet.get(HEADER_LEN..question_end)?;
    let qtype = u16::from_be_bytes([packet[at], packet[at + 1]]);
    let qclass = u16::from_be_bytes([packet[at + 2], packet[at + 3]]);
    if qclass != CLASS_IN || qtype == TYPE_OPT {
        return None;
    }
    let mut edns_payload = None;
    let mut end = question_end;
    if additionals == 1 {
        // The root name, then type, class, TTL and rdata length.
        let opt = packet.get(end..end + OPT_LEN)?;
        if opt[0] != 0 || u16::from_be_bytes([opt[1], opt[2]]) != TYPE_OPT || opt[6] != 0 {
            return None;
        }
        edns_payload = Some(u16::from_be_bytes([opt[3], opt[4]]));
        let rdata = u16::from_be_bytes([opt[9], opt[10]]) as usize;
        end += OPT_LEN + rdata;
    }
    if end != packet.len() {
        return None;
    }
    Some(Query {
        id: u16::from_be_bytes([packet[0], packet[1]]),
        // RD in the first flags byte, CD in the second.
        echoed_flags: [flags & 0x01, packet[3] & 0x10],
        question,
        qtype,
        edns_payload,
    })
}

/// The sections after the question of one answer, encoded for a question
/// of a given name at offset 12.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The AA bit.
    pub authoritative: bool,
    /// The response code (NOERROR, NXDOMAIN, ...), four bits.
    pub rcode: u8,
    /// Records in the answer, authority and additional sections.
    pub counts: [u16; 3],
    /// The records, their names compressed against the question's.
    pub sections: Vec<u8>,
}

impl Answer {
    /// Encode the three sections for a question whose name is
    /// `question_name` (wire labels, any case). `None` when a record has
    /// data this encoder does not write; the caller then answers through
    /// hickory's encoder.
    pub fn encode(
        question_name: &[u8],
        authoritative: bool,
        rcode: u8,
        sections: [&[Record]; 3],
    ) -> Option<Self> {
        let mut encoder = Encoder::new(question_name);
        let mut counts = [0u16; 3];
        for (count, records) in counts.iter_mut().zip(sections) {
            for record in records {
                encoder.record(record)?;
            }
            *count = u16::try_from(records.len()).ok()?;
        }
        Some(Self {
            authoritative,
            rcode,
            counts,
            sections: encoder.out,
        })
    }

    /// Write the whole response to `query` into `out`: header, the question
    /// as the client sent it, these sections and an OPT record when the
    /// client sent EDNS. When it is larger than the client accepts, only
    /// the header (with TC set) and the question go out, as a cue to retry
    /// over TCP.
    pub fn respond(&self, query: &Query<'_>, max_udp_payload: u16, out: &mut Vec<u8>) {
        let payload = query
            .edns_payload
            .map(|p| p.clamp(CLASSIC_UDP_PAYLOAD, max_udp_payload));
        let limit = payload.unwrap_or(CLASSIC_UDP_PAYLOAD) as usize;
        let opt_len = if payload.is_some() { OPT_LEN } else { 0 };
        let full = HEADER_LEN + query.question.len() + self.sections.len() + opt_len;
        let truncated = full > limit;
        out.clear();
        out.extend_from_slice(&query.id.to_be_bytes());
        // QR, AA, TC, RD | RA, CD, RCODE.
        out.push(
            0x80 | if self.authoritative { 0x04 } else { 0 }
                | if truncated { 0x02 } else { 0 }
                | query.echoed_flags[0],
        );
        out.push(0x80 | query.echoed_flags[1] | (self.rcode & 0x0f));
        out.extend_from_slice(&1u16.to_be_bytes());
        let counts = if truncated { [0; 3] } else { self.counts };
        out.extend_from_slice(&counts[0].to_be_bytes());
        out.extend_from_slice(&counts[1].to_be_bytes());
        out.extend_from_slice(
            &(counts[2].saturating_add(u16::from(payload.is_some()))).to_be_bytes(),
        );
        out.extend_from_slice(query.question);
        if !truncated {
            out.extend_from_slice(&self.sections);
        }
        if let Some(payload) = payload {
            out.push(0);
            out.extend_from_slice(&TYPE_OPT.to_be_bytes());
            out.extend_from_slice(&payload.to_be_bytes());
            out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        }
    }
}

/// A response header and question with no records: FORMERR and the like
/// for a packet whose header could be read, the question echoed only when
/// it could be parsed.
pub fn error_response(packet: &[u8], rcode: u8) -> Option<Vec<u8>> {
    let header = packet.get(..HEADER_LEN)?;
    if header[2] & 0x80 != 0 {
        // Never answer a response.
        return None;
    }
    let mut out = Vec::with_capacity(HEADER_LEN);
    out.extend_from_slice(&header[..2]);
    // Keep the opcode and RD; set QR.
    out.push(0x80 | (header[2] & 0x79));
    out.push(0x80 | (header[3] & 0x10) | (rcode & 0x0f));
    out.extend_from_slice(&[0; 8]);
    Some(out)
}

/// Writes records after a question at offset 12, compressing names.
struct Encoder {
    out: Vec<u8>,
    /// Where the sections start in the message.
    base: usize,
    /// Names written so far (lower-case wire form of each suffix) and their
    /// offsets in the message, the question's first.
    suffixes: Vec<(Vec<u8>, u16)>,
}

impl Encoder {
    fn new(question_name: &[u8]) -> Self {
        let mut suffixes = Vec::new();
        let mut at = 0;
        while let Some(&len) = question_name.get(at) {
            if len == 0 {
                break;
            }
            suffixes.push((
                question_name[at..].to_ascii_lowercase(),
                (HEADER_LEN + at) as u16,
            ));
            at += 1 + len as usize;
        }
        Self {
            out: Vec::with_capacity(128),
            base: HEADER_LEN + question_name.len() + 4,
            suffixes,
        }
    }

    fn record(&mut self, record: &Record) -> Option<()> {
        self.name(&record.name, true);
        let rtype: u16 = record.record_type().into();
        let class: u16 = record.dns_class.into();
        self.out.extend_from_slice(&rtype.to_be_bytes());
        self.out.extend_from_slice(&class.to_be_bytes());
        self.out.extend_from_slice(&record.ttl.to_be_bytes());
        let length_at = self.out.len();
        self.out.extend_from_slice(&[0, 0]);
        match &record.data {
            RData::A(a) => self.out.extend_from_slice(&a.0.octets()),
            RData::AAAA(aaaa) => self.out.extend_from_slice(&aaaa.0.octets()),
            RData::CNAME(cname) => self.name(&cname.0, true),
            RData::PTR(ptr) => self.name(&ptr.0, true),
            RData::SRV(srv) => {
                self.out.extend_from_slice(&srv.priority.to_be_bytes());
                self.out.extend_from_slice(&srv.weight.to_be_bytes());
                self.out.extend_from_slice(&srv.port.to_be_bytes());
                // RFC 2782: the target is not compressed.
                self.name(&srv.target, false);
            }
            RData::TXT(txt) => {
                for text in &txt.txt_data {
                    self.out.push(u8::try_from(text.len()).ok()?);
                    self.out.extend_from_slice(text);
                }
            }
            RData::SOA(soa) => {
                self.name(&soa.mname, true);
                self.name(&soa.rname, true);
                for value in [
                    soa.serial,
                    soa.refresh as u32,
                    soa.retry as u32,
                    soa.expire as u32,
                    soa.minimum,
                ] {
                    self.out.extend_from_slice(&value.to_be_bytes());
                }
            }
            _ => return None,
        }
        let length = u16::try_from(self.out.len() - length_at - 2).ok()?;
        self.out[length_at..length_at + 2].copy_from_slice(&length.to_be_bytes());
        Some(())
    }

    /// Write a name, ending in a pointer to the longest suffix already in
    /// the message when `compress` allows, and remember the new suffixes.
    fn name(&mut self, name: &Name, compress: bool) {
        let labels: Vec<&[u8]> = name.iter().collect();
        let wire = |from: usize| {
            let mut w = Vec::new();
            for label in &labels[from..] {
                w.push(label.len() as u8);
                w.extend(label.iter().map(u8::to_ascii_lowercase));
            }
            w.push(0);
            w
        };
        for first in 0..=labels.len() {
            let suffix = wire(first);
            let known = compress
                .then(|| self.suffixes.iter().find(|(s, _)| *s == suffix))
                .flatten()
                .map(|(_, offset)| *offset);
            if first == labels.len() || known.is_some() {
                for (i, label) in labels[..first].iter().enumerate() {
                    let offset = self.base + self.out.len();
                    if offset <= MAX_POINTER {
                        self.suffixes.push((wire(i), offset as u16));
                    }
                    self.out.push(label.len() as u8);
                    self.out.extend_from_slice(label);
                }
                match known {
                    Some(offset) => self.out.extend_from_slice(&(0xc000 | offset).to_be_bytes()),
                    None => self.out.push(0),
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests;
