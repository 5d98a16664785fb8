//! A lean HTTP/2 watch client for the benchmark.
//!
//! hyper's client runs one task per stream and wakes it for every DATA frame;
//! with 10,000 watchers on the 2 cores it shares with the server, that load
//! generator took two thirds of a core. Here one task per connection opens all
//! its watch streams and reads every stream's DATA frames itself.
//!
//! Only what a watch needs: the connection preface, SETTINGS (and their
//! acknowledgement), PING answers, HEADERS for the requests (HPACK literals
//! without indexing, so the server's header blocks never need decoding), and
//! flow-control windows opened to the maximum at the start (a benchmark reads
//! far less than 2 GiB per connection, so no WINDOW_UPDATE is needed later).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::events::EventReader;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const ACK: u8 = 0x1;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const MAX_WINDOW: u32 = 0x7fff_ffff;

/// What one connection's watch streams received.
pub struct Outcome {
    /// Per stream, the delivery latency (µs since `sent_us`) of each event, in order.
    pub latencies: Vec<Vec<u32>>,
    /// DATA frames received.
    pub frames: u64,
}

/// The request of one watch.
pub struct WatchRequest<'a> {
    /// `host:port`.
    pub authority: &'a str,
    /// Path and query of the watch.
    pub path: &'a str,
    /// Bearer token.
    pub token: &'a str,
}

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&(stream & MAX_WINDOW).to_be_bytes());
    out.extend_from_slice(payload);
}

/// HPACK integer with an `n`-bit prefix whose high bits are `first`.
fn hpack_int(out: &mut Vec<u8>, first: u8, n: u32, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// "Literal header field without indexing, indexed name" (RFC 7541 6.2.2).
fn hpack_literal(out: &mut Vec<u8>, static_index: usize, value: &str) {
    hpack_int(out, 0x00, 4, static_index);
    hpack_int(out, 0x00, 7, value.len());
    out.extend_from_slice(value.as_bytes());
}

fn header_block(req: &WatchRequest<'_>) -> Vec<u8> {
    let mut block = vec![0x82, 0x87]; // :method GET, :scheme https (static table)
    hpack_literal(&mut block, 1, req.authority); // :authority
    hpack_literal(&mut block, 4, req.path); // :path
    hpack_literal(&mut block, 19, "application/json"); // accept
    hpack_literal(&mut block, 23, &format!("Bearer {}", req.token)); // authorization
    block
}

/// Opens `streams` watches of `req` on `io` (TLS with ALPN h2 done) and reads
/// them until each has received `wanted` events or `deadline` passes.
/// `opened` counts streams whose response headers arrived.
pub async fn watch_streams<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    req: &WatchRequest<'_>,
    streams: usize,
    wanted: usize,
    epoch: Instant,
    opened: &AtomicU64,
    deadline: Instant,
) -> io::Result<Outcome> {
    let mut out = PREFACE.to_vec();
    let mut settings = Vec::new();
    for (id, value) in [(0x2u16, 0u32), (0x4, MAX_WINDOW)] {
        settings.extend_from_slice(&id.to_be_bytes());
        settings.extend_from_slice(&value.to_be_bytes());
    }
    frame(&mut out, SETTINGS, 0, 0, &settings);
    frame(&mut out, WINDOW_UPDATE, 0, 0, &(MAX_WINDOW - 65_535).to_be_bytes());
    let block = header_block(req);
    for s in 0..streams {
        frame(&mut out, HEADERS, END_HEADERS | END_STREAM, 2 * s as u32 + 1, &block);
    }
    io.write_all(&out).await?;
    io.flush().await?;

    let mut readers: Vec<EventReader> = (0..streams).map(|_| EventReader::default()).collect();
    let mut latencies: Vec<Vec<u32>> = (0..streams).map(|_| Vec::with_capacity(wanted)).collect();
    let mut headers_seen = vec![false; streams];
    let (mut complete, mut frames) = (0usize, 0u64);
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut start = 0usize;
    while complete < streams {
        if buf.len() - start < 9 || buf.len() - start < 9 + frame_len(&buf[start..]) {
            buf.drain(..start);
            start = 0;
            let mut chunk = [0u8; 64 * 1024];
            let n = tokio::time::timeout_at(deadline.into(), io.read(&mut chunk))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "watch deadline"))??;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            continue;
        }
        let now = epoch.elapsed().as_micros() as u64;
        let head = &buf[start..start + 9];
        let len = frame_len(head);
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & MAX_WINDOW;
        let payload = &buf[start + 9..start + 9 + len];
        let index = (stream as usize).wrapping_sub(1) / 2;
        match kind {
            DATA if index < streams => {
                frames += 1;
                let mut data = payload;
                if flags & PADDED != 0 && !data.is_empty() {
                    let pad = data[0] as usize;
                    data = &data[1..data.len().saturating_sub(pad)];
                }
                let before = latencies[index].len();
                let lat = &mut latencies[index];
                readers[index].feed(data, |sent| lat.push(now.saturating_sub(sent) as u32));
                if before < wanted && latencies[index].len() >= wanted {
                    complete += 1;
                }
            }
            HEADERS if index < streams && !headers_seen[index] => {
                headers_seen[index] = true;
                opened.fetch_add(1, Ordering::Relaxed);
            }
            SETTINGS if flags & ACK == 0 => {
                let mut ack = Vec::new();
                frame(&mut ack, SETTINGS, ACK, 0, &[]);
                io.write_all(&ack).await?;
                io.flush().await?;
            }
            PING if flags & ACK == 0 => {
                let mut pong = Vec::new();
                frame(&mut pong, PING, ACK, 0, payload);
                io.write_all(&pong).await?;
                io.flush().await?;
            }
            GOAWAY => break,
            _ => {}
        }
        start += 9 + len;
    }
    Ok(Outcome { latencies, frames })
}

fn frame_len(head: &[u8]) -> usize {
    if head.len() < 3 {
        return 0;
    }
    u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpack_integers() {
        let mut out = Vec::new();
        hpack_int(&mut out, 0, 5, 10);
        hpack_int(&mut out, 0, 5, 1337);
        assert_eq!(out, vec![10, 31, 154, 10]); // RFC 7541 C.1.1 and C.1.2
    }
}
