//! The Python `kubernetes` client (PyPI, in the venv that `scripts/test`
//! prepares at `target/pyvenv`; `TPR_PYTHON` names another interpreter):
//! DynamicClient by discovery, the verbs, and a resumed watch.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{create_tpr, start, Backend};

fn python() -> PathBuf {
    std::env::var_os("TPR_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/pyvenv/bin/python"))
}

fn python_client(backend: Backend) {
    let r = start(backend);
    let s = &r.server;
    create_tpr(s, "mysql-db.prsn.io", &["v1"]);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/dynamic_client.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(s.kubeconfig())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} ({e}); scripts/test prepares the venv", python().display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python {}\nstdout:\n{stdout}\nstderr:\n{stderr}", script.display());
    assert!(stdout.contains("ok: resumed watch"), "{stdout}");
}

on_both_backends!(python_client);
