//! Copying a proxied TCP connection both ways: through a small buffer
//! while the traffic is small (most requests and answers fit in one read),
//! and through a pipe with `splice` once a read fills that buffer, so the
//! bytes of a bulk transfer move inside the kernel without being copied
//! into the process and out again.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg, OFlag, SpliceFFlags};
use nix::sys::socket::Shutdown;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// The buffer of the first reads of each direction.
const BUFFER: usize = 16 * 1024;
/// The pipe's capacity asked for in splice mode (the default is 64 KiB;
/// the kernel caps it at `fs.pipe-max-size`, 1 MiB by default).
const PIPE_SIZE: usize = 1024 * 1024;

/// Copy both ways until both directions have ended, shutting the write
/// side of each peer down when the other side's reads end (a half-close
/// passes through); the first error ends both. The bytes sent to `b` and
/// to `a`.
pub(super) async fn relay(a: &TcpStream, b: &TcpStream) -> io::Result<(u64, u64)> {
    tokio::try_join!(one_way(a, b), one_way(b, a))
}

async fn one_way(from: &TcpStream, to: &TcpStream) -> io::Result<u64> {
    let mut buffer = vec![0u8; BUFFER];
    let mut total = 0u64;
    loop {
        from.readable().await?;
        let n = match from.try_read(&mut buffer) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            break;
        }
        write_all(to, &buffer[..n]).await?;
        total += n as u64;
        if n == buffer.len() {
            // A full read: a bulk transfer, most likely. The buffer goes,
            // the pipe takes over (or the buffer stays if no pipe can be
            // had: out of descriptors).
            match Pipe::new() {
                Ok(pipe) => {
                    drop(buffer);
                    total += pipe.splice_until_end(from, to).await?;
                    break;
                }
                Err(error) => tracing::debug!(%error, "no pipe for splice; copying"),
            }
        }
    }
    shutdown_write(to);
    Ok(total)
}

async fn write_all(to: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        to.writable().await?;
        match to.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The other side will send nothing more: pass the FIN on. A peer already
/// gone makes this fail, which changes nothing.
fn shutdown_write(to: &TcpStream) {
    let _ = nix::sys::socket::shutdown(to.as_raw_fd(), Shutdown::Write);
}

struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    fn new() -> io::Result<Self> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        // Bigger moves per call; the default size still works if refused.
        let _ = fcntl(&write, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE as i32));
        Ok(Self { read, write })
    }

    /// Move everything `from` sends to `to` through the pipe, until `from`
    /// ends. The pipe is emptied before each read, so a read that would
    /// block means the socket has nothing, never that the pipe is full.
    async fn splice_until_end(&self, from: &TcpStream, to: &TcpStream) -> io::Result<u64> {
        let flags = SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE;
        let mut total = 0u64;
        loop {
            from.readable().await?;
            let moved = from.try_io(Interest::READABLE, || {
                nix::fcntl::splice(from.as_fd(), None, &self.write, None, PIPE_SIZE, flags)
                    .map_err(io::Error::from)
            });
            let mut pending = match moved {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            };
            total += pending as u64;
            while pending > 0 {
                to.writable().await?;
                let sent = to.try_io(Interest::WRITABLE, || {
                    nix::fcntl::splice(&self.read, None, to.as_fd(), None, pending, flags)
                        .map_err(io::Error::from)
                });
                match sent {
                    Ok(n) => pending -= n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
