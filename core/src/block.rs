//! Blocks: a header that is hashed and mined, and the transactions it commits to.
//!
//! `BlockId = sha256d(encode(header))`. `tx_root` is a merkle root over the txids with
//! RFC 6962-style domain separation (leaf = `sha256(0x00 || txid)`, node =
//! `sha256(0x01 || left || right)`, an odd node is carried up unchanged). Unlike Bitcoin's
//! duplicate-the-last-node tree, no two different txid lists share a root, so a block body
//! cannot be mutated into another with the same id.
//!
//! The root commits to txids, which do not cover signatures. A body whose signatures were
//! replaced in flight therefore has the right id but is invalid; the node must treat such a
//! failure as a bad copy from a peer, not as a verdict on the block id (see
//! [`crate::validate::BlockError::is_body_malleation`]).

use crate::address::Address;
use crate::encoding;
use crate::hash::{sha256, sha256d, BlockId, Hash, Txid};
use crate::pow::CompactTarget;
use crate::tx::{Transaction, TX_ENCODED_LEN};
use bincode::{Decode, Encode};

/// Current header version.
pub const BLOCK_VERSION: u32 = 1;
/// Size in bytes of every encoded header.
pub const HEADER_ENCODED_LEN: usize = 4 + 8 + 32 + 32 + 8 + 4 + 8 + 32;

/// The mined part of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub struct BlockHeader {
    pub version: u32,
    /// Number of blocks before this one (genesis is 0).
    pub height: u64,
    /// Id of the parent block; zero for genesis.
    pub prev: BlockId,
    /// Merkle root of the txids (for genesis: the commitment to its allocations).
    pub tx_root: Hash,
    /// Unix time in milliseconds.
    pub time: u64,
    /// The target this header's id must meet, in compact form.
    pub target: CompactTarget,
    pub nonce: u64,
    /// Credited with the subsidy and the fees.
    pub miner: Address,
}

impl BlockHeader {
    pub fn id(&self) -> BlockId {
        BlockId::from_hash(sha256d(&encoding::encode(self)))
    }
    pub fn encode(&self) -> Vec<u8> {
        encoding::encode(self)
    }
    pub fn decode(bytes: &[u8]) -> Result<Self, encoding::DecodeError> {
        encoding::decode(bytes, HEADER_ENCODED_LEN)
    }
}

/// A header and its transactions.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Block {
    pub header: BlockHeader,
    pub txs: Vec<Transaction>,
}

impl Block {
    pub fn id(&self) -> BlockId {
        self.header.id()
    }
    pub fn encode(&self) -> Vec<u8> {
        encoding::encode(self)
    }
    /// Decodes a block no larger than `max_bytes`.
    pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<Self, encoding::DecodeError> {
        encoding::decode(bytes, max_bytes)
    }
    /// Encoded size, computed from the fixed field widths without encoding.
    pub fn encoded_len(&self) -> usize {
        HEADER_ENCODED_LEN + 8 + self.txs.len() * TX_ENCODED_LEN
    }
    /// The merkle root of this block's txids.
    pub fn compute_tx_root(&self) -> Hash {
        let ids: Vec<Txid> = self.txs.iter().map(Transaction::txid).collect();
        merkle_root(&ids)
    }
}

/// Most transactions that fit in a block of `max_bytes`.
pub const fn max_txs_for(max_bytes: usize) -> usize {
    max_bytes.saturating_sub(HEADER_ENCODED_LEN + 8) / TX_ENCODED_LEN
}

/// Merkle root over txids; [`Hash::ZERO`] for an empty list.
pub fn merkle_root(txids: &[Txid]) -> Hash {
    if txids.is_empty() {
        return Hash::ZERO;
    }
    let mut level: Vec<Hash> = txids.iter().map(|t| sha256(&[&[0u8], t.as_bytes()])).collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => sha256(&[&[1u8], l.as_bytes(), r.as_bytes()]),
                [single] => *single,
                _ => unreachable!("chunks(2) yields one or two items"),
            })
            .collect();
    }
    level[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u8) -> Vec<Txid> {
        (0..n).map(|i| Txid::from_bytes([i; 32])).collect()
    }

    #[test]
    fn header_len_is_fixed() {
        let h = BlockHeader {
            version: 1,
            height: 0,
            prev: BlockId::ZERO,
            tx_root: Hash::ZERO,
            time: 0,
            target: CompactTarget(0x207fffff),
            nonce: 0,
            miner: Address::default(),
        };
        assert_eq!(h.encode().len(), HEADER_ENCODED_LEN);
        let b = Block { header: h, txs: vec![] };
        assert_eq!(b.encode().len(), b.encoded_len());
    }

    #[test]
    fn merkle_root_shapes() {
        assert_eq!(merkle_root(&[]), Hash::ZERO);
        let one = ids(1);
        assert_eq!(merkle_root(&one), sha256(&[&[0], one[0].as_bytes()]));
        // Every prefix length gives a distinct root, and order matters.
        let all = ids(9);
        let roots: std::collections::HashSet<Hash> =
            (1..=9).map(|n| merkle_root(&all[..n])).collect();
        assert_eq!(roots.len(), 9);
        let mut swapped = ids(4);
        swapped.swap(0, 1);
        assert_ne!(merkle_root(&swapped), merkle_root(&ids(4)));
    }

    #[test]
    fn duplicating_the_last_txid_changes_the_root() {
        // The mutation behind Bitcoin's CVE-2012-2459 must not keep the root.
        let three = ids(3);
        let mut four = three.clone();
        four.push(three[2]);
        assert_ne!(merkle_root(&three), merkle_root(&four));
    }
}
