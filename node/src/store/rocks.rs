//! The RocksDB [`KvStore`]: one column family per [`Column`], WAL on, no fsync per batch.
//!
//! Tuning (reasons): a shared LRU block cache so hot accounts and headers stay in memory;
//! LZ4 only on the large columns (bodies, undo), since ids, keys and signatures are random
//! bytes that do not compress; bloom filters on point-lookup columns (accounts, tx index,
//! headers) so misses do not touch disk; index and filter blocks live in that same cache, and
//! all memtables share one 32 MiB budget (`db_write_buffer_size`), so the store's memory is
//! bounded by two numbers (32 MiB cache + 32 MiB memtables) whatever the number of column
//! families (each with its own 16 MiB memtable it would otherwise be up to 9 x 2 x 16 MiB).
//! A node must stay under 200 MB RSS; `ember-testnet bench` measured 287 MB on a node that
//! had taken 200,000 payments with a 64 MiB cache and no memtable budget. Writes: one `WriteBatch` per block (connect, disconnect or
//! store), WAL on, no fsync per batch.

use super::{Change, Column, KvRead, KvStore, Op, StoreError};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, Direction, IteratorMode,
    MergeOperands, Options, ReadOptions, WriteBatch, WriteOptions, DB,
};
use std::path::Path;

pub struct RocksKv {
    db: DB,
}

fn db_err(e: rocksdb::Error) -> StoreError {
    StoreError::Db(e.into_string())
}

/// An error opening the database at `path`: RocksDB's lock failure ("IO error: While lock
/// file: .../LOCK: Resource temporarily unavailable") means another process has it open,
/// which a user should hear in those words.
fn open_err(e: rocksdb::Error, path: &Path) -> StoreError {
    let text = e.as_ref();
    if e.kind() == rocksdb::ErrorKind::IOError && text.contains("lock file") {
        return StoreError::InUse(path.to_path_buf());
    }
    db_err(e)
}

fn cf_options(col: Column, cache: &Cache) -> Options {
    let mut opts = Options::default();
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    // Index and filter blocks count against the cache instead of growing beside it.
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    if matches!(col, Column::Accounts | Column::TxIndex | Column::Headers) {
        table.set_bloom_filter(10.0, false);
    }
    opts.set_block_based_table_factory(&table);
    if col == Column::AddrCount {
        opts.set_merge_operator_associative("ember_add_i64", add_merge);
    }
    opts.set_compression_type(match col {
        Column::Bodies | Column::Undo => DBCompressionType::Lz4,
        _ => DBCompressionType::None,
    });
    opts
}

/// [`Column::AddrCount`]'s merge: the stored counter plus every operand (each an i64 LE
/// delta); associative, so RocksDB may fold operands in any grouping.
fn add_merge(_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands) -> Option<Vec<u8>> {
    let mut sum = existing.map_or(0, super::counter_value);
    for op in operands {
        sum = sum.wrapping_add(super::counter_value(op));
    }
    Some(sum.to_le_bytes().to_vec())
}

/// Entries of `iter` while their key starts with `prefix`, into `f` until it says stop.
fn scan<'a>(
    iter: impl Iterator<Item = Result<(Box<[u8]>, Box<[u8]>), rocksdb::Error>> + 'a,
    prefix: &[u8],
    f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
) -> Result<(), StoreError> {
    for item in iter {
        let (k, v) = item.map_err(db_err)?;
        if !k.starts_with(prefix) || !f(&k, &v) {
            break;
        }
    }
    Ok(())
}

/// The smallest key above every key that starts with `prefix`, or `None` when there is none
/// (a prefix of 0xff bytes only): where a descending scan of the prefix starts.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// A descending iterator's mode for the keys starting with `prefix`: from just below
/// [`prefix_end`] (RocksDB's reverse seek lands on the last key at or before it; the end
/// key itself, outside the prefix, is skipped by [`scan`]).
fn rev_mode(end: &Option<Vec<u8>>) -> IteratorMode<'_> {
    match end {
        Some(e) => IteratorMode::From(e, Direction::Reverse),
        None => IteratorMode::End,
    }
}

/// Reads from the database as it is now, or through a snapshot of it.
struct Reader<'a> {
    kv: &'a RocksKv,
    snap: Option<rocksdb::Snapshot<'a>>,
}

impl Reader<'_> {
    fn opts(&self) -> ReadOptions {
        let mut o = ReadOptions::default();
        if let Some(snap) = &self.snap {
            o.set_snapshot(snap);
        }
        o
    }
}

impl KvRead for Reader<'_> {
    fn get(&self, col: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.kv.db.get_cf_opt(self.kv.cf(col), key, &self.opts()).map_err(db_err)
    }

    fn scan_prefix(
        &self,
        col: Column,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let mode = IteratorMode::From(prefix, Direction::Forward);
        scan(self.kv.db.iterator_cf_opt(self.kv.cf(col), self.opts(), mode), prefix, f)
    }

    fn scan_prefix_rev(
        &self,
        col: Column,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let end = prefix_end(prefix);
        let iter = self.kv.db.iterator_cf_opt(self.kv.cf(col), self.opts(), rev_mode(&end));
        scan(
            iter.skip_while(|i| i.as_ref().is_ok_and(|(k, _)| end.as_deref() == Some(&k[..]))),
            prefix,
            f,
        )
    }
}

impl RocksKv {
    /// Opens (creating if `create`) the database at `path`.
    pub fn open(path: &Path, create: bool) -> Result<Self, StoreError> {
        let cache = Cache::new_lru_cache(32 * 1024 * 1024);
        let mut opts = Options::default();
        opts.create_if_missing(create);
        opts.create_missing_column_families(create);
        opts.set_max_background_jobs(2);
        opts.set_write_buffer_size(16 * 1024 * 1024);
        // One memtable budget for all column families (see the module doc).
        opts.set_db_write_buffer_size(32 * 1024 * 1024);
        // Keep RocksDB's own info log small: the node logs through tracing.
        opts.set_keep_log_file_num(2);
        let cfs = Column::ALL.map(|c| ColumnFamilyDescriptor::new(c.name(), cf_options(c, &cache)));
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(|e| open_err(e, path))?;
        Ok(RocksKv { db })
    }

    /// Opens an existing database read-only (for `ember-node check`, which must not change
    /// anything). The rocksdb crate creates `path` when it is missing, even read-only: the
    /// caller checks first that a database is there.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let cache = Cache::new_lru_cache(64 * 1024 * 1024);
        let opts = Options::default();
        let cfs = Column::ALL.map(|c| ColumnFamilyDescriptor::new(c.name(), cf_options(c, &cache)));
        let db = DB::open_cf_descriptors_read_only(&opts, path, cfs, false)
            .map_err(|e| open_err(e, path))?;
        Ok(RocksKv { db })
    }

    fn cf(&self, col: Column) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(col.name()).expect("every column family is opened with the database")
    }
}

impl KvRead for RocksKv {
    fn get(&self, col: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Reader { kv: self, snap: None }.get(col, key)
    }

    fn scan_prefix(
        &self,
        col: Column,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        Reader { kv: self, snap: None }.scan_prefix(col, prefix, f)
    }

    fn scan_prefix_rev(
        &self,
        col: Column,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        Reader { kv: self, snap: None }.scan_prefix_rev(col, prefix, f)
    }
}

impl KvStore for RocksKv {
    fn write(&self, mut ops: Vec<Op>) -> Result<(), StoreError> {
        // In key order within each column: each memtable insert then lands next to the
        // previous one, so the skiplist's search starts from where it left off. A stable
        // sort keeps the order of ops on one key (the last put or delete wins, as before).
        ops.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut batch = WriteBatch::default();
        for (col, key, change) in ops {
            match change {
                Change::Put(v) => batch.put_cf(self.cf(col), key, v),
                Change::Delete => batch.delete_cf(self.cf(col), key),
                Change::Add(n) => batch.merge_cf(self.cf(col), key, n.to_le_bytes()),
            }
        }
        // WAL on, no fsync: a crash loses at most the last unsynced batches, each of which
        // is all-or-nothing, so the store always reopens at a consistent tip.
        let mut wo = WriteOptions::default();
        wo.set_sync(false);
        self.db.write_opt(batch, &wo).map_err(db_err)
    }

    fn with_snapshot(
        &self,
        f: &mut dyn FnMut(&dyn KvRead) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let view = Reader { kv: self, snap: Some(self.db.snapshot()) };
        f(&view)
    }

    fn flush(&self) -> Result<(), StoreError> {
        for col in Column::ALL {
            self.db.flush_cf(self.cf(col)).map_err(db_err)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch is applied as written though its ops are sorted by key: on one key the last
    /// put or delete wins and every counter delta counts, whatever the other keys around.
    #[test]
    fn a_sorted_batch_keeps_the_order_of_ops_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let kv = RocksKv::open(dir.path(), true).unwrap();
        let put = |k: &[u8], v: &[u8]| (Column::Meta, k.to_vec(), Change::Put(v.to_vec()));
        let del = |k: &[u8]| (Column::Meta, k.to_vec(), Change::Delete);
        let add = |k: &[u8], n: i64| (Column::AddrCount, k.to_vec(), Change::Add(n));
        kv.write(vec![
            put(b"z", b"1"),
            put(b"b", b"first"),
            add(b"c", 5),
            del(b"b"),
            put(b"a", b"x"),
            add(b"c", -2),
            put(b"b", b"last"),
            put(b"y", b"gone"),
            del(b"y"),
        ])
        .unwrap();
        assert_eq!(kv.get(Column::Meta, b"b").unwrap(), Some(b"last".to_vec()));
        assert_eq!(kv.get(Column::Meta, b"y").unwrap(), None);
        assert_eq!(kv.get(Column::Meta, b"z").unwrap(), Some(b"1".to_vec()));
        let c = kv.get(Column::AddrCount, b"c").unwrap().unwrap();
        assert_eq!(super::super::counter_value(&c), 3);
    }
}
