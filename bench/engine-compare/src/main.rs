//! Compares candidate embedded engines for the revisioned store: each "write"
//! is what the embedded backend does per acknowledged write (one row in the
//! key table and one in the revision log), committed durably (fsync).
#![forbid(unsafe_code)]

use redb::ReadableDatabase;
use std::time::{Duration, Instant};

const VALUE: [u8; 500] = [7u8; 500];
const RUN: Duration = Duration::from_secs(3);

trait Engine {
    fn name(&self) -> &'static str;
    /// Writes `batch` (key, revision) pairs in one durable commit.
    fn commit(&mut self, batch: &[(String, u64)]);
    /// Reads every value under `prefix`, returning how many.
    fn scan(&mut self, prefix: &str) -> usize;
}

struct Redb(redb::Database);
const KV: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("kv");
const LOG: redb::TableDefinition<u64, &str> = redb::TableDefinition::new("log");

impl Engine for Redb {
    fn name(&self) -> &'static str {
        "redb"
    }
    fn commit(&mut self, batch: &[(String, u64)]) {
        let tx = self.0.begin_write().unwrap();
        {
            let mut kv = tx.open_table(KV).unwrap();
            let mut log = tx.open_table(LOG).unwrap();
            for (k, rev) in batch {
                kv.insert(k.as_str(), &VALUE[..]).unwrap();
                log.insert(*rev, k.as_str()).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    fn scan(&mut self, prefix: &str) -> usize {
        let tx = self.0.begin_read().unwrap();
        let kv = tx.open_table(KV).unwrap();
        let end = format!("{prefix}\u{10FFFF}");
        kv.range(prefix..end.as_str()).unwrap().map(|r| r.unwrap().1.value().len()).filter(|l| *l > 0).count()
    }
}

struct Fjall {
    db: fjall::Database,
    kv: fjall::Keyspace,
    log: fjall::Keyspace,
}

impl Engine for Fjall {
    fn name(&self) -> &'static str {
        "fjall"
    }
    fn commit(&mut self, batch: &[(String, u64)]) {
        let mut b = self.db.batch();
        for (k, rev) in batch {
            b.insert(&self.kv, k.as_bytes(), &VALUE[..]);
            b.insert(&self.log, rev.to_be_bytes(), k.as_bytes());
        }
        b.commit().unwrap();
        self.db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    fn scan(&mut self, prefix: &str) -> usize {
        self.kv.prefix(prefix.as_bytes()).filter_map(|g| g.into_inner().ok()).count()
    }
}

struct Sqlite(rusqlite::Connection);

impl Engine for Sqlite {
    fn name(&self) -> &'static str {
        "sqlite"
    }
    fn commit(&mut self, batch: &[(String, u64)]) {
        let tx = self.0.transaction().unwrap();
        for (k, rev) in batch {
            tx.execute("INSERT OR REPLACE INTO kv(k, v) VALUES (?1, ?2)", (k, &VALUE[..])).unwrap();
            tx.execute("INSERT INTO log(rev, k) VALUES (?1, ?2)", (*rev as i64, k)).unwrap();
        }
        tx.commit().unwrap();
    }
    fn scan(&mut self, prefix: &str) -> usize {
        let mut st = self.0.prepare_cached("SELECT v FROM kv WHERE k >= ?1 AND k < ?2").unwrap();
        let end = format!("{prefix}\u{10FFFF}");
        st.query_map((prefix, end.as_str()), |r| r.get::<_, Vec<u8>>(0)).unwrap().count()
    }
}

fn measure(e: &mut dyn Engine, batch: usize, next: &mut u64) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < RUN {
        let b: Vec<(String, u64)> = (0..batch)
            .map(|_| {
                *next += 1;
                (format!("/registry/bench/k{:08}", *next % 20_000), *next)
            })
            .collect();
        e.commit(&b);
        n += batch as u64;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    if std::env::var("OURS").is_ok() { ours_like(); return; }
    let dir = tempfile::tempdir_in(".").unwrap();
    let mut engines: Vec<Box<dyn Engine>> = vec![
        Box::new(Redb(redb::Database::create(dir.path().join("redb")).unwrap())),
        {
            let db = fjall::Database::builder(dir.path().join("fjall")).open().unwrap();
            let kv = db.keyspace("kv", fjall::KeyspaceCreateOptions::default).unwrap();
            let log = db.keyspace("log", fjall::KeyspaceCreateOptions::default).unwrap();
            Box::new(Fjall { db, kv, log })
        },
        {
            let c = rusqlite::Connection::open(dir.path().join("sqlite")).unwrap();
            c.execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
                 CREATE TABLE kv(k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID;
                 CREATE TABLE log(rev INTEGER PRIMARY KEY, k TEXT);",
            )
            .unwrap();
            Box::new(Sqlite(c))
        },
    ];
    println!("{:<8} {:>14} {:>16} {:>16} {:>14}", "engine", "1/commit w/s", "16/commit w/s", "64/commit w/s", "scan 10k ms");
    for e in engines.iter_mut() {
        let mut next = 0;
        let one = measure(e.as_mut(), 1, &mut next);
        let sixteen = measure(e.as_mut(), 16, &mut next);
        let many = measure(e.as_mut(), 64, &mut next);
        let t = Instant::now();
        let mut count = 0;
        for _ in 0..10 {
            count = e.scan("/registry/bench/k0000");
        }
        let scan_ms = t.elapsed().as_secs_f64() * 100.0;
        println!("{:<8} {:>14.0} {:>16.0} {:>16.0} {:>11.2} ({count} rows)", e.name(), one, sixteen, many, scan_ms);
    }
}

#[allow(dead_code)]
pub fn ours_like() {
    let dir = tempfile::tempdir_in(".").unwrap();
    let c = rusqlite::Connection::open(dir.path().join("o.sqlite")).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
        CREATE TABLE history(rev INTEGER PRIMARY KEY, key TEXT NOT NULL, create_rev INTEGER NOT NULL, value BLOB);
        CREATE UNIQUE INDEX history_by_key ON history(key, rev);").unwrap();
    let mut c = c;
    let start = Instant::now();
    let mut n = 0i64;
    while start.elapsed() < RUN {
        n += 1;
        let key = format!("/registry/x/1-0-{n}");
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
        {
            let mut st = tx.prepare_cached("SELECT rev, create_rev, value FROM history WHERE key = ?1 AND rev < ?2 ORDER BY rev DESC LIMIT 1").unwrap();
            let _ = st.query_row((key.as_str(), i64::MAX), |_| Ok(())).ok();
            tx.prepare_cached("INSERT INTO history(key, rev, create_rev, value) VALUES (?1, ?2, ?3, ?4)").unwrap()
                .execute((key.as_str(), n, n, &VALUE[..])).unwrap();
        }
        tx.commit().unwrap();
    }
    println!("ours-like single-thread: {:.0}/s", n as f64 / start.elapsed().as_secs_f64());
}
