//! Indented JSON for people, as kube-apiserver answers them: when the query
//! says `pretty=true`, or, without `pretty`, when the User-Agent is curl, Wget
//! or a browser. The answer is indented as it streams (two spaces, Go's
//! `json.Indent`), so a long list is never held whole; watch streams stay
//! one event per line.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame};

use super::respond::Body;

/// Input indented per output frame at most: a frame of deeply nested JSON
/// grows by its indentation, so each is cut small first.
const SLICE: usize = 4 * 1024;

/// Whether the request asks for indented JSON (see the module doc).
pub fn wanted(uri: &http::Uri, headers: &http::HeaderMap) -> bool {
    if let Some(query) = uri.query().filter(|q| q.contains("pretty")) {
        let value = form_urlencoded::parse(query.as_bytes()).filter(|(k, _)| k == "pretty").last().map(|(_, v)| v);
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            // Go's strconv.ParseBool; anything else is false.
            return matches!(value.as_ref(), "1" | "t" | "T" | "true" | "TRUE" | "True");
        }
    }
    let agent = headers.get(http::header::USER_AGENT).map(|v| v.as_bytes()).unwrap_or_default();
    [&b"curl"[..], b"Wget", b"Mozilla/5.0"].iter().any(|p| agent.starts_with(p))
}

/// `resp` with its JSON body indented; other answers (and streams marked
/// [`super::watch::Streaming`]) unchanged.
pub fn indent(mut resp: http::Response<Body>) -> http::Response<Body> {
    let json = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json") && !t.contains("stream=watch"));
    if !json || resp.extensions().get::<super::watch::Streaming>().is_some() {
        return resp;
    }
    resp.headers_mut().remove(http::header::CONTENT_LENGTH);
    resp.map(|body| Indented { inner: body, pending: Bytes::new(), indenter: Indenter::default() }.boxed_unsync())
}

/// Go's `json.Indent` with an indent of two spaces, fed piece by piece.
/// Whitespace between tokens is dropped; strings are copied as they are.
#[derive(Default)]
pub struct Indenter {
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// An object or array just opened: indent before its first element, or
    /// not at all if it is empty.
    need_indent: bool,
}

impl Indenter {
    /// Appends `input`, indented, to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &c in input {
            if self.in_string {
                out.push(c);
                if self.escaped {
                    self.escaped = false;
                } else if c == b'\\' {
                    self.escaped = true;
                } else if c == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            if matches!(c, b' ' | b'\t' | b'\r' | b'\n') {
                continue;
            }
            if self.need_indent && c != b'}' && c != b']' {
                self.need_indent = false;
                self.depth += 1;
                self.newline(out);
            }
            match c {
                b'"' => {
                    out.push(c);
                    self.in_string = true;
                }
                b'{' | b'[' => {
                    self.need_indent = true;
                    out.push(c);
                }
                b',' => {
                    out.push(c);
                    self.newline(out);
                }
                b':' => out.extend_from_slice(b": "),
                b'}' | b']' => {
                    if self.need_indent {
                        self.need_indent = false;
                    } else {
                        self.depth = self.depth.saturating_sub(1);
                        self.newline(out);
                    }
                    out.push(c);
                }
                _ => out.push(c),
            }
        }
    }

    fn newline(&self, out: &mut Vec<u8>) {
        out.push(b'\n');
        out.resize(out.len() + 2 * self.depth, b' ');
    }
}

/// A body indented as it streams.
struct Indented {
    inner: Body,
    /// Input not yet indented (each frame indents at most [`SLICE`] of it).
    pending: Bytes,
    indenter: Indenter,
}

impl HttpBody for Indented {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        loop {
            if !this.pending.is_empty() {
                let piece = this.pending.split_to(this.pending.len().min(SLICE));
                let mut out = Vec::with_capacity(piece.len() * 2);
                this.indenter.feed(&piece, &mut out);
                if out.is_empty() {
                    continue;
                }
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
            }
            match std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => this.pending = data,
                    Err(other) => return Poll::Ready(Some(Ok(other))),
                },
                Some(Err(never)) => match never {},
                None => return Poll::Ready(None),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_empty() && self.inner.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indented(input: &str) -> String {
        let mut out = Vec::new();
        Indenter::default().feed(input.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn indents_as_go_does() {
        assert_eq!(
            indented(r#"{"a":1,"b":[1,{"c":"x"}],"e":{},"f":[]}"#),
            "{\n  \"a\": 1,\n  \"b\": [\n    1,\n    {\n      \"c\": \"x\"\n    }\n  ],\n  \"e\": {},\n  \"f\": []\n}"
        );
        // Punctuation and escapes inside strings are kept as they are; whitespace between tokens goes.
        assert_eq!(indented(r#" { "k" : "a,b:{[\"]}\\" } "#), "{\n  \"k\": \"a,b:{[\\\"]}\\\\\"\n}");
    }

    #[test]
    fn any_split_indents_the_same() {
        let input = r#"{"kind":"List","items":[{"metadata":{"name":"a\"b,c"},"x":[]},{"y":{"z":[1,2]}}]}"#;
        let whole = indented(input);
        for at in 0..input.len() {
            let (mut i, mut out) = (Indenter::default(), Vec::new());
            i.feed(&input.as_bytes()[..at], &mut out);
            i.feed(&input.as_bytes()[at..], &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), whole, "split at {at}");
        }
    }

    #[test]
    fn who_gets_it() {
        let uri = |q: &str| q.parse::<http::Uri>().unwrap();
        let agent = |a: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(http::header::USER_AGENT, a.parse().unwrap());
            h
        };
        let none = http::HeaderMap::new();
        assert!(wanted(&uri("/api?pretty=true"), &none));
        assert!(wanted(&uri("/api?pretty=1"), &none));
        assert!(!wanted(&uri("/api?pretty=yes"), &none));
        assert!(!wanted(&uri("/api"), &none));
        assert!(wanted(&uri("/api"), &agent("curl/7.88.1")));
        assert!(wanted(&uri("/api"), &agent("Wget/1.21")));
        assert!(!wanted(&uri("/api?pretty=false"), &agent("curl/7.88.1")));
        assert!(wanted(&uri("/api?pretty="), &agent("curl/7.88.1")));
        assert!(!wanted(&uri("/api"), &agent("kubectl/v1.32.0")));
    }
}
