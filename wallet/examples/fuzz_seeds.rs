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

/// One record of the p2p target's input: `kind || length (u16 LE) || bytes`.
fn record(kind: u8, bytes: &[u8]) -> Vec<u8> {
    let mut r = vec![kind];
    r.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
    r.extend_from_slice(bytes);
    r
}

/// Messages a peer sends, one per seed, and a conversation of several; the payment is a
/// funded one from dev account 5, so the node's mempool admits it.
fn p2p_seeds(out: &Path, params: &ChainParams) -> Result<(), Box<dyn std::error::Error>> {
    use ember_core::encoding::encode;
    use ember_node::net::wire::{Inv, Message};
    let genesis = params.genesis();
    let payment = pay(
        params,
        &ember_wallet::dev_keypair(5),
        ember_wallet::dev_keypair(6).address(),
        5_000,
        10,
        0,
    );
    let msgs = [
        ("ping", Message::Ping(1)),
        ("getaddr", Message::GetAddr),
        ("addr", Message::Addr(vec!["127.0.0.1:9545".into(), "[::1]:9545".into()])),
        ("inv", Message::Inv(vec![Inv::Tx(payment.txid()), Inv::Block(genesis.id())])),
        ("getdata", Message::GetData(vec![Inv::Block(genesis.id()), Inv::Tx(payment.txid())])),
        ("notfound", Message::NotFound(vec![Inv::Block(genesis.id())])),
        (
            "getheaders",
            Message::GetHeaders { locator: vec![genesis.id()], stop: ember_core::BlockId::ZERO },
        ),
        ("headers", Message::Headers(vec![genesis.header])),
        ("tx", Message::Tx(payment)),
        ("block", Message::Block(genesis.clone())),
        ("pong", Message::Pong(1)),
    ];
    let mut conversation = Vec::new();
    for (name, m) in &msgs {
        let r = record(0, &encode(m));
        write(out, "p2p", name, &r)?;
        conversation.extend_from_slice(&r);
    }
    write(out, "p2p", "conversation", &conversation)?;
    write(out, "p2p", "garbage", &record(3, b"not an encrypted frame at all"))?;
    Ok(())
}

/// A request for every method the target does not skip, with the cookie, one without it,
/// and a batch.
fn rpc_seeds(out: &Path, params: &ChainParams) -> Result<(), Box<dyn std::error::Error>> {
    let hrp = params.hrp();
    let addr = ember_wallet::dev_keypair(1).address().to_bech32(hrp);
    let genesis = params.genesis().id().to_string();
    let payment = pay(
        params,
        &ember_wallet::dev_keypair(7),
        ember_wallet::dev_keypair(8).address(),
        5_000,
        10,
        0,
    );
    let tx_hex = hex::encode(payment.encode());
    let calls = [
        ("node_info", serde_json::json!([])),
        ("chain_getBlock", serde_json::json!([1])),
        ("chain_getHeader", serde_json::json!([genesis])),
        ("chain_getTransaction", serde_json::json!([payment.txid().to_string()])),
        ("account_get", serde_json::json!([addr])),
        ("account_history", serde_json::json!({"address": addr, "limit": 5})),
        ("tx_submit", serde_json::json!([tx_hex])),
        ("mempool_info", serde_json::json!([])),
        ("mempool_list", serde_json::json!([10])),
        ("state_digest", serde_json::json!([])),
        ("net_peers", serde_json::json!([])),
        ("net_bans", serde_json::json!([])),
        ("net_ban", serde_json::json!(["127.0.0.1:1", 60])),
    ];
    let mut batch = Vec::new();
    for (i, (method, params)) in calls.iter().enumerate() {
        let req =
            serde_json::json!({"jsonrpc": "2.0", "id": i, "method": method, "params": params});
        let mut body = vec![1u8];
        body.extend_from_slice(req.to_string().as_bytes());
        write(out, "rpc", method, &body)?;
        batch.push(req);
    }
    let mut body = vec![0u8];
    body.extend_from_slice(br#"{"jsonrpc":"2.0","id":"x","method":"node_info"}"#);
    write(out, "rpc", "no_cookie", &body)?;
    let mut body = vec![1u8];
    body.extend_from_slice(serde_json::Value::Array(batch).to_string().as_bytes());
    write(out, "rpc", "batch", &body)?;
    Ok(())
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
    p2p_seeds(&out, &params)?;
    rpc_seeds(&out, &params)?;
    println!("seed corpora written to {}", out.display());
    Ok(())
}
