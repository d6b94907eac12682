//! An in-memory [`KvStore`] for unit tests: a sorted map per column behind a mutex.

use super::{Column, KvStore, Op, StoreError};
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
}

impl KvStore for MemKv {
    fn get(&self, col: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let map = self.cols.lock().expect("mem store lock is never poisoned");
        Ok(map.get(&(col, key.to_vec())).cloned())
    }

    fn write(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let mut map = self.cols.lock().expect("mem store lock is never poisoned");
        for (col, key, value) in ops {
            match value {
                Some(v) => map.insert((col, key), v),
                None => map.remove(&(col, key)),
            };
        }
        Ok(())
    }

    fn scan_prefix(
        &self,
        col: Column,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let map = self.cols.lock().expect("mem store lock is never poisoned");
        for ((c, k), v) in map.range((col, prefix.to_vec())..) {
            if *c != col || !k.starts_with(prefix) || !f(k, v) {
                break;
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
