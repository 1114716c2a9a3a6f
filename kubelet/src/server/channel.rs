//! The `channel.k8s.io` WebSocket subprotocols of exec: every binary
//! message starts with the channel it belongs to, 0 stdin, 1 stdout,
//! 2 stderr, 3 the final Status, 4 TTY resizes. `v5` adds a close signal,
//! `[255, channel]`, so a client can end stdin and still read the output.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Value};

/// The process's stdin (client to server).
pub const STDIN: u8 = 0;
/// The process's stdout (server to client).
pub const STDOUT: u8 = 1;
/// The process's stderr (server to client).
pub const STDERR: u8 = 2;
/// The final `metav1.Status` (server to client).
pub const ERROR: u8 = 3;
/// TTY size changes, JSON `{"Width":…,"Height":…}` (client to server).
pub const RESIZE: u8 = 4;
/// v5's close signal: `[CLOSE, channel]` (client to server).
pub const CLOSE: u8 = 255;

/// A subprotocol this server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `v4.channel.k8s.io`: Status on channel 3, no close signal.
    V4,
    /// `v5.channel.k8s.io`: v4 plus the close signal.
    V5,
}

// === impl Protocol ===

impl Protocol {
    /// The name in `Sec-WebSocket-Protocol`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::V4 => "v4.channel.k8s.io",
            Protocol::V5 => "v5.channel.k8s.io",
        }
    }

    /// The first protocol of the client's list (one or more
    /// `Sec-WebSocket-Protocol` values) that this server speaks.
    pub fn negotiate<'a>(offered: impl IntoIterator<Item = &'a str>) -> Option<Protocol> {
        offered
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .find_map(|p| match p {
                "v5.channel.k8s.io" => Some(Protocol::V5),
                "v4.channel.k8s.io" => Some(Protocol::V4),
                _ => None,
            })
    }
}

/// A message for the client on `channel`.
pub fn frame(channel: u8, data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 1);
    out.put_u8(channel);
    out.put_slice(data);
    out.freeze()
}

/// What a client's message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// Bytes for the process's stdin.
    Stdin(Bytes),
    /// The TTY's new size.
    Resize {
        /// Columns.
        width: u16,
        /// Rows.
        height: u16,
    },
    /// The client closed stdin (v5).
    CloseStdin,
    /// Nothing to act on: an empty message, or a close of another channel.
    Ignored,
}

/// Why a client's message makes no sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// A channel a client may not write to.
    #[error("unexpected message on channel {0}")]
    UnknownChannel(u8),
    /// A resize message that is not `{"Width":…,"Height":…}`.
    #[error("invalid resize message: {0}")]
    Resize(String),
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TerminalSize {
    width: u16,
    height: u16,
}

/// Decode a client's binary message.
pub fn parse(protocol: Protocol, message: &Bytes) -> Result<Inbound, ChannelError> {
    let Some(&channel) = message.first() else {
        return Ok(Inbound::Ignored);
    };
    let data = message.slice(1..);
    match channel {
        STDIN if data.is_empty() => Ok(Inbound::Ignored),
        STDIN => Ok(Inbound::Stdin(data)),
        RESIZE => {
            let size: TerminalSize =
                serde_json::from_slice(&data).map_err(|e| ChannelError::Resize(e.to_string()))?;
            Ok(Inbound::Resize {
                width: size.width,
                height: size.height,
            })
        }
        CLOSE if protocol == Protocol::V5 => Ok(match data.first() {
            Some(&STDIN) => Inbound::CloseStdin,
            _ => Inbound::Ignored,
        }),
        other => Err(ChannelError::UnknownChannel(other)),
    }
}

/// The Status of a command that exited 0.
pub fn success() -> Value {
    json!({"metadata": {}, "status": "Success"})
}

/// The Status of a command that exited with `code`; kubectl exits with the
/// code it finds in the `ExitCode` cause.
pub fn exit_failure(command: &[String], code: i32) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// The Status of an exec that could not run or whose end is unknown.
pub fn internal_error(message: &str) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: {message}"),
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    })
}

/// The Status for an exit code.
pub fn exit_status(command: &[String], code: i32) -> Value {
    if code == 0 {
        success()
    } else {
        exit_failure(command, code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_the_first_supported_protocol() {
        assert_eq!(
            Protocol::negotiate(["v5.channel.k8s.io, v4.channel.k8s.io"]),
            Some(Protocol::V5)
        );
        assert_eq!(
            Protocol::negotiate(["channel.k8s.io", "v4.channel.k8s.io,v5.channel.k8s.io"]),
            Some(Protocol::V4)
        );
        assert_eq!(
            Protocol::negotiate(["base64.channel.k8s.io"]),
            None,
            "older protocols are not spoken"
        );
        assert_eq!(Protocol::negotiate([]), None);
    }

    #[test]
    fn frames_start_with_the_channel() {
        assert_eq!(&frame(STDOUT, b"hi")[..], b"\x01hi");
        assert_eq!(&frame(ERROR, b"")[..], b"\x03");
    }

    #[test]
    fn parses_client_messages() {
        let msg = |b: &[u8]| Bytes::copy_from_slice(b);
        assert_eq!(
            parse(Protocol::V5, &msg(b"\x00abc")),
            Ok(Inbound::Stdin(msg(b"abc")))
        );
        assert_eq!(parse(Protocol::V5, &msg(b"\x00")), Ok(Inbound::Ignored));
        assert_eq!(parse(Protocol::V5, &msg(b"")), Ok(Inbound::Ignored));
        let mut resize = vec![RESIZE];
        resize.extend_from_slice(br#"{"Width":120,"Height":40}"#);
        assert_eq!(
            parse(Protocol::V4, &msg(&resize)),
            Ok(Inbound::Resize {
                width: 120,
                height: 40
            })
        );
        assert!(matches!(
            parse(Protocol::V5, &msg(b"\x04{\"Width\":-1}")),
            Err(ChannelError::Resize(_))
        ));
        assert_eq!(
            parse(Protocol::V5, &msg(&[CLOSE, STDIN])),
            Ok(Inbound::CloseStdin)
        );
        assert_eq!(
            parse(Protocol::V5, &msg(&[CLOSE, STDOUT])),
            Ok(Inbound::Ignored)
        );
        assert_eq!(
            parse(Protocol::V4, &msg(&[CLOSE, STDIN])),
            Err(ChannelError::UnknownChannel(CLOSE)),
            "v4 has no close signal"
        );
        assert_eq!(
            parse(Protocol::V5, &msg(b"\x01out")),
            Err(ChannelError::UnknownChannel(STDOUT))
        );
    }

    #[test]
    fn statuses_match_kubernetes() {
        assert_eq!(
            exit_status(&[], 0).to_string(),
            r#"{"metadata":{},"status":"Success"}"#
        );
        let failed = exit_status(&["sh".into(), "-c".into(), "exit 3".into()], 3);
        assert_eq!(failed["status"], "Failure");
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(
            failed["details"]["causes"],
            json!([{"reason": "ExitCode", "message": "3"}])
        );
        assert!(failed["message"]
            .as_str()
            .unwrap()
            .starts_with("command terminated with non-zero exit code: "));
        let internal = internal_error("boom");
        assert_eq!(internal["reason"], "InternalError");
        assert_eq!(internal["code"], 500);
    }
}
