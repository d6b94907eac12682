//! Writes the seed corpora of the fuzz targets (`fuzz/seeds/<target>/`): small valid
//! inputs the fuzzers start from (committed; `make fuzz` copies them into fuzz/corpus).
//!
//! Usage: cargo run --example fuzz_seeds -- [OUT_DIR]   (default: fuzz/seeds)

use ember_core::testkit::{child_block, keys, pay};
use ember_core::{Amount, ChainParams, Network};
use ember_wallet::{KdfParams, Keystore, Mnemonic, WriteMode};
use std::path::{Path, PathBuf};

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let d = dir.join(target);
    std::fs::create_dir_all(&d)?;
    std::fs::write(d.join(name), bytes)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args().nth(1).map_or_else(|| PathBuf::from("fuzz/seeds"), PathBuf::from);
    let params = ChainParams::devnet();
    let k = keys(3);
    let tx = pay(&params, &k[0], k[1].address(), 1_234_500_000, 1_000, 0);
    write(&out, "tx", "payment", &tx.encode())?;
    let genesis = params.genesis();
    write(&out, "block", "genesis", &genesis.encode())?;
    let txs = vec![tx, pay(&params, &k[1], k[2].address(), 1, 1, 0)];
    let block = child_block(&params, &genesis.header, txs, k[2].address(), 0);
    write(&out, "block", "two_payments", &block.encode())?;
    for (i, key) in k.iter().enumerate() {
        let hrp = if i == 0 { Network::Testnet.hrp() } else { Network::Devnet.hrp() };
        write(&out, "address", &format!("addr{i}"), key.address().to_bech32(hrp).as_bytes())?;
    }
    for (i, text) in ["12.5", "0.00000001", "21000000", "0"].iter().enumerate() {
        let _: Amount = text.parse()?;
        write(&out, "amount", &format!("amount{i}"), text.as_bytes())?;
    }
    write(&out, "genesis", "devnet", ember_core::params::DEVNET_GENESIS_JSON.as_bytes())?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("wallet.json");
    let mut ks = Keystore::from_mnemonic("devnet", &Mnemonic::generate(), "")?;
    ks.add_account("main")?;
    ks.save(&path, b"fuzz seed", KdfParams::new(1024, 1, 1)?, WriteMode::CreateNew)?;
    write(&out, "keystore", "wallet", &std::fs::read(&path)?)?;
    println!("seed corpora written to {}", out.display());
    Ok(())
}
