//! SPDY/3.1 framing, as far as Kubernetes' streaming protocols use it
//! (`kubectl port-forward`): frames read from and written to a byte stream,
//! and the zlib-compressed name/value header blocks with SPDY/3's preset
//! dictionary. Flow control is not spoken: Kubernetes' SPDY peers send no
//! WINDOW_UPDATE and ignore them.

use std::io;

use bytes::{BufMut, Bytes, BytesMut};
use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The only version spoken.
const VERSION: u16 = 3;

/// A frame larger than this is refused: control frames carry a few
/// headers, data frames what one read of a socket gives.
const MAX_FRAME: usize = 1 << 20;

/// A header block that inflates past this is refused.
const MAX_HEADERS: usize = 64 << 10;

/// `FLAG_FIN`: the sender's last frame on the stream.
pub const FLAG_FIN: u8 = 0x01;

/// RST_STREAM status: the stream is not known or not acceptable.
pub const PROTOCOL_ERROR: u32 = 1;

/// A frame read from the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A new stream opened by the peer.
    SynStream {
        /// Its id.
        stream: u32,
        /// Whether the peer will send nothing on it.
        fin: bool,
        /// Its header block, inflated.
        headers: Vec<(String, String)>,
    },
    /// Bytes on a stream.
    Data {
        /// The stream.
        stream: u32,
        /// Whether the peer will send nothing more on it.
        fin: bool,
        /// The bytes.
        data: Bytes,
    },
    /// The peer abandoned a stream.
    RstStream {
        /// The stream.
        stream: u32,
    },
    /// A ping, answered with the same id.
    Ping(u32),
    /// The peer closes the session.
    GoAway,
    /// Any other frame (SETTINGS, WINDOW_UPDATE, HEADERS, SYN_REPLY, …),
    /// read and ignored.
    Other,
}

/// Errors of the framing layer; each ends the session.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading failed or the peer went away.
    #[error("reading a frame: {0}")]
    Io(#[from] io::Error),
    /// The peer sent something SPDY/3 does not allow.
    #[error("protocol error: {0}")]
    Protocol(String),
}

fn protocol(message: impl Into<String>) -> Error {
    Error::Protocol(message.into())
}

/// SPDY/3's preset dictionary for header blocks (draft 3, section 2.6.10.1):
/// common header names, each with its 32-bit length, then common values.
pub fn dictionary() -> Vec<u8> {
    const NAMES: &[&str] = &[
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const VALUES: &str = concat!(
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417",
        "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently",
        "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error",
        "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct ",
        "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,",
        "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,",
        "publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
    );
    let mut d = Vec::with_capacity(1423);
    for name in NAMES {
        d.extend_from_slice(&(name.len() as u32).to_be_bytes());
        d.extend_from_slice(name.as_bytes());
    }
    d.extend_from_slice(VALUES.as_bytes());
    d
}

/// The window of the inflate stream: deflate's 32 KiB, used as a ring.
const WINDOW: usize = 32 << 10;

/// Header compression of one session. The peer's blocks form one zlib
/// stream (sync-flushed per block) primed with [`dictionary`]; it is
/// inflated into a ring that starts out holding the dictionary, so
/// back-references into it resolve. Our own blocks are a zlib stream of
/// stored blocks: valid for any inflater, and headers here are a few bytes.
pub struct HeaderCodec {
    inflate: Box<DecompressorOxide>,
    window: Box<[u8]>,
    pos: usize,
    /// Whether the peer's zlib header has been read.
    header_read: bool,
    /// Whether our zlib header has been sent.
    header_sent: bool,
}

impl Default for HeaderCodec {
    fn default() -> Self {
        let mut window = vec![0u8; WINDOW].into_boxed_slice();
        let d = dictionary();
        window[..d.len()].copy_from_slice(&d);
        Self {
            inflate: Box::default(),
            window,
            pos: d.len(),
            header_read: false,
            header_sent: false,
        }
    }
}

impl HeaderCodec {
    /// Inflate one of the peer's header blocks and parse its pairs.
    pub fn decode(&mut self, block: &[u8]) -> Result<Vec<(String, String)>, Error> {
        let mut input = block;
        if !self.header_read {
            let [cmf, flg, ..] = *input else {
                return Err(protocol("header block without its zlib header"));
            };
            if cmf & 0x0f != 8 || (u16::from(cmf) << 8 | u16::from(flg)) % 31 != 0 {
                return Err(protocol("not a zlib stream"));
            }
            // FDICT: the dictionary's Adler-32 follows; SPDY/3's is implied.
            let skip = if flg & 0x20 != 0 { 6 } else { 2 };
            input = input
                .get(skip..)
                .ok_or_else(|| protocol("truncated zlib header"))?;
            self.header_read = true;
        }
        let mut out = Vec::with_capacity(256);
        loop {
            let (status, used, written) = decompress(
                &mut self.inflate,
                input,
                &mut self.window,
                self.pos,
                inflate_flags::TINFL_FLAG_HAS_MORE_INPUT,
            );
            out.extend_from_slice(&self.window[self.pos..self.pos + written]);
            self.pos = (self.pos + written) % WINDOW;
            input = &input[used..];
            if out.len() > MAX_HEADERS {
                return Err(protocol("header block too large"));
            }
            match status {
                TINFLStatus::NeedsMoreInput if input.is_empty() => break,
                TINFLStatus::NeedsMoreInput | TINFLStatus::HasMoreOutput => {}
                TINFLStatus::Done => return Err(protocol("header stream ended")),
                other => return Err(protocol(format!("inflating headers: {other:?}"))),
            }
        }
        parse_pairs(&out)
    }

    /// A header block of `pairs`, as stored deflate blocks.
    pub fn encode(&mut self, pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut plain = Vec::new();
        plain.put_u32(pairs.len() as u32);
        for (name, value) in pairs {
            plain.put_u32(name.len() as u32);
            plain.put_slice(name.as_bytes());
            plain.put_u32(value.len() as u32);
            plain.put_slice(value.as_bytes());
        }
        let mut out = Vec::with_capacity(plain.len() + 16);
        if !self.header_sent {
            // Deflate, 32 KiB window, no dictionary; the check bits make
            // the pair a multiple of 31.
            out.extend([0x78, 0x01]);
            self.header_sent = true;
        }
        // Stored blocks that are not the last, then the empty one a sync
        // flush ends with: inflaters (Go's among them) hand out what they
        // hold when they reach it, and not before.
        for chunk in plain.chunks(u16::MAX as usize).chain([&[][..]]) {
            let len = chunk.len() as u16;
            out.push(0);
            out.extend(len.to_le_bytes());
            out.extend((!len).to_le_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }
}

/// The name/value pairs of an inflated block (values holding several,
/// NUL-separated, are kept whole).
fn parse_pairs(mut b: &[u8]) -> Result<Vec<(String, String)>, Error> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], Error> {
        if b.len() < n {
            return Err(protocol("truncated header block"));
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Ok(head)
    }
    fn len(b: &mut &[u8]) -> Result<usize, Error> {
        let raw = take(b, 4)?;
        Ok(u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize)
    }
    let count = len(&mut b)?;
    let mut pairs = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let n = len(&mut b)?;
        let name = String::from_utf8_lossy(take(&mut b, n)?).to_ascii_lowercase();
        let n = len(&mut b)?;
        let value = String::from_utf8_lossy(take(&mut b, n)?).into_owned();
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// Read the next frame; `None` at a clean end of the byte stream.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    headers: &mut HeaderCodec,
) -> Result<Option<Frame>, Error> {
    let mut head = [0u8; 8];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let flags = head[4];
    let length = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
    if length > MAX_FRAME {
        return Err(protocol(format!("frame of {length} bytes")));
    }
    let mut body = vec![0u8; length];
    r.read_exact(&mut body).await?;
    let word = |i: usize| -> Result<u32, Error> {
        body.get(i..i + 4)
            .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
            .ok_or_else(|| protocol("control frame too short"))
    };
    if head[0] & 0x80 == 0 {
        let stream = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        return Ok(Some(Frame::Data {
            stream,
            fin: flags & FLAG_FIN != 0,
            data: Bytes::from(body),
        }));
    }
    let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
    if version != VERSION {
        return Err(protocol(format!("SPDY version {version}")));
    }
    let frame = match u16::from_be_bytes([head[2], head[3]]) {
        // SYN_STREAM: id, associated id, priority and slot, headers.
        1 => {
            let stream = word(0)? & 0x7fff_ffff;
            if body.len() < 10 {
                return Err(protocol("SYN_STREAM too short"));
            }
            Frame::SynStream {
                stream,
                fin: flags & FLAG_FIN != 0,
                headers: headers.decode(&body[10..])?,
            }
        }
        // SYN_REPLY and HEADERS carry header blocks that must still be
        // inflated, or the shared zlib stream falls out of step.
        2 | 8 => {
            if body.len() < 4 {
                return Err(protocol("header frame too short"));
            }
            headers.decode(&body[4..])?;
            Frame::Other
        }
        3 => Frame::RstStream {
            stream: word(0)? & 0x7fff_ffff,
        },
        6 => Frame::Ping(word(0)?),
        7 => Frame::GoAway,
        _ => Frame::Other,
    };
    Ok(Some(frame))
}

fn control(kind: u16, flags: u8, body: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(8 + body.len());
    b.put_u16(0x8000 | VERSION);
    b.put_u16(kind);
    b.put_u32((u32::from(flags) << 24) | body.len() as u32);
    b.put_slice(body);
    b.freeze()
}

/// SYN_REPLY accepting `stream`, with no headers.
pub fn syn_reply(stream: u32, headers: &mut HeaderCodec) -> Bytes {
    let mut body = stream.to_be_bytes().to_vec();
    body.extend(headers.encode(&[]));
    control(2, 0, &body)
}

/// RST_STREAM of `stream` with `status`.
pub fn rst_stream(stream: u32, status: u32) -> Bytes {
    let mut body = stream.to_be_bytes().to_vec();
    body.extend(status.to_be_bytes());
    control(3, 0, &body)
}

/// PING answering the peer's `id`.
pub fn ping(id: u32) -> Bytes {
    control(6, 0, &id.to_be_bytes())
}

/// A data frame (`data` at most 16 MiB; callers send socket reads).
pub fn data(stream: u32, fin: bool, data: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(8 + data.len());
    b.put_u32(stream & 0x7fff_ffff);
    let flags = if fin { FLAG_FIN } else { 0 };
    b.put_u32((u32::from(flags) << 24) | data.len() as u32);
    b.put_slice(data);
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_spdy3s() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        // Its Adler-32, which a peer's zlib header names.
        let (mut a, mut b) = (1u32, 0u32);
        for byte in &d {
            a = (a + u32::from(*byte)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6_a7c2);
    }

    #[tokio::test]
    async fn frames_and_header_blocks_round_trip() {
        // A client's codec writes a SYN_STREAM the way a peer would.
        let mut client = HeaderCodec::default();
        let mut server = HeaderCodec::default();
        let mut wire = Vec::new();
        for (id, kind) in [(1u32, "error"), (3, "data")] {
            let block = client.encode(&[("streamtype", kind), ("port", "80"), ("requestid", "0")]);
            let mut body = id.to_be_bytes().to_vec();
            body.extend([0, 0, 0, 0, 0, 0]);
            body.extend(block);
            wire.extend_from_slice(&control(1, 0, &body));
        }
        wire.extend_from_slice(&data(3, true, b"GET / HTTP/1.1\r\n\r\n"));
        wire.extend_from_slice(&ping(7));
        let mut r = &wire[..];
        let first = read_frame(&mut r, &mut server).await.unwrap().unwrap();
        assert_eq!(
            first,
            Frame::SynStream {
                stream: 1,
                fin: false,
                headers: vec![
                    ("streamtype".into(), "error".into()),
                    ("port".into(), "80".into()),
                    ("requestid".into(), "0".into()),
                ],
            }
        );
        let Frame::SynStream {
            stream: 3, headers, ..
        } = read_frame(&mut r, &mut server).await.unwrap().unwrap()
        else {
            panic!("the second stream");
        };
        assert_eq!(headers[0].1, "data");
        assert_eq!(
            read_frame(&mut r, &mut server).await.unwrap().unwrap(),
            Frame::Data {
                stream: 3,
                fin: true,
                data: Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n")
            }
        );
        assert_eq!(
            read_frame(&mut r, &mut server).await.unwrap(),
            Some(Frame::Ping(7))
        );
        assert_eq!(read_frame(&mut r, &mut server).await.unwrap(), None);

        // The server's reply inflates on the client's side.
        let reply = syn_reply(3, &mut server);
        let mut r = &reply[..];
        assert_eq!(
            read_frame(&mut r, &mut client).await.unwrap(),
            Some(Frame::Other)
        );
    }

    #[tokio::test]
    async fn garbage_is_an_error_not_a_panic() {
        let mut codec = HeaderCodec::default();
        let wire = control(1, 0, &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3]);
        assert!(read_frame(&mut &wire[..], &mut codec).await.is_err());
        let short = control(3, 0, &[0, 1]);
        assert!(read_frame(&mut &short[..], &mut codec).await.is_err());
        let mut huge = control(0, 0, &[]).to_vec();
        huge[5..8].copy_from_slice(&[0xff, 0xff, 0xff]);
        assert!(read_frame(&mut &huge[..], &mut codec).await.is_err());
    }
}
