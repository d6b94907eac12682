//! Chain parameters: everything that differs between networks, in one [`ChainParams`] value.
//!
//! The genesis block identifies a network everywhere: its id is in every signed transaction
//! and in the P2P handshake. A genesis is made from a [`GenesisSpec`] (JSON): a time, a free
//! note, and prefunded allocations. The genesis header commits to the allocations and the
//! note through its `tx_root`, so two specs that differ in any way are two networks.

use crate::address::Address;
use crate::amount::Amount;
use crate::block::{Block, BlockHeader, BLOCK_VERSION};
use crate::encoding;
use crate::hash::{sha256, BlockId, Hash};
use crate::pow::{Asert, CompactTarget};
use crate::state::{Account, MemState};
use primitive_types::U256;
use std::fmt;
use std::str::FromStr;

/// Which network a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// Local development: easiest target, no retargeting, blocks on request.
    Devnet,
    /// Public test network: real retargeting, 10 s spacing.
    Testnet,
}

impl Network {
    pub fn name(self) -> &'static str {
        match self {
            Network::Devnet => "devnet",
            Network::Testnet => "testnet",
        }
    }
    /// The bech32m human-readable prefix of its addresses.
    pub fn hrp(self) -> &'static str {
        match self {
            Network::Devnet => "edev",
            Network::Testnet => "etest",
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Network {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "devnet" => Ok(Network::Devnet),
            "testnet" => Ok(Network::Testnet),
            other => Err(format!("unknown network {other:?} (expected devnet or testnet)")),
        }
    }
}

/// A prefunded account in a genesis spec.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllocationSpec {
    /// bech32m address of the network.
    pub address: String,
    /// Decimal coins, e.g. "1000000".
    pub amount: String,
}

/// The genesis file format.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisSpec {
    pub network: Network,
    /// Unix time of the genesis block in milliseconds.
    pub time_ms: u64,
    /// Free text committed to by the genesis id (the testnet tool puts a random tag here so
    /// every fresh devnet is a network of its own).
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub allocations: Vec<AllocationSpec>,
}

/// Why a genesis spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    #[error("genesis file is not valid JSON of the expected shape: {0}")]
    Parse(String),
    #[error("allocation {index}: {reason}")]
    Allocation { index: usize, reason: String },
    #[error("allocation {index}: address {address} is listed twice")]
    Duplicate { index: usize, address: String },
    #[error("allocations add up to more than the largest possible amount")]
    Overflow,
    #[error("genesis notes are limited to 256 bytes")]
    NoteTooLong,
    #[error("genesis time {0} ms is after the year 9999; give unix milliseconds")]
    TimeTooLate(u64),
}

/// Latest genesis time accepted: the last millisecond of the year 9999 (a later one leaves
/// no time for any block after it, and sums with it could overflow).
pub const MAX_GENESIS_TIME_MS: u64 = 253_402_300_799_999;

/// Domain tag of the genesis commitment.
const GENESIS_DOMAIN: &[u8] = b"ember/genesis/v1";

/// The parameters of one network.
#[derive(Debug, Clone)]
pub struct ChainParams {
    pub network: Network,
    /// Four bytes that start every P2P frame.
    pub magic: [u8; 4],
    genesis: Block,
    genesis_id: BlockId,
    allocations: Vec<(Address, Amount)>,
    /// The easiest target any block may have.
    pub pow_limit: CompactTarget,
    /// The genesis block's target, which anchors the retarget rule.
    pub initial_target: CompactTarget,
    /// Whether targets follow ASERT; devnet keeps every block at `pow_limit`.
    pub retarget: bool,
    pub target_spacing_ms: u64,
    /// ASERT half-life: the target doubles when the chain is this far behind schedule.
    pub half_life_ms: u64,
    /// Largest encoded block.
    pub max_block_bytes: usize,
    /// How far a block's time may be ahead of the validating node's clock.
    pub max_future_ms: u64,
    /// Number of previous blocks whose median time a new block must exceed.
    pub median_time_span: usize,
    pub initial_subsidy: Amount,
    /// Blocks between halvings of the subsidy.
    pub halving_interval: u64,
}

impl GenesisSpec {
    pub fn from_json(text: &str) -> Result<Self, GenesisError> {
        serde_json::from_str(text).map_err(|e| GenesisError::Parse(e.to_string()))
    }
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a spec always serialises")
    }
}

impl ChainParams {
    /// Parameters of a network with the given genesis.
    pub fn from_spec(spec: &GenesisSpec) -> Result<Self, GenesisError> {
        let hrp = spec.network.hrp();
        if spec.note.len() > 256 {
            return Err(GenesisError::NoteTooLong);
        }
        if spec.time_ms > MAX_GENESIS_TIME_MS {
            return Err(GenesisError::TimeTooLate(spec.time_ms));
        }
        let mut allocations = Vec::with_capacity(spec.allocations.len());
        let mut seen = std::collections::BTreeSet::new();
        for (index, a) in spec.allocations.iter().enumerate() {
            let address = Address::parse(&a.address, hrp)
                .map_err(|e| GenesisError::Allocation { index, reason: e.to_string() })?;
            let amount: Amount =
                a.amount.parse().map_err(|e: crate::amount::AmountParseError| {
                    GenesisError::Allocation { index, reason: e.to_string() }
                })?;
            if !seen.insert(address) {
                return Err(GenesisError::Duplicate { index, address: a.address.clone() });
            }
            allocations.push((address, amount));
        }
        Amount::checked_sum(allocations.iter().map(|(_, a)| *a)).ok_or(GenesisError::Overflow)?;

        let mut params = match spec.network {
            Network::Devnet => Self::devnet_rules(),
            Network::Testnet => Self::testnet_rules(),
        };
        let commitment =
            sha256(&[GENESIS_DOMAIN, &encoding::encode(&allocations), spec.note.as_bytes()]);
        let header = BlockHeader {
            version: BLOCK_VERSION,
            height: 0,
            prev: BlockId::ZERO,
            tx_root: commitment,
            time: spec.time_ms,
            target: params.initial_target,
            nonce: 0,
            miner: Address::default(),
        };
        params.genesis = Block { header, txs: Vec::new() };
        params.genesis_id = header.id();
        params.allocations = allocations;
        Ok(params)
    }

    /// The built-in devnet: prefunded accounts derived from the public dev mnemonic
    /// (see `docs/PROTOCOL.md`), so one command gives a usable chain.
    pub fn devnet() -> Self {
        let spec =
            GenesisSpec::from_json(DEVNET_GENESIS_JSON).expect("built-in devnet genesis parses");
        Self::from_spec(&spec).expect("built-in devnet genesis is valid")
    }

    /// The built-in public testnet.
    pub fn testnet() -> Self {
        let spec = GenesisSpec {
            network: Network::Testnet,
            time_ms: 1_764_000_000_000,
            note: "Ember testnet".into(),
            allocations: Vec::new(),
        };
        Self::from_spec(&spec).expect("built-in testnet genesis is valid")
    }

    fn devnet_rules() -> Self {
        ChainParams {
            network: Network::Devnet,
            magic: *b"EMBd",
            genesis: placeholder_genesis(),
            genesis_id: BlockId::ZERO,
            allocations: Vec::new(),
            // Half of all hashes meet it: blocks are made instantly, as on Bitcoin's regtest.
            pow_limit: CompactTarget(0x207f_ffff),
            initial_target: CompactTarget(0x207f_ffff),
            retarget: false,
            target_spacing_ms: 2_000,
            half_life_ms: 3_600_000,
            max_block_bytes: 2 * 1024 * 1024,
            max_future_ms: 120_000,
            median_time_span: 11,
            initial_subsidy: Amount::from_coins(50).expect("50 coins fit"),
            halving_interval: 2_100_000,
        }
    }

    fn testnet_rules() -> Self {
        ChainParams {
            network: Network::Testnet,
            magic: *b"EMBt",
            // The easiest target: 2^12 expected hashes per block.
            pow_limit: CompactTarget(0x1f0f_ffff),
            // 2^24 expected hashes at genesis: seconds on one CPU core; ASERT then follows
            // the real hash rate.
            initial_target: CompactTarget(0x1e00_ffff),
            retarget: true,
            target_spacing_ms: 10_000,
            ..Self::devnet_rules()
        }
    }

    pub fn genesis(&self) -> &Block {
        &self.genesis
    }
    /// The chain id.
    pub fn genesis_id(&self) -> BlockId {
        self.genesis_id
    }
    pub fn hrp(&self) -> &'static str {
        self.network.hrp()
    }
    pub fn allocations(&self) -> &[(Address, Amount)] {
        &self.allocations
    }
    /// The state right after genesis.
    pub fn genesis_state(&self) -> MemState {
        let mut s = MemState::new();
        for (a, amount) in &self.allocations {
            s.set(*a, Account { balance: *amount, nonce: 0 });
        }
        s
    }
    /// Sum of the genesis allocations.
    pub fn genesis_supply(&self) -> Amount {
        Amount::checked_sum(self.allocations.iter().map(|(_, a)| *a))
            .expect("checked at construction")
    }
    pub fn pow_limit_target(&self) -> U256 {
        self.pow_limit.expand().expect("pow_limit is a canonical compact target")
    }
    /// New coins credited to the miner of the block at `height`.
    pub fn subsidy(&self, height: u64) -> Amount {
        if height == 0 {
            return Amount::ZERO;
        }
        let halvings = height / self.halving_interval;
        if halvings >= 64 {
            return Amount::ZERO;
        }
        Amount::from_units(self.initial_subsidy.units() >> halvings)
    }
    /// Total coin that exists after the block at `height`: allocations plus subsidies.
    pub fn supply_at(&self, height: u64) -> Option<Amount> {
        let mut total = self.genesis_supply();
        let mut h = 1;
        while h <= height {
            let era_end = ((h / self.halving_interval) + 1) * self.halving_interval - 1;
            let last = era_end.min(height);
            let n = last - h + 1;
            let per = self.subsidy(h).units();
            total = total.checked_add(Amount::from_units(per.checked_mul(n)?))?;
            h = last + 1;
        }
        Some(total)
    }
    /// The ASERT rule anchored at this network's genesis.
    pub fn asert(&self) -> Asert {
        let g = &self.genesis.header;
        Asert {
            anchor_target: self.initial_target.expand().expect("initial target is canonical"),
            anchor_height: 0,
            anchor_parent_time_ms: g.time as i128 - self.target_spacing_ms as i128,
            spacing_ms: self.target_spacing_ms as i128,
            half_life_ms: self.half_life_ms as i128,
            pow_limit: self.pow_limit_target(),
        }
    }
    /// The target required of the child of `parent`.
    pub fn next_target(&self, parent: &BlockHeader) -> CompactTarget {
        if !self.retarget {
            return self.pow_limit;
        }
        CompactTarget::from_target(self.asert().next_target(parent.height, parent.time))
    }
}

fn placeholder_genesis() -> Block {
    // Replaced in `from_spec` before any `ChainParams` escapes.
    Block {
        header: BlockHeader {
            version: BLOCK_VERSION,
            height: 0,
            prev: BlockId::ZERO,
            tx_root: Hash::ZERO,
            time: 0,
            target: CompactTarget(0x207f_ffff),
            nonce: 0,
            miner: Address::default(),
        },
        txs: Vec::new(),
    }
}

/// The built-in devnet genesis (accounts of the public dev mnemonic).
pub const DEVNET_GENESIS_JSON: &str = include_str!("devnet-genesis.json");

/// The public development mnemonic whose first accounts the built-in devnet prefunds.
/// Anyone can spend them: never use it outside a local devnet.
pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_distinct_networks() {
        let d = ChainParams::devnet();
        let t = ChainParams::testnet();
        assert_ne!(d.genesis_id(), t.genesis_id());
        assert!(!d.allocations().is_empty());
        assert_eq!(d.genesis_state().total_balance(), Some(d.genesis_supply()));
    }

    #[test]
    fn genesis_commits_to_allocations_and_note() {
        let base = GenesisSpec::from_json(DEVNET_GENESIS_JSON).unwrap();
        let id = ChainParams::from_spec(&base).unwrap().genesis_id();
        let mut noted = base.clone();
        noted.note.push('x');
        assert_ne!(ChainParams::from_spec(&noted).unwrap().genesis_id(), id);
        let mut richer = base.clone();
        richer.allocations[0].amount = "1".into();
        assert_ne!(ChainParams::from_spec(&richer).unwrap().genesis_id(), id);
    }

    #[test]
    fn bad_specs_are_refused() {
        let base = GenesisSpec::from_json(DEVNET_GENESIS_JSON).unwrap();
        let mut dup = base.clone();
        dup.allocations.push(dup.allocations[0].clone());
        assert!(matches!(ChainParams::from_spec(&dup), Err(GenesisError::Duplicate { .. })));
        let mut wrong_net = base.clone();
        wrong_net.network = Network::Testnet;
        assert!(matches!(ChainParams::from_spec(&wrong_net), Err(GenesisError::Allocation { .. })));
        let mut bad_amount = base.clone();
        bad_amount.allocations[0].amount = "1.000000001".into();
        assert!(matches!(
            ChainParams::from_spec(&bad_amount),
            Err(GenesisError::Allocation { .. })
        ));
        let mut overflow = base;
        overflow.allocations[0].amount = "184467440737".into();
        overflow.allocations[1].amount = "184467440737".into();
        assert_eq!(ChainParams::from_spec(&overflow).unwrap_err(), GenesisError::Overflow);
        assert!(matches!(GenesisSpec::from_json("{"), Err(GenesisError::Parse(_))));
        assert!(matches!(
            GenesisSpec::from_json(r#"{"network":"devnet","time_ms":1,"bogus":1}"#),
            Err(GenesisError::Parse(_))
        ));
    }

    #[test]
    fn subsidy_halves_and_supply_adds_up() {
        let mut p = ChainParams::devnet();
        p.halving_interval = 10;
        assert_eq!(p.subsidy(0), Amount::ZERO);
        assert_eq!(p.subsidy(1), p.initial_subsidy);
        assert_eq!(p.subsidy(10).units(), p.initial_subsidy.units() / 2);
        let by_loop =
            (1..=35u64).map(|h| p.subsidy(h).units()).sum::<u64>() + p.genesis_supply().units();
        assert_eq!(p.supply_at(35).unwrap().units(), by_loop);
    }

    #[test]
    fn devnet_does_not_retarget_testnet_does() {
        let d = ChainParams::devnet();
        let mut h = d.genesis().header;
        h.time += 10_000_000;
        assert_eq!(d.next_target(&h), d.pow_limit);
        let t = ChainParams::testnet();
        let mut g = t.genesis().header;
        assert_eq!(t.next_target(&g), t.initial_target); // on schedule at the anchor
        g.time -= 3_600_000; // an hour ahead of schedule: harder
        assert!(t.next_target(&g).expand().unwrap() < t.initial_target.expand().unwrap());
    }
}
