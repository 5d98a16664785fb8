//! Test harness: starts a real etcd (Debian's `etcd-server`) on free loopback
//! ports with a temporary data dir and short election timeouts, so it is
//! ready in well under a second; and the real `tpr-apiserver` binary as a
//! child process. Used by every crate's tests and the benches.
#![forbid(unsafe_code)]

pub mod client;
mod etcd;
mod fake_kube;
mod kubectl;
pub mod process;
mod server;
mod tls;

pub use etcd::{Etcd, EtcdCluster};
pub use fake_kube::{FakeKube, Policy};
pub use kubectl::{kubectl, kubectl_1_20};
pub use server::{binary as apiserver_binary, masters_token_file, CurlOutput, Server};
pub use tls::TestPki;

use std::io;
use std::net::{Ipv4Addr, TcpListener};

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}
