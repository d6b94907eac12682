//! An in-memory [`KvStore`] for unit tests: a sorted map per column behind a mutex.

use super::{Change, Column, KvRead, KvStore, Op, StoreError};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// All columns in one sorted map keyed by (column, key).
type Entries = BTreeMap<(Column, Vec<u8>), Vec<u8>>;

#[derive(Default)]
pub struct MemKv {
    cols: Mutex<Entries>,
}

impl MemKv {
    pub fn new() -> Self {
        Self::default()
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.cols.lock().expect("mem store lock is never poisoned")
    }
}

impl KvRead for MemKv {
    fn get(&self, col: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.entries().get(&(col, key.to_vec())).cloned())
    }

    fn scan_prefix(
        &self,
        col: Column,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let map = self.entries();
        for ((c, k), v) in map.range((col, prefix.to_vec())..) {
            if *c != col || !k.starts_with(prefix) || !f(k, v) {
                break;
            }
        }
        Ok(())
    }

    fn scan_prefix_rev(
        &self,
        col: Column,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let map = self.entries();
        for ((_, k), v) in map
            .range((col, prefix.to_vec())..)
            .take_while(|((c, k), _)| *c == col && k.starts_with(prefix))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            if !f(k, v) {
                break;
            }
        }
        Ok(())
    }
}

impl KvStore for MemKv {
    fn write(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let mut map = self.entries();
        for (col, key, change) in ops {
            match change {
                Change::Put(v) => {
                    map.insert((col, key), v);
                }
                Change::Delete => {
                    map.remove(&(col, key));
                }
                Change::Add(n) => {
                    let slot = map.entry((col, key)).or_insert_with(|| 0i64.to_le_bytes().to_vec());
                    *slot = super::add_counter(slot, n).to_vec();
                }
            }
        }
        Ok(())
    }

    fn with_snapshot(
        &self,
        f: &mut dyn FnMut(&dyn KvRead) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let copy = MemKv { cols: Mutex::new(self.entries().clone()) };
        f(&copy)
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
