//! `ember-node genesis`: writes the genesis spec of a new network, the one file every host
//! of that network then passes with `--genesis` (see README, "Run across machines").
//!
//! The spec is checked exactly as a node will read it ([`ChainParams::from_spec`]) before
//! it is written, and its genesis id is printed, so hosts can compare one short value.

use anyhow::{bail, Context};
use clap::Args;
use ember_core::params::{AllocationSpec, DEVNET_GENESIS_JSON};
use ember_core::{ChainParams, GenesisSpec, Network};
use std::path::PathBuf;

/// `ember-node genesis` options.
#[derive(Args, Debug)]
pub struct GenesisArgs {
    /// Network rules of the new chain (devnet: easy fixed proof of work; testnet: ASERT).
    #[arg(long, value_enum, default_value = "devnet")]
    pub network: crate::config::NetworkArg,
    /// A prefunded account, ADDRESS=COINS (repeatable), e.g.
    /// `edev1...=1000000` (decimal coins, at most 8 decimals).
    #[arg(long = "alloc", value_name = "ADDRESS=COINS")]
    pub allocations: Vec<String>,
    /// Also prefund the accounts of the public dev mnemonic, as the built-in devnet does
    /// (devnet only: anyone can spend them).
    #[arg(long)]
    pub dev_accounts: bool,
    /// Free text committed to by the genesis id, at most 256 bytes. Left out, a random tag,
    /// so that every new spec is a network of its own.
    #[arg(long)]
    pub note: Option<String>,
    /// Genesis time, unix milliseconds (the current time when left out).
    #[arg(long)]
    pub time_ms: Option<u64>,
    /// Write the spec to FILE instead of stdout (refused when FILE exists, unless --force).
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace FILE when it exists.
    #[arg(long)]
    pub force: bool,
}

/// Builds and checks the spec: its JSON text and genesis id. An error is bad input (exit
/// code 2).
pub fn build(args: &GenesisArgs) -> anyhow::Result<(String, ember_core::BlockId)> {
    let network: Network = args.network.into();
    let mut allocations = Vec::new();
    if args.dev_accounts {
        if network != Network::Devnet {
            bail!("--dev-accounts is for devnet only: the dev mnemonic's keys are public");
        }
        let builtin = GenesisSpec::from_json(DEVNET_GENESIS_JSON).expect("built-in genesis");
        allocations.extend(builtin.allocations);
    }
    for a in &args.allocations {
        let (address, amount) = a.split_once('=').with_context(|| {
            format!(
                "--alloc {a:?}: expected ADDRESS=COINS, e.g. --alloc {}1...=1000",
                network.hrp()
            )
        })?;
        allocations
            .push(AllocationSpec { address: address.trim().into(), amount: amount.trim().into() });
    }
    let time_ms = match args.time_ms {
        Some(t) => t,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .context("the system clock is before 1970")?
            .as_millis() as u64,
    };
    let note = args.note.clone().unwrap_or_else(|| {
        let mut tag = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut tag);
        format!("ember {} {}", network.name(), hex::encode(tag))
    });
    let spec = GenesisSpec { network, time_ms, note, allocations };
    let params = ChainParams::from_spec(&spec)
        .map_err(|e| anyhow::anyhow!("{e}; fix the --alloc or --note values"))?;
    Ok((spec.to_json(), params.genesis_id()))
}

/// Writes the spec where `--out` says (or refuses to replace a file without `--force`).
/// An error is exit code 1, except an existing file (2).
pub fn write(args: &GenesisArgs, path: &std::path::Path, json: &str) -> anyhow::Result<()> {
    if path.exists() && !args.force {
        bail!(
            "{} exists; pass --force to replace it (nodes started with the old spec will no \
             longer connect to ones started with the new)",
            path.display()
        );
    }
    crate::atomic_file::write(path, format!("{json}\n").as_bytes(), 0o644)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}
