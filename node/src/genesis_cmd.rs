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
        if amount.trim().parse::<ember_core::Amount>().is_ok_and(|a| a == ember_core::Amount::ZERO)
        {
            bail!("--alloc {a:?}: a prefunded amount must be more than 0");
        }
        allocations
            .push(AllocationSpec { address: address.trim().into(), amount: amount.trim().into() });
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_millis() as u64;
    let time_ms = args.time_ms.unwrap_or(now);
    // No block may be more than max_future_ms ahead of a node's clock, nor older than the
    // genesis: a genesis in the future stops every miner until then.
    let max_future = ChainParams::devnet().max_future_ms.min(ChainParams::testnet().max_future_ms);
    if time_ms > now.saturating_add(max_future) {
        bail!(
            "--time-ms {time_ms} is {} s in the future: no block could follow it until then; \
             leave --time-ms out (now) or give a past time",
            (time_ms - now) / 1000
        );
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> GenesisArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrap {
            #[command(flatten)]
            g: GenesisArgs,
        }
        let mut all = vec!["genesis"];
        all.extend_from_slice(extra);
        Wrap::parse_from(all).g
    }

    #[test]
    fn a_spec_is_checked_before_it_is_written() {
        let (json, id) =
            build(&args(&["--dev-accounts", "--note", "t", "--time-ms", "1"])).unwrap();
        let spec = GenesisSpec::from_json(&json).unwrap();
        assert_eq!(ChainParams::from_spec(&spec).unwrap().genesis_id(), id);
        assert_eq!(spec.allocations.len(), 10);
        for (bad, why) in [
            (&["--time-ms", "18446744073709551615"][..], "in the future"),
            (&["--alloc", "nonsense"][..], "ADDRESS=COINS"),
            (&["--network", "testnet", "--dev-accounts"][..], "devnet only"),
            (&["--note", &"x".repeat(300)][..], "256 bytes"),
        ] {
            let e = build(&args(bad)).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        let zero = format!("{}=0", ember_wallet_free_address());
        let e = build(&args(&["--alloc", &zero])).unwrap_err().to_string();
        assert!(e.contains("more than 0"), "{e}");
    }

    /// Dev account 0's devnet address, from the built-in genesis.
    fn ember_wallet_free_address() -> String {
        GenesisSpec::from_json(DEVNET_GENESIS_JSON).unwrap().allocations[0].address.clone()
    }
}
