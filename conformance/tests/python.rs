//! The Python `kubernetes` client (PyPI, in the venv that `scripts/test`
//! prepares at `target/pyvenv`; `TPR_PYTHON` names another interpreter):
//! DynamicClient by discovery, the verbs, and a resumed watch.

mod common;

use common::{create_tpr, start, Backend};

fn python_client(backend: Backend) {
    let r = start(backend);
    let s = &r.server;
    create_tpr(s, "mysql-db.prsn.io", &["v1"]);
    let stdout = common::run_python("dynamic_client.py", s);
    assert!(stdout.contains("ok: resumed watch"), "{stdout}");
}

on_both_backends!(python_client);
