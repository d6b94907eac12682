//! The one list of the node's JSON-RPC methods: name, params (in positional order, with
//! their types and defaults), whether the method needs the cookie token, and a line saying
//! what it does.
//!
//! The server takes the admin flag from here, and answers `-32601` for a method missing
//! from it, so a method cannot be served without being listed (nor an admin method served
//! open because someone forgot a second list). `ember-cli help` prints this table and types
//! its params by it, and a test checks it against the RPC table of `docs/PROTOCOL.md`.
//!
//! Plain data with no imports, public as `ember_node::rpc::method_table` for `ember-cli` and
//! the integration tests.

/// One JSON-RPC method.
#[derive(Debug, Clone, Copy)]
pub struct MethodSpec {
    /// The method name as sent in `"method"`.
    pub name: &'static str,
    /// Params in positional order; the names are those of the named (object) form.
    pub params: &'static [ParamSpec],
    /// Needs `Authorization: Bearer <token>` from `<data dir>/rpc.cookie`.
    pub admin: bool,
    /// One line: what the method does or returns.
    pub summary: &'static str,
}

/// One parameter of a method.
#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    pub name: &'static str,
    pub ty: ParamType,
    /// What the node uses when the param is absent; `None` when it is required.
    pub default: Option<&'static str>,
    /// A few words more than the type says (empty when the type says it all).
    pub about: &'static str,
}

/// What a param's JSON value is. A command line uses it to tell text from numbers: an
/// address or txid is passed as typed, even when it happens to look like a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// A bech32m address (`edev1...`).
    Address,
    /// A transaction id: 64 hex characters.
    Txid,
    /// Hex-encoded bytes.
    Hex,
    /// A block: a height (number) or an id (64 hex characters).
    Block,
    /// A non-negative integer.
    U64,
    /// A non-negative decimal number (seconds, say).
    Number,
    /// `true` or `false`.
    Bool,
    /// Free text.
    Text,
}

impl ParamType {
    /// The type as `help` shows it.
    pub fn label(self) -> &'static str {
        match self {
            ParamType::Address => "address",
            ParamType::Txid => "txid",
            ParamType::Hex => "hex",
            ParamType::Block => "height|id",
            ParamType::U64 => "u64",
            ParamType::Number => "number",
            ParamType::Bool => "bool",
            ParamType::Text => "string",
        }
    }

    /// A JSON string whatever it looks like (never parsed as a number or `true`).
    pub fn is_text(self) -> bool {
        matches!(self, ParamType::Address | ParamType::Txid | ParamType::Hex | ParamType::Text)
    }
}

const fn req(name: &'static str, ty: ParamType, about: &'static str) -> ParamSpec {
    ParamSpec { name, ty, default: None, about }
}

const fn opt(
    name: &'static str,
    ty: ParamType,
    default: &'static str,
    about: &'static str,
) -> ParamSpec {
    ParamSpec { name, ty, default: Some(default), about }
}

const fn method(
    name: &'static str,
    params: &'static [ParamSpec],
    admin: bool,
    summary: &'static str,
) -> MethodSpec {
    MethodSpec { name, params, admin, summary }
}

use ParamType::{Address, Block, Bool, Hex, Number, Text, Txid, U64};

/// Every method the node serves, in the order `help` lists them.
pub const METHODS: &[MethodSpec] = &[
    method(
        "node_info",
        &[],
        false,
        "Network, genesis, node id, height, tip, peers, mempool and sync state.",
    ),
    method(
        "chain_getBlock",
        &[req("block", Block, "")],
        false,
        "A block with its transactions, by height or id.",
    ),
    method(
        "chain_getHeader",
        &[req("block", Block, "")],
        false,
        "A block header with its status, work and whether it is on the main chain.",
    ),
    method(
        "chain_getTransaction",
        &[req("txid", Txid, "")],
        false,
        "A transaction, confirmed (with its block) or pending.",
    ),
    method(
        "account_get",
        &[req("address", Address, "")],
        false,
        "Balance, nonce, pending spend and pending received of an address.",
    ),
    method(
        "account_history",
        &[
            req("address", Address, ""),
            opt("page", U64, "0", "page number, newest first"),
            opt("page_size", U64, "50", "1 to 500"),
        ],
        false,
        "Confirmed payments of an address, newest first, and its pending ones both ways.",
    ),
    method(
        "tx_submit",
        &[req("tx", Hex, "the encoded signed transaction")],
        false,
        "Submits a signed transaction to the mempool; returns its txid.",
    ),
    method("mempool_info", &[], false, "Count, bytes, limits and minimum fee of the mempool."),
    method(
        "mempool_list",
        &[opt("limit", U64, "1000", "at most 50000")],
        false,
        "Txids of pending transactions.",
    ),
    method(
        "state_digest",
        &[],
        false,
        "Height, tip and digest of the account state, with the supply check.",
    ),
    method(
        "mining_generate",
        &[
            opt("count", U64, "1", "1 to 10000"),
            opt("address", Address, "the node's miner address", "who gets the rewards"),
        ],
        true,
        "Mines blocks now (devnet only); returns their ids.",
    ),
    method(
        "mining_getMode",
        &[],
        false,
        "How the node mines: automine, the interval blocks' mean seconds, mining.",
    ),
    method(
        "mining_setAutomine",
        &[req("enabled", Bool, "a block as soon as payments are admitted")],
        true,
        "Switches automine on or off (devnet only); returns the new mode.",
    ),
    method(
        "mining_setInterval",
        &[req("seconds", Number, "mean seconds between blocks, 0 = off, at most 3600")],
        true,
        "Sets interval mining (devnet only); returns the new mode.",
    ),
    method(
        "chain_getTips",
        &[],
        false,
        "Every known branch tip: height, id, work, branch length, status (Core's getchaintips).",
    ),
    method(
        "chain_invalidateBlock",
        &[req("block", Block, "")],
        true,
        "Marks a block and its descendants invalid and leaves their branch (Core's invalidateblock).",
    ),
    method(
        "chain_reconsiderBlock",
        &[req("block", Block, "")],
        true,
        "Clears a hand-made invalid mark and takes the best branch again (Core's reconsiderblock).",
    ),
    method(
        "dev_snapshot",
        &[],
        true,
        "Remembers the main tip (devnet only); returns the snapshot's id (anvil's evm_snapshot).",
    ),
    method(
        "dev_revert",
        &[req("id", U64, "a dev_snapshot id")],
        true,
        "Takes every later block off the main chain, back to the snapshot (anvil's evm_revert).",
    ),
    method("net_peers", &[], false, "Connected peers with their ids, heights and traffic."),
    method("net_bans", &[], false, "Banned addresses with their reason and expiry."),
    method(
        "net_addPeer",
        &[req("address", Text, "ip:port, host:port or ID@host:port")],
        true,
        "Connects to a peer.",
    ),
    method(
        "net_disconnect",
        &[req("peer", Text, "connection id, address or node id")],
        true,
        "Disconnects a peer; returns whether one matched.",
    ),
    method(
        "net_ban",
        &[
            req("address", Text, "an IP, or ip:port for one node of a shared IP"),
            opt("seconds", U64, "3600", "1 to 315360000"),
            opt("reason", Text, "banned by operator", ""),
        ],
        true,
        "Bans an address and disconnects it.",
    ),
    method(
        "net_unban",
        &[req("address", Text, "")],
        true,
        "Lifts a ban; returns whether the address was banned.",
    ),
    method("node_stop", &[], true, "Stops the node cleanly."),
];

/// The method called `name`.
pub fn find(name: &str) -> Option<&'static MethodSpec> {
    METHODS.iter().find(|m| m.name == name)
}
