//! Tables and queries of the embedded store.
//!
//! `history(key, rev, create_rev, value)` holds one row per write; a delete
//! is a row whose value is NULL (a tombstone). The latest row of a key at or
//! below a revision is the key's state at that revision, and the rows in
//! revision order are the event log that watchers replay.

use std::path::Path;
use std::sync::RwLock;

use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::index::{read_index, KeyIndex, Version};
use crate::error::{Result, StorageError};
use crate::types::{Event, KeyValue, Revision};

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
DROP INDEX IF EXISTS history_by_key;
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
pub(crate) fn range_end(prefix: &str) -> String {
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

/// Rebuilds the key index from the history.
pub(crate) fn load_index(conn: &Connection) -> Result<KeyIndex> {
    let mut index = KeyIndex::default();
    let mut stmt =
        conn.prepare("SELECT key, rev, create_rev, value IS NOT NULL FROM history ORDER BY rev").map_err(sql_err)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, bool>(3)?)))
        .map_err(sql_err)?;
    for row in rows {
        let (key, rev, create_rev, live) = row.map_err(sql_err)?;
        index.push(&key, Version { rev, create_rev, live });
    }
    Ok(index)
}

/// The value written at `rev`; `None` when that row is gone (compacted) or a tombstone.
fn value_at(conn: &Connection, rev: Revision) -> Result<Option<Vec<u8>>> {
    conn.prepare_cached("SELECT value FROM history WHERE rev = ?1")
        .and_then(|mut s| s.query_row([rev], |r| r.get::<_, Option<Vec<u8>>>(0)).optional())
        .map(Option::flatten)
        .map_err(sql_err)
}

/// The object `key` holds as version `v`; `None` when its row is gone
/// (compacted since the index was read) or `v` is a tombstone.
pub(crate) fn kv(conn: &Connection, key: String, v: Version) -> Result<Option<KeyValue>> {
    if !v.live {
        return Ok(None);
    }
    Ok(value_at(conn, v.rev)?.map(|value| KeyValue {
        key,
        value: Bytes::from(value),
        create_revision: v.create_rev,
        mod_revision: v.rev,
    }))
}

/// The objects of `found`; `None` when one of their rows is gone.
pub(crate) fn kvs(conn: &Connection, found: Vec<(String, Version)>) -> Result<Option<Vec<KeyValue>>> {
    let mut out = Vec::with_capacity(found.len());
    for (key, v) in found {
        match kv(conn, key, v)? {
            Some(kv) => out.push(kv),
            None => return Ok(None),
        }
    }
    Ok(Some(out))
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
pub(crate) fn check_readable(revision: Revision, current: Revision, compacted: Revision) -> Result<()> {
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

/// Up to `limit` events under `prefix` after revision `after`, and the
/// revision of the snapshot they were read at. `Compacted` when events after
/// `after` have been discarded. Call it inside [`in_snapshot`].
pub(crate) fn events_after(
    tx: &Connection,
    index: &RwLock<KeyIndex>,
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
    // The row before each event's, looked up under one lock.
    let before: Vec<Option<Version>> = {
        let index = read_index(index);
        rows.iter().map(|(key, rev, _, _)| index.before(key, *rev)).collect()
    };
    let mut events = Vec::with_capacity(rows.len());
    for ((key, rev, create_rev, value), before) in rows.into_iter().zip(before) {
        let prev = match before {
            Some(v) if create_rev != rev || value.is_none() => kv(tx, key.clone(), v)?,
            _ => None,
        };
        events.push(match value {
            Some(v) => Event::Put {
                kv: KeyValue { key, value: Bytes::from(v), create_revision: create_rev, mod_revision: rev },
                prev,
            },
            None => Event::Delete { key, revision: rev, prev },
        });
    }
    // When the page is full, the snapshot is only complete up to its last event.
    let snapshot = if events.len() == limit { events.last().map(Event::revision).unwrap_or(current) } else { current };
    Ok((events, snapshot))
}

/// Discards history that no read at or after `revision` and no watch after
/// `revision - 1` needs: rows superseded at `revision`, and old tombstones.
/// `rows` are what [`KeyIndex::compactable`] names.
pub(crate) fn compact(tx: &Transaction<'_>, revision: Revision, rows: &[(String, Revision)]) -> Result<()> {
    let mut stmt = tx.prepare_cached("DELETE FROM history WHERE rev = ?1").map_err(sql_err)?;
    for (_, rev) in rows {
        stmt.execute([rev]).map_err(sql_err)?;
    }
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
