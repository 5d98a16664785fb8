//! The etcd members, each with a client of its own, and the rule for moving
//! a call from one to the next: a call goes to the member that answered
//! last; when the request certainly never left (the connection could not be
//! made) it goes to the next member at once, and while etcd has no leader it
//! waits a little and tries again, all within the call's deadline. A read
//! may also move on after any other transport error, and so may a guarded
//! write (a transaction whose compare fails once it applied: sending it
//! twice applies it at most once; the caller then tells from the failed
//! compare whether the first attempt applied). Any other write whose request
//! may have reached etcd may not: its lost answer is `Indeterminate`.
//! An attempt that may be repeated waits 1 s for its answer (doubling each
//! time) before the next member is tried. When no member can be reached at
//! all for a second, the call fails (`Unavailable`) instead of waiting out
//! its deadline.
//!
//! A member's client is built again after it failed to connect (at most
//! once a second): tonic's balanced channel can keep failing to reconnect to
//! an endpoint it was once connected to.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, KvClient, MaintenanceClient, WatchClient};

use crate::error::{Result, StorageError};

/// Whether a call may be repeated when its request may have reached etcd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    /// Repeating it changes nothing: reads, watches, compaction.
    Read,
    /// A write: repeated only when it certainly never left.
    Write,
    /// A write guarded by a compare that fails once it applied: repeated
    /// after a lost answer too (see [`Members::run_guarded`]).
    Guarded,
}

/// The clients of one member.
#[derive(Clone)]
pub(crate) struct Clients {
    /// Keys and transactions.
    pub kv: KvClient,
    /// Watches.
    pub watch: WatchClient,
    /// Status.
    pub maintenance: MaintenanceClient,
}

struct Member {
    endpoint: String,
    /// The clients and when they were built.
    clients: Mutex<(Clients, Instant)>,
}

/// Every member of the cluster.
pub(crate) struct Members {
    list: Vec<Member>,
    /// The member that answered last.
    preferred: AtomicUsize,
    opts: ConnectOptions,
    timeout: Duration,
    max_message_size: usize,
}

/// What an error says about the request that met it.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The connection could not be made: the request never left.
    NotSent,
    /// etcd has no leader (yet): nothing was applied.
    NoLeader,
    /// The request may have reached etcd, but its answer was lost.
    Lost,
    /// etcd answered with an error.
    Answered,
}

fn outcome(e: &etcd_client::Error) -> Outcome {
    use etcd_client::Error as E;
    match e {
        E::GRpcStatus(s) => {
            let m = s.message().to_ascii_lowercase();
            let not_sent = ["tcp connect error", "error trying to connect", "connection refused", "dns error"];
            match s.code() {
                _ if not_sent.iter().any(|n| m.contains(n)) => Outcome::NotSent,
                tonic::Code::Unavailable if m.contains("no leader") => Outcome::NoLeader,
                tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::DeadlineExceeded => Outcome::Lost,
                tonic::Code::Unknown if m.contains("transport") || m.contains("connection") => Outcome::Lost,
                _ => Outcome::Answered,
            }
        }
        E::TransportError(_) => Outcome::NotSent,
        E::IoError(_) | E::WatchError(_) => Outcome::Lost,
        _ => Outcome::Answered,
    }
}

/// The storage error of an etcd error met by a `call`.
pub(crate) fn classify(e: etcd_client::Error, call: Call) -> StorageError {
    let message = match &e {
        etcd_client::Error::GRpcStatus(s) => format!("{:?}: {}", s.code(), s.message()),
        other => other.to_string(),
    };
    match (outcome(&e), call) {
        (Outcome::NotSent | Outcome::NoLeader, _) | (Outcome::Lost, Call::Read) => StorageError::Unavailable(message),
        (Outcome::Lost, Call::Write | Call::Guarded) => StorageError::Indeterminate(message),
        (Outcome::Answered, _) => StorageError::Internal(format!("etcd: {message}")),
    }
}

const FIRST_PAUSE: Duration = Duration::from_millis(20);
/// How long the first attempt of a call that may be repeated waits for an
/// answer before trying the next member (doubled on each attempt).
const FIRST_PATIENCE: Duration = Duration::from_secs(1);
/// How long a call keeps trying when no member can be reached at all.
const UNREACHABLE_PATIENCE: Duration = Duration::from_secs(1);
const LONGEST_PAUSE: Duration = Duration::from_millis(500);
/// Shortest time between two rebuilds of a member's clients.
const REBUILD_EVERY: Duration = Duration::from_secs(1);

impl Members {
    /// A client per endpoint (connected on first use).
    pub async fn new(
        endpoints: Vec<String>,
        opts: ConnectOptions,
        timeout: Duration,
        max_message_size: usize,
    ) -> Result<Members> {
        let mut list = Vec::new();
        for endpoint in endpoints {
            let clients = build(&endpoint, &opts, max_message_size).await?;
            list.push(Member { endpoint, clients: Mutex::new((clients, Instant::now())) });
        }
        Ok(Members { list, preferred: AtomicUsize::new(0), opts, timeout, max_message_size })
    }

    fn clients(&self, i: usize) -> Clients {
        self.list[i].clients.lock().unwrap_or_else(|p| p.into_inner()).0.clone()
    }

    /// Builds a member's clients again, unless that was done a moment ago.
    async fn rebuild(&self, i: usize) {
        let member = &self.list[i];
        let stale = member.clients.lock().unwrap_or_else(|p| p.into_inner()).1.elapsed() >= REBUILD_EVERY;
        if !stale {
            return;
        }
        if let Ok(clients) = build(&member.endpoint, &self.opts, self.max_message_size).await {
            *member.clients.lock().unwrap_or_else(|p| p.into_inner()) = (clients, Instant::now());
        }
    }

    /// Runs `f` on a member (see the module documentation) within the
    /// call's deadline.
    pub async fn run<T, F, Fut>(&self, call: Call, f: F) -> Result<T>
    where
        F: Fn(Clients) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        self.attempt(call, f).await.map(|(v, _)| v)
    }

    /// Runs a guarded write, telling whether an earlier attempt's answer
    /// was lost (that attempt may have applied: a failed compare may be
    /// its own doing).
    pub async fn run_guarded<T, F, Fut>(&self, f: F) -> Result<(T, bool)>
    where
        F: Fn(Clients) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        self.attempt(Call::Guarded, f).await
    }

    async fn attempt<T, F, Fut>(&self, call: Call, f: F) -> Result<(T, bool)>
    where
        F: Fn(Clients) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let began = tokio::time::Instant::now();
        let deadline = began + self.timeout;
        let n = self.list.len();
        let first = self.preferred.load(Ordering::Relaxed) % n;
        let mut failures: Vec<Option<String>> = vec![None; n];
        let mut pause = FIRST_PAUSE;
        let mut attempt = 0usize;
        // Whether a request may have reached a member (only reads and
        // guarded writes go on after that).
        let mut lost = false;
        let mut patience = FIRST_PATIENCE;
        // Whether any member was reached (else the call gives up early).
        let mut reached = false;
        loop {
            let i = (first + attempt) % n;
            let endpoint = &self.list[i].endpoint;
            // A call that may be repeated gives up on an attempt early and
            // tries the next member: a member can hold a request without
            // answering (a follower whose leader died holds the proposals it
            // forwarded until its own timeout).
            let given_up = match call {
                Call::Write => deadline,
                Call::Read | Call::Guarded => deadline.min(tokio::time::Instant::now() + patience),
            };
            let result = match tokio::time::timeout_at(given_up, f(self.clients(i))).await {
                Ok(r) => r,
                Err(_) if given_up < deadline => {
                    failures[i] = Some(format!("{endpoint}: no answer within {patience:?}"));
                    lost = true;
                    reached = true;
                    patience *= 2;
                    attempt += 1;
                    continue;
                }
                Err(_) => {
                    let why = format!("no answer from {endpoint} within {:?}", self.timeout);
                    return Err(match call {
                        Call::Read => StorageError::Timeout(self.timeout),
                        Call::Write | Call::Guarded => StorageError::Indeterminate(why),
                    });
                }
            };
            let e = match result {
                Ok(v) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    return Ok((v, lost));
                }
                Err(e) => e,
            };
            let kind = outcome(&e);
            lost |= kind == Outcome::Lost;
            let retry = match (&kind, call) {
                (Outcome::NotSent, _) => {
                    self.rebuild(i).await;
                    true
                }
                (Outcome::NoLeader, _) | (Outcome::Lost, Call::Read | Call::Guarded) => true,
                (Outcome::Lost, Call::Write) | (Outcome::Answered, _) => false,
            };
            if !retry {
                return Err(classify(e, call));
            }
            failures[i] = Some(format!("{endpoint}: {}", classify(e, call)));
            attempt += 1;
            // Every member tried once more, or etcd has no leader: wait a little.
            reached |= kind != Outcome::NotSent;
            if attempt.is_multiple_of(n) || kind == Outcome::NoLeader {
                let wake = tokio::time::Instant::now() + pause;
                // No member could be reached for a while: etcd is down, say so now.
                let unreachable = !reached && began.elapsed() >= UNREACHABLE_PATIENCE;
                if wake >= deadline || unreachable {
                    match (lost, call) {
                        // A read reached a member and got no answer in time.
                        (true, Call::Read) => return Err(StorageError::Timeout(self.timeout)),
                        // A write may have applied.
                        (true, _) => {
                            let tried: Vec<String> = failures.into_iter().flatten().collect();
                            return Err(StorageError::Indeterminate(tried.join("; ")));
                        }
                        (false, _) => {}
                    }
                    let tried: Vec<String> = failures.into_iter().flatten().collect();
                    return Err(StorageError::Unavailable(format!("no etcd member answered: {}", tried.join("; "))));
                }
                tokio::time::sleep_until(wake).await;
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
        }
    }
}

/// The clients of one endpoint (nothing is connected until the first call).
async fn build(endpoint: &str, opts: &ConnectOptions, max_message_size: usize) -> Result<Clients> {
    let client = Client::connect([endpoint], Some(opts.clone()))
        .await
        .map_err(|e| StorageError::Unavailable(format!("{endpoint}: {e}")))?;
    Ok(Clients {
        kv: client.kv_client().max_decoding_message_size(max_message_size).max_encoding_message_size(max_message_size),
        watch: client.watch_client().max_decoding_message_size(max_message_size),
        maintenance: client.maintenance_client(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: tonic::Code, message: &str) -> etcd_client::Error {
        etcd_client::Error::GRpcStatus(tonic::Status::new(code, message))
    }

    #[test]
    fn what_an_error_says_about_the_request() {
        assert_eq!(outcome(&status(tonic::Code::Unavailable, "tcp connect error")), Outcome::NotSent);
        assert_eq!(outcome(&status(tonic::Code::Unavailable, "etcdserver: no leader")), Outcome::NoLeader);
        assert_eq!(outcome(&status(tonic::Code::Unavailable, "connection reset")), Outcome::Lost);
        assert_eq!(outcome(&status(tonic::Code::Unavailable, "etcdserver: request timed out")), Outcome::Lost);
        assert_eq!(
            outcome(&status(tonic::Code::OutOfRange, "mvcc: required revision has been compacted")),
            Outcome::Answered
        );
        let lost = classify(status(tonic::Code::Unavailable, "etcdserver: leader changed"), Call::Write);
        assert!(matches!(lost, StorageError::Indeterminate(_)), "{lost:?}");
        let read = classify(status(tonic::Code::Unavailable, "etcdserver: leader changed"), Call::Read);
        assert!(matches!(read, StorageError::Unavailable(_)), "{read:?}");
        assert!(matches!(
            classify(status(tonic::Code::Unavailable, "tcp connect error"), Call::Write),
            StorageError::Unavailable(_)
        ));
    }
}
