//! Tables and queries of the embedded store.
//!
//! `history(key, rev, create_rev, value)` holds one row per write; a delete
//! is a row whose value is NULL (a tombstone). The latest row of a key at or
//! below a revision is the key's state at that revision, and the rows in
//! revision order are the event log that watchers replay.

use std::path::Path;

use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::error::{Result, StorageError};
use crate::types::{Event, KeyValue, RangeRequest, RangeResponse, Revision};

// Integer parameters in WHERE and LIMIT are written `?N`: SQLite re-plans a
// statement on every execution when the planner looked at a bound integer
// (measured: a quarter of the writer's time went to re-preparing).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS history(
    rev INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    create_rev INTEGER NOT NULL,
    value BLOB
);
CREATE UNIQUE INDEX IF NOT EXISTS history_by_key ON history(key, rev);
CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta(name, value) VALUES ('compacted', 0);
";

pub(crate) fn sql_err(e: rusqlite::Error) -> StorageError {
    StorageError::Internal(format!("sqlite: {e}"))
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(sql_err)?;
    // Keep each cached statement's plan: without this, SQLite re-prepares a
    // statement whenever a newly bound value might change its plan, which
    // (measured with perf) took a quarter of the writer thread's time.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true).map_err(sql_err)?;
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;").map_err(sql_err)
}

/// Opens the write connection, creating the tables when missing. It
/// checkpoints the WAL itself every 256 pages: measured, a small WAL that the
/// writer checkpoints inline commits faster than a large one checkpointed by
/// another thread (whose database fsyncs compete with the WAL's).
pub(crate) fn open_writer(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(sql_err)?;
    configure(&conn)?;
    conn.execute_batch(SCHEMA).map_err(sql_err)?;
    conn.execute_batch("PRAGMA wal_autocheckpoint=256;").map_err(sql_err)?;
    Ok(conn)
}

/// Opens one more read connection.
pub(crate) fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(sql_err)?;
    configure(&conn)?;
    Ok(conn)
}

/// The durable revision and the compaction revision. The revision is the
/// newest history row: compaction never removes rows at or above its revision.
pub(crate) fn read_meta(conn: &Connection) -> Result<(Revision, Revision)> {
    conn.prepare_cached(
        "SELECT coalesce((SELECT max(rev) FROM history), 0), (SELECT value FROM meta WHERE name = 'compacted')",
    )
    .and_then(|mut s| s.query_row([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))))
    .map(|(rev, compacted)| (rev.max(compacted), compacted))
    .map_err(sql_err)
}

pub(crate) fn set_meta(tx: &Transaction<'_>, name: &str, value: i64) -> Result<()> {
    tx.prepare_cached("UPDATE meta SET value = ?2 WHERE name = ?1")
        .and_then(|mut s| s.execute(params![name, value]))
        .map(|_| ())
        .map_err(sql_err)
}

/// A string just above every key that starts with `prefix`.
fn range_end(prefix: &str) -> String {
    let mut end = prefix.to_string();
    match end.pop() {
        Some(c) if (c as u32) < 0x7f => end.push(char::from(c as u8 + 1)),
        Some(c) => {
            end.push(c);
            end.push(char::MAX);
        }
        None => end.push(char::MAX),
    }
    end
}

fn row_to_kv(key: String, rev: i64, create_rev: i64, value: Option<Vec<u8>>) -> Option<KeyValue> {
    value.map(|v| KeyValue { key, value: Bytes::from(v), create_revision: create_rev, mod_revision: rev })
}

/// The latest state of `key` strictly before `below` (or now, with `i64::MAX`).
pub(crate) fn state_before(conn: &Connection, key: &str, below: Revision) -> Result<Option<KeyValue>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT rev, create_rev, value FROM history WHERE key = ?1 AND rev < ?2 ORDER BY rev DESC LIMIT 1",
        )
        .map_err(sql_err)?;
    let row = stmt
        .query_row(params![key, below], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, Option<Vec<u8>>>(2)?))
        })
        .optional()
        .map_err(sql_err)?;
    Ok(row.and_then(|(rev, create_rev, value)| row_to_kv(key.to_string(), rev, create_rev, value)))
}

/// The current state of `key`.
pub(crate) fn latest(conn: &Connection, key: &str) -> Result<Option<KeyValue>> {
    state_before(conn, key, i64::MAX)
}

/// Appends one history row (a `None` value is a tombstone).
pub(crate) fn append(
    tx: &Transaction<'_>,
    key: &str,
    rev: Revision,
    create_rev: Revision,
    value: Option<&[u8]>,
) -> Result<()> {
    tx.prepare_cached("INSERT INTO history(key, rev, create_rev, value) VALUES (?1, ?2, ?3, ?4)")
        .and_then(|mut s| s.execute(params![key, rev, create_rev, value]))
        .map(|_| ())
        .map_err(sql_err)
}

/// Checks that `revision` can be read: not compacted, not in the future.
fn check_readable(revision: Revision, current: Revision, compacted: Revision) -> Result<()> {
    if revision > current {
        return Err(StorageError::FutureRevision { requested: revision, current });
    }
    if revision < compacted {
        return Err(StorageError::Compacted { requested: revision, compacted });
    }
    Ok(())
}

/// Runs `f` inside one read transaction, so that every query sees one snapshot.
pub(crate) fn in_snapshot<T>(conn: &mut Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    let tx = conn.transaction().map_err(sql_err)?;
    f(&tx)
}

/// The live keys in `[start, end)` at `revision`, in key order; `limit` < 0 is no limit.
pub(crate) fn scan(conn: &Connection, start: &str, end: &str, revision: Revision, limit: i64) -> Result<Vec<KeyValue>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT key, max(rev), create_rev, value FROM history
             WHERE key >= ?1 AND key < ?2 AND rev <= ?3
             GROUP BY key HAVING value IS NOT NULL ORDER BY key LIMIT ?4",
        )
        .map_err(sql_err)?;
    let rows = stmt
        .query_map(params![start, end, revision, limit], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, Option<Vec<u8>>>(3)?))
        })
        .map_err(sql_err)?;
    let mut kvs = Vec::new();
    for row in rows {
        let (key, rev, create_rev, value) = row.map_err(sql_err)?;
        kvs.extend(row_to_kv(key, rev, create_rev, value));
    }
    Ok(kvs)
}

/// Every live key under `prefix` now, including this transaction's writes.
pub(crate) fn live_under(conn: &Connection, prefix: &str) -> Result<Vec<KeyValue>> {
    scan(conn, prefix, &range_end(prefix), i64::MAX, -1)
}

/// One page of a range read; call it inside [`in_snapshot`].
pub(crate) fn range(conn: &Connection, req: &RangeRequest) -> Result<RangeResponse> {
    let (current, compacted) = read_meta(conn)?;
    let revision = req.revision.unwrap_or(current);
    check_readable(revision, current, compacted)?;
    let start = req.start.as_deref().unwrap_or(&req.prefix);
    let end = range_end(&req.prefix);
    let limit: i64 = if req.limit == 0 { -1 } else { req.limit as i64 };
    let kvs = scan(conn, start, &end, revision, limit)?;
    let remaining = match kvs.last() {
        Some(last) if req.limit > 0 && kvs.len() == req.limit => conn
            .prepare_cached(
                "SELECT count(*) FROM (SELECT max(rev), value FROM history
                 WHERE key > ?1 AND key < ?2 AND rev <= ?3 GROUP BY key HAVING value IS NOT NULL)",
            )
            .and_then(|mut s| s.query_row(params![last.key, end, revision], |r| r.get::<_, i64>(0)))
            .map_err(sql_err)? as usize,
        _ => 0,
    };
    Ok(RangeResponse { kvs, revision, remaining })
}

/// Up to `limit` events under `prefix` after revision `after`, and the
/// revision of the snapshot they were read at. `Compacted` when events after
/// `after` have been discarded. Call it inside [`in_snapshot`].
pub(crate) fn events_after(
    tx: &Connection,
    prefix: &str,
    after: Revision,
    limit: usize,
) -> Result<(Vec<Event>, Revision)> {
    let (current, compacted) = read_meta(tx)?;
    if after + 1 < compacted {
        return Err(StorageError::Compacted { requested: after + 1, compacted });
    }
    let mut rows = Vec::new();
    {
        let mut stmt = tx
            .prepare_cached(
                "SELECT key, rev, create_rev, value FROM history
                 WHERE rev > ?1 AND rev <= ?2 AND key >= ?3 AND key < ?4 ORDER BY rev LIMIT ?5",
            )
            .map_err(sql_err)?;
        let found = stmt
            .query_map(params![after, current, prefix, range_end(prefix), limit as i64], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, Option<Vec<u8>>>(3)?))
            })
            .map_err(sql_err)?;
        for row in found {
            rows.push(row.map_err(sql_err)?);
        }
    }
    let mut events = Vec::with_capacity(rows.len());
    for (key, rev, create_rev, value) in rows {
        let prev = state_before(tx, &key, rev)?;
        events.push(match row_to_kv(key.clone(), rev, create_rev, value) {
            Some(kv) => Event::Put { prev: if create_rev == rev { None } else { prev }, kv },
            None => Event::Delete { key, revision: rev, prev },
        });
    }
    // When the page is full, the snapshot is only complete up to its last event.
    let snapshot = if events.len() == limit { events.last().map(Event::revision).unwrap_or(current) } else { current };
    Ok((events, snapshot))
}

/// Discards history that no read at or after `revision` and no watch after
/// `revision - 1` needs: rows superseded at `revision`, and old tombstones.
pub(crate) fn compact(tx: &Transaction<'_>, revision: Revision) -> Result<()> {
    tx.execute(
        "DELETE FROM history WHERE rev < ?1 AND (value IS NULL OR EXISTS (
             SELECT 1 FROM history AS newer
             WHERE newer.key = history.key AND newer.rev > history.rev AND newer.rev <= ?1))",
        [revision],
    )
    .map_err(sql_err)?;
    set_meta(tx, "compacted", revision)
}

#[cfg(test)]
mod tests {
    use super::range_end;

    #[test]
    fn range_end_is_above_every_key_with_the_prefix() {
        assert_eq!(range_end("/registry/a/"), "/registry/a0");
        let end = range_end("/registry/é");
        assert!("/registry/éz".as_bytes() < end.as_bytes());
    }
}
