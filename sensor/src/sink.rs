//! Where changes go: an HTTP webhook (JSON), CloudEvents 1.0 over HTTP
//! (binary or structured mode), StackStorm's webhook API, or a command run
//! per change with the change as JSON on stdin. One attempt per call; the
//! answer says whether another attempt may help ([`Failure::retryable`]).

use std::time::Duration;

use crate::change::{webhook_body, Change, Source};

/// A sink.
#[derive(Clone, Debug)]
pub enum Sink {
    /// POST of [`webhook_body`] to the URL.
    Webhook(String),
    /// CloudEvents 1.0 to the URL: binary mode (`ce-` headers, the object
    /// as body) or structured (`application/cloudevents+json`).
    CloudEvents {
        /// The receiver.
        url: String,
        /// Structured mode.
        structured: bool,
    },
    /// StackStorm: `POST <url>` (e.g. `https://st2/api/v1/webhooks/st2`) with `St2-Api-Key`.
    St2 {
        /// The webhook URL.
        url: String,
        /// The API key.
        api_key: String,
        /// The trigger reference, e.g. `tpr.mysqldb_change`.
        trigger: String,
    },
    /// `sh -c <command>` per change, [`webhook_body`] on stdin; exit 0 delivers.
    Exec(String),
}

/// A failed attempt.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// Another attempt may succeed (5xx, 429, 408, connection errors, a failing command).
    pub retryable: bool,
    /// The receiver's `Retry-After`.
    pub retry_after: Option<Duration>,
    /// What happened.
    pub message: String,
}

impl Failure {
    fn retry(message: String) -> Self {
        Failure { retryable: true, retry_after: None, message }
    }
}

/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

impl Sink {
    /// One delivery attempt of `c`.
    pub async fn deliver(&self, http: &reqwest::Client, source: &Source, c: &Change) -> Result<(), Failure> {
        let time = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let req = match self {
            Sink::Webhook(url) => {
                http.post(url).header("content-type", "application/json").body(webhook_body(c).to_string())
            }
            Sink::CloudEvents { url, structured: true } => http
                .post(url)
                .header("content-type", "application/cloudevents+json")
                .body(source.cloudevent(c, &time).to_string()),
            Sink::CloudEvents { url, structured: false } => {
                let mut req = http.post(url).body(c.object.to_string());
                for (k, v) in source.cloudevent_headers(c, &time) {
                    req = req.header(k, v);
                }
                req
            }
            Sink::St2 { url, api_key, trigger } => http
                .post(url)
                .header("content-type", "application/json")
                .header("St2-Api-Key", api_key)
                .body(source.st2_body(c, trigger).to_string()),
            Sink::Exec(command) => return exec(command, c).await,
        };
        let resp =
            req.timeout(ATTEMPT_TIMEOUT).send().await.map_err(|e| Failure::retry(format!("cannot deliver: {e}")))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let retryable = status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408;
        Err(Failure { retryable, retry_after, message: format!("the receiver answered {status}") })
    }
}

async fn exec(command: &str, c: &Change) -> Result<(), Failure> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("TPR_EVENT_TYPE", c.kind.event_type())
        .env("TPR_OBJECT_NAME", c.name())
        .env("TPR_OBJECT_NAMESPACE", c.namespace())
        .stdin(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Failure::retry(format!("cannot run {command:?}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let body = webhook_body(c).to_string();
        // A command that does not read its stdin still decides by its exit code.
        let _ = stdin.write_all(body.as_bytes()).await;
    }
    match tokio::time::timeout(ATTEMPT_TIMEOUT, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(Failure::retry(format!("{command:?} exited with {status}"))),
        Ok(Err(e)) => Err(Failure::retry(format!("{command:?}: {e}"))),
        Err(_) => Err(Failure::retry(format!("{command:?} did not finish within {ATTEMPT_TIMEOUT:?}"))),
    }
}
