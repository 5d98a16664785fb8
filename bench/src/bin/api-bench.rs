//! API benchmark: the real `tpr-apiserver` (release build) on a local etcd,
//! measured side by side with its references in one run.
//!
//! `cargo build --release -p apiserver && cargo run --release -p bench --bin api-bench`
//! (TPR_APISERVER_BIN overrides the binary; BENCH_PHASES picks phases, and
//! `creates-embedded` only the embedded half of `creates`;
//! WATCHERS sets the watcher count, default 10,000; MORE_TYPES the number of
//! other types served while embedded creates and GETs are measured, default
//! 0; BENCH_SECS the seconds
//! per throughput measurement, default 3; ROUNDS the rounds of each ratio,
//! default 3, the median reported).
//! Prints: creates/s through the API at 64 concurrent clients against raw etcd
//! create-if-absent transactions, and on the embedded store, with the
//! server's CPU per create; GET of one object per second over keep-alive
//! HTTPS (HTTP/2) against a bare hyper + rustls server in its own process
//! (the floor); lists of 18,000 objects (a page of 500, the whole list,
//! memory while 8 clients list); new TPR → first successful create;
//! overload; on the embedded store, a namespace of 10,000 objects deleted
//! and TPR creates beside 1,000 Events/s; a sensor's delivery; watchers:
//! delivery of every event, p99 latency at 100 writes/s, and server RSS per
//! idle watcher.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

type Client = SendRequest<Full<Bytes>>;

struct Target {
    addr: SocketAddr,
    tls: tokio_rustls::TlsConnector,
    token: String,
}

impl Target {
    async fn tls_stream(&self) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await.expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        let name = ServerName::IpAddress(self.addr.ip().into());
        self.tls.connect(name, tcp).await.expect("TLS handshake")
    }

    async fn connect(&self) -> Client {
        let tls = self.tls_stream().await;
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            // client-go's (Go's HTTP/2 transport) windows: 4 MiB per stream, 1 GiB per connection.
            .initial_stream_window_size(4 << 20)
            .initial_connection_window_size(1 << 30)
            .handshake(TokioIo::new(tls))
            .await
            .expect("HTTP/2 handshake");
        tokio::spawn(conn);
        sender
    }

    fn request(&self, method: &str, path: &str, body: Option<String>) -> http::Request<Full<Bytes>> {
        http::Request::builder()
            .method(method)
            .uri(format!("https://{}{path}", self.addr))
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .expect("request")
    }
}

async fn call(client: &mut Client, req: http::Request<Full<Bytes>>) -> (u16, Bytes) {
    let resp = match client.send_request(req).await {
        Ok(r) => r,
        Err(_) => return (0, Bytes::new()),
    };
    let code = resp.status().as_u16();
    let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    (code, body)
}

fn seconds() -> Duration {
    Duration::from_secs_f64(std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0))
}

/// Runs `op` from `n` tasks sharing `conns` connections; returns successes/s.
async fn throughput<F, Fut>(target: &Arc<Target>, n: usize, conns: usize, op: F) -> f64
where
    F: Fn(Client, Arc<Target>, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let mut clients = Vec::new();
    for _ in 0..conns {
        clients.push(target.connect().await);
    }
    let op = Arc::new(op);
    let (counter, done) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let start = Instant::now();
    let until = start + seconds();
    let mut tasks = Vec::new();
    for i in 0..n {
        let (op, counter, done, client, target) =
            (op.clone(), counter.clone(), done.clone(), clients[i % conns].clone(), target.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                if op(client.clone(), target.clone(), i).await {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The integer after `"<field>":` in a JSON line, without parsing the line.
async fn create_tpr(client: &mut Client, target: &Target, name: &str) {
    let body = serde_json::json!({"metadata": {"name": name}, "versions": [{"name": "v1"}]}).to_string();
    let (code, out) =
        call(client, target.request("POST", "/apis/extensions/v1beta1/thirdpartyresources", Some(body))).await;
    assert_eq!(code, 201, "create TPR: {}", String::from_utf8_lossy(&out));
}

/// `MORE_TYPES=<n>`: n more ThirdPartyResource types served by `target`,
/// each in a group of its own (what a server with many TPRs costs).
async fn serve_more_types(target: &Target) {
    let more: usize = std::env::var("MORE_TYPES").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    if more == 0 {
        return;
    }
    let mut admin = target.connect().await;
    for i in 0..more {
        create_tpr(&mut admin, target, &format!("thing.g{i:05}.example.io")).await;
    }
    println!("{more} more ThirdPartyResource types served");
}

/// A client of `server`, trusting the CA in its data dir and using its admin token.
fn target_of(server: &testkit::Server, dir: &std::path::Path) -> Arc<Target> {
    let addr: SocketAddr = server.url().trim_start_matches("https://").parse().expect("address");
    let ca = std::fs::read(dir.join("pki/ca.crt")).expect("CA");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.expect("CA PEM")).expect("CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let token = std::fs::read_to_string(dir.join("admin.token")).expect("token").trim().to_string();
    Arc::new(Target { addr, tls: tokio_rustls::TlsConnector::from(Arc::new(config)), token })
}

/// The floor for GETs: a bare hyper 1 + rustls HTTP/2 server with the same
/// certificate (from `dir/pki`) answering every request with `body`; its address.
async fn floor_server(dir: &std::path::Path, body: Bytes) -> SocketAddr {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("pki/apiserver.crt"))
        .expect("serving certificate")
        .map(|c| c.expect("certificate PEM"))
        .collect();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(dir.join("pki/apiserver.key")).expect("serving key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("certificate and key");
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("floor listener");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let (acceptor, body) = (acceptor.clone(), body.clone());
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = hyper::service::service_fn(move |_req: hyper::Request<hyper::body::Incoming>| {
                    let body = body.clone();
                    async move {
                        hyper::Response::builder().header("content-type", "application/json").body(Full::new(body))
                    }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

/// GETs of one object per second: 64 concurrent requests over 2 HTTP/2 connections.
async fn get_rate(target: &Arc<Target>, query: &'static str) -> f64 {
    let mut admin = target.connect().await;
    let body = "{\"metadata\":{\"name\":\"db000000001\"}}".to_string();
    call(&mut admin, target.request("POST", "/apis/prsn.io/v1/namespaces/default/mysqldbs", Some(body))).await;
    throughput(target, 64, 2, move |mut c, t, _| async move {
        let path = format!("/apis/prsn.io/v1/namespaces/default/mysqldbs/db000000001{query}");
        call(&mut c, t.request("GET", &path, None)).await.0 == 200
    })
    .await
}

/// [`get_rate`] with the CPU it took: (GETs/s, µs of `server`'s CPU per
/// GET, µs of this process's CPU per GET).
async fn get_rate_cpu(target: &Arc<Target>, query: &'static str, server: Option<u32>) -> (f64, f64, f64) {
    let me = std::process::id();
    let (s0, m0, t0) = (server.map(testkit::process::cpu_time), testkit::process::cpu_time(me), Instant::now());
    let rate = get_rate(target, query).await;
    let gets = rate * t0.elapsed().as_secs_f64();
    let us = |d: Duration| d.as_secs_f64() * 1e6 / gets.max(1.0);
    let server_us = match (server, s0) {
        (Some(pid), Some(s0)) => us(testkit::process::cpu_time(pid).saturating_sub(s0)),
        _ => 0.0,
    };
    (rate, server_us, us(testkit::process::cpu_time(me).saturating_sub(m0)))
}

/// Raw etcd writes/s from 64 concurrent clients on one etcd client: plain
/// puts, or (`txn`) create-if-absent transactions as the API's creates send.
async fn raw_etcd_rate(kv: etcd_client::KvClient, txn: bool) -> f64 {
    use etcd_client::{Compare, CompareOp, Txn, TxnOp};
    let value = serde_json::json!({"metadata": {"name": "x", "namespace": "default"}, "size": "small"}).to_string();
    // Each call writes keys of its own (a create-if-absent of an existing key fails).
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let (counter, done) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let start = Instant::now();
    let until = start + seconds();
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (mut kv, value, counter, done) = (kv.clone(), value.clone(), counter.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let key = format!("/raw/{}/{call}/k{i:09}", if txn { "txn" } else { "put" });
                let ok = if txn {
                    let t = Txn::new()
                        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                        .and_then([TxnOp::put(key, value.clone(), None)]);
                    kv.txn(t).await.is_ok_and(|r| r.succeeded())
                } else {
                    kv.put(key, value.clone(), None).await.is_ok()
                };
                if ok {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// Creates/s through the API at 64 concurrent clients over 4 connections
/// (names of `round`), and µs of the server's (`pid`) CPU per create.
async fn create_rate_cpu(target: &Arc<Target>, pid: u32, round: usize) -> (f64, f64) {
    let (cpu0, t0) = (testkit::process::cpu_time(pid), Instant::now());
    let rate = throughput(target, 64, 4, move |mut c, t, i| async move {
        let body = format!("{{\"metadata\":{{\"name\":\"r{round}-db{i:09}\"}},\"size\":\"small\"}}");
        call(&mut c, t.request("POST", "/apis/prsn.io/v1/namespaces/default/mysqldbs", Some(body))).await.0 == 201
    })
    .await;
    let creates = rate * t0.elapsed().as_secs_f64();
    (rate, testkit::process::cpu_time(pid).saturating_sub(cpu0).as_secs_f64() * 1e6 / creates.max(1.0))
}

/// What closed-loop clients saw: latencies (µs) of admitted (201) and
/// refused (429) creates, and other answers.
#[derive(Default)]
struct Closed {
    admitted: Vec<u32>,
    refused: Vec<u32>,
    other: u64,
    secs: f64,
}

impl Closed {
    fn p(v: &mut [u32], pct: usize) -> f64 {
        v.sort_unstable();
        v.get(v.len().saturating_sub(1) * pct / 100).copied().unwrap_or(0) as f64 / 1000.0
    }
}

/// `n` clients over 4 HTTP/2 connections, each creating objects back to back
/// for [`seconds`]; a refused client waits the server's `Retry-After` (1 s)
/// before its next create, as client-go does.
async fn closed_loop(target: &Arc<Target>, n: usize, tag: &str) -> Closed {
    let conns = 4.min(n);
    let mut clients = Vec::new();
    for _ in 0..conns {
        clients.push(target.connect().await);
    }
    let start = Instant::now();
    let until = start + seconds();
    let mut tasks = Vec::new();
    for c in 0..n {
        let (mut client, target, tag) = (clients[c % conns].clone(), target.clone(), tag.to_string());
        tasks.push(tokio::spawn(async move {
            let mut out = Closed::default();
            let mut i = 0u64;
            while Instant::now() < until {
                i += 1;
                let body = format!("{{\"metadata\":{{\"name\":\"{tag}-{c}-{i}\"}},\"size\":\"small\"}}");
                let req = target.request("POST", "/apis/prsn.io/v1/namespaces/default/mysqldbs", Some(body));
                let t0 = Instant::now();
                let (code, _) = call(&mut client, req).await;
                let us = t0.elapsed().as_micros() as u32;
                match code {
                    201 => out.admitted.push(us),
                    429 => {
                        out.refused.push(us);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    _ => out.other += 1,
                }
            }
            out
        }));
    }
    let mut all = Closed::default();
    for t in tasks {
        if let Ok(out) = t.await {
            all.admitted.extend(out.admitted);
            all.refused.extend(out.refused);
            all.other += out.other;
        }
    }
    all.secs = start.elapsed().as_secs_f64();
    all
}

/// Creates sent at `rate` per second for [`seconds`] whatever the answers
/// (open loop: arrivals do not wait for answers, as many independent
/// clients), over 8 HTTP/2 connections.
async fn open_loop(target: &Arc<Target>, rate: f64, tag: &str) -> Closed {
    open_loop_to(
        target,
        rate,
        "/apis/prsn.io/v1/namespaces/default/mysqldbs",
        |name| format!("{{\"metadata\":{{\"name\":\"{name}\"}},\"size\":\"small\"}}"),
        tag,
    )
    .await
}

/// An Event body, as an operator posts one.
fn event_body(name: &str) -> String {
    serde_json::json!({
        "metadata": {"name": name},
        "involvedObject": {"apiVersion": "prsn.io/v1", "kind": "MysqlDb", "name": "orders", "namespace": "default"},
        "reason": "Reconciled", "message": "MysqlDb orders reconciled", "type": "Normal",
        "source": {"component": "bench-operator"}, "count": 1,
        "firstTimestamp": "2026-12-05T00:00:00Z", "lastTimestamp": "2026-12-05T00:00:00Z",
    })
    .to_string()
}

/// [`open_loop`] to `path`, with `body` making each object from its name.
async fn open_loop_to(
    target: &Arc<Target>,
    rate: f64,
    path: &'static str,
    body: impl Fn(&str) -> String,
    tag: &str,
) -> Closed {
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(target.connect().await);
    }
    let results = Arc::new(std::sync::Mutex::new(Closed::default()));
    let start = Instant::now();
    let total = (rate * seconds().as_secs_f64()) as u64;
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let (mut client, target, results) = (clients[i as usize % 8].clone(), target.clone(), results.clone());
        let body = body(&format!("{tag}-{i}"));
        tasks.push(tokio::spawn(async move {
            let req = target.request("POST", path, Some(body));
            let t0 = Instant::now();
            let (code, _) = call(&mut client, req).await;
            let us = t0.elapsed().as_micros() as u32;
            if let Ok(mut r) = results.lock() {
                match code {
                    201 => r.admitted.push(us),
                    429 => r.refused.push(us),
                    _ => r.other += 1,
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut out = std::mem::take(&mut *results.lock().expect("results"));
    out.secs = start.elapsed().as_secs_f64();
    out
}

/// Overload: finds the load that saturates creates on a server without
/// limits (the fewest closed-loop clients reaching 90% of the best rate),
/// then offers 4x that rate (open loop) to a server whose
/// `--max-mutating-requests-inflight` is that many clients
/// (`OVERLOAD_LIMIT` overrides it), and to the server without limits for
/// comparison. Clients authenticate as a user outside system:masters (which
/// is exempt from the limits).
async fn overload(bin: &std::path::Path, etcd: &testkit::Etcd) {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "bench-user-token,bench-user,1000,\"bench\"\n").expect("token file");
    let data = dir.path().join("data");
    let start = |limit: usize| {
        let limit = limit.to_string();
        let args = [
            "--data-dir",
            data.to_str().expect("utf-8"),
            "--etcd-servers",
            &etcd.endpoint(),
            "--token-auth-file",
            tokens.to_str().expect("utf-8"),
            "--max-mutating-requests-inflight",
            &limit,
        ];
        let server = testkit::Server::start(bin, &args).expect("start tpr-apiserver");
        let mut target = Arc::into_inner(target_of(&server, &data)).expect("target");
        target.token = "bench-user-token".into();
        (server, Arc::new(target))
    };
    let (server, target) = start(0);
    let mut rates = Vec::new();
    for n in [1usize, 2, 4, 8, 16, 32, 64] {
        let mut out = closed_loop(&target, n, &format!("sat{n}")).await;
        let rate = out.admitted.len() as f64 / out.secs;
        let p99 = Closed::p(&mut out.admitted, 99);
        println!("overload: {n:>2} clients, no limit: {rate:.0} creates/s, p99 {p99:.2} ms");
        rates.push((n, rate, p99));
    }
    let best = rates.iter().map(|r| r.1).fold(0.0, f64::max);
    let &(knee, saturating_rate, saturated_p99) = rates.iter().find(|r| r.1 >= 0.9 * best).expect("a rate");
    let limit = std::env::var("OVERLOAD_LIMIT").ok().and_then(|l| l.parse().ok()).unwrap_or(knee);
    println!(
        "overload: saturating load {knee} clients, {saturating_rate:.0} creates/s, p99 {saturated_p99:.2} ms; 1 client p99 {:.2} ms",
        rates[0].2
    );
    let offered = 4.0 * saturating_rate;
    let report = |what: &str, out: &mut Closed| {
        let admitted = out.admitted.len() as f64 / out.secs;
        let (p50, p99) = (Closed::p(&mut out.admitted, 50), Closed::p(&mut out.admitted, 99));
        let (r50, r99) = (Closed::p(&mut out.refused, 50), Closed::p(&mut out.refused, 99));
        println!(
            "overload: {offered:.0} creates/s offered (4x) {what}: admitted {admitted:.0}/s, p50 {p50:.2} ms, p99 {p99:.2} ms ({:.2}x the saturated p99); {} refused with 429, p50 {r50:.2} ms, p99 {r99:.2} ms; {} other answers",
            p99 / saturated_p99.max(0.001),
            out.refused.len(),
            out.other
        );
    };
    let mut out = open_loop(&target, offered, "unlimited").await;
    report("without a limit", &mut out);
    let _ = server.terminate();
    let (server, target) = start(limit);
    let cpu = testkit::process::cpu_time(server.pid());
    let mut out = open_loop(&target, offered, "limited").await;
    let cpu = testkit::process::cpu_time(server.pid()) - cpu;
    report(&format!("with --max-mutating-requests-inflight={limit}"), &mut out);
    let answered = (out.admitted.len() + out.refused.len()) as f64;
    println!(
        "overload: the server used {cpu:?} of CPU for {answered:.0} answers ({:.0} µs each, creates included)",
        cpu.as_micros() as f64 / answered.max(1.0)
    );
    // 4x the saturating clients, waiting Retry-After when refused (client-go).
    let clients = 4 * knee;
    let mut out = closed_loop(&target, clients, "polite").await;
    let admitted = out.admitted.len() as f64 / out.secs;
    let (p50, p99) = (Closed::p(&mut out.admitted, 50), Closed::p(&mut out.admitted, 99));
    let (r50, r99) = (Closed::p(&mut out.refused, 50), Closed::p(&mut out.refused, 99));
    println!(
        "overload: {clients} clients (4x) that wait Retry-After, with --max-mutating-requests-inflight={limit}: admitted {admitted:.0}/s, p50 {p50:.2} ms, p99 {p99:.2} ms ({:.2}x the saturated p99); {} refused with 429, p50 {r50:.2} ms, p99 {r99:.2} ms; {} other answers",
        p99 / saturated_p99.max(0.001),
        out.refused.len(),
        out.other
    );
    let _ = server.terminate();
}

/// Creates `count` MysqlDbs `<prefix><i>` in `namespace` from `clients`
/// closed-loop clients over 4 HTTP/2 connections; every create must succeed.
async fn create_many(target: &Arc<Target>, namespace: &str, prefix: &str, count: u64, clients: usize) {
    create_padded(target, namespace, prefix, count, clients, 0).await
}

/// [`create_many`] with a `spec.note` of `pad` bytes in each object.
async fn create_padded(target: &Arc<Target>, namespace: &str, prefix: &str, count: u64, clients: usize, pad: usize) {
    let next = Arc::new(AtomicU64::new(0));
    let path = format!("/apis/prsn.io/v1/namespaces/{namespace}/mysqldbs");
    let mut connections = Vec::new();
    for _ in 0..4 {
        connections.push(target.connect().await);
    }
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (next, target, path, prefix) = (next.clone(), target.clone(), path.clone(), prefix.to_string());
        let mut client = connections[c % connections.len()].clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return;
                }
                let body = format!(
                    "{{\"metadata\":{{\"name\":\"{prefix}{i}\"}},\"size\":\"small\",\"spec\":{{\"note\":\"{}\"}}}}",
                    "x".repeat(pad)
                );
                assert_eq!(call(&mut client, target.request("POST", &path, Some(body))).await.0, 201);
            }
        }));
    }
    for t in tasks {
        t.await.expect("creates");
    }
}

/// The median of `v` (sorted here).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Percentile `pct` of `v` (sorted here), in milliseconds.
fn ms_pct(v: &mut [Duration], pct: usize) -> f64 {
    v.sort_unstable();
    v.get(v.len().saturating_sub(1) * pct / 100).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Lists from the cache on the embedded store, `LIST_OBJECTS` (default
/// 18,000) objects of ~900 bytes of JSON (16 MB in all, as in issue 15): a page of 500 and the whole list from one
/// client, pages at 64 clients, and the server's memory while 8 clients list
/// everything at once.
async fn lists(bin: &std::path::Path) {
    let count: u64 = std::env::var("LIST_OBJECTS").ok().and_then(|s| s.parse().ok()).unwrap_or(18_000);
    let (server, target, _dir) = embedded_server(bin).await;
    let ns = r#"{"metadata":{"name":"bulk"}}"#.to_string();
    assert_eq!(call(&mut target.connect().await, target.request("POST", "/api/v1/namespaces", Some(ns))).await.0, 201);
    create_padded(&target, "bulk", "db", count, 64, 450).await;
    let all = "/apis/prsn.io/v1/namespaces/bulk/mysqldbs";
    let page = "/apis/prsn.io/v1/namespaces/bulk/mysqldbs?limit=500";
    let mut c = target.connect().await;
    let (code, body) = call(&mut c, target.request("GET", all, None)).await;
    let list: serde_json::Value = serde_json::from_slice(&body).expect("list");
    let items = list["items"].as_array().map_or(0, Vec::len);
    assert!(code == 200 && items as u64 == count, "the full list: {code}, {items} items");
    let per_object = body.len() / items.max(1);
    let (_, first) = call(&mut c, target.request("GET", page, None)).await;
    let first: serde_json::Value = serde_json::from_slice(&first).expect("page");
    println!(
        "list, {count} objects of {per_object} bytes (JSON), a page of 500: remainingItemCount {}",
        first["metadata"]["remainingItemCount"]
    );
    let mut lat = Vec::new();
    for _ in 0..200 {
        let t0 = Instant::now();
        assert_eq!(call(&mut c, target.request("GET", page, None)).await.0, 200);
        lat.push(t0.elapsed());
    }
    println!("  a page of 500, one client: p50 {:.2} ms, p99 {:.2} ms", ms_pct(&mut lat, 50), ms_pct(&mut lat, 99));
    let mut lat = Vec::new();
    for _ in 0..20 {
        let t0 = Instant::now();
        let (code, body) = call(&mut c, target.request("GET", all, None)).await;
        assert!(code == 200 && body.len() > 1000);
        lat.push(t0.elapsed());
    }
    let p50 = ms_pct(&mut lat, 50);
    println!(
        "  the whole list ({:.1} MB), one client: p50 {p50:.1} ms, max {:.1} ms ({:.0} MB/s)",
        body.len() as f64 / 1e6,
        ms_pct(&mut lat, 100),
        body.len() as f64 / 1e3 / p50
    );
    // Memory: 8 clients listing everything at once, 3 rounds; RSS sampled every 2 ms.
    let rss_before = rss_kib(server.pid());
    let peak = Arc::new(AtomicU64::new(rss_before));
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (peak, sampling, pid) = (peak.clone(), sampling.clone(), server.pid());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let mut readers = Vec::new();
    for _ in 0..8 {
        let target = target.clone();
        readers.push(tokio::spawn(async move {
            let mut c = target.connect().await;
            for _ in 0..3 {
                assert_eq!(call(&mut c, target.request("GET", all, None)).await.0, 200);
            }
        }));
    }
    for r in readers {
        r.await.expect("reader");
    }
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    let grew = peak.load(Ordering::Relaxed).saturating_sub(rss_before);
    println!(
        "  8 clients listing everything at once ({:.1} MB each): server RSS {rss_before} KiB, peak +{grew} KiB ({:.1}% of one list's bytes)",
        body.len() as f64 / 1e6,
        grew as f64 * 1024.0 * 100.0 / body.len() as f64
    );
    let rate = throughput(&target, 64, 4, move |mut c, t, _| async move {
        call(&mut c, t.request("GET", "/apis/prsn.io/v1/namespaces/bulk/mysqldbs?limit=500", None)).await.0 == 200
    })
    .await;
    println!("  pages of 500 at 64 clients: {rate:.0} lists/s");
}

/// A server of `bin` on the embedded store (the standalone default) with a TPR.
async fn embedded_server(bin: &std::path::Path) -> (testkit::Server, Arc<Target>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server =
        testkit::Server::start(bin, &["--data-dir", dir.path().to_str().expect("utf-8")]).expect("start tpr-apiserver");
    let target = target_of(&server, dir.path());
    let mut admin = target.connect().await;
    create_tpr(&mut admin, &target, "mysql-db.prsn.io").await;
    (server, target, dir)
}

/// Deleting a namespace with `NAMESPACE_OBJECTS` (default 10,000) objects in
/// it on the embedded store: from the DELETE to the namespace's 404.
async fn namespace_deletion(bin: &std::path::Path) {
    let count: u64 = std::env::var("NAMESPACE_OBJECTS").ok().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let (server, target, _dir) = embedded_server(bin).await;
    let mut admin = target.connect().await;
    let ns = r#"{"metadata":{"name":"bulk"}}"#.to_string();
    assert_eq!(call(&mut admin, target.request("POST", "/api/v1/namespaces", Some(ns))).await.0, 201);
    create_many(&target, "bulk", "db", count, 64).await;
    let cpu = testkit::process::cpu_time(server.pid());
    let started = Instant::now();
    let (code, _) = call(&mut admin, target.request("DELETE", "/api/v1/namespaces/bulk", None)).await;
    assert_eq!(code, 200);
    loop {
        let (code, _) = call(&mut admin, target.request("GET", "/api/v1/namespaces/bulk", None)).await;
        if code == 404 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    let cpu = testkit::process::cpu_time(server.pid()) - cpu;
    let (_, left) = call(&mut admin, target.request("GET", "/apis/prsn.io/v1/namespaces/bulk/mysqldbs", None)).await;
    let left: serde_json::Value = serde_json::from_slice(&left).expect("list");
    println!(
        "namespace: {count} objects deleted with their namespace in {took:.2?} (server CPU {cpu:.2?}); {} left",
        left["items"].as_array().map_or(0, Vec::len)
    );
    let _ = server.terminate();
}

/// TPR creates with and without Events posted at `EVENT_RATE` (default
/// 1,000/s) on the embedded store: a steady open-loop load of 500 creates/s
/// (p99 latency), then 16 closed-loop clients (throughput and p99).
async fn events_load(bin: &std::path::Path) {
    let rate: f64 = std::env::var("EVENT_RATE").ok().and_then(|n| n.parse().ok()).unwrap_or(1000.0);
    let (server, target, _dir) = embedded_server(bin).await;
    let report = |what: &str, out: &mut Closed, events: Option<&Closed>| {
        let created = out.admitted.len() as f64 / out.secs;
        let (p50, p99) = (Closed::p(&mut out.admitted, 50), Closed::p(&mut out.admitted, 99));
        let events = events.map_or(String::new(), |e| {
            format!(
                "; events {:.0}/s posted ({} failed)",
                e.admitted.len() as f64 / e.secs,
                e.other + e.refused.len() as u64
            )
        });
        println!("events: {what}: {created:.0} creates/s, p50 {p50:.2} ms, p99 {p99:.2} ms{events}");
    };
    // The server's CPU per create and per event, each alone at a steady rate.
    let cpu = testkit::process::cpu_time(server.pid());
    let mut alone = open_loop(&target, 500.0, "steady-alone").await;
    let per_create =
        (testkit::process::cpu_time(server.pid()) - cpu).as_micros() as f64 / alone.admitted.len().max(1) as f64;
    report("500 creates/s alone", &mut alone, None);
    let cpu = testkit::process::cpu_time(server.pid());
    let events = open_loop_to(&target, rate, "/api/v1/namespaces/default/events", event_body, "ev-alone").await;
    let per_event =
        (testkit::process::cpu_time(server.pid()) - cpu).as_micros() as f64 / events.admitted.len().max(1) as f64;
    println!("events: server CPU {per_create:.0} µs per create, {per_event:.0} µs per event");
    let (mut steady, events) = tokio::join!(
        open_loop(&target, 500.0, "steady-events"),
        open_loop_to(&target, rate, "/api/v1/namespaces/default/events", event_body, "ev-steady")
    );
    report(&format!("500 creates/s with {rate:.0} events/s"), &mut steady, Some(&events));
    let mut alone = closed_loop(&target, 16, "closed-alone").await;
    report("16 clients alone", &mut alone, None);
    let (mut loaded, events) = tokio::join!(
        closed_loop(&target, 16, "closed-events"),
        open_loop_to(&target, rate, "/api/v1/namespaces/default/events", event_body, "ev-closed")
    );
    report(&format!("16 clients with {rate:.0} events/s"), &mut loaded, Some(&events));
    let _ = server.terminate();
}

/// A local webhook receiver for the sensor: the arrival time of each
/// delivered change by resourceVersion.
async fn sensor_receiver() -> (std::net::SocketAddr, Arc<std::sync::Mutex<std::collections::HashMap<u64, Instant>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("receiver");
    let addr = listener.local_addr().expect("address");
    let arrived: Arc<std::sync::Mutex<std::collections::HashMap<u64, Instant>>> = Arc::default();
    let seen = arrived.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let seen = seen.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        let at = Instant::now();
                        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                        if let Some(rv) = v["resourceVersion"].as_str().and_then(|r| r.parse().ok()) {
                            if let Ok(mut m) = seen.lock() {
                                m.entry(rv).or_insert(at);
                            }
                        }
                        hyper::Response::builder().status(200).body(Full::new(Bytes::new()))
                    }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    (addr, arrived)
}

/// tpr-sensor (release build, beside the server's binary) to a local webhook
/// on the embedded store: the delay from a write's acknowledgement to its
/// delivery at 20 writes/s; then an outage of `SENSOR_OUTAGE_SECS` (default
/// 60) during which `SENSOR_CHANGES` (default 10,000) objects are created,
/// and the time the restarted sensor takes to deliver them all.
async fn sensor(bin: &std::path::Path) {
    let sensor_bin = bin.with_file_name("tpr-sensor");
    let outage: u64 = std::env::var("SENSOR_OUTAGE_SECS").ok().and_then(|n| n.parse().ok()).unwrap_or(60);
    let changes: u64 = std::env::var("SENSOR_CHANGES").ok().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let (server, target, dir) = embedded_server(bin).await;
    let (addr, arrived) = sensor_receiver().await;
    let state = dir.path().join("sensor");
    let start_sensor = || {
        std::process::Command::new(&sensor_bin)
            .args(["--kubeconfig", dir.path().join("kubeconfig").to_str().expect("utf-8")])
            .args(["--resource", "mysqldbs.prsn.io", "--sink", "webhook", "--target", &format!("http://{addr}/hook")])
            .args(["--state-dir", state.to_str().expect("utf-8"), "--metrics-bind-address", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("start tpr-sensor (cargo build --release -p sensor)")
    };
    let mut child = start_sensor();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // 1. Latency at low load: 20 writes/s for 10 s.
    let mut client = target.connect().await;
    let mut acked = Vec::new();
    for i in 0..200 {
        let body = format!("{{\"metadata\":{{\"name\":\"low-{i}\"}},\"size\":\"small\"}}");
        let (code, out) =
            call(&mut client, target.request("POST", "/apis/prsn.io/v1/namespaces/default/mysqldbs", Some(body))).await;
        let at = Instant::now();
        assert_eq!(code, 201);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("object");
        acked.push((v["metadata"]["resourceVersion"].as_str().and_then(|r| r.parse::<u64>().ok()).expect("rv"), at));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut delays: Vec<u32> = {
        let m = arrived.lock().expect("arrivals");
        acked
            .iter()
            .filter_map(|(rv, at)| m.get(rv).map(|a| a.saturating_duration_since(*at).as_micros() as u32))
            .collect()
    };
    let missing = acked.len() - delays.len();
    println!(
        "sensor: write acknowledged -> delivered at 20 writes/s: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({missing} missing)",
        Closed::p(&mut delays, 50),
        Closed::p(&mut delays, 99),
        delays.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    // 2. An outage: the sensor is stopped, changes are made, it starts again.
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    let stopped = Instant::now();
    create_many(&target, "default", "out-", changes, 16).await;
    let wrote = stopped.elapsed();
    tokio::time::sleep(Duration::from_secs(outage).saturating_sub(wrote)).await;
    let before = arrived.lock().expect("arrivals").len();
    let restarted = Instant::now();
    let mut child = start_sensor();
    let want = before + changes as usize;
    while arrived.lock().expect("arrivals").len() < want && restarted.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = restarted.elapsed();
    let got = arrived.lock().expect("arrivals").len() - before;
    println!(
        "sensor: {changes} changes made during a {outage} s outage delivered {took:.2?} after the restart ({got} arrived, {:.0} deliveries/s)",
        got as f64 / took.as_secs_f64()
    );
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    let _ = server.terminate();
}

#[tokio::main]
async fn main() {
    // `api-bench floor <data dir> <body file>`: the GET floor in a process
    // of its own (as the server runs), printing its address.
    let args: Vec<String> = std::env::args().collect();
    if let [_, floor, dir, body] = &args[..] {
        if floor == "floor" {
            let body = Bytes::from(std::fs::read(body).expect("floor body"));
            println!("{}", floor_server(std::path::Path::new(dir), body).await);
            std::future::pending::<()>().await;
        }
    }
    let etcd = testkit::Etcd::start().expect("start etcd (install etcd-server)");
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = std::env::var_os("TPR_APISERVER_BIN").map(std::path::PathBuf::from).unwrap_or_else(|| {
        let d = testkit::apiserver_binary();
        d.parent().and_then(|p| p.parent()).map(|t| t.join("release/tpr-apiserver")).unwrap_or(d)
    });
    let server = testkit::Server::start(
        &bin,
        &["--data-dir", dir.path().to_str().expect("utf-8"), "--etcd-servers", &etcd.endpoint()],
    )
    .expect("start tpr-apiserver (cargo build --release -p apiserver)");
    let target = target_of(&server, dir.path());
    println!("api-bench: {} on etcd {}, {:?} per throughput measurement\n", bin.display(), etcd.endpoint(), seconds());

    let mut admin = target.connect().await;
    create_tpr(&mut admin, &target, "mysql-db.prsn.io").await;

    // BENCH_PHASES picks phases (default all): creates,get,list,tpr,overload,namespace,events,sensor,watch.
    let phases = std::env::var("BENCH_PHASES")
        .unwrap_or_else(|_| "creates,get,list,tpr,overload,namespace,events,sensor,watch".into());
    let run = |phase: &str| phases.split(',').any(|p| p.trim() == phase);

    // 1. Creates through the API vs raw etcd create-if-absent transactions, 64 concurrent clients.
    // Ratios are measured in ROUNDS (default 3) alternating rounds, each
    // side by side with its reference; the median round is the figure.
    let rounds: usize = std::env::var("ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    if run("creates") {
        creates_on_etcd(&etcd, &target, &server, rounds).await;
    }
    // `creates-embedded` runs only this half (quicker A/B runs).
    if run("creates") || run("creates-embedded") {
        let (embedded, etarget, _edir) = embedded_server(&bin).await;
        serve_more_types(&etarget).await;
        for round in 1..=rounds {
            let (rate, us) = create_rate_cpu(&etarget, embedded.pid(), round).await;
            println!(
                "creates, 64 concurrent, embedded store, round {round}: {rate:.0}/s; server CPU per create {us:.1} µs"
            );
        }
    }

    // 2. GET of one object over keep-alive HTTPS: consistent (the default),
    // and resourceVersion=0 (any cached state), on etcd and on the embedded
    // store; the embedded one side by side with the floor.
    if run("get") {
        let consistent = get_rate(&target, "").await;
        let any = get_rate(&target, "?resourceVersion=0").await;
        println!("GET one object, 64 concurrent over 2 HTTP/2 connections, etcd: {consistent:.0}/s consistent, {any:.0}/s with resourceVersion=0");
        let edir = tempfile::tempdir().expect("tempdir");
        let embedded = testkit::Server::start(&bin, &["--data-dir", edir.path().to_str().expect("utf-8")])
            .expect("start tpr-apiserver on the embedded store");
        let etarget = target_of(&embedded, edir.path());
        create_tpr(&mut etarget.connect().await, &etarget, "mysql-db.prsn.io").await;
        serve_more_types(&etarget).await;
        let any = get_rate(&etarget, "?resourceVersion=0").await;
        println!("GET one object, embedded, resourceVersion=0: {any:.0}/s");
        // The floor: the same bytes from a bare hyper + rustls server in a process of its own.
        let (_, object) = call(
            &mut etarget.connect().await,
            etarget.request("GET", "/apis/prsn.io/v1/namespaces/default/mysqldbs/db000000001", None),
        )
        .await;
        let body_file = edir.path().join("floor-body.json");
        std::fs::write(&body_file, &object).expect("floor body");
        let mut child = std::process::Command::new(std::env::current_exe().expect("api-bench path"))
            .args(["floor", edir.path().to_str().expect("utf-8"), body_file.to_str().expect("utf-8")])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the floor server");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("floor stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).expect("floor address");
        let floor_addr: SocketAddr = line.trim().parse().expect("floor address");
        let floor = Arc::new(Target { addr: floor_addr, tls: etarget.tls.clone(), token: String::new() });
        println!(
            "GET floor: a bare hyper 1 + rustls server (its own process) returning the same {} bytes",
            object.len()
        );
        let mut ratios = Vec::new();
        for round in 1..=rounds {
            let (rate, server_us, client_us) = get_rate_cpu(&etarget, "", Some(embedded.pid())).await;
            let (floor_rate, floor_us, floor_client_us) = get_rate_cpu(&floor, "", Some(child.id())).await;
            ratios.push(rate / floor_rate.max(1.0));
            println!(
                "  round {round}: embedded consistent GET {rate:.0}/s (server {server_us:.1} µs CPU per GET, client {client_us:.1} µs), floor {floor_rate:.0}/s (server {floor_us:.1} µs, client {floor_client_us:.1} µs): {:.2} of the floor",
                rate / floor_rate.max(1.0)
            );
        }
        let _ = child.kill();
        let _ = child.wait();
        println!("  embedded consistent GET, median of {rounds} rounds: {:.2} of the floor", median(&mut ratios));
    }

    if run("list") {
        lists(&bin).await;
    }

    // 3. New TPR -> first successful create on its type.
    if run("tpr") {
        let mut lat = Vec::new();
        let mut admin = target.connect().await;
        for i in 0..20 {
            let t0 = Instant::now();
            create_tpr(&mut admin, &target, &format!("kind{i}.bench.io")).await;
            loop {
                let body = "{\"metadata\":{\"name\":\"first\"}}".to_string();
                let (code, _) = call(
                    &mut admin,
                    target.request("POST", &format!("/apis/bench.io/v1/namespaces/default/kind{i}s"), Some(body)),
                )
                .await;
                if code == 201 {
                    break;
                }
            }
            lat.push(t0.elapsed());
        }
        lat.sort();
        println!("new TPR -> first create: median {:?}, max {:?} (20 TPRs)", lat[10], lat[19]);
    }

    // 4. Overload: in-flight limits at 4x the saturating load.
    if run("overload") {
        overload(&bin, &etcd).await;
    }

    // 5. The standalone control plane on the embedded store: a namespace
    // deleted with its objects; TPR writes beside a stream of Events.
    if run("namespace") {
        namespace_deletion(&bin).await;
    }
    if run("events") {
        events_load(&bin).await;
    }
    if run("sensor") {
        sensor(&bin).await;
    }

    // 6. Watchers.
    if !run("watch") {
        return;
    }
    let watchers: usize = std::env::var("WATCHERS").ok().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    // A fresh connection: the first may have been closed as idle by now.
    create_tpr(&mut target.connect().await, &target, "watched.bench.io").await;
    let epoch = Instant::now();
    let rss_before = rss_kib(server.pid());
    let per_conn = 500;
    let writes = 1000u64;
    // Per watcher, the latency of each event in order (the k-th event is write k).
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<Vec<u32>>::with_capacity(watchers)));
    let opened = Arc::new(AtomicU64::new(0));
    let frames = Arc::new(AtomicU64::new(0));
    let path = "/apis/bench.io/v1/watcheds?watch=true&resourceVersion=0&timeoutSeconds=120";
    // WATCH_CLIENT=hyper uses hyper's client (a task per stream) instead of the lean one.
    let lean = std::env::var("WATCH_CLIENT").map(|c| c != "hyper").unwrap_or(true);
    println!("watch client: {}", if lean { "lean (one task per connection)" } else { "hyper (one task per stream)" });
    let mut tasks = Vec::new();
    for first in (0..watchers).step_by(per_conn) {
        let streams = per_conn.min(watchers - first);
        let (target, latencies, opened, frames) = (target.clone(), latencies.clone(), opened.clone(), frames.clone());
        if lean {
            tasks.push(tokio::spawn(async move {
                let tls = target.tls_stream().await;
                let authority = target.addr.to_string();
                let req = bench::h2_watch::WatchRequest { authority: &authority, path, token: &target.token };
                let deadline = Instant::now() + Duration::from_secs(180);
                match bench::h2_watch::watch_streams(tls, &req, streams, writes as usize, epoch, &opened, deadline)
                    .await
                {
                    Ok(outcome) => {
                        frames.fetch_add(outcome.frames, Ordering::Relaxed);
                        if let Ok(mut l) = latencies.lock() {
                            l.extend(outcome.latencies);
                        }
                    }
                    Err(e) => eprintln!("watch connection failed: {e}"),
                }
            }));
            continue;
        }
        let conn = target.connect().await;
        for _ in 0..streams {
            let (mut c, target, latencies, opened, frames) =
                (conn.clone(), target.clone(), latencies.clone(), opened.clone(), frames.clone());
            tasks.push(tokio::spawn(async move {
                let Ok(resp) = c.send_request(target.request("GET", path, None)).await else { return };
                opened.fetch_add(1, Ordering::Relaxed);
                let mut body = resp.into_body();
                let mut local = Vec::with_capacity(writes as usize);
                let mut reader = bench::events::EventReader::default();
                while let Some(Ok(frame)) = body.frame().await {
                    if let Some(data) = frame.data_ref() {
                        frames.fetch_add(1, Ordering::Relaxed);
                        let now = epoch.elapsed().as_micros() as u64;
                        reader.feed(data, |sent| local.push(now.saturating_sub(sent) as u32));
                    }
                    if local.len() as u64 >= writes {
                        break;
                    }
                }
                if let Ok(mut l) = latencies.lock() {
                    l.push(local);
                }
            }));
        }
    }
    while (opened.load(Ordering::Relaxed) as usize) < watchers {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = rss_kib(server.pid());
    println!(
        "{watchers} idle watchers: server RSS {rss_before} KiB -> {rss_idle} KiB, {:.1} KiB per watcher",
        (rss_idle.saturating_sub(rss_before)) as f64 / watchers as f64
    );
    // The writer runs on its own thread and runtime, so that the watchers'
    // load on this process does not delay the writes it timestamps.
    let writer_target = target.clone();
    let writer = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("writer runtime");
        rt.block_on(async move {
            let mut writer = writer_target.connect().await;
            let ticker_start = Instant::now();
            let mut acks = Vec::with_capacity(writes as usize);
            for i in 0..writes {
                let due = ticker_start + Duration::from_millis(10 * i);
                tokio::time::sleep_until(due.into()).await;
                let body =
                    format!("{{\"metadata\":{{\"name\":\"w{i:05}\"}},\"sent_us\":{}}}", epoch.elapsed().as_micros());
                let req = writer_target.request("POST", "/apis/bench.io/v1/namespaces/default/watcheds", Some(body));
                let t0 = Instant::now();
                assert_eq!(call(&mut writer, req).await.0, 201);
                acks.push(t0.elapsed());
            }
            acks
        })
    });
    let acks = tokio::task::spawn_blocking(move || writer.join()).await.expect("writer thread").expect("writer");
    let deadline = Instant::now() + Duration::from_secs(60);
    for t in tasks {
        let _ = tokio::time::timeout_at(deadline.into(), t).await;
    }
    let complete = latencies.lock().map(|l| l.iter().filter(|v| v.len() as u64 == writes).count()).unwrap_or(0);
    let per_watcher = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    let ack_us: Vec<u32> = acks.iter().map(|d| d.as_micros() as u32).collect();
    let mut from_issue: Vec<u32> = per_watcher.iter().flatten().copied().collect();
    // From the acknowledgement: the k-th event a complete watcher got is write k.
    let mut from_ack: Vec<u32> = (per_watcher.iter().filter(|l| l.len() == ack_us.len()))
        .flat_map(|l| l.iter().zip(&ack_us).map(|(lat, ack)| lat.saturating_sub(*ack)))
        .collect();
    from_issue.sort_unstable();
    from_ack.sort_unstable();
    let pct = |v: &[u32], p: usize| v.get(v.len().saturating_sub(1) * p / 100).copied().unwrap_or(0) as f64 / 1000.0;
    println!(
        "{writes} writes at 100/s: {complete}/{watchers} watchers got every event; delivery from issuing the create p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(&from_issue, 50),
        pct(&from_issue, 99),
        pct(&from_issue, 100)
    );
    println!(
        "  delivery from the create's acknowledgement: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(&from_ack, 50),
        pct(&from_ack, 99),
        pct(&from_ack, 100)
    );
    // Per second of writes (100 writes), so that a steady queue and a
    // passing stall can be told apart.
    let windows: Vec<String> = (0..writes as usize)
        .step_by(100)
        .map(|first| {
            let mut w: Vec<u32> = (per_watcher.iter().filter(|l| l.len() as u64 == writes))
                .flat_map(|l| l[first..(first + 100).min(l.len())].iter().copied())
                .collect();
            w.sort_unstable();
            format!("{:.0}/{:.0}", pct(&w, 50), pct(&w, 99))
        })
        .collect();
    println!("  p50/p99 ms from issue, per second of writes: {}", windows.join(" "));
    let mut acks_sorted = ack_us.clone();
    acks_sorted.sort_unstable();
    println!("  the creates themselves: p50 {:.1} ms, p99 {:.1} ms", pct(&acks_sorted, 50), pct(&acks_sorted, 99));
    let frames = frames.load(Ordering::Relaxed);
    println!("  {frames} DATA frames for {} events", from_issue.len());
}

/// Creates through the API on etcd against raw etcd create-if-absent
/// transactions, 64 concurrent clients, in `rounds` alternating rounds.
async fn creates_on_etcd(etcd: &testkit::Etcd, target: &Arc<Target>, server: &testkit::Server, rounds: usize) {
    let raw = etcd_client::Client::connect([etcd.endpoint()], None).await.expect("raw etcd client");
    let put_rate = raw_etcd_rate(raw.kv_client(), false).await;
    println!("creates, 64 concurrent, etcd: raw put {put_rate:.0}/s");
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let txn_rate = raw_etcd_rate(raw.kv_client(), true).await;
        let (api_rate, api_us) = create_rate_cpu(target, server.pid(), round).await;
        ratios.push(api_rate / txn_rate);
        println!(
            "  round {round}: raw create-if-absent txn {txn_rate:.0}/s, API create {api_rate:.0}/s = {:.2} of it; server CPU per create {api_us:.1} µs",
            api_rate / txn_rate
        );
    }
    println!(
        "  API creates on etcd, median of {rounds} rounds: {:.2} of raw create-if-absent txns",
        median(&mut ratios)
    );
}
