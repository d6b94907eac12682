//! The typed layer over [`KvStore`]: what the chain manager reads and writes.
//!
//! Keys are fixed-width byte strings (ids, addresses, big-endian heights so that key order is
//! height order); values use the canonical encoding of `ember-core`. A value that does not
//! decode is reported as [`StoreError::Corrupt`], never skipped.

use super::{Change, Column, KvRead, KvStore, Op, StoreError};
use ember_core::encoding::{decode, encode};
use ember_core::state::StateHasher;
use ember_core::tx::TX_ENCODED_LEN;
use ember_core::{
    Account, Address, BlockHeader, BlockId, ChainParams, Digest32, Transaction, Txid, Undo, U256,
};
use std::sync::Arc;

/// Version of the on-disk layout; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

const META_SCHEMA: &[u8] = b"schema_version";
const META_GENESIS: &[u8] = b"genesis";
const META_NETWORK: &[u8] = b"network";
const META_TIP: &[u8] = b"tip";
/// Present once [`Column::AddrCount`] holds every address's history length (written with a
/// fresh store, or by [`ChainStore::ensure_history_counts`] for a store made before it).
const META_ADDR_COUNTS: &[u8] = b"addr_counts";
/// The last main-chain block whose entries the tx and address indexes hold (`indexer`).
const META_INDEX_TIP: &[u8] = b"index_tip";
/// Blocks invalidated by hand (`chain_invalidateBlock`), as a list of ids.
const META_MANUAL_INVALID: &[u8] = b"manual_invalid";

/// Validation status of a known block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum BlockStatus {
    /// Header valid (structural and contextual); body not stored yet.
    HeaderOnly,
    /// Header valid and body stored and structurally valid; state not yet checked unless it
    /// is (or was) on the main chain.
    BodyStored,
    /// Failed validation, or descends from a block that did. Never requested again.
    Invalid,
}

/// What is kept per known block header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct HeaderEntry {
    pub header: BlockHeader,
    /// Cumulative work of the chain ending here, big-endian.
    pub work: [u8; 32],
    pub status: BlockStatus,
}

impl HeaderEntry {
    pub fn work(&self) -> U256 {
        U256::from_big_endian(&self.work)
    }
}

/// Where a confirmed transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct TxLocation {
    pub block: BlockId,
    pub height: u64,
    pub position: u32,
}

/// One confirmed payment of an address's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryItem {
    pub height: u64,
    pub block: BlockId,
    pub tx: Transaction,
}

/// A page of an address's history ([`ChainStore::history_page`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryPage {
    /// The index tip in the snapshot the page was read from (the chain's tip in a store
    /// without one): the page is the history of the chain ending there.
    pub tip: BlockId,
    /// That tip's height.
    pub tip_height: u64,
    /// Entries the address has in all.
    pub total: u64,
    /// Newest first.
    pub items: Vec<HistoryItem>,
}

/// The tip id and height as `kv` holds them (`None` before the genesis is stored).
fn tip_of(kv: &dyn KvRead) -> Result<Option<(BlockId, u64)>, StoreError> {
    let Some(v) = kv.get(Column::Meta, META_TIP)? else { return Ok(None) };
    let tip: BlockId = decode(&v, 32).map_err(|e| corrupt("tip", e))?;
    let entry =
        kv.get(Column::Headers, tip.as_bytes())?.ok_or_else(|| corrupt("tip header", "missing"))?;
    let entry: HeaderEntry = decode(&entry, entry.len()).map_err(|e| corrupt("tip header", e))?;
    Ok(Some((tip, entry.header.height)))
}

/// A transaction looked up in the tx index ([`ChainStore::tx_lookup`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxLookup {
    /// The index tip in the snapshot it was read from (the chain's tip in a store without
    /// one): `found` is the answer of the chain ending there.
    pub tip: BlockId,
    pub tip_height: u64,
    /// Where the transaction is confirmed, and the transaction; `None` when that chain
    /// does not hold it.
    pub found: Option<(TxLocation, Transaction)>,
    /// Whether, in the same snapshot, `found`'s block is on the main chain, and the main
    /// chain's tip and height then. A chain being switched under the chain lock shows the
    /// new branch's first blocks as main before its tip is published (and before a later
    /// block of it may fail): only [`TxLookup::confirmed_on`] says "confirmed".
    pub on_main_chain: bool,
    pub chain_tip: BlockId,
    pub chain_height: u64,
    /// Whether, in the same snapshot, the index tip and the block `seen` (height, id) the
    /// caller asked about are both on the main chain, the index tip at least as high: then
    /// the indexes hold every payment of `seen`'s chain, and one they lack is not in it.
    pub covers_seen: bool,
}

/// The main chain's block at `height` in `kv`.
fn main_chain_of(kv: &dyn KvRead, height: u64) -> Result<Option<BlockId>, StoreError> {
    kv.get(Column::MainChain, &height.to_be_bytes())?
        .map(|v| decode::<BlockId>(&v, 32).map_err(|e| corrupt("main chain entry", e)))
        .transpose()
}

impl TxLookup {
    /// The payment's block and the payment when `found`'s block was on the main chain of a
    /// published tip (one of `published`) in the snapshot read: then it is confirmed there,
    /// however far behind the index is.
    pub fn confirmed_on(&self, published: &[BlockId]) -> Option<&(TxLocation, Transaction)> {
        self.found.as_ref().filter(|_| self.on_main_chain && published.contains(&self.chain_tip))
    }
}

/// The tip the indexes in `kv` were written up to, with its height: the index tip, or
/// the chain's tip in a store without one (`None` before the genesis is stored).
fn indexed_tip_of(kv: &dyn KvRead) -> Result<Option<(BlockId, u64)>, StoreError> {
    match index_tip_of(kv)? {
        Some(id) => Ok(Some((id, height_of(kv, &id)?))),
        None => tip_of(kv),
    }
}

/// The indexes' tip as `kv` holds it.
fn index_tip_of(kv: &dyn KvRead) -> Result<Option<BlockId>, StoreError> {
    kv.get(Column::Meta, META_INDEX_TIP)?
        .map(|v| decode(&v, 32).map_err(|e| corrupt("index tip", e)))
        .transpose()
}

/// The height of the block `id` as `kv`'s header entry says.
fn height_of(kv: &dyn KvRead, id: &BlockId) -> Result<u64, StoreError> {
    let entry = kv
        .get(Column::Headers, id.as_bytes())?
        .ok_or_else(|| corrupt("header", format!("{id} missing")))?;
    let entry: HeaderEntry = decode(&entry, entry.len()).map_err(|e| corrupt("header", e))?;
    Ok(entry.header.height)
}

/// The account state at one tip ([`ChainStore::state_summary`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateSummary {
    pub height: u64,
    pub tip: BlockId,
    /// [`StateHasher`] over every account.
    pub digest: Digest32,
    /// Every balance added up, in base units.
    pub supply_units: u128,
}

/// `address`'s history count as `kv` holds it (absent: 0).
fn count_of(kv: &dyn KvRead, address: &Address) -> Result<u64, StoreError> {
    let n = kv.get(Column::AddrCount, address.as_bytes())?.map_or(0, |v| super::counter_value(&v));
    Ok(n.max(0) as u64)
}

/// Transaction `pos` of an encoded body (a u64 LE count, then fixed-size transactions),
/// decoded alone.
fn tx_at(body: &[u8], pos: usize) -> Option<Transaction> {
    let count = u64::from_le_bytes(body.get(..8)?.try_into().ok()?);
    if pos as u64 >= count {
        return None;
    }
    let start = 8 + pos * TX_ENCODED_LEN;
    Transaction::decode(body.get(start..start + TX_ENCODED_LEN)?).ok()
}

/// Typed access to the chain's columns.
#[derive(Clone)]
pub struct ChainStore {
    kv: Arc<dyn KvStore>,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

impl ChainStore {
    /// Wraps a key-value store, checking (or, when empty, writing) its schema version and
    /// network, so another network's or another program's data is refused, never reset.
    pub fn open(kv: Arc<dyn KvStore>, params: &ChainParams) -> Result<Self, StoreError> {
        let store = ChainStore { kv };
        match store.kv.get(Column::Meta, META_SCHEMA)? {
            None => {
                // A fresh store: nothing else may be in it.
                let mut any = false;
                for col in Column::ALL {
                    store.kv.scan_prefix(col, &[], &mut |_, _| {
                        any = true;
                        false
                    })?;
                }
                if any {
                    return Err(StoreError::Foreign(
                        "the data dir holds a database without an Ember schema version: \
                         not an Ember store (refusing to touch it)"
                            .into(),
                    ));
                }
            }
            Some(v) => {
                let found: u32 = decode(&v, 4).map_err(|e| corrupt("schema version", e))?;
                if found != SCHEMA_VERSION {
                    return Err(StoreError::SchemaMismatch { found, expected: SCHEMA_VERSION });
                }
                let (network, genesis) = ChainStore::stored_genesis(store.kv.as_ref())?
                    .ok_or_else(|| corrupt("meta", "genesis id missing"))?;
                if genesis != params.genesis_id() {
                    // No advice here: the binary knows which flags open the data dir
                    // (`config::other_genesis_hint`).
                    return Err(StoreError::Foreign(format!(
                        "the data dir holds the chain of network {network:?} with genesis \
                         {genesis}, but this node runs {} with genesis {}",
                        params.network,
                        params.genesis_id()
                    )));
                }
            }
        }
        Ok(store)
    }

    /// The network name and genesis id a store was created for, read without opening it
    /// as a chain (`None` when it holds no genesis id: fresh, or not an Ember store).
    pub fn stored_genesis(kv: &dyn KvStore) -> Result<Option<(String, BlockId)>, StoreError> {
        let Some(genesis) = kv.get(Column::Meta, META_GENESIS)? else { return Ok(None) };
        let genesis: BlockId = decode(&genesis, 32).map_err(|e| corrupt("genesis id", e))?;
        let network = kv.get(Column::Meta, META_NETWORK)?.unwrap_or_default();
        Ok(Some((String::from_utf8_lossy(&network).into_owned(), genesis)))
    }

    /// Whether the store has been initialised with a genesis block.
    pub fn is_initialised(&self) -> Result<bool, StoreError> {
        Ok(self.kv.get(Column::Meta, META_SCHEMA)?.is_some())
    }

    pub fn kv(&self) -> &Arc<dyn KvStore> {
        &self.kv
    }

    pub fn header(&self, id: &BlockId) -> Result<Option<HeaderEntry>, StoreError> {
        self.kv
            .get(Column::Headers, id.as_bytes())?
            .map(|v| decode(&v, 256).map_err(|e| corrupt("header entry", e)))
            .transpose()
    }

    pub fn body(&self, id: &BlockId) -> Result<Option<Vec<Transaction>>, StoreError> {
        self.kv
            .get(Column::Bodies, id.as_bytes())?
            .map(|v| decode(&v, v.len().max(8)).map_err(|e| corrupt("block body", e)))
            .transpose()
    }

    pub fn main_chain_at(&self, height: u64) -> Result<Option<BlockId>, StoreError> {
        main_chain_of(&*self.kv, height)
    }

    /// Whether, in one snapshot, the stored tip is one of `published` (tips the node has
    /// published: not a block of a branch being tried under the chain lock, which may still
    /// fail) and `id` is the main chain's block at `height`. Two reads.
    pub fn on_published_main_chain(
        &self,
        id: &BlockId,
        height: u64,
        published: &[BlockId],
    ) -> Result<bool, StoreError> {
        let mut on = false;
        self.kv.with_snapshot(&mut |kv| {
            on = tip_of(kv)?.is_some_and(|(tip, _)| published.contains(&tip))
                && main_chain_of(kv, height)? == Some(*id);
            Ok(())
        })?;
        Ok(on)
    }

    pub fn account(&self, address: &Address) -> Result<Account, StoreError> {
        Ok(self
            .kv
            .get(Column::Accounts, address.as_bytes())?
            .map(|v| decode(&v, 16).map_err(|e| corrupt("account", e)))
            .transpose()?
            .unwrap_or_default())
    }

    pub fn undo(&self, id: &BlockId) -> Result<Option<Undo>, StoreError> {
        self.kv
            .get(Column::Undo, id.as_bytes())?
            .map(|v| decode(&v, v.len().max(8)).map_err(|e| corrupt("undo record", e)))
            .transpose()
    }

    pub fn tx_location(&self, txid: &Txid) -> Result<Option<TxLocation>, StoreError> {
        self.kv
            .get(Column::TxIndex, txid.as_bytes())?
            .map(|v| decode(&v, 64).map_err(|e| corrupt("tx index", e)))
            .transpose()
    }

    /// Looks `txid` up in the tx index and reads it from its block, all in one snapshot
    /// together with the index tip they answer for (the follower may be stepping back
    /// off a branch meanwhile; the caller judges whether that tip answers its question),
    /// and whether the block holding it, the index tip and `seen` are on the main chain in
    /// that snapshot. Costs one index read, two header reads, three main-chain reads and
    /// one body read.
    pub fn tx_lookup(&self, txid: &Txid, seen: (u64, BlockId)) -> Result<TxLookup, StoreError> {
        let mut out = None;
        self.kv.with_snapshot(&mut |kv| {
            let (tip, tip_height) = indexed_tip_of(kv)?.ok_or_else(|| corrupt("meta", "no tip"))?;
            let found = match kv.get(Column::TxIndex, txid.as_bytes())? {
                None => None,
                Some(v) => {
                    let loc: TxLocation = decode(&v, 64).map_err(|e| corrupt("tx index", e))?;
                    let body = kv.get(Column::Bodies, loc.block.as_bytes())?.ok_or_else(|| {
                        corrupt("tx index", format!("body of {} missing", loc.block))
                    })?;
                    let tx = tx_at(&body, loc.position as usize)
                        .filter(|tx| tx.txid() == *txid)
                        .ok_or_else(|| {
                            corrupt(
                                "tx index",
                                format!("{txid} not at {}:{}", loc.block, loc.position),
                            )
                        })?;
                    Some((loc, tx))
                }
            };
            let main_at = |height: u64| main_chain_of(kv, height);
            let on_main_chain = match &found {
                Some((loc, _)) => main_at(loc.height)? == Some(loc.block),
                None => false,
            };
            let covers_seen = tip_height >= seen.0
                && main_at(tip_height)? == Some(tip)
                && main_at(seen.0)? == Some(seen.1);
            let (chain_tip, chain_height) = tip_of(kv)?.unwrap_or((BlockId::ZERO, 0));
            out = Some(TxLookup {
                tip,
                tip_height,
                found,
                on_main_chain,
                chain_tip,
                chain_height,
                covers_seen,
            });
            Ok(())
        })?;
        out.ok_or_else(|| corrupt("snapshot", "not read"))
    }

    /// The stored tip, if the store is initialised.
    pub fn tip(&self) -> Result<Option<BlockId>, StoreError> {
        self.kv
            .get(Column::Meta, META_TIP)?
            .map(|v| decode(&v, 32).map_err(|e| corrupt("tip", e)))
            .transpose()
    }

    /// The indexes' own tip (`indexer`): `None` in a store made before they had one.
    pub fn index_tip(&self) -> Result<Option<BlockId>, StoreError> {
        index_tip_of(self.kv.as_ref())
    }

    /// The blocks invalidated by hand (`chain_invalidateBlock`) and not reconsidered.
    pub fn manual_invalid(&self) -> Result<Vec<BlockId>, StoreError> {
        Ok(self
            .kv
            .get(Column::Meta, META_MANUAL_INVALID)?
            .map(|v| decode(&v, v.len().max(8)).map_err(|e| corrupt("manual_invalid", e)))
            .transpose()?
            .unwrap_or_default())
    }

    /// Every stored header entry (loaded into the chain manager's index at start).
    pub fn all_headers(&self) -> Result<Vec<(BlockId, HeaderEntry)>, StoreError> {
        let mut out = Vec::new();
        let mut err = None;
        self.kv.scan_prefix(Column::Headers, &[], &mut |k, v| {
            match (k.try_into(), decode::<HeaderEntry>(v, 256)) {
                (Ok(k), Ok(e)) => out.push((BlockId::from_bytes(k), e)),
                (_, Err(e)) => {
                    err = Some(corrupt("header entry", e));
                    return false;
                }
                (Err(_), _) => {
                    err = Some(corrupt("header key", "not 32 bytes"));
                    return false;
                }
            }
            true
        })?;
        match err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Every account in address order (for the state digest and checks).
    pub fn for_each_account(&self, mut f: impl FnMut(Address, Account)) -> Result<(), StoreError> {
        let mut err = None;
        self.kv.scan_prefix(Column::Accounts, &[], &mut |k, v| match (
            <[u8; 32]>::try_from(k),
            decode::<Account>(v, 16),
        ) {
            (Ok(k), Ok(a)) => {
                f(Address::from_bytes(k), a);
                true
            }
            _ => {
                err = Some(corrupt("account entry", "undecodable"));
                false
            }
        })?;
        err.map_or(Ok(()), Err)
    }

    /// Page `skip / limit` of `address`'s history, newest first, read from one snapshot so
    /// the count, the entries and the index tip they were written up to agree whatever is
    /// written meanwhile. `tip_height` is the index tip's height (the indexes follow the
    /// chain on their own thread, `indexer`; a store without an index tip is indexed to
    /// the chain's tip). No lock: costs one seek plus `skip + limit` index steps, and per
    /// entry one tx-index read and one body read (a body read once per page however many
    /// entries it holds).
    pub fn history_page(
        &self,
        address: &Address,
        skip: u64,
        limit: usize,
    ) -> Result<HistoryPage, StoreError> {
        let mut page = HistoryPage::default();
        self.kv.with_snapshot(&mut |kv| {
            page = HistoryPage::default();
            let Some((tip, height)) = indexed_tip_of(kv)? else { return Ok(()) };
            (page.tip, page.tip_height) = (tip, height);
            page.total = count_of(kv, address)?;
            let mut entries = Vec::with_capacity(limit);
            let mut skipped = 0;
            kv.scan_prefix_rev(Column::AddrIndex, address.as_bytes(), &mut |k, v| {
                if skipped < skip {
                    skipped += 1;
                    return true;
                }
                if let (Ok(k), Ok(v)) = (<[u8; 44]>::try_from(k), <[u8; 32]>::try_from(v)) {
                    let height = u64::from_be_bytes(k[32..40].try_into().expect("8 bytes"));
                    let pos = u32::from_be_bytes(k[40..44].try_into().expect("4 bytes"));
                    entries.push((height, pos, Txid::from_bytes(v)));
                }
                entries.len() < limit
            })?;
            // The block of each entry comes from the tx index, written with the entry, not
            // from the main chain, which may be ahead of the indexes or on another branch.
            // Entries come height by height, so one body is held at a time.
            let mut current: Option<(BlockId, Vec<u8>)> = None;
            for (height, pos, txid) in entries {
                let loc = kv
                    .get(Column::TxIndex, txid.as_bytes())?
                    .ok_or_else(|| corrupt("history", format!("{txid} not in the tx index")))?;
                let loc: TxLocation = decode(&loc, 64).map_err(|e| corrupt("tx index", e))?;
                if loc.height != height || loc.position != pos {
                    return Err(corrupt("history", format!("{txid} indexed elsewhere")));
                }
                if current.as_ref().is_none_or(|(id, _)| *id != loc.block) {
                    let body = kv.get(Column::Bodies, loc.block.as_bytes())?.ok_or_else(|| {
                        corrupt("history", format!("body of {} missing", loc.block))
                    })?;
                    current = Some((loc.block, body));
                }
                let (block, body) = current.as_ref().expect("set above");
                let tx = tx_at(body, pos as usize)
                    .filter(|tx| tx.txid() == txid)
                    .ok_or_else(|| corrupt("history", format!("{txid} not at {block}:{pos}")))?;
                page.items.push(HistoryItem { height, block: *block, tx });
            }
            Ok(())
        })?;
        Ok(page)
    }

    /// The digest of every account and their total balance at one tip, read from a
    /// snapshot without any lock: one scan of the accounts, on the caller's thread.
    pub fn state_summary(&self) -> Result<StateSummary, StoreError> {
        let mut out = None;
        self.kv.with_snapshot(&mut |kv| {
            let (tip, height) = tip_of(kv)?.ok_or_else(|| corrupt("meta", "no tip"))?;
            let mut h = StateHasher::default();
            let mut supply_units: u128 = 0;
            let mut bad = false;
            kv.scan_prefix(Column::Accounts, &[], &mut |k, v| match (
                <[u8; 32]>::try_from(k),
                decode::<Account>(v, 16),
            ) {
                (Ok(k), Ok(a)) => {
                    supply_units += u128::from(a.balance.units());
                    h.add(&Address::from_bytes(k), &a);
                    true
                }
                _ => {
                    bad = true;
                    false
                }
            })?;
            if bad {
                return Err(corrupt("account entry", "undecodable"));
            }
            out = Some(StateSummary { height, tip, digest: h.finish(), supply_units });
            Ok(())
        })?;
        out.ok_or_else(|| corrupt("snapshot", "not read"))
    }

    /// Writes every address's history count when the store was made before
    /// [`Column::AddrCount`] existed (one scan of the address index, once).
    pub fn ensure_history_counts(&self) -> Result<(), StoreError> {
        if self.kv.get(Column::Meta, META_ADDR_COUNTS)?.is_some() {
            return Ok(());
        }
        let mut counts: std::collections::BTreeMap<Vec<u8>, i64> = Default::default();
        self.kv.scan_prefix(Column::AddrIndex, &[], &mut |k, _| {
            if k.len() == 44 {
                *counts.entry(k[..32].to_vec()).or_default() += 1;
            }
            true
        })?;
        let mut b = Batch::new();
        for (addr, n) in counts {
            b.ops.push((Column::AddrCount, addr, Change::Put(n.to_le_bytes().to_vec())));
        }
        b.ops.push((Column::Meta, META_ADDR_COUNTS.to_vec(), Change::Put(vec![1])));
        self.write(b)
    }

    pub fn write(&self, batch: Batch) -> Result<(), StoreError> {
        self.kv.write(batch.ops)
    }

    pub fn flush(&self) -> Result<(), StoreError> {
        self.kv.flush()
    }
}

/// Typed writes collected for one atomic [`ChainStore::write`].
#[derive(Default)]
pub struct Batch {
    ops: Vec<Op>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn len(&self) -> usize {
        self.ops.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
    /// Marks a fresh store as this network's (schema version, network name, genesis).
    pub fn init_meta(&mut self, params: &ChainParams) {
        self.ops.push((Column::Meta, META_SCHEMA.to_vec(), Change::Put(encode(&SCHEMA_VERSION))));
        self.ops.push((
            Column::Meta,
            META_GENESIS.to_vec(),
            Change::Put(encode(&params.genesis_id())),
        ));
        self.ops.push((
            Column::Meta,
            META_NETWORK.to_vec(),
            Change::Put(params.network.name().as_bytes().to_vec()),
        ));
        self.ops.push((Column::Meta, META_ADDR_COUNTS.to_vec(), Change::Put(vec![1])));
    }
    pub fn put_header(&mut self, id: &BlockId, entry: &HeaderEntry) {
        self.ops.push((Column::Headers, id.as_bytes().to_vec(), Change::Put(encode(entry))));
    }
    pub fn put_body(&mut self, id: &BlockId, txs: &Vec<Transaction>) {
        let mut bytes = Vec::with_capacity(8 + txs.len() * TX_ENCODED_LEN);
        bytes.extend_from_slice(&encode(txs));
        self.ops.push((Column::Bodies, id.as_bytes().to_vec(), Change::Put(bytes)));
    }
    pub fn set_main(&mut self, height: u64, id: Option<&BlockId>) {
        self.ops.push((
            Column::MainChain,
            height.to_be_bytes().to_vec(),
            Change::from(id.map(encode)),
        ));
    }
    pub fn put_account(&mut self, address: &Address, account: &Account) {
        let value = if account.is_empty() { None } else { Some(encode(account)) };
        self.ops.push((Column::Accounts, address.as_bytes().to_vec(), Change::from(value)));
    }
    pub fn put_undo(&mut self, id: &BlockId, undo: Option<&Undo>) {
        self.ops.push((Column::Undo, id.as_bytes().to_vec(), Change::from(undo.map(encode))));
    }
    pub fn put_tx_location(&mut self, txid: &Txid, loc: Option<&TxLocation>) {
        self.ops.push((Column::TxIndex, txid.as_bytes().to_vec(), Change::from(loc.map(encode))));
    }
    pub fn put_history(&mut self, address: &Address, height: u64, pos: u32, txid: Option<&Txid>) {
        let mut key = Vec::with_capacity(44);
        key.extend_from_slice(address.as_bytes());
        key.extend_from_slice(&height.to_be_bytes());
        key.extend_from_slice(&pos.to_be_bytes());
        self.ops.push((Column::AddrIndex, key, Change::from(txid.map(|t| t.as_bytes().to_vec()))));
    }
    /// Adds `n` (±1 per entry put or deleted) to `address`'s history count, blind: no read.
    pub fn add_history_count(&mut self, address: &Address, n: i64) {
        self.ops.push((Column::AddrCount, address.as_bytes().to_vec(), Change::Add(n)));
    }
    pub fn set_manual_invalid(&mut self, ids: &Vec<BlockId>) {
        self.ops.push((Column::Meta, META_MANUAL_INVALID.to_vec(), Change::Put(encode(ids))));
    }
    pub fn set_tip(&mut self, id: &BlockId) {
        self.ops.push((Column::Meta, META_TIP.to_vec(), Change::Put(encode(id))));
    }
    /// Moves the indexes' own tip (see `indexer`): written with their entries.
    pub fn set_index_tip(&mut self, id: &BlockId) {
        self.ops.push((Column::Meta, META_INDEX_TIP.to_vec(), Change::Put(encode(id))));
    }
}
