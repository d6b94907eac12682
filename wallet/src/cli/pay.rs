//! Commands that talk to the node: `balance`, `send`, `history`, `tx`, `sign`,
//! `broadcast`.
//!
//! The order of work in `send` (and online `sign`) is the point of this file: first
//! everything that needs neither keys nor node (recipient of this wallet's network,
//! amounts with at most 8 decimals, not zero), then the node (reachable, same network,
//! minimum fee), then the passphrase and keys, then the account's available balance —
//! and only when all of that passed is a transaction signed and submitted. So a mistake
//! costs nothing: nothing is signed, nothing is sent, no file is touched.

use std::time::{Duration, Instant};

use ember_core::{Address, Amount, BlockId, ChainParams, Network, Transaction, Txid};
use ember_wallet::node_client::{NodeError, NodeInfo, TxStatus};
use ember_wallet::payment::{self, default_fee, parse_amount, parse_recipient, Coins, Payment};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use super::error::CliError;
use super::output::{note, Outcome};
use super::session::{read_stdin, Session};
use super::{PaymentArgs, WaitArgs};

/// How often `--wait` asks the node about the transaction.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How long a transaction may be unknown to the node while waiting before it counts as
/// dropped: a reorg briefly moves confirmed transactions back to the mempool, and the
/// node answers from its chain and its mempool one after the other.
const DROPPED_AFTER: Duration = Duration::from_secs(2);

/// `balance`: confirmed, pending and available.
pub fn balance(s: &Session, account: Option<u32>) -> Result<Outcome, CliError> {
    let network = s.wallet_network()?;
    let info = s.node_info(Some(network))?;
    let watched = s.watch_wallet()?;
    let account = watched.account(account)?;
    let address = account.address;
    let state = s.node()?.account(&address, network.hrp())?;

    let address_text = address.to_bech32(network.hrp());
    // The height is the node's chain height now (what the confirmed balance counts up
    // to), not the block of any one payment: `tx TXID` says where a payment is.
    let mut text = format!(
        "{}\n  {address_text}\n  confirmed  {} (chain height {})\n",
        account.heading(),
        Coins(state.balance),
        info.height
    );
    if state.pending_count > 0 {
        text.push_str(&format!(
            "  pending    -{} ({} payment{} waiting for a block)\n",
            Coins(state.pending_spend),
            state.pending_count,
            if state.pending_count == 1 { "" } else { "s" }
        ));
    } else {
        text.push_str("  pending    0 coins (no payments waiting)\n");
    }
    if state.pending_received_count > 0 {
        text.push_str(&format!(
            "  incoming   +{} ({} payment{} to you waiting for a block; not spendable yet)\n",
            Coins(state.pending_received),
            state.pending_received_count,
            if state.pending_received_count == 1 { "" } else { "s" }
        ));
    }
    text.push_str(&format!("  available  {}", Coins(state.available)));
    let json = json!({
        "network": network.name(),
        "account": account.index,
        "label": account.label,
        "address": address_text,
        "height": info.height,
        "balance": state.balance.to_string(),
        "pending_spend": state.pending_spend.to_string(),
        "pending_count": state.pending_count,
        "available": state.available.to_string(),
        "pending_received": state.pending_received.to_string(),
        "pending_received_count": state.pending_received_count,
        "nonce": state.nonce,
        "next_nonce": state.next_nonce,
    });
    Ok(Outcome::new(text, json))
}

/// The payment asked for on the command line, checked as far as possible without keys
/// or node. The fee is `None` when the user gave none (the node's minimum decides it).
fn parse_payment(
    args: &PaymentArgs,
    network: Network,
) -> Result<(Address, Amount, Option<Amount>), CliError> {
    let to = parse_recipient(&args.to, network)?;
    let amount = parse_amount("amount", &args.amount)?;
    let fee = args.fee.as_deref().map(|f| parse_amount("fee", f)).transpose()?;
    // Zero amount, overflow: refused now with a provisional fee, not after the prompt.
    Payment::new(to, amount, fee.unwrap_or(payment::DEFAULT_FEE))?;
    Ok((to, amount, fee))
}

/// A payment checked against the node and signed by the wallet; not yet submitted.
struct Signed {
    tx: Transaction,
    network: Network,
    account: u32,
}

/// Everything before submission, shared by `send` and online `sign`.
fn sign_with_node(s: &Session, args: &PaymentArgs) -> Result<Signed, CliError> {
    let network = s.wallet_network()?;
    let (to, amount, fee) = parse_payment(args, network)?;
    let info = s.node_info(Some(network))?;
    let min_fee = s.node()?.min_fee()?;
    let payment = Payment::new(to, amount, fee.unwrap_or_else(|| default_fee(min_fee)))?;
    payment.check_fee(min_fee)?;

    let wallet = s.open_wallet()?;
    let account = wallet.account(args.account)?;
    let from = wallet.address(account.index())?;
    let state = s.node()?.account(&from, network.hrp())?;
    payment.check_funds(&state)?;
    let body = payment.body(info.genesis, from, state.next_nonce);
    let tx = payment::sign(body, &wallet.key(account.index())?);
    Ok(Signed { tx, network, account: account.index() })
}

/// `send`: check, sign, submit, and with `--wait` wait for a block.
pub fn send(s: &Session, args: &PaymentArgs, wait: &WaitArgs) -> Result<Outcome, CliError> {
    let signed = sign_with_node(s, args)?;
    let txid = submit(s, &signed.tx, signed.network)?;
    let confirmed = if wait.wait { Some(wait_for_block(s, &txid, wait.timeout)?) } else { None };
    Ok(payment_outcome(&signed.tx, signed.network, Some(signed.account), &txid, confirmed))
}

/// Submits, turning a refusal for lack of funds into the same message as the
/// wallet's own check (the balance can change between the check and the submission).
fn submit(s: &Session, tx: &Transaction, network: Network) -> Result<Txid, CliError> {
    match s.node()?.submit(tx) {
        Ok(txid) => Ok(txid),
        Err(NodeError::Refused { reason, message }) if reason == "insufficient_balance" => {
            let body = tx.body();
            let state = s.node()?.account(&body.from, network.hrp())?;
            payment::check_funds(body.amount, body.fee, &state)?;
            Err(NodeError::Refused { reason, message }.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Polls the node until the transaction is in a block, showing a spinner on a terminal.
/// Returns `(height, confirmations)`.
fn wait_for_block(s: &Session, txid: &Txid, timeout_secs: u64) -> Result<(u64, u64), CliError> {
    let node = s.node()?;
    let spinner = if s.json() { ProgressBar::hidden() } else { ProgressBar::new_spinner() };
    // `wide_msg` cuts the message to the terminal's width: a redrawn line that wraps
    // cannot be redrawn, and would scroll a new line every tick.
    spinner.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed}] {wide_msg}")
            .expect("the spinner template is valid"),
    );
    spinner.enable_steady_tick(Duration::from_millis(100));
    let id = txid.to_string();
    let short = format!("{}…{}", &id[..8], &id[id.len() - 4..]);
    spinner.set_message(format!("waiting for {short} to be included in a block"));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(timeout_secs);
    let height_before = node.info().ok().map(|i| i.height);
    let mut unknown_since: Option<Instant> = None;
    // The node's last word on the payment, when it could not tell its status.
    let mut indexing: Option<String> = None;
    let outcome = loop {
        // Asked once per round: the loop's own deadline governs, not the client's retries.
        match node.transaction_once(txid) {
            Ok((TxStatus::Confirmed { height, confirmations }, _)) => {
                break Ok((height, confirmations));
            }
            Ok((TxStatus::Pending, _)) => (unknown_since, indexing) = (None, None),
            Err(NodeError::NotFound(_)) => {
                let since = *unknown_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= DROPPED_AFTER {
                    break Err(CliError::Dropped(txid.to_string()));
                }
            }
            // The node may be restarting; keep asking until the deadline.
            Err(NodeError::Unreachable { url, .. }) => {
                spinner.set_message(format!("waiting for {short}: no answer from {url}, retrying"));
                indexing = None;
            }
            // Submitted; the node's indexes are behind its chain for now.
            Err(NodeError::IndexCatchingUp { message, .. }) => {
                spinner.set_message(format!("waiting for {short}: the node is indexing"));
                (unknown_since, indexing) = (None, Some(message));
            }
            Err(e) => break Err(e.into()),
        }
        if Instant::now() >= deadline {
            let why = match indexing {
                Some(m) => format!(
                    "whether it is confirmed is not known: the node's transaction index is \
                     behind its chain ({m})"
                ),
                None => format!(
                    "it is still pending and may confirm later{}",
                    stalled_reason(node.info().ok().as_ref(), height_before)
                ),
            };
            break Err(CliError::WaitTimeout { txid: txid.to_string(), secs: timeout_secs, why });
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    spinner.finish_and_clear();
    outcome
}

/// Why no block took the payment during `--wait`, from the node's `node_info` at the end:
/// no block at all (and whether the node mines or has peers), or blocks that left it out.
fn stalled_reason(
    info: Option<&ember_wallet::node_client::NodeInfo>,
    before: Option<u64>,
) -> String {
    let (Some(info), Some(before)) = (info, before) else { return String::new() };
    if info.height > before {
        return format!(
            ". {} block(s) came meanwhile without it (a full block, or a fee below what \
             miners take first)",
            info.height - before
        );
    }
    match (info.mining, info.peers) {
        (Some(false), 0) => format!(
            ". No block was mined meanwhile (height stayed {}): the node does not mine and \
             has no peers; start it with --mine, or mine one with `ember-cli mining_generate \
             1` (devnet)",
            info.height
        ),
        (Some(false), _) => format!(
            ". No block was mined meanwhile (height stayed {}): the node does not mine, and \
             none of its {} peer(s) sent a block",
            info.height, info.peers
        ),
        _ => format!(". No block was mined meanwhile (height stayed {})", info.height),
    }
}

fn payment_outcome(
    tx: &Transaction,
    network: Network,
    account: Option<u32>,
    txid: &Txid,
    confirmed: Option<(u64, u64)>,
) -> Outcome {
    let body = tx.body();
    let (from, to) = (body.from.to_bech32(network.hrp()), body.to.to_bech32(network.hrp()));
    let status = match confirmed {
        Some((height, confirmations)) => format!(
            "confirmed in block {height} ({confirmations} confirmation{})",
            if confirmations == 1 { "" } else { "s" }
        ),
        None => "submitted; pending until a block includes it".to_owned(),
    };
    let text = format!(
        "Sent {} to {to} (fee {}, nonce {})\n  from  {from}\n  txid  {txid}\n  {status}",
        Coins(body.amount),
        body.fee,
        body.nonce
    );
    let json = json!({
        "txid": txid.to_string(),
        "status": if confirmed.is_some() { "confirmed" } else { "pending" },
        "height": confirmed.map(|c| c.0),
        "confirmations": confirmed.map_or(0, |c| c.1),
        "account": account,
        "from": from,
        "to": to,
        "amount": body.amount.to_string(),
        "fee": body.fee.to_string(),
        "nonce": body.nonce,
    });
    Outcome::new(text, json)
}

/// `history`: pending payments, then one page of confirmed ones, newest first.
pub fn history(
    s: &Session,
    account: Option<u32>,
    page: u64,
    limit: u64,
) -> Result<Outcome, CliError> {
    let network = s.wallet_network()?;
    s.node_info(Some(network))?;
    let watched = s.watch_wallet()?;
    let account = watched.account(account)?;
    let address = account.address;
    let address_text = address.to_bech32(network.hrp());
    let mut answer = s.node()?.history(&address, network.hrp(), page - 1, limit)?;

    // Each line fits 80 columns: an address (63 characters) or txid (64) gets its own.
    let mut text = format!("{}\n  {address_text}\n", account.heading());
    let pending = answer["pending"].as_array().cloned().unwrap_or_default();
    if !pending.is_empty() {
        text.push_str("Pending (waiting for a block):\n");
        for item in &pending {
            text.push_str(&history_line(item, &address_text, None));
        }
    }
    let total = answer["total"].as_u64().unwrap_or(0);
    let items = answer["items"].as_array().cloned().unwrap_or_default();
    let pages = total.div_ceil(limit).max(1);
    if total == 0 {
        text.push_str("No confirmed payments yet.\n");
    } else {
        text.push_str(&format!("Confirmed (page {page} of {pages}, {total} in all):\n"));
        for item in &items {
            text.push_str(&history_line(item, &address_text, item["height"].as_u64()));
        }
        if items.is_empty() {
            text.push_str("  (no payments on this page)\n");
        }
    }
    answer["account"] = json!(account.index);
    answer["address"] = json!(address_text);
    answer["page"] = json!(page);
    Ok(Outcome::new(text, answer))
}

fn history_line(item: &Value, me: &str, height: Option<u64>) -> String {
    let field = |name: &str| item[name].as_str().unwrap_or("?").to_owned();
    let (from, to) = (field("from"), field("to"));
    let (direction, other) = match item["direction"].as_str() {
        Some("received") => ("received", format!("from {from}")),
        Some(_) => ("sent", format!("to {to}")),
        None if from == me => ("sent", format!("to {to}")),
        None => ("received", format!("from {from}")),
    };
    let place = height.map_or_else(|| "pending".to_owned(), |h| format!("block {h}"));
    let amount = field("amount");
    format!(
        "  {place:<12} {direction:<8} {amount:>20} {:<5}  fee {}\n    {other}\n    txid {}\n",
        coin_unit(&amount),
        field("fee"),
        field("txid")
    )
}

/// "coin" after an amount of exactly one coin as the node writes it ("1"), else "coins".
fn coin_unit(amount: &str) -> &'static str {
    match amount.parse::<Amount>() {
        Ok(a) if a.units() == ember_core::amount::UNITS_PER_COIN => "coin",
        _ => "coins",
    }
}

/// `tx`: where a transaction is.
pub fn tx(s: &Session, txid: &str) -> Result<Outcome, CliError> {
    let txid: Txid = txid.trim().parse().map_err(|e| {
        CliError::Invalid(format!("{txid:?} is not a transaction id (64 hex digits): {e}"))
    })?;
    let (status, answer) = s.node()?.transaction(&txid)?;
    let status_text = match status {
        TxStatus::Pending => "pending: in the node's mempool, waiting for a block".to_owned(),
        TxStatus::Confirmed { height, confirmations } => format!(
            "confirmed in block {height} ({confirmations} confirmation{})",
            if confirmations == 1 { "" } else { "s" }
        ),
    };
    let field = |name: &str| answer[name].as_str().unwrap_or("?").to_owned();
    let (amount, fee) = (field("amount"), field("fee"));
    let text = format!(
        "Transaction {txid}\n  status  {status_text}\n  from    {}\n  to      {}\n  \
         amount  {amount} {}\n  fee     {fee} {}\n  nonce   {}",
        field("from"),
        field("to"),
        coin_unit(&amount),
        coin_unit(&fee),
        answer["nonce"]
    );
    Ok(Outcome::new(text, answer))
}

/// `sign`: a signed payment as hex, not submitted. Offline with `--nonce`.
pub fn sign(
    s: &Session,
    args: &PaymentArgs,
    nonce: Option<u64>,
    chain: Option<&str>,
) -> Result<Outcome, CliError> {
    // Offline with the built-in genesis: said in the note, since a network with its own
    // genesis (`ember-testnet up`) refuses such a payment.
    let mut builtin_chain = false;
    let (tx, network, account) = match nonce {
        None => {
            let signed = sign_with_node(s, args)?;
            (signed.tx, signed.network, signed.account)
        }
        Some(nonce) => {
            let network = s.wallet_network()?;
            let (to, amount, fee) = parse_payment(args, network)?;
            let chain = match chain {
                Some(text) => text.trim().parse::<BlockId>().map_err(|e| {
                    CliError::Invalid(format!("--chain {text:?} is not a genesis block id: {e}"))
                })?,
                None => {
                    builtin_chain = true;
                    builtin_params(network).genesis_id()
                }
            };
            let payment = Payment::new(to, amount, fee.unwrap_or(payment::DEFAULT_FEE))?;
            let wallet = s.open_wallet()?;
            let account = wallet.account(args.account)?;
            let from = wallet.address(account.index())?;
            let body = payment.body(chain, from, nonce);
            let tx = payment::sign(body, &wallet.key(account.index())?);
            (tx, network, account.index())
        }
    };
    let body = tx.body();
    let hex = hex::encode(tx.encode());
    if !s.json() {
        note(&format!(
            "signed, not submitted: {} to {} (fee {}, nonce {}), txid {}; submit it with \
             `ember-wallet broadcast`",
            Coins(body.amount),
            body.to.to_bech32(network.hrp()),
            body.fee,
            body.nonce,
            tx.txid()
        ));
        if builtin_chain {
            note(&format!(
                "signed for the built-in {network} chain {}; for a network with its own \
                 genesis (e.g. one started by `ember-testnet up`) sign with --chain GENESIS_ID \
                 (its node_info.genesis), or without --nonce to ask the node",
                body.chain
            ));
        }
    }
    let json = json!({
        "hex": hex,
        "txid": tx.txid().to_string(),
        "chain": body.chain.to_string(),
        "account": account,
        "from": body.from.to_bech32(network.hrp()),
        "to": body.to.to_bech32(network.hrp()),
        "amount": body.amount.to_string(),
        "fee": body.fee.to_string(),
        "nonce": body.nonce,
    });
    Ok(Outcome::new(hex, json))
}

/// The built-in parameters of a network (for its genesis id, when signing offline).
fn builtin_params(network: Network) -> ChainParams {
    match network {
        Network::Devnet => ChainParams::devnet(),
        Network::Testnet => ChainParams::testnet(),
    }
}

/// `broadcast`: checks a signed transaction, submits it, optionally waits.
pub fn broadcast(s: &Session, hex_arg: &str, wait: &WaitArgs) -> Result<Outcome, CliError> {
    let text = if hex_arg == "-" { read_stdin()? } else { hex_arg.to_owned().into() };
    let tx = decode_signed(text.trim())?;
    tx.verify_signature().map_err(|e| {
        CliError::Invalid(format!(
            "the transaction's signature is not valid ({e}); nothing was sent"
        ))
    })?;
    let info = s.node_info(None)?;
    check_chain(s, &tx, &info)?;
    let body = tx.body();
    let min_fee = s.node()?.min_fee()?;
    if body.fee < min_fee {
        return Err(payment::PaymentError::FeeTooLow { fee: body.fee, min_fee }.into());
    }
    let state = s.node()?.account(&body.from, info.network.hrp())?;
    payment::check_funds(body.amount, body.fee, &state)?;

    let txid = submit(s, &tx, info.network)?;
    let confirmed = if wait.wait { Some(wait_for_block(s, &txid, wait.timeout)?) } else { None };
    Ok(payment_outcome(&tx, info.network, None, &txid, confirmed))
}

/// A signed transaction from the hex `sign` printed, or an error that says what is wrong
/// with the text in words (never the decoder's own debug text).
fn decode_signed(text: &str) -> Result<Transaction, CliError> {
    use ember_core::tx::TX_ENCODED_LEN;
    let from_sign = "use the hex `ember-wallet sign` printed, whole";
    if text.is_empty() {
        return Err(CliError::Invalid(format!("no transaction given; {from_sign}")));
    }
    let bytes = hex::decode(text).map_err(|e| {
        let what = match e {
            hex::FromHexError::InvalidHexCharacter { c, index } => {
                format!("{c:?} at position {} is not a hex digit (0-9, a-f)", index + 1)
            }
            hex::FromHexError::OddLength => {
                format!("it has an odd number of hex digits ({}): one is missing", text.len())
            }
            other => other.to_string(),
        };
        CliError::Invalid(format!("the transaction is not hex: {what}; {from_sign}"))
    })?;
    if bytes.len() != TX_ENCODED_LEN {
        return Err(CliError::Invalid(format!(
            "not a signed Ember transaction: it is {} bytes ({} hex digits), but a signed \
             transaction is {TX_ENCODED_LEN} bytes ({} hex digits); {from_sign}",
            bytes.len(),
            text.len(),
            2 * TX_ENCODED_LEN
        )));
    }
    Transaction::decode(&bytes).map_err(|_| {
        CliError::Invalid(format!(
            "not a signed Ember transaction: its {TX_ENCODED_LEN} bytes do not decode as one; \
             {from_sign}"
        ))
    })
}

fn check_chain(s: &Session, tx: &Transaction, info: &NodeInfo) -> Result<(), CliError> {
    if tx.body().chain != info.genesis {
        return Err(CliError::WrongNetwork(format!(
            "the transaction was signed for chain {}, but the node at {} runs {} with chain {}; \
             nothing was sent. Sign it again for this node: `ember-wallet sign --nonce N \
             --chain {} ...`, or `ember-wallet sign` without --nonce (it asks the node)",
            tx.body().chain,
            s.node()?.url(),
            info.network,
            info.genesis,
            info.genesis
        )));
    }
    Ok(())
}
