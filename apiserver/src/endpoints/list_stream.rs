//! A JSON list answered as a stream: the list's head, then its items in
//! chunks of about [`CHUNK_BYTES`], each item copied from the type's memo of
//! encoded objects (or encoded once and kept there). The response is never
//! whole in memory; what a list holds while it is sent is one handle per
//! item on the cache's values.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use storage::KeyValue;

use super::respond::Body;
use crate::registry;
use crate::served::ResourceType;
use crate::status::Cause;

/// Bytes of items per DATA chunk.
pub const CHUNK_BYTES: usize = 64 << 10;

/// Checks that every item can be served (each one not yet in the memo is
/// decoded, encoded and kept there), noting the ones that cannot.
pub fn check_items(rt: &ResourceType, items: &[Arc<KeyValue>], api_version: &str) -> Vec<Cause> {
    let mut corrupt = Vec::new();
    for (kv, found) in items.iter().zip(rt.encoded.get_all(items, api_version)) {
        if found.is_none() {
            if let Err(e) = registry::encode_served(rt, kv, api_version) {
                super::read::note_corrupt(&mut corrupt, kv, e);
            }
        }
    }
    corrupt
}

/// The response: `head` (the list up to and including `"items":[`), the
/// items, then `]}`.
pub fn response(
    head: String,
    rt: Arc<ResourceType>,
    api_version: String,
    items: Vec<Arc<KeyValue>>,
) -> http::Response<Body> {
    let body = ListBody { head: Some(Bytes::from(head)), rt, api_version, items, next: 0, done: false };
    let mut resp = http::Response::new(body.boxed_unsync());
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// The body of [`response`].
struct ListBody {
    head: Option<Bytes>,
    rt: Arc<ResourceType>,
    api_version: String,
    items: Vec<Arc<KeyValue>>,
    /// The first item not yet sent.
    next: usize,
    done: bool,
}

impl ListBody {
    /// The next chunk of items (with the closing `]}` after the last one).
    fn chunk(&mut self) -> Bytes {
        let mut out = BytesMut::with_capacity(CHUNK_BYTES + 1024);
        // Look up a batch at a time, under one lock each.
        while self.next < self.items.len() && out.len() < CHUNK_BYTES {
            let end = (self.next + 128).min(self.items.len());
            let batch = &self.items[self.next..end];
            for (i, (kv, found)) in batch.iter().zip(self.rt.encoded.get_all(batch, &self.api_version)).enumerate() {
                // Checked before the head was sent; an item evicted from the
                // memo since is encoded again (the same bytes, so it reads).
                let bytes = match found {
                    Some(b) => b,
                    None => match registry::encode_served(&self.rt, kv, &self.api_version) {
                        Ok(b) => b,
                        Err(e) => {
                            tracing::error!(key = %kv.key, error = %e.message, "a listed object cannot be read");
                            continue;
                        }
                    },
                };
                if self.next + i > 0 {
                    out.put_u8(b',');
                }
                out.extend_from_slice(&bytes);
            }
            self.next = end;
        }
        if self.next >= self.items.len() {
            out.extend_from_slice(b"]}");
            self.done = true;
        }
        out.freeze()
    }
}

impl HttpBody for ListBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(head) = self.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        if self.done {
            return Poll::Ready(None);
        }
        Poll::Ready(Some(Ok(Frame::data(self.chunk()))))
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.head.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
