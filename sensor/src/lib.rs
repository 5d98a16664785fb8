//! tpr-sensor: every change of one served resource, delivered to automation
//! at least once and in order per object, never silently lost.
//!
//! Layout, in the order a change travels:
//!
//! - [`source`]: list and watch (bookmarks, resume from the last revision,
//!   re-list on 410) as an explicit state machine;
//! - [`tracker`]: the sans-IO core: the known objects, the changes a watch
//!   event or a re-list implies (synthesized deletes for objects that
//!   vanished while the sensor was away);
//! - [`delivery`]: one change at a time, retries with backoff and jitter, the
//!   dead-letter file, the checkpoint;
//! - [`sink`]: webhook, CloudEvents 1.0 (binary, structured), StackStorm, a command;
//! - [`change`]: a change and the bodies each sink sends (pure);
//! - [`checkpoint`]: the durable, atomically written resume point;
//! - [`metrics`]: `/metrics` and `/healthz`; [`config`]: the flags.
//!
//! Shutdown is a watch channel passed in: the source stops, the change in
//! flight is finished, the checkpoint is written.
#![forbid(unsafe_code)]

pub mod change;
pub mod checkpoint;
pub mod config;
pub mod delivery;
pub mod metrics;
pub mod sink;
pub mod source;
pub mod tracker;
