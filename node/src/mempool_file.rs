//! `<data dir>/mempool.dat`: the pending payments kept across restarts (Bitcoin Core's
//! `mempool.dat`).
//!
//! The node writes the file on a clean shutdown and once a minute while it runs, so a crash
//! loses at most what arrived since the last write. At start it reads the file back and
//! re-admits every payment through the normal admission, signature included
//! ([`crate::Node::restore_mempool`]): the file is a list of candidates, never trusted.
//!
//! # Format (version 1), all integers little-endian
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `EMBMPOOL` |
//! | 4 | version, `1` |
//! | 32 | genesis id of the chain the payments are for |
//! | 8 | count `n` (at most [`MAX_ENTRIES`]) |
//! | `n` × 192 | per payment: arrival time (unix ms, 8) then the encoded transaction (184) |
//! | 32 | sha256 of every byte before it |
//!
//! The length must be exactly what the count says, and the count is checked against
//! [`MAX_ENTRIES`] before anything is allocated. A file that is not exactly this (truncated,
//! another version, another chain, a bad checksum, a transaction that does not decode) is
//! refused whole: the node renames it to `mempool.dat.corrupt` for inspection, logs why, and
//! starts with an empty pool. Written atomically ([`crate::atomic_file::write`]): a crash
//! while writing leaves the previous file.

use crate::atomic_file;
use ember_core::tx::TX_ENCODED_LEN;
use ember_core::{BlockId, Transaction};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The file's name in the data dir.
pub const FILE_NAME: &str = "mempool.dat";
/// Where a file that cannot be read is moved.
pub const CORRUPT_NAME: &str = "mempool.dat.corrupt";
/// The format written (and the only one read).
pub const VERSION: u32 = 1;
/// Most payments a file may hold: the largest mempool `--mempool-max-txs` allows.
pub const MAX_ENTRIES: u64 = 1_000_000;

const MAGIC: &[u8; 8] = b"EMBMPOOL";
const HEADER_LEN: usize = 8 + 4 + 32 + 8;
const ENTRY_LEN: usize = 8 + TX_ENCODED_LEN;
const CHECKSUM_LEN: usize = 32;

/// A pending payment as saved: the transaction and when it arrived (unix ms), so that
/// expiry still counts from its first arrival after a restart.
pub type SavedTx = (Transaction, u64);

/// Why a `mempool.dat` was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MempoolFileError {
    /// Fewer bytes than the header and checksum alone.
    #[error("the file is {0} bytes, too short to be a mempool file")]
    TooShort(usize),
    /// Not a mempool file at all.
    #[error("the file does not start with the mempool file magic")]
    BadMagic,
    /// Written by another version of the node.
    #[error("format version {0} is not supported (this node reads version {VERSION})")]
    UnsupportedVersion(u32),
    /// The payments are for another chain (the data dir was reused with another genesis).
    #[error("the payments are for chain {found}, not this node's {expected}")]
    OtherChain { found: BlockId, expected: BlockId },
    /// More payments than any mempool holds.
    #[error("the file claims {0} payments, more than the {MAX_ENTRIES} a mempool may hold")]
    TooMany(u64),
    /// The length disagrees with the count (truncated, or bytes appended).
    #[error("the file is {got} bytes but {count} payments need exactly {expected}")]
    Length { count: u64, expected: usize, got: usize },
    /// The checksum does not match the contents.
    #[error("the checksum does not match: the file is damaged")]
    Checksum,
    /// A payment that does not decode (cannot happen with a matching checksum, unless the
    /// writer was broken).
    #[error("payment {index} does not decode: {reason}")]
    BadTx { index: usize, reason: String },
}

/// Encodes the payments of chain `genesis` in the file format.
pub fn encode(genesis: BlockId, txs: &[SavedTx]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + txs.len() * ENTRY_LEN + CHECKSUM_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(genesis.as_bytes());
    out.extend_from_slice(&(txs.len() as u64).to_le_bytes());
    for (tx, arrival_ms) in txs {
        out.extend_from_slice(&arrival_ms.to_le_bytes());
        out.extend_from_slice(&tx.encode());
    }
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}

/// Decodes a file written by [`encode`] for chain `genesis`, refusing anything else whole.
pub fn decode(bytes: &[u8], genesis: BlockId) -> Result<Vec<SavedTx>, MempoolFileError> {
    if bytes.len() < HEADER_LEN + CHECKSUM_LEN {
        return Err(MempoolFileError::TooShort(bytes.len()));
    }
    if &bytes[..8] != MAGIC {
        return Err(MempoolFileError::BadMagic);
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(MempoolFileError::UnsupportedVersion(version));
    }
    let found = BlockId::from_bytes(bytes[12..44].try_into().expect("32 bytes"));
    if found != genesis {
        return Err(MempoolFileError::OtherChain { found, expected: genesis });
    }
    let count = u64::from_le_bytes(bytes[44..52].try_into().expect("8 bytes"));
    // The count is bounded before it sizes anything.
    if count > MAX_ENTRIES {
        return Err(MempoolFileError::TooMany(count));
    }
    let expected = HEADER_LEN + count as usize * ENTRY_LEN + CHECKSUM_LEN;
    if bytes.len() != expected {
        return Err(MempoolFileError::Length { count, expected, got: bytes.len() });
    }
    let (body, sum) = bytes.split_at(expected - CHECKSUM_LEN);
    if Sha256::digest(body).as_slice() != sum {
        return Err(MempoolFileError::Checksum);
    }
    body[HEADER_LEN..]
        .chunks_exact(ENTRY_LEN)
        .enumerate()
        .map(|(index, entry)| {
            let arrival_ms = u64::from_le_bytes(entry[..8].try_into().expect("8 bytes"));
            let tx = Transaction::decode(&entry[8..])
                .map_err(|e| MempoolFileError::BadTx { index, reason: e.to_string() })?;
            Ok((tx, arrival_ms))
        })
        .collect()
}

/// What [`load`] found in the data dir.
#[derive(Debug)]
pub enum Loaded {
    /// No file: a first start, or the node never stopped cleanly nor ran a minute.
    Missing,
    /// The saved payments, still to be re-admitted.
    Saved(Vec<SavedTx>),
    /// The file could not be used; it was moved to `moved_to` (when the rename worked).
    Corrupt { reason: String, moved_to: Option<PathBuf> },
}

/// Reads `<data_dir>/mempool.dat` for chain `genesis`. A file that cannot be used is
/// renamed to `mempool.dat.corrupt` (replacing an older one), so the next save does not
/// destroy the evidence and the next start does not trip over it again.
pub fn load(data_dir: &Path, genesis: BlockId) -> Loaded {
    let path = data_dir.join(FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::Missing,
        Err(e) => return corrupt(&path, data_dir, format!("cannot read it: {e}")),
    };
    match decode(&bytes, genesis) {
        Ok(txs) => Loaded::Saved(txs),
        Err(e) => corrupt(&path, data_dir, e.to_string()),
    }
}

fn corrupt(path: &Path, data_dir: &Path, reason: String) -> Loaded {
    let aside = data_dir.join(CORRUPT_NAME);
    let moved_to = std::fs::rename(path, &aside).ok().map(|()| aside);
    Loaded::Corrupt { reason, moved_to }
}

/// Writes the payments of chain `genesis` to `<data_dir>/mempool.dat`, atomically.
pub fn save(data_dir: &Path, genesis: BlockId, txs: &[SavedTx]) -> std::io::Result<()> {
    atomic_file::write(&data_dir.join(FILE_NAME), &encode(genesis, txs), 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_core::testkit;
    use ember_core::{ChainParams, Keypair};
    use proptest::prelude::*;

    fn sample(n: usize) -> (BlockId, Vec<SavedTx>) {
        let params = ChainParams::devnet();
        let from = Keypair::from_secret_bytes([7; 32]);
        let to = Keypair::from_secret_bytes([8; 32]).address();
        let txs = (0..n)
            .map(|i| (testkit::pay(&params, &from, to, 5, 10, i as u64), 1_000 + i as u64))
            .collect();
        (params.genesis_id(), txs)
    }

    #[test]
    fn a_saved_pool_reads_back_the_same() {
        for n in [0, 1, 3] {
            let (genesis, txs) = sample(n);
            let bytes = encode(genesis, &txs);
            assert_eq!(bytes.len(), HEADER_LEN + n * ENTRY_LEN + CHECKSUM_LEN);
            assert_eq!(decode(&bytes, genesis).unwrap(), txs);
        }
    }

    #[test]
    fn every_kind_of_damage_is_refused() {
        let (genesis, txs) = sample(2);
        let good = encode(genesis, &txs);
        let err = |bytes: &[u8]| decode(bytes, genesis).unwrap_err();
        assert_eq!(err(&good[..10]), MempoolFileError::TooShort(10));
        let mut b = good.clone();
        b[0] = b'X';
        assert_eq!(err(&b), MempoolFileError::BadMagic);
        let mut b = good.clone();
        b[8] = 2;
        assert_eq!(err(&b), MempoolFileError::UnsupportedVersion(2));
        let other = ChainParams::testnet().genesis_id();
        assert!(matches!(decode(&good, other), Err(MempoolFileError::OtherChain { .. })));
        let mut b = good.clone();
        b[44..52].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(err(&b), MempoolFileError::TooMany(u64::MAX));
        assert!(matches!(err(&good[..good.len() - 1]), MempoolFileError::Length { .. }));
        let mut b = good.clone();
        b.push(0);
        assert!(matches!(err(&b), MempoolFileError::Length { .. }));
        let mut b = good.clone();
        b[HEADER_LEN + 20] ^= 1;
        assert_eq!(err(&b), MempoolFileError::Checksum);
    }

    #[test]
    fn a_corrupt_file_is_moved_aside_and_a_missing_one_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let (genesis, txs) = sample(3);
        assert!(matches!(load(dir.path(), genesis), Loaded::Missing));
        save(dir.path(), genesis, &txs).unwrap();
        match load(dir.path(), genesis) {
            Loaded::Saved(back) => assert_eq!(back, txs),
            other => panic!("{other:?}"),
        }
        std::fs::write(dir.path().join(FILE_NAME), b"garbage").unwrap();
        match load(dir.path(), genesis) {
            Loaded::Corrupt { reason, moved_to } => {
                assert!(reason.contains("too short"), "{reason}");
                assert_eq!(moved_to, Some(dir.path().join(CORRUPT_NAME)));
            }
            other => panic!("{other:?}"),
        }
        assert!(!dir.path().join(FILE_NAME).exists());
        assert_eq!(std::fs::read(dir.path().join(CORRUPT_NAME)).unwrap(), b"garbage");
    }

    proptest! {
        /// No input makes the reader panic or allocate by a claimed count.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode(&bytes, ChainParams::devnet().genesis_id());
        }

        /// Any single flipped bit of a good file is refused.
        #[test]
        fn a_flipped_bit_is_refused(n in 0usize..4, pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let (genesis, txs) = sample(n);
            let mut bytes = encode(genesis, &txs);
            let i = pos.index(bytes.len());
            bytes[i] ^= 1 << bit;
            prop_assert!(decode(&bytes, genesis).is_err());
        }
    }
}
