//! Where a chunked body ends, found without decoding it: the lean path
//! passes a backend's chunks through as they are and only needs to know
//! which byte is the body's last, to reuse the connection after it.

/// The chunked-coding grammar (RFC 9112 §7.1), one byte at a time except
/// for chunk data, which is skipped whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size (`digits` read so far).
    Size {
        digits: u8,
    },
    /// A chunk extension, up to CR.
    Extension,
    /// The LF after a size line.
    SizeLf,
    /// Chunk data still to come.
    Data,
    /// The CRLF after chunk data.
    DataCr,
    DataLf,
    /// The start of a trailer line, or the final CRLF.
    TrailerStart,
    /// Inside a trailer field line.
    Trailer,
    TrailerLf,
    /// The LF of the final CRLF.
    EndLf,
    Done,
}

/// A malformed chunked body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Malformed;

/// Tracks a chunked body across the reads that bring it.
#[derive(Debug)]
pub(crate) struct ChunkedEnd {
    state: State,
    /// Size of the current chunk, then what is left of its data.
    size: u64,
}

impl Default for ChunkedEnd {
    fn default() -> Self {
        Self {
            state: State::Size { digits: 0 },
            size: 0,
        }
    }
}

impl ChunkedEnd {
    /// Take the next bytes of the body: `Some(n)` when the body ends after
    /// the first `n` of them, `None` when all of them belong to it.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<Option<usize>, Malformed> {
        let mut i = 0;
        while i < bytes.len() {
            if self.state == State::Data {
                let take = self.size.min((bytes.len() - i) as u64);
                self.size -= take;
                i += take as usize;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let b = bytes[i];
            i += 1;
            self.state = match (self.state, b) {
                (State::Size { digits }, _) if b.is_ascii_hexdigit() => {
                    // 15 hex digits cover any size a u64 counts.
                    if digits >= 15 {
                        return Err(Malformed);
                    }
                    let d = (b as char).to_digit(16).expect("a hex digit") as u64;
                    self.size = self.size * 16 + d;
                    State::Size { digits: digits + 1 }
                }
                (State::Size { digits }, b';' | b' ' | b'\t') if digits > 0 => State::Extension,
                (State::Size { digits }, b'\r') if digits > 0 => State::SizeLf,
                (State::Extension, b'\r') => State::SizeLf,
                (State::Extension, b'\n') => return Err(Malformed),
                (State::Extension, _) => State::Extension,
                (State::SizeLf, b'\n') if self.size == 0 => State::TrailerStart,
                (State::SizeLf, b'\n') => State::Data,
                (State::DataCr, b'\r') => State::DataLf,
                (State::DataLf, b'\n') => {
                    self.size = 0;
                    State::Size { digits: 0 }
                }
                (State::TrailerStart, b'\r') => State::EndLf,
                (State::TrailerStart | State::Trailer, b'\n') => return Err(Malformed),
                (State::Trailer, b'\r') => State::TrailerLf,
                (State::TrailerStart | State::Trailer, _) => State::Trailer,
                (State::TrailerLf, b'\n') => State::TrailerStart,
                (State::EndLf, b'\n') => {
                    self.state = State::Done;
                    return Ok(Some(i));
                }
                _ => return Err(Malformed),
            };
        }
        Ok(None)
    }

    /// Whether the whole body has been seen.
    #[cfg(test)]
    pub(crate) fn done(&self) -> bool {
        self.state == State::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(body: &[u8]) -> Result<Option<usize>, Malformed> {
        ChunkedEnd::default().feed(body)
    }

    #[test]
    fn finds_the_end() {
        assert_eq!(end(b"0\r\n\r\n"), Ok(Some(5)));
        assert_eq!(end(b"3\r\nabc\r\n0\r\n\r\nGET"), Ok(Some(13)));
        assert_eq!(
            end(b"A;x=y\r\n0123456789\r\n0\r\nT: v\r\n\r\n"),
            Ok(Some(30))
        );
        assert_eq!(end(b"3\r\nabc\r\n"), Ok(None));
        assert_eq!(end(b"3\r\nab"), Ok(None));
    }

    #[test]
    fn any_split_gives_the_same_end() {
        let body = b"5\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nA: b\r\n\r\n";
        for cut in 0..body.len() {
            let mut t = ChunkedEnd::default();
            let first = t.feed(&body[..cut]).unwrap();
            assert_eq!(first, None, "cut {cut}");
            assert_eq!(t.feed(&body[cut..]), Ok(Some(body.len() - cut)));
            assert!(t.done());
        }
    }

    #[test]
    fn refuses_malformed_chunks() {
        assert_eq!(end(b"x\r\n"), Err(Malformed));
        assert_eq!(end(b"\r\n"), Err(Malformed));
        assert_eq!(end(b"3\r\nabcX"), Err(Malformed));
        assert_eq!(end(b"3\nabc"), Err(Malformed));
        assert_eq!(end(b"1234567890123456\r\n"), Err(Malformed));
        assert_eq!(end(b"0\r\nT\n"), Err(Malformed));
    }
}
