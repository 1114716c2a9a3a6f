//! The lean HTTP/1 path's framing code on arbitrary bytes: request and
//! response heads parse without panicking and only into ranges inside the
//! head, and a chunked body's end is found at the same byte however the
//! body is split across reads.
//!
//! `cargo +nightly fuzz run h1_framing` (from `ingress/`); the test command
//! runs it for a bounded time.

#![no_main]

use libfuzzer_sys::fuzz_target;

// The files themselves, so the fuzzer builds without the rest of the
// ingress (they depend on httparse and http only).
#[allow(dead_code)]
#[path = "../../src/h1/head.rs"]
mod head;

#[allow(dead_code)]
#[path = "../../src/h1/body.rs"]
mod body;

fuzz_target!(|data: &[u8]| {
    let mut req = head::RequestHead::default();
    if let head::Parsed::Lean = req.parse(data) {
        assert!(req.len <= data.len());
        assert!(req.target.end <= req.len);
        for (name, value) in &req.headers {
            assert!(name.end <= req.len && value.end <= req.len);
        }
        for r in [&req.host, &req.request_id].into_iter().flatten() {
            assert!(r.end <= req.len);
        }
    }

    for method in [http::Method::GET, http::Method::HEAD] {
        let mut resp = head::ResponseHead::default();
        if resp.parse(data, &method).is_ok() {
            assert!(resp.len <= data.len());
            assert!(resp.reason.end <= resp.len);
            if method == http::Method::HEAD {
                assert_eq!(resp.framing, Some(head::Framing::Empty));
            }
        }
    }

    let whole = body::ChunkedEnd::default().feed(data);
    let cut = data.first().map_or(0, |b| *b as usize % (data.len() + 1));
    let mut split = body::ChunkedEnd::default();
    let pieces = match split.feed(&data[..cut]) {
        Ok(None) => split.feed(&data[cut..]).map(|end| end.map(|n| n + cut)),
        first => first,
    };
    assert_eq!(whole, pieces);
    if let Ok(Some(n)) = whole {
        assert!(n <= data.len());
    }
});
