//! Delivery: one change at a time, in the order the source produced them (so
//! in order per object), each retried with exponential backoff and jitter
//! (or the receiver's `Retry-After`) while the failure may pass, up to
//! `--max-attempts`, then written to the dead-letter file; and the
//! checkpoint, written at most every `--checkpoint-interval` and at the end.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{mpsc, watch};

use crate::change::{webhook_body, Change, Source};
use crate::checkpoint::{self, Checkpoint};
use crate::metrics::Metrics;
use crate::sink::Sink;

/// What the source sends.
#[derive(Debug)]
pub enum Message {
    /// A change; `advances`: once delivered, the checkpoint may move to its
    /// revision (watch events, which come in revision order; not a re-list's).
    Change(Change, bool),
    /// Every change up to this revision was sent (a bookmark, a list's revision).
    Progress(u64),
}

/// How deliveries are retried.
#[derive(Clone, Debug)]
pub struct Retries {
    /// Attempts per change before it is dead-lettered.
    pub max_attempts: u32,
    /// The first pause.
    pub base: Duration,
    /// The longest pause.
    pub max: Duration,
}

impl Retries {
    /// The pause before attempt `attempt + 1`: `base · 2^(attempt-1)`, at most
    /// `max`, with jitter (a random half to all of it); `Retry-After` wins.
    pub fn pause(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(r) = retry_after {
            return r;
        }
        let exp = self.base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20)).min(self.max);
        exp / 2 + exp.mul_f64(fastrand::f64() / 2.0)
    }
}

/// The delivering side.
pub struct Delivery {
    /// Where changes go.
    pub sink: Sink,
    /// The HTTP client of the HTTP sinks.
    pub http: reqwest::Client,
    /// The resource, for the bodies.
    pub source: Source,
    /// Retries.
    pub retries: Retries,
    /// The dead-letter file (JSON lines).
    pub dead_letter: PathBuf,
    /// The checkpoint file.
    pub checkpoint_path: PathBuf,
    /// The checkpoint as delivered so far.
    pub checkpoint: Checkpoint,
    /// How often the checkpoint is written at most.
    pub interval: Duration,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

impl Delivery {
    /// Delivers what arrives on `rx` until it closes or `stop` is set (the
    /// change in flight is finished first); writes the checkpoint; returns it.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Message>, mut stop: watch::Receiver<bool>) -> Checkpoint {
        let mut dirty = false;
        let mut last_write = tokio::time::Instant::now();
        loop {
            let due = last_write + self.interval;
            let msg = tokio::select! {
                m = rx.recv() => m,
                _ = tokio::time::sleep_until(due), if dirty => {
                    self.write_checkpoint();
                    dirty = false;
                    last_write = tokio::time::Instant::now();
                    continue;
                }
                _ = stop.changed() => None,
            };
            let Some(msg) = msg else { break };
            match msg {
                Message::Change(c, advances) => {
                    if !self.deliver(&c, &mut stop).await {
                        break;
                    }
                    self.checkpoint.delivered.apply(&c);
                    if advances {
                        self.advance(c.revision);
                    }
                }
                Message::Progress(r) => self.advance(r),
            }
            dirty = true;
            if rx.is_empty() {
                self.metrics.caught_up();
            }
            if *stop.borrow() {
                break;
            }
        }
        self.write_checkpoint();
        self.checkpoint
    }

    fn advance(&mut self, revision: u64) {
        self.checkpoint.revision = self.checkpoint.revision.max(revision);
        self.metrics.delivered_revision.store(self.checkpoint.revision, Ordering::Relaxed);
    }

    fn write_checkpoint(&self) {
        if let Err(e) = checkpoint::store(&self.checkpoint_path, &self.checkpoint) {
            tracing::error!(error = %e, "cannot write the checkpoint");
        }
    }

    /// Delivers `c`, retrying; false when stopped before it was delivered
    /// (it is not marked: after a restart it is delivered again).
    async fn deliver(&self, c: &Change, stop: &mut watch::Receiver<bool>) -> bool {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let failure = match self.sink.deliver(&self.http, &self.source, c).await {
                Ok(()) => {
                    self.metrics.delivered.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                Err(f) => f,
            };
            if !failure.retryable || attempt >= self.retries.max_attempts {
                self.dead_letter(c, &failure.message, attempt);
                return true;
            }
            self.metrics.retried.fetch_add(1, Ordering::Relaxed);
            let pause = self.retries.pause(attempt, failure.retry_after);
            tracing::warn!(error = %failure.message, attempt, ?pause, object = %format!("{}/{}", c.namespace(), c.name()), "delivery failed; retrying");
            if *stop.borrow() {
                return false;
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => return false,
            }
        }
    }

    fn dead_letter(&self, c: &Change, error: &str, attempts: u32) {
        self.metrics.dead_lettered.fetch_add(1, Ordering::Relaxed);
        tracing::error!(error, attempts, object = %format!("{}/{}", c.namespace(), c.name()), file = %self.dead_letter.display(), "delivery given up; written to the dead-letter file");
        let line = json!({
            "time": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            "error": error,
            "attempts": attempts,
            "change": webhook_body(c),
        });
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.dead_letter)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()).and_then(|_| f.sync_data()));
        if let Err(e) = written {
            tracing::error!(error = %e, file = %self.dead_letter.display(), "cannot write the dead-letter file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_with_jitter_and_respect_retry_after() {
        let r = Retries { max_attempts: 10, base: Duration::from_millis(100), max: Duration::from_secs(5) };
        for attempt in 1..12 {
            let exp = Duration::from_millis(100).saturating_mul(1 << (attempt - 1)).min(Duration::from_secs(5));
            let p = r.pause(attempt, None);
            assert!(p >= exp / 2 && p <= exp, "attempt {attempt}: {p:?}");
        }
        assert_eq!(r.pause(1, Some(Duration::from_secs(2))), Duration::from_secs(2));
    }
}
