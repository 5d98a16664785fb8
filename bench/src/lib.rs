//! Helpers shared by the benchmark programs.
//!
//! - [`events`]: reads watch events (their `sent_us` stamps) from response bytes.
//! - [`h2_watch`]: a lean HTTP/2 client that holds many watch streams on one
//!   connection in one task, so that the load generator spends little of the
//!   machine it shares with the server.
#![forbid(unsafe_code)]

pub mod events;
pub mod h2_watch;
