//! The hostile requests, generated deterministically: for each, the bytes
//! to send and how it may be answered.

use serde_json::{json, Value};

pub const DBS: &str = "/apis/prsn.io/v1/namespaces/default/mysqldbs";
pub const TPRS: &str = "/apis/extensions/v1beta1/thirdpartyresources";

/// How a case may be answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// A 4xx Status (or a 2xx read).
    Refused,
    /// The HTTP library answers (400/414/431, maybe no Status) or closes.
    Library,
    /// A read at a future resourceVersion: 504 is allowed.
    FutureRevision,
}

/// One generated request.
pub struct Case {
    /// What it tries.
    pub what: String,
    /// The bytes sent.
    pub request: Vec<u8>,
    /// How it may be answered.
    pub expect: Expect,
}

/// Builds requests: a method, a path, headers and a body.
pub struct Gen {
    token: String,
    cases: Vec<Case>,
}

impl Gen {
    pub fn raw(&mut self, what: impl Into<String>, request: Vec<u8>, expect: Expect) {
        self.cases.push(Case { what: what.into(), request, expect });
    }

    pub fn req(&mut self, what: impl Into<String>, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) {
        self.req_expect(what, method, path, headers, body, Expect::Refused);
    }

    pub fn req_expect(
        &mut self,
        what: impl Into<String>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        expect: Expect,
    ) {
        let mut r = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("authorization")) {
            r.push_str(&format!("Authorization: Bearer {}\r\n", self.token));
        }
        for (k, v) in headers {
            r.push_str(&format!("{k}: {v}\r\n"));
        }
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding"))
        {
            r.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        r.push_str("\r\n");
        let mut bytes = r.into_bytes();
        bytes.extend_from_slice(body);
        self.raw(what, bytes, expect);
    }

    pub fn post_json(&mut self, what: impl Into<String>, path: &str, body: &[u8]) {
        self.req(what, "POST", path, &[("Content-Type", "application/json")], body);
    }

    pub fn patch(&mut self, what: impl Into<String>, path: &str, content_type: &str, body: &[u8]) {
        self.req(what, "PATCH", path, &[("Content-Type", content_type)], body);
    }
}

pub fn nested_json(levels: usize) -> String {
    format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
}

pub fn nested_object(levels: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..levels {
        v = json!({ "a": v });
    }
    v
}

mod addressing;
mod bodies;
mod requests;

/// Every case, deterministically.
pub fn cases(token: &str) -> Vec<Case> {
    let mut g = Gen { token: token.to_string(), cases: Vec::new() };
    let obj = format!("{DBS}/a");
    bodies::cases(&mut g, &obj);
    addressing::cases(&mut g, &obj);
    requests::cases(&mut g, &obj);
    g.cases
}

pub fn short(v: &Value) -> String {
    short_str(&v.to_string())
}

pub fn short_str(s: &str) -> String {
    s.chars().take(60).collect()
}

pub fn form(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}
