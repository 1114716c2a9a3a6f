//! Partial updates sent to the kernel over netlink from the process, as
//! one nfnetlink batch (one transaction, like `nft -f`).
//!
//! `nft` fetches the table's chains and sets from the kernel before it
//! applies even one command: ≈ 30 ms at 10,000 Services before the first
//! byte of the change is sent. A partial update of typed rules and
//! elements needs none of that, so it is encoded here; everything else
//! (the whole table, affinity sets, the shared chains' text rules) still
//! goes through `nft`. The expressions are the ones `nft --debug=netlink`
//! shows for the same rules, so `nft list` prints a rule sent from here
//! exactly as one it loaded itself (`tests.rs` checks both ways agree).

use std::io;
use std::net::SocketAddrV4;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    recv, send, setsockopt, socket, sockopt, AddressFamily, MsgFlags, SockFlag, SockProtocol,
    SockType,
};

use super::render::{Change, Element, Rule, Tuple, MASQUERADE_MARK};
use crate::table::Protocol;

// linux/netlink.h, linux/netfilter/nfnetlink.h, linux/netfilter/nf_tables.h
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLMSG_ERROR: u16 = 0x2;
const NLA_F_NESTED: u16 = 0x8000;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFPROTO_IPV4: u8 = 2;

const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_DELCHAIN: u16 = 5;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_DELRULE: u16 = 8;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;

const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
const NFT_GOTO: i32 = -4;

/// Registers as nft allocates them: the verdict, then 16-byte registers.
const REG_VERDICT: u32 = 0;
const REG_1: u32 = 1;
const REG_2: u32 = 2;
/// `fib … type` answers with the route type; `local` is RTN_LOCAL.
const RTN_LOCAL: u32 = 2;

/// One expression of a rule.
enum Expr<'a> {
    /// `meta load KEY => reg`.
    MetaLoad { key: u32, dreg: u32 },
    /// `meta set KEY with reg`.
    MetaSet { key: u32, sreg: u32 },
    /// `cmp eq reg DATA`.
    CmpEq { sreg: u32, data: &'a [u8] },
    /// `bitwise reg = (reg & MASK) ^ XOR`.
    Bitwise { reg: u32, mask: u32, xor: u32 },
    /// `fib saddr type => reg`.
    FibSourceType { dreg: u32 },
    /// `numgen reg = random mod N`.
    Random { dreg: u32, modulus: u32 },
    /// `immediate reg DATA`.
    Immediate { dreg: u32, data: &'a [u8] },
    /// `immediate reg 0 goto -> CHAIN`.
    Goto { chain: &'a str },
    /// `nat dnat ip addr_min reg 1 proto_min reg 2 flags 0x2`.
    Dnat,
    /// `payload load 4b @ network header + 12 => reg` (`ip saddr`).
    SourceAddress { dreg: u32 },
    /// `lookup reg set SET`.
    Lookup { sreg: u32, set: &'a str },
    /// `dynset update reg_key reg set SET`.
    DynsetUpdate { sreg: u32, set: &'a str },
}

const NFT_META_MARK: u32 = 3;
const NFT_META_L4PROTO: u32 = 16;

/// A message under construction, attributes appended in place; nests
/// remember where their length goes.
struct Message {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Message {
    fn new(kind: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set at the end
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
                                                    // struct nfgenmsg
        buf.push(family);
        buf.push(0); // NFNETLINK_V0
        buf.extend_from_slice(&res_id.to_be_bytes());
        Message {
            buf,
            nests: Vec::new(),
        }
    }

    fn attr(&mut self, kind: u16, value: &[u8]) {
        let len = 4 + value.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn str(&mut self, kind: u16, value: &str) {
        let mut v = Vec::with_capacity(value.len() + 1);
        v.extend_from_slice(value.as_bytes());
        v.push(0);
        self.attr(kind, &v);
    }

    /// Netlink attributes of nf_tables are big-endian.
    fn u32(&mut self, kind: u16, value: u32) {
        self.attr(kind, &value.to_be_bytes());
    }

    fn begin(&mut self, kind: u16) {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    }

    fn end(&mut self) {
        let start = self.nests.pop().expect("a nest to close");
        debug_assert!(self.buf.len() - start <= usize::from(u16::MAX));
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// `NFTA_DATA_VALUE` inside a nest of `kind`.
    fn value(&mut self, kind: u16, data: &[u8]) {
        self.begin(kind);
        self.attr(NFTA_DATA_VALUE, data);
        self.end();
    }

    /// A goto verdict inside a nest of `kind`.
    fn goto(&mut self, kind: u16, chain: &str) {
        self.begin(kind);
        self.begin(NFTA_DATA_VERDICT);
        self.attr(NFTA_VERDICT_CODE, &NFT_GOTO.to_be_bytes());
        self.str(NFTA_VERDICT_CHAIN, chain);
        self.end();
        self.end();
    }

    fn expr(&mut self, e: &Expr<'_>) {
        self.begin(NFTA_LIST_ELEM);
        let name = match e {
            Expr::MetaLoad { .. } | Expr::MetaSet { .. } => "meta",
            Expr::CmpEq { .. } => "cmp",
            Expr::Bitwise { .. } => "bitwise",
            Expr::FibSourceType { .. } => "fib",
            Expr::Random { .. } => "numgen",
            Expr::Immediate { .. } | Expr::Goto { .. } => "immediate",
            Expr::Dnat => "nat",
            Expr::SourceAddress { .. } => "payload",
            Expr::Lookup { .. } => "lookup",
            Expr::DynsetUpdate { .. } => "dynset",
        };
        self.str(NFTA_EXPR_NAME, name);
        self.begin(NFTA_EXPR_DATA);
        match e {
            // NFTA_META_DREG 1, _KEY 2, _SREG 3
            Expr::MetaLoad { key, dreg } => {
                self.u32(1, *dreg);
                self.u32(2, *key);
            }
            Expr::MetaSet { key, sreg } => {
                self.u32(2, *key);
                self.u32(3, *sreg);
            }
            // NFTA_CMP_SREG 1, _OP 2 (NFT_CMP_EQ 0), _DATA 3
            Expr::CmpEq { sreg, data } => {
                self.u32(1, *sreg);
                self.u32(2, 0);
                self.value(3, data);
            }
            // NFTA_BITWISE_SREG 1, _DREG 2, _LEN 3, _MASK 4, _XOR 5
            Expr::Bitwise { reg, mask, xor } => {
                self.u32(1, *reg);
                self.u32(2, *reg);
                self.u32(3, 4);
                self.value(4, &mask.to_ne_bytes());
                self.value(5, &xor.to_ne_bytes());
            }
            // NFTA_FIB_DREG 1, _RESULT 2 (ADDRTYPE 3), _FLAGS 3 (SADDR 1)
            Expr::FibSourceType { dreg } => {
                self.u32(1, *dreg);
                self.u32(2, 3);
                self.u32(3, 1);
            }
            // NFTA_NG_DREG 1, _MODULUS 2, _TYPE 3 (RANDOM 1), _OFFSET 4
            Expr::Random { dreg, modulus } => {
                self.u32(1, *dreg);
                self.u32(2, *modulus);
                self.u32(3, 1);
                self.u32(4, 0);
            }
            // NFTA_IMMEDIATE_DREG 1, _DATA 2
            Expr::Immediate { dreg, data } => {
                self.u32(1, *dreg);
                self.value(2, data);
            }
            Expr::Goto { chain } => {
                self.u32(1, REG_VERDICT);
                self.goto(2, chain);
            }
            // NFTA_NAT_TYPE 1 (DNAT 1), _FAMILY 2, _REG_ADDR_MIN 3,
            // _REG_PROTO_MIN 5, _FLAGS 7 (NF_NAT_RANGE_PROTO_SPECIFIED 2)
            Expr::Dnat => {
                self.u32(1, 1);
                self.u32(2, u32::from(NFPROTO_IPV4));
                self.u32(3, REG_1);
                self.u32(5, REG_2);
                self.u32(7, 2);
            }
            // NFTA_PAYLOAD_DREG 1, _BASE 2 (NETWORK_HEADER 1), _OFFSET 3, _LEN 4
            Expr::SourceAddress { dreg } => {
                self.u32(1, *dreg);
                self.u32(2, 1);
                self.u32(3, 12);
                self.u32(4, 4);
            }
            // NFTA_LOOKUP_SET 1, _SREG 2
            Expr::Lookup { sreg, set } => {
                self.str(1, set);
                self.u32(2, *sreg);
            }
            // NFTA_DYNSET_SET_NAME 1, _OP 3 (UPDATE 1), _SREG_KEY 4
            Expr::DynsetUpdate { sreg, set } => {
                self.str(1, set);
                self.u32(3, 1);
                self.u32(4, *sreg);
            }
        }
        self.end();
        self.end();
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// The key of an element as the kernel stores it: each field in a 4-byte
/// slot, addresses and ports in network order.
fn key(e: &Element) -> Vec<u8> {
    let tuple = |t: &Tuple| {
        let mut k = t.ip.octets().to_vec();
        k.extend_from_slice(&[proto_number(t.protocol), 0, 0, 0]);
        k.extend_from_slice(&t.port.to_be_bytes());
        k.extend_from_slice(&[0, 0]);
        k
    };
    match e {
        Element::ServicePort(t, _) | Element::NoEndpoints(t) => tuple(t),
        Element::ClusterIp(ip) => ip.octets().to_vec(),
        Element::Hairpin(ip) => [ip.octets(), ip.octets()].concat(),
    }
}

fn proto_number(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
    }
}

/// Messages for the kernel in one transaction.
pub struct Batch {
    bytes: Vec<u8>,
    /// The sequence numbers of the messages the kernel answers.
    first: u32,
    last: u32,
}

/// A whole batch for `table`: begin, the changes, end, numbered from
/// `first` on. `None` when a change is one only `nft` can make.
pub fn encode(table: &str, changes: &[Change], first: u32) -> Option<Batch> {
    let mut out = Vec::new();
    let mut seq = first - 1;
    // Where the last message starts.
    let mut last_at = 0;
    let nft = |kind: u16| (NFNL_SUBSYS_NFTABLES << 8) | kind;
    out.extend(
        Message::new(
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            seq,
            0,
            NFNL_SUBSYS_NFTABLES,
        )
        .finish(),
    );
    let mut i = 0;
    while i < changes.len() {
        seq += 1;
        // Only the last message asks for an answer (below): the kernel
        // answers failures anyway, in order, so the last answer ends the
        // batch's, and thousands of messages do not fill the receive buffer.
        let ack = NLM_F_REQUEST;
        last_at = out.len();
        let msg = match &changes[i] {
            Change::AddSet(..) | Change::DeleteSet(_) => return None,
            Change::AddChain(name) | Change::DeleteChain(name) => {
                let (kind, flags) = match &changes[i] {
                    Change::AddChain(_) => (NFT_MSG_NEWCHAIN, ack | NLM_F_CREATE),
                    _ => (NFT_MSG_DELCHAIN, ack),
                };
                let mut m = Message::new(nft(kind), flags, seq, NFPROTO_IPV4, 0);
                m.str(NFTA_CHAIN_TABLE, table);
                m.str(NFTA_CHAIN_NAME, name);
                m
            }
            Change::FlushChain(name) => {
                let mut m = Message::new(nft(NFT_MSG_DELRULE), ack, seq, NFPROTO_IPV4, 0);
                m.str(NFTA_RULE_TABLE, table);
                m.str(NFTA_RULE_CHAIN, name);
                m
            }
            Change::AddRule(chain, rule) => {
                let mut m = Message::new(
                    nft(NFT_MSG_NEWRULE),
                    ack | NLM_F_CREATE | NLM_F_APPEND,
                    seq,
                    NFPROTO_IPV4,
                    0,
                );
                m.str(NFTA_RULE_TABLE, table);
                m.str(NFTA_RULE_CHAIN, chain);
                m.begin(NFTA_RULE_EXPRESSIONS);
                if !rule_expressions(&mut m, rule) {
                    return None;
                }
                m.end();
                m
            }
            Change::AddElement(first) | Change::DeleteElement(first) => {
                // Consecutive elements of one set, one way, in one message.
                let add = matches!(&changes[i], Change::AddElement(_));
                let (kind, flags) = if add {
                    (NFT_MSG_NEWSETELEM, ack | NLM_F_CREATE)
                } else {
                    (NFT_MSG_DELSETELEM, ack)
                };
                let mut m = Message::new(nft(kind), flags, seq, NFPROTO_IPV4, 0);
                m.str(NFTA_SET_ELEM_LIST_TABLE, table);
                m.str(NFTA_SET_ELEM_LIST_SET, first.set());
                m.begin(NFTA_SET_ELEM_LIST_ELEMENTS);
                while let Some(Change::AddElement(e) | Change::DeleteElement(e)) = changes.get(i) {
                    // An attribute's length is 16 bits: a long run goes on
                    // in the next message.
                    if e.set() != first.set()
                        || add != matches!(&changes[i], Change::AddElement(_))
                        || m.buf.len() > 60 * 1024
                    {
                        break;
                    }
                    m.begin(NFTA_LIST_ELEM);
                    m.value(NFTA_SET_ELEM_KEY, &key(e));
                    if let (true, Element::ServicePort(_, chain)) = (add, e) {
                        m.goto(NFTA_SET_ELEM_DATA, chain);
                    }
                    m.end();
                    i += 1;
                }
                m.end();
                out.extend(m.finish());
                continue;
            }
        };
        out.extend(msg.finish());
        i += 1;
    }
    let last = seq;
    if last >= first {
        let flags = &mut out[last_at + 6..last_at + 8];
        let asked = u16::from_ne_bytes([flags[0], flags[1]]) | NLM_F_ACK;
        flags.copy_from_slice(&asked.to_ne_bytes());
    }
    out.extend(
        Message::new(
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            seq + 1,
            0,
            NFNL_SUBSYS_NFTABLES,
        )
        .finish(),
    );
    Some(Batch {
        bytes: out,
        first,
        last,
    })
}

/// Append `rule`'s expressions to `m`; false for a rule only nft compiles.
fn rule_expressions(m: &mut Message, rule: &Rule) -> bool {
    let mark = |m: &mut Message| {
        m.expr(&Expr::MetaLoad {
            key: NFT_META_MARK,
            dreg: REG_1,
        });
        m.expr(&Expr::Bitwise {
            reg: REG_1,
            mask: !MASQUERADE_MARK,
            xor: MASQUERADE_MARK,
        });
        m.expr(&Expr::MetaSet {
            key: NFT_META_MARK,
            sreg: REG_1,
        });
    };
    let pick = |m: &mut Message, pick: &Option<u32>| {
        if let Some(n) = pick {
            m.expr(&Expr::Random {
                dreg: REG_1,
                modulus: *n,
            });
            m.expr(&Expr::CmpEq {
                sreg: REG_1,
                data: &0u32.to_ne_bytes(),
            });
        }
    };
    match rule {
        Rule::MarkLocalSource => {
            m.expr(&Expr::FibSourceType { dreg: REG_1 });
            m.expr(&Expr::CmpEq {
                sreg: REG_1,
                data: &RTN_LOCAL.to_ne_bytes(),
            });
            mark(m);
        }
        Rule::Mark => mark(m),
        Rule::Dnat {
            pick: p,
            protocol,
            to,
        } => {
            pick(m, p);
            dnat(m, *protocol, to);
        }
        Rule::Goto { pick: p, chain } => {
            pick(m, p);
            m.expr(&Expr::Goto { chain });
        }
        Rule::Returning { set, chain } => {
            m.expr(&Expr::SourceAddress { dreg: REG_1 });
            m.expr(&Expr::Lookup { sreg: REG_1, set });
            m.expr(&Expr::Goto { chain });
        }
        Rule::Remember { set } => {
            m.expr(&Expr::SourceAddress { dreg: REG_1 });
            m.expr(&Expr::DynsetUpdate { sreg: REG_1, set });
        }
        Rule::Text(_) => return false,
    }
    true
}

fn dnat(m: &mut Message, protocol: Protocol, to: &SocketAddrV4) {
    m.expr(&Expr::MetaLoad {
        key: NFT_META_L4PROTO,
        dreg: REG_1,
    });
    m.expr(&Expr::CmpEq {
        sreg: REG_1,
        data: &[proto_number(protocol)],
    });
    m.expr(&Expr::Immediate {
        dreg: REG_1,
        data: &to.ip().octets(),
    });
    m.expr(&Expr::Immediate {
        dreg: REG_2,
        data: &to.port().to_be_bytes(),
    });
    m.expr(&Expr::Dnat);
}

/// A netlink socket to nf_tables, kept open: closing one waits for the
/// kernel to finish freeing what earlier transactions replaced, an RCU
/// grace period (8–20 ms measured here), which would otherwise be paid by
/// every sync.
pub struct Socket {
    fd: OwnedFd,
    /// The next message's sequence number.
    seq: u32,
}

impl Socket {
    /// Open one (needs CAP_NET_ADMIN to send anything).
    pub fn open() -> io::Result<Self> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkNetFilter,
        )?;
        // The kernel answers within the send; this only bounds a lost answer.
        setsockopt(
            &fd,
            sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(5, 0),
        )?;
        Ok(Socket { fd, seq: 1 })
    }

    /// [`encode`] and [`apply`](Self::apply) in one; `None` when a change
    /// is one only `nft` can make.
    pub fn send(&mut self, table: &str, changes: &[Change]) -> Option<io::Result<()>> {
        let batch = encode(table, changes, self.seq)?;
        // Numbers are not reused while answers to a batch given up on
        // might still come.
        self.seq = batch.last.wrapping_add(2).max(1);
        Some(self.apply(&batch))
    }

    /// Send `batch` and wait for the kernel's answer to each message; the
    /// first error the kernel gives, if any (the whole batch is then
    /// undone by the kernel).
    pub fn apply(&mut self, batch: &Batch) -> io::Result<()> {
        if batch.last < batch.first {
            return Ok(());
        }
        apply_on(&self.fd, batch)
    }
}

fn apply_on(fd: &OwnedFd, batch: &Batch) -> io::Result<()> {
    let (first, last, batch) = (batch.first, batch.last, &batch.bytes[..]);
    // A batch goes in one send: the socket must take it whole (root may
    // raise the limit past `wmem_max`, as nft does).
    if batch.len() > 128 * 1024 {
        setsockopt(fd, sockopt::SndBufForce, &(batch.len() + 64 * 1024))?;
    }
    let sent = send(fd.as_raw_fd(), batch, MsgFlags::empty())?;
    if sent != batch.len() {
        return Err(io::Error::other("netlink batch sent in part"));
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut first_error = None;
    loop {
        let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
        let mut at = 0;
        while at + 16 <= n {
            let len = u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes(buf[at + 4..at + 6].try_into().unwrap());
            if len < 16 || at + len > n {
                return Err(io::Error::other("malformed netlink answer"));
            }
            if kind == NLMSG_ERROR && len >= 16 + 4 + 16 {
                let code = i32::from_ne_bytes(buf[at + 16..at + 20].try_into().unwrap());
                // The header of the message it answers follows the code.
                let seq = u32::from_ne_bytes(buf[at + 28..at + 32].try_into().unwrap());
                // Answers to an earlier batch given up on are skipped.
                let ours = (first..=last).contains(&seq);
                if ours && code != 0 && first_error.is_none() {
                    first_error = Some(io::Error::from_raw_os_error(-code));
                }
                if seq == last {
                    return first_error.map_or(Ok(()), Err);
                }
            }
            at += (len + 3) & !3;
        }
    }
}
