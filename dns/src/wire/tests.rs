use std::net::Ipv4Addr;

use hickory_server::proto::op::{Edns, Message, Query as Question};
use hickory_server::proto::rr::rdata::{A, CNAME, SRV, TXT};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};

use super::*;

fn query_bytes(name: &str, rtype: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut message = Message::query();
    message.metadata.id = 0x1234;
    message.metadata.recursion_desired = true;
    message.add_query(Question::query(Name::from_ascii(name).unwrap(), rtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        message.set_edns(e);
    }
    message.to_vec().unwrap()
}

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

#[test]
fn a_plain_query_parses_in_place() {
    let bytes = query_bytes(
        "Web.Default.svc.cluster.local.",
        RecordType::SRV,
        Some(1232),
    );
    let query = parse_query(&bytes).unwrap();
    assert_eq!(query.id, 0x1234);
    assert_eq!(query.qtype, 33);
    assert_eq!(query.edns_payload, Some(1232));
    assert_eq!(query.echoed_flags, [0x01, 0]);
    let labels: Vec<&[u8]> = labels(query.name()).collect();
    assert_eq!(
        labels,
        [&b"Web"[..], b"Default", b"svc", b"cluster", b"local"]
    );
    let mut key = Vec::new();
    query.key_into(&mut key);
    assert!(key.starts_with(b"\x03web\x07default"));
    assert!(key.ends_with(&[0, 33]));
}

#[test]
fn anything_unusual_is_left_to_the_full_decoder() {
    let good = query_bytes("a.cluster.local.", RecordType::A, None);
    assert!(parse_query(&good).is_some());
    let mut response = good.clone();
    response[2] |= 0x80;
    assert!(parse_query(&response).is_none(), "a response");
    let mut notify = good.clone();
    notify[2] |= 4 << 3;
    assert!(parse_query(&notify).is_none(), "another opcode");
    let mut two = good.clone();
    two[5] = 2;
    assert!(parse_query(&two).is_none(), "two questions");
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(parse_query(&trailing).is_none(), "bytes after the question");
    let mut chaos = good.clone();
    let len = chaos.len();
    chaos[len - 1] = 3;
    assert!(parse_query(&chaos).is_none(), "class CH");
    let mut pointer = good[..12].to_vec();
    pointer.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    assert!(parse_query(&pointer).is_none(), "a compressed question");
    let mut version = query_bytes("a.cluster.local.", RecordType::A, Some(1232));
    let len = version.len();
    version[len - 5] = 1; // EDNS version
    assert!(parse_query(&version).is_none(), "EDNS version 1");
}

/// Bounded and deterministic: every truncation and many byte flips of a
/// query with EDNS must parse or be refused, never panic.
#[test]
fn mangled_queries_never_panic() {
    let good = query_bytes(
        "svc-1.default.svc.cluster.local.",
        RecordType::A,
        Some(4096),
    );
    for len in 0..=good.len() {
        let _ = parse_query(&good[..len]);
        let _ = error_response(&good[..len], 1);
    }
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..20_000 {
        let mut bytes = good.clone();
        for _ in 0..3 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = (state as usize) % bytes.len();
            bytes[at] = (state >> 32) as u8;
        }
        if let Some(query) = parse_query(&bytes) {
            let answer = Answer::encode(query.name(), true, 0, [&[], &[], &[]]).unwrap();
            let mut out = Vec::new();
            answer.respond(&query, 4096, &mut out);
            assert!(out.len() >= HEADER_LEN + query.question.len());
        }
    }
}

#[test]
fn answers_point_at_the_question_and_decode() {
    let bytes = query_bytes("mysql.luffy.svc.cluster.local.", RecordType::A, None);
    let query = parse_query(&bytes).unwrap();
    let owner = name("mysql.luffy.svc.cluster.local.");
    let records = [Record::from_rdata(
        owner.clone(),
        5,
        RData::A(A(Ipv4Addr::new(10, 96, 0, 20))),
    )];
    let answer = Answer::encode(query.name(), true, 0, [&records, &[], &[]]).unwrap();
    // A pointer (2), type, class, TTL, length (10) and the address (4).
    assert_eq!(answer.sections.len(), 16);
    assert_eq!(answer.sections[..2], [0xc0, 12]);
    let mut out = Vec::new();
    answer.respond(&query, 4096, &mut out);
    let message = Message::from_vec(&out).unwrap();
    assert_eq!(message.metadata.id, 0x1234);
    assert!(message.metadata.authoritative);
    assert!(message.metadata.recursion_desired);
    assert!(message.metadata.recursion_available);
    assert_eq!(message.answers, records);
    assert!(message.edns.is_none());
}

#[test]
fn every_record_kind_round_trips_with_compression() {
    let bytes = query_bytes(
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
        Some(1232),
    );
    let query = parse_query(&bytes).unwrap();
    let srv_name = name("_http._tcp.web.default.svc.cluster.local.");
    let answers = vec![
        Record::from_rdata(
            srv_name.clone(),
            5,
            RData::SRV(SRV::new(
                0,
                50,
                8080,
                name("web-0.web.default.svc.cluster.local."),
            )),
        ),
        Record::from_rdata(
            srv_name,
            5,
            RData::SRV(SRV::new(
                0,
                50,
                8080,
                name("web-1.web.default.svc.cluster.local."),
            )),
        ),
    ];
    let authorities = vec![crate::records::soa_record(&name("cluster.local."), 5, 42)];
    let additionals = vec![
        Record::from_rdata(
            name("web-0.web.default.svc.cluster.local."),
            5,
            RData::A(A(Ipv4Addr::new(10, 244, 0, 5))),
        ),
        Record::from_rdata(
            name("x.default.svc.cluster.local."),
            5,
            RData::CNAME(CNAME(name("web.default.svc.cluster.local."))),
        ),
        Record::from_rdata(
            name("dns-version.cluster.local."),
            5,
            RData::TXT(TXT::new(vec!["1.1.0".into()])),
        ),
    ];
    let answer = Answer::encode(
        query.name(),
        true,
        3,
        [&answers, &authorities, &additionals],
    )
    .unwrap();
    let mut out = Vec::new();
    answer.respond(&query, 1232, &mut out);
    let message = Message::from_vec(&out).unwrap();
    assert_eq!(message.metadata.response_code.low(), 3);
    assert_eq!(message.answers, answers);
    assert_eq!(message.authorities, authorities);
    let decoded: Vec<Record> = message
        .additionals
        .iter()
        .filter(|r| r.record_type() != RecordType::OPT)
        .cloned()
        .collect();
    assert_eq!(decoded, additionals);
    assert_eq!(message.edns.as_ref().unwrap().max_payload(), 1232);
    // The same records through hickory's encoder, for the size.
    let mut reference = Message::from_vec(&bytes).unwrap();
    reference.metadata.message_type = hickory_server::proto::op::MessageType::Response;
    for record in answers {
        reference.add_answer(record);
    }
    for record in authorities {
        reference.add_authority(record);
    }
    for record in additionals {
        reference.add_additional(record);
    }
    let reference = reference.to_vec().unwrap();
    assert!(
        out.len() <= reference.len(),
        "{} bytes here, {} through hickory",
        out.len(),
        reference.len()
    );
}

#[test]
fn too_big_for_the_client_is_truncated_to_the_question() {
    let bytes = query_bytes("many.default.svc.cluster.local.", RecordType::A, None);
    let query = parse_query(&bytes).unwrap();
    let records: Vec<Record> = (1..=100)
        .map(|i| {
            Record::from_rdata(
                name("many.default.svc.cluster.local."),
                5,
                RData::A(A(Ipv4Addr::new(10, 244, 1, i))),
            )
        })
        .collect();
    let answer = Answer::encode(query.name(), true, 0, [&records, &[], &[]]).unwrap();
    let mut out = Vec::new();
    answer.respond(&query, 4096, &mut out);
    assert_eq!(out.len(), bytes.len());
    let message = Message::from_vec(&out).unwrap();
    assert!(message.metadata.truncation);
    assert!(message.answers.is_empty());
    // With EDNS room for it all, nothing is cut.
    let bytes = query_bytes("many.default.svc.cluster.local.", RecordType::A, Some(4096));
    let query = parse_query(&bytes).unwrap();
    answer.respond(&query, 4096, &mut out);
    let message = Message::from_vec(&out).unwrap();
    assert!(!message.metadata.truncation);
    assert_eq!(message.answers.len(), 100);
}

#[test]
fn error_responses_echo_the_id_and_never_answer_a_response() {
    let bytes = query_bytes("a.cluster.local.", RecordType::A, None);
    let out = error_response(&bytes, 1).unwrap();
    assert_eq!(out.len(), HEADER_LEN);
    assert_eq!(out[..2], bytes[..2]);
    assert_eq!(out[2] & 0x80, 0x80);
    assert_eq!(out[3] & 0x0f, 1);
    let mut response = bytes;
    response[2] |= 0x80;
    assert!(error_response(&response, 1).is_none());
    assert!(error_response(&[0; 5], 1).is_none());
}
