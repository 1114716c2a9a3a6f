//! Lingering close: a connection the server is done with keeps reading,
//! and dropping, what the client still sends for a while before it closes.
//!
//! The server may answer before it has read the whole request (413 for a
//! body over the limit, 401 before reading any). Closing a socket with
//! unread data makes the kernel send a reset, and a reset makes the
//! client's kernel discard the answer it has not read yet: a client still
//! sending its body would never see the answer. Go's net/http (so
//! kube-apiserver), nginx and Apache all linger for the same reason.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long in all a closed connection keeps reading (nginx's
/// `lingering_time`).
const LINGER_TOTAL: Duration = Duration::from_secs(30);

/// How long it waits for more from a silent client (nginx's
/// `lingering_timeout`).
const LINGER_IDLE: Duration = Duration::from_secs(5);

/// A TCP connection that lingers when dropped.
#[derive(Debug)]
pub struct Lingering {
    /// `None` only once dropped.
    tcp: Option<TcpStream>,
}

// === impl Lingering ===

impl Lingering {
    /// Wrap an accepted connection.
    pub fn new(tcp: TcpStream) -> Self {
        Self { tcp: Some(tcp) }
    }

    fn tcp(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(self.tcp.as_mut().expect("only taken on drop"))
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        // Outside a runtime (its shutdown) there is nobody to answer.
        if let (Some(tcp), Ok(runtime)) = (self.tcp.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(linger(tcp));
        }
    }
}

impl AsyncRead for Lingering {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.tcp().poll_read(cx, buf)
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.tcp().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.tcp().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.as_ref().is_some_and(|t| t.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp().poll_shutdown(cx)
    }
}

/// Send FIN, then drop what arrives until the client closes its side, goes
/// quiet, or the time is up.
async fn linger(mut tcp: TcpStream) {
    let _ = tcp.shutdown().await;
    let deadline = Instant::now() + LINGER_TOTAL;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let wait = LINGER_IDLE.min(deadline.saturating_duration_since(Instant::now()));
        match tokio::time::timeout(wait, tcp.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// The client writes a body the server never reads, then reads the
    /// answer the server sent before dropping the connection.
    #[tokio::test]
    async fn answer_survives_unread_input() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut conn = Lingering::new(tcp);
            let mut head = [0u8; 4];
            conn.read_exact(&mut head).await.unwrap();
            conn.write_all(b"no thanks").await.unwrap();
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(b"head").await.unwrap();
        server.await.unwrap();
        let block = vec![0u8; 64 * 1024];
        for _ in 0..64 {
            client.write_all(&block).await.unwrap();
        }
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"no thanks");
    }
}
