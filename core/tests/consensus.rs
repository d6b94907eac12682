//! Consensus properties of ember-core: each test fails if the rule it names is removed.

use ember_core::block::merkle_root;
use ember_core::encoding::{decode, encode};
use ember_core::keys::{verify_message, Signature};
use ember_core::pow::CompactTarget;
use ember_core::testkit::{child_block, devnet_funding, keys, pay};
use ember_core::validate::{
    apply_block, check_block_body, check_block_structure, check_header, check_header_context,
    check_tx, StrictVerifier,
};
use ember_core::*;
use proptest::prelude::*;

fn arb_hash() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

fn arb_body() -> impl Strategy<Value = TxBody> {
    (arb_hash(), arb_hash(), arb_hash(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
        |(c, f, t, a, fee, n)| TxBody {
            chain: BlockId::from_bytes(c),
            from: Address::from_bytes(f),
            to: Address::from_bytes(t),
            amount: Amount::from_units(a),
            fee: Amount::from_units(fee),
            nonce: n,
        },
    )
}

fn arb_tx() -> impl Strategy<Value = Transaction> {
    (arb_body(), any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(b, s1, s2)| {
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&s1);
        sig[32..].copy_from_slice(&s2);
        Transaction::from_parts(b, Signature(sig))
    })
}

fn arb_header() -> impl Strategy<Value = BlockHeader> {
    (
        any::<u32>(),
        any::<u64>(),
        arb_hash(),
        arb_hash(),
        any::<u64>(),
        any::<u32>(),
        any::<u64>(),
        arb_hash(),
    )
        .prop_map(|(v, h, p, r, t, tg, n, m)| BlockHeader {
            version: v,
            height: h,
            prev: BlockId::from_bytes(p),
            tx_root: Hash::from_bytes(r),
            time: t,
            target: CompactTarget(tg),
            nonce: n,
            miner: Address::from_bytes(m),
        })
}

/// Round trip both ways: value -> bytes -> value, and accepted bytes -> value -> same bytes.
fn round_trip<T>(value: &T, limit: usize) -> Result<(), TestCaseError>
where
    T: bincode::Encode + bincode::Decode<()> + PartialEq + std::fmt::Debug,
{
    let bytes = encode(value);
    let back: T = decode(&bytes, limit).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, value);
    prop_assert_eq!(encode(&back), bytes);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_encoded_type_round_trips(tx in arb_tx(), h in arb_header(), ntx in 0usize..5,
                                      acct in (any::<u64>(), any::<u64>())) {
        round_trip(&tx, 1 << 20)?;
        round_trip(&h, 1 << 20)?;
        round_trip(tx.body(), 1 << 20)?;
        round_trip(&Block { header: h, txs: vec![tx; ntx] }, 1 << 20)?;
        round_trip(&Account { balance: Amount::from_units(acct.0), nonce: acct.1 }, 64)?;
        round_trip(&Undo { previous: vec![(tx.body().from, Account::default())] }, 1 << 20)?;
        round_trip(&h.target, 4)?;
        round_trip(&tx.txid(), 32)?;
    }

    #[test]
    fn apply_then_undo_restores_state_and_conserves_coins(
        payments in proptest::collection::vec((0usize..4, 0usize..4, 0u64..2_000, 0u64..50), 0..24)
    ) {
        let k = keys(4);
        let params = devnet_funding(&k, 10);
        let mut state = params.genesis_state();
        let mut nonces = [0u64; 4];
        let mut txs = Vec::new();
        let mut shadow = state.clone();
        for (from, to, amount, fee) in payments {
            let t = pay(&params, &k[from], k[to].address(), amount * 100_000, fee, nonces[from]);
            // Only keep payments that are valid in sequence, so the block is valid.
            let one = Block { header: params.genesis().header, txs: vec![t] };
            if let Ok(d) = apply_block_without_reward(&params, &shadow, &one) {
                shadow.apply(&d);
                nonces[from] += 1;
                txs.push(t);
            }
        }
        let miner = keys(5)[4].address();
        let b = child_block(&params, &params.genesis().header, txs, miner, 0);
        check_block_structure(&params, &b, &StrictVerifier).unwrap();
        let before = state.clone();
        let delta = apply_block(&params, &state, &b).unwrap();
        state.apply(&delta);
        // Conservation: supply grows by exactly the subsidy; fees move, never vanish.
        prop_assert_eq!(state.total_balance(), params.supply_at(1));
        state.revert(&delta.undo);
        prop_assert_eq!(&state, &before);
        prop_assert_eq!(state.digest(), before.digest());
    }
}

/// Applies a one-transaction block at height 0 (no subsidy), to test a payment in isolation.
fn apply_block_without_reward(
    params: &ChainParams,
    s: &MemState,
    b: &Block,
) -> Result<StateDelta, BlockError> {
    apply_block(params, s, b).map(|mut d| {
        // Drop the miner credit of zero (height 0 has no subsidy, fees are credited to the
        // zero address): keep the payment's effects only.
        d.updates.retain(|(a, _)| *a != b.header.miner);
        d
    })
}

/// Every single-bit flip of a signed payment, not a sample: each is refused, for the
/// rule the flipped field answers to.
#[test]
fn flipping_any_byte_of_a_signed_tx_invalidates_it() {
    let k = keys(2);
    let params = devnet_funding(&k, 100);
    let t = pay(&params, &k[0], k[1].address(), 5, 1, 0);
    check_tx(&params, &t, &StrictVerifier).unwrap();
    for pos in 0..tx::TX_ENCODED_LEN {
        for bit in 0..8 {
            let mut bytes = t.encode();
            bytes[pos] ^= 1 << bit;
            let mutated =
                Transaction::decode(&bytes).expect("fixed-width fields decode from any bytes");
            let err = check_tx(&params, &mutated, &StrictVerifier).unwrap_err();
            // The chain field (the first 32 bytes) names another network; every other byte
            // is covered by the signature (amount 5 and fee 1 cannot overflow by one flip).
            if pos < 32 {
                assert!(matches!(err, TxError::WrongChain { .. }), "byte {pos} bit {bit}: {err:?}");
            } else {
                assert!(matches!(err, TxError::BadSignature(_)), "byte {pos} bit {bit}: {err:?}");
            }
        }
    }
}

/// Every single-bit flip of a header, not a sample. The id commits to every byte. Then
/// the altered header with the original body is validated, proof of work aside (on the easy
/// devnet target about half of all ids meet it): a field a rule commits to fails that rule,
/// with that rule's error; a free field (nonce, miner, a time still within the bounds)
/// makes another block, valid if its id meets the target.
#[test]
fn flipping_any_byte_of_a_header_changes_id_or_invalidates() {
    let k = keys(1);
    let params = devnet_funding(&k, 100);
    let g = params.genesis().header;
    let t = pay(&params, &k[0], k[0].address(), 5, 1, 0);
    let b = child_block(&params, &g, vec![t], k[0].address(), 0);
    let now = b.header.time;
    assert_eq!(header_verdict(&params, &b.header, &g, now, &b.txs), Ok(()));
    let (mut refused, mut other_valid_blocks) = (0, 0);
    for pos in 0..block::HEADER_ENCODED_LEN {
        for bit in 0..8 {
            let mut bytes = b.header.encode();
            bytes[pos] ^= 1 << bit;
            let h = BlockHeader::decode(&bytes).unwrap();
            assert_ne!(h.id(), b.id(), "byte {pos} bit {bit}");
            let verdict = header_verdict(&params, &h, &g, now, &b.txs);
            let field = header_field(pos);
            let at = format!("{field} (byte {pos} bit {bit}): {verdict:?}");
            match field {
                "version" => assert_eq!(verdict, Err(BlockError::BadVersion(h.version)), "{at}"),
                "height" => assert!(matches!(verdict, Err(BlockError::WrongHeight { .. })), "{at}"),
                "prev" => assert!(matches!(verdict, Err(BlockError::WrongParent { .. })), "{at}"),
                "tx_root" => assert!(matches!(verdict, Err(BlockError::BadTxRoot { .. })), "{at}"),
                "time" => {
                    let want = if h.time <= g.time {
                        Err(BlockError::TimeTooOld { time: h.time, median: g.time })
                    } else if h.time > now + params.max_future_ms {
                        Err(BlockError::TimeTooNew {
                            time: h.time,
                            now,
                            max_future_ms: params.max_future_ms,
                        })
                    } else {
                        Ok(())
                    };
                    assert_eq!(verdict, want, "{at}");
                }
                "target" => match h.target.expand() {
                    Err(e) => assert_eq!(verdict, Err(BlockError::BadTargetEncoding(e)), "{at}"),
                    Ok(t) if t > params.pow_limit_target() => {
                        assert_eq!(verdict, Err(BlockError::TargetAboveLimit(h.target)), "{at}")
                    }
                    Ok(_) => {
                        assert!(matches!(verdict, Err(BlockError::WrongTarget { .. })), "{at}")
                    }
                },
                "nonce" | "miner" => assert_eq!(verdict, Ok(()), "{at}"),
                other => unreachable!("no header field {other}"),
            }
            match verdict {
                Err(_) => refused += 1,
                Ok(()) => match check_header(&params, &h) {
                    Ok(()) => other_valid_blocks += 1,
                    Err(e) => assert_eq!(e, BlockError::InsufficientWork, "{at}"),
                },
            }
        }
    }
    // Both halves ran: the committed fields (version, height, prev, tx_root, target: 80
    // bytes) and most time bits are refused; some free-field flips are other valid blocks.
    assert!(refused >= 80 * 8, "only {refused} flips were refused");
    assert!(other_valid_blocks > 0, "no flip made another valid block");
}

/// A header asking for less work than the chain's proof-of-work limit allows is refused
/// by `check_header` alone (the check headers-first sync and orphans rely on, before any
/// parent is known), even when its id meets that easier target; one at the limit passes.
#[test]
fn target_above_the_pow_limit_is_refused() {
    for params in [ChainParams::devnet(), ChainParams::testnet()] {
        let limit = params.pow_limit_target();
        // The smallest canonical compact targets above the limit: one mantissa step up,
        // and a whole exponent step up.
        let (exp, mantissa) = (params.pow_limit.0 >> 24, params.pow_limit.0 & 0x00ff_ffff);
        let above = [
            CompactTarget((exp << 24) | (mantissa + 1)),
            CompactTarget(((exp + 1) << 24) | 0x00_ffff),
        ];
        // (For devnet's 0x207fffff the first would set the sign bit: not a target at all.)
        let above: Vec<_> = above.into_iter().filter(|t| t.expand().is_ok()).collect();
        assert!(!above.is_empty());
        for target in above {
            let expanded = target.expand().expect("filtered");
            assert!(expanded > limit, "{target:?} is above {:?}", params.pow_limit);
            let mut h = params.genesis().header;
            h.height = 1;
            h.target = target;
            // Grind a nonce whose id meets even this easier target: only the limit can refuse it.
            while !ember_core::pow::meets_target(h.id().as_bytes(), expanded) {
                h.nonce += 1;
            }
            assert_eq!(check_header(&params, &h), Err(BlockError::TargetAboveLimit(target)));
        }
        let mut at_limit = params.genesis().header;
        at_limit.height = 1;
        at_limit.target = params.pow_limit;
        while !ember_core::pow::meets_target(at_limit.id().as_bytes(), limit) {
            at_limit.nonce += 1;
        }
        assert_eq!(check_header(&params, &at_limit), Ok(()));
    }
}

/// The header field that byte `pos` of an encoded header belongs to.
fn header_field(pos: usize) -> &'static str {
    const FIELDS: [(&str, usize); 8] = [
        ("version", 4),
        ("height", 8),
        ("prev", 32),
        ("tx_root", 32),
        ("time", 8),
        ("target", 4),
        ("nonce", 8),
        ("miner", 32),
    ];
    let mut end = 0;
    for (name, len) in FIELDS {
        end += len;
        if pos < end {
            return name;
        }
    }
    unreachable!("byte {pos} is past the header ({end} bytes)")
}

/// Every rule a child of genesis with body `txs` must pass, except the proof of work.
fn header_verdict(
    params: &ChainParams,
    h: &BlockHeader,
    genesis: &BlockHeader,
    now: u64,
    txs: &[Transaction],
) -> Result<(), BlockError> {
    match check_header(params, h) {
        Ok(()) | Err(BlockError::InsufficientWork) => {}
        Err(e) => return Err(e),
    }
    check_header_context(params, h, genesis, &[genesis.time], now)?;
    check_block_body(params, &Block { header: *h, txs: txs.to_vec() }, &StrictVerifier)
}

/// A change made to a valid encoding.
#[derive(Debug, Clone)]
enum Mutation {
    /// One bit of one byte.
    Flip(prop::sample::Index, u8),
    /// Cut at a point before the end.
    Truncate(prop::sample::Index),
    /// Bytes appended.
    Extend(Vec<u8>),
    /// (Blocks) the transaction count raised by the number of transactions appended: a
    /// longer block that is still well formed.
    MoreTxs(Vec<Transaction>),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<prop::sample::Index>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        1 => proptest::collection::vec(any::<u8>(), 1..300).prop_map(Mutation::Extend),
        1 => proptest::collection::vec(arb_tx(), 1..3).prop_map(Mutation::MoreTxs),
    ]
}

/// Offset of a block encoding's transaction count.
const TX_COUNT_AT: usize = block::HEADER_ENCODED_LEN;

fn mutate(mut bytes: Vec<u8>, m: &Mutation, is_block: bool) -> Vec<u8> {
    match m {
        Mutation::Flip(i, bit) => {
            let at = i.index(bytes.len());
            bytes[at] ^= 1 << bit;
        }
        Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len())),
        Mutation::Extend(extra) => bytes.extend_from_slice(extra),
        Mutation::MoreTxs(txs) if is_block => {
            let count = u64::from_le_bytes(bytes[TX_COUNT_AT..TX_COUNT_AT + 8].try_into().unwrap());
            let count = count + txs.len() as u64;
            bytes[TX_COUNT_AT..TX_COUNT_AT + 8].copy_from_slice(&count.to_le_bytes());
            for t in txs {
                bytes.extend_from_slice(&t.encode());
            }
        }
        Mutation::MoreTxs(txs) => bytes.extend_from_slice(&txs[0].encode()),
    }
    bytes
}

/// Decoding mutated valid encodings (not random bytes, which practically never decode as a
/// block): whatever is accepted must re-encode to exactly the same bytes, a truncated
/// input and garbage after a value are refused, and the property must have run on many
/// accepted inputs (a decoder refusing everything would pass it vacuously otherwise).
#[test]
fn accepted_bytes_re_encode_identically() {
    use proptest::test_runner::{Config, TestRunner};
    use std::cell::Cell;
    const CASES: u32 = 512;
    let (accepted, refused) = (Cell::new(0u32), Cell::new(0u32));
    let mut runner = TestRunner::new(Config::with_cases(CASES));
    let strategy =
        (arb_header(), proptest::collection::vec(arb_tx(), 0..4), any::<bool>(), arb_mutation());
    runner
        .run(&strategy, |(header, txs, is_block, m)| {
            let tx = txs.first().copied();
            let original = match (is_block, tx) {
                (false, Some(t)) => encode(&t),
                _ => encode(&Block { header, txs }),
            };
            let is_block = is_block || tx.is_none();
            let bytes = mutate(original, &m, is_block);
            let result = if is_block {
                decode::<Block>(&bytes, 1 << 16).map(|b| encode(&b))
            } else {
                decode::<Transaction>(&bytes, 1 << 16).map(|t| encode(&t))
            };
            match result {
                Ok(again) => {
                    accepted.set(accepted.get() + 1);
                    prop_assert_eq!(&again, &bytes, "accepted bytes re-encode differently");
                    prop_assert!(
                        !matches!(m, Mutation::Truncate(_) | Mutation::Extend(_)),
                        "a truncated or extended encoding was accepted"
                    );
                    prop_assert!(
                        is_block || !matches!(m, Mutation::MoreTxs(_)),
                        "a transaction with another one appended was accepted"
                    );
                }
                Err(_) => {
                    refused.set(refused.get() + 1);
                    // Fixed-width fields take any bytes: only a flip of a block's
                    // transaction count can make a flipped encoding malformed.
                    if let Mutation::Flip(i, _) = &m {
                        let at = i.index(bytes.len());
                        prop_assert!(
                            is_block && (TX_COUNT_AT..TX_COUNT_AT + 8).contains(&at),
                            "a flip of byte {} was refused",
                            at
                        );
                    }
                    prop_assert!(
                        !is_block || !matches!(m, Mutation::MoreTxs(_)),
                        "a block with well-formed transactions appended was refused"
                    );
                }
            }
            Ok(())
        })
        .unwrap();
    let (a, r) = (accepted.get(), refused.get());
    assert_eq!(a + r, CASES);
    // Flips and longer blocks (about 2/3 of the cases) decode; truncations and garbage
    // (about 1/3) do not.
    assert!(a >= CASES * 2 / 5, "only {a} of {CASES} mutated encodings were accepted");
    assert!(r >= CASES / 5, "only {r} of {CASES} mutated encodings were refused");
}

#[derive(serde::Deserialize)]
struct EdgeCases {
    cases: Vec<EdgeCase>,
}
#[derive(serde::Deserialize)]
struct EdgeCase {
    case: u32,
    message: String,
    pub_key: String,
    signature: String,
    verify_strict: bool,
}

#[test]
fn ed25519_edge_cases_follow_verify_strict() {
    let text = include_str!("data/ed25519_edge_cases.json");
    let cases: EdgeCases = serde_json::from_str(text).unwrap();
    assert_eq!(cases.cases.len(), 12);
    let mut accepted = Vec::new();
    for c in &cases.cases {
        let msg = hex::decode(&c.message).unwrap();
        let key: [u8; 32] = hex::decode(&c.pub_key).unwrap().try_into().unwrap();
        let sig: [u8; 64] = hex::decode(&c.signature).unwrap().try_into().unwrap();
        let ok = verify_message(&key, &msg, &sig).is_ok();
        assert_eq!(ok, c.verify_strict, "case {}", c.case);
        if ok {
            accepted.push(c.case);
        }
    }
    assert_eq!(accepted, vec![3], "only case 3 is a strictly valid signature");
}

#[test]
fn small_order_key_cannot_sign_for_an_account() {
    // The identity point: any signature with R = identity, S = 0 verifies under plain
    // (cofactored or not) checks for it; strict verification must refuse the key.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let params = devnet_funding(&keys(1), 1);
    let body = TxBody {
        chain: params.genesis_id(),
        from: Address::from_bytes(identity),
        to: keys(1)[0].address(),
        amount: Amount::from_units(1),
        fee: Amount::ZERO,
        nonce: 0,
    };
    let mut sig = [0u8; 64];
    sig[0] = 1; // R = identity, S = 0
    let t = Transaction::from_parts(body, Signature(sig));
    assert!(matches!(check_tx(&params, &t, &StrictVerifier), Err(TxError::BadSignature(_))));
}

#[test]
fn non_canonical_s_is_refused() {
    let k = keys(2);
    let params = devnet_funding(&k, 1);
    let t = pay(&params, &k[0], k[1].address(), 1, 0, 0);
    // S + L is the same scalar mod L but not canonical.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut sig = t.signature().0;
    let mut carry = 0u16;
    for i in 0..32 {
        let v = sig[32 + i] as u16 + L[i] as u16 + carry;
        sig[32 + i] = v as u8;
        carry = v >> 8;
    }
    let bad = Transaction::from_parts(*t.body(), Signature(sig));
    assert!(check_tx(&params, &t, &StrictVerifier).is_ok());
    assert!(matches!(check_tx(&params, &bad, &StrictVerifier), Err(TxError::BadSignature(_))));
}

#[test]
fn tx_signed_for_another_genesis_is_refused() {
    let k = keys(2);
    let params = devnet_funding(&k, 1);
    let other = ChainParams::devnet();
    let t = pay(&other, &k[0], k[1].address(), 1, 0, 0);
    assert!(matches!(check_tx(&params, &t, &StrictVerifier), Err(TxError::WrongChain { .. })));
    // Re-labelling the chain field breaks the signature.
    let mut body = *t.body();
    body.chain = params.genesis_id();
    let relabelled = Transaction::from_parts(body, *t.signature());
    assert!(matches!(
        check_tx(&params, &relabelled, &StrictVerifier),
        Err(TxError::BadSignature(_))
    ));
}

fn one_tx_block(params: &ChainParams, txs: Vec<Transaction>) -> Result<StateDelta, BlockError> {
    let b = child_block(params, &params.genesis().header, txs, keys(9)[8].address(), 0);
    check_block_structure(params, &b, &StrictVerifier)?;
    apply_block(params, &params.genesis_state(), &b)
}

fn tx_error(r: Result<StateDelta, BlockError>) -> TxError {
    match r {
        Err(BlockError::Tx { error, .. }) => error,
        other => panic!("expected a transaction error, got {other:?}"),
    }
}

#[test]
fn nonce_gaps_and_replays_are_refused() {
    let k = keys(2);
    let params = devnet_funding(&k, 10);
    let to = k[1].address();
    assert!(one_tx_block(&params, vec![pay(&params, &k[0], to, 1, 0, 0)]).is_ok());
    assert_eq!(
        tx_error(one_tx_block(&params, vec![pay(&params, &k[0], to, 1, 0, 1)])),
        TxError::NonceTooHigh { expected: 0, found: 1 }
    );
    // Replay in the same block: nonce 0 twice (different amounts so the txids differ).
    let r = one_tx_block(
        &params,
        vec![pay(&params, &k[0], to, 1, 0, 0), pay(&params, &k[0], to, 2, 0, 0)],
    );
    assert_eq!(tx_error(r), TxError::NonceTooLow { expected: 1, found: 0 });
    // Replay of the identical transaction is a duplicate.
    let t = pay(&params, &k[0], to, 1, 0, 0);
    assert!(matches!(one_tx_block(&params, vec![t, t]), Err(BlockError::DuplicateTx(_))));
}

#[test]
fn overflowing_amounts_are_refused() {
    let k = keys(2);
    let params = devnet_funding(&k, 10);
    let t = pay(&params, &k[0], k[1].address(), u64::MAX, 1, 0);
    assert_eq!(tx_error(one_tx_block(&params, vec![t])), TxError::CostOverflow);
    let t = pay(&params, &k[0], k[1].address(), 11 * 100_000_000, 0, 0);
    assert!(matches!(
        tx_error(one_tx_block(&params, vec![t])),
        TxError::InsufficientBalance { .. }
    ));
}

#[test]
fn block_rules_are_enforced() {
    let k = keys(2);
    let params = devnet_funding(&k, 10);
    let g = params.genesis().header;
    let good = child_block(
        &params,
        &g,
        vec![pay(&params, &k[0], k[1].address(), 1, 0, 0)],
        k[0].address(),
        0,
    );
    check_block_structure(&params, &good, &StrictVerifier).unwrap();
    check_header_context(&params, &good.header, &g, &[g.time], g.time + 10_000).unwrap();

    // Merkle root must match.
    let mut wrong_root = good.clone();
    wrong_root.txs.push(pay(&params, &k[1], k[0].address(), 1, 0, 0));
    // The header is untouched (its proof of work holds): the body no longer matches it.
    let err = check_block_structure(&params, &wrong_root, &StrictVerifier).unwrap_err();
    assert_eq!(
        err,
        BlockError::BadTxRoot {
            found: good.header.tx_root,
            computed: wrong_root.compute_tx_root()
        }
    );

    // Size limit.
    let mut small = params.clone();
    small.max_block_bytes = good.encoded_len() - 1;
    assert!(matches!(
        check_block_structure(&small, &good, &StrictVerifier),
        Err(BlockError::TooLarge { .. })
    ));

    // Time rules.
    let mut h = good.header;
    h.time = g.time;
    assert!(matches!(
        check_header_context(&params, &h, &g, &[g.time], g.time),
        Err(BlockError::TimeTooOld { .. })
    ));
    h.time = g.time + params.max_future_ms + 1_000;
    assert!(matches!(
        check_header_context(&params, &h, &g, &[g.time], g.time),
        Err(BlockError::TimeTooNew { .. })
    ));
    // Linkage and height.
    let mut h = good.header;
    h.height = 2;
    assert!(matches!(
        check_header_context(&params, &h, &g, &[g.time], u64::MAX / 2),
        Err(BlockError::WrongHeight { .. })
    ));
    let mut h = good.header;
    h.prev = BlockId::from_bytes([7; 32]);
    assert!(matches!(
        check_header_context(&params, &h, &g, &[g.time], u64::MAX / 2),
        Err(BlockError::WrongParent { .. })
    ));
    // Target must be the required one.
    let mut h = good.header;
    h.target = CompactTarget(0x1f00ffff);
    assert!(matches!(
        check_header_context(&params, &h, &g, &[g.time], u64::MAX / 2),
        Err(BlockError::WrongTarget { .. })
    ));
}

#[test]
fn proof_of_work_is_checked() {
    let k = keys(1);
    let params = devnet_funding(&k, 10);
    let mut b = child_block(&params, &params.genesis().header, vec![], k[0].address(), 0);
    // Find a nonce whose id misses the devnet target (about half of them do).
    let target = params.pow_limit_target();
    while pow::meets_target(b.header.id().as_bytes(), target) {
        b.header.nonce += 1;
    }
    assert_eq!(check_header(&params, &b.header), Err(BlockError::InsufficientWork));
}

#[test]
fn median_time_past_uses_eleven_blocks() {
    let k = keys(1);
    let params = devnet_funding(&k, 10);
    let mut parent = params.genesis().header;
    let mut times = vec![parent.time];
    for _ in 0..15 {
        let b = child_block(&params, &parent, vec![], k[0].address(), 0);
        parent = b.header;
        times.insert(0, parent.time);
    }
    let recent = &times[..11];
    let median = validate::median_time(recent);
    let mut child = child_block(&params, &parent, vec![], k[0].address(), 0);
    child.header.time = median;
    assert!(matches!(
        check_header_context(&params, &child.header, &parent, recent, u64::MAX / 2),
        Err(BlockError::TimeTooOld { .. })
    ));
}

#[test]
fn merkle_root_commits_to_txids() {
    let k = keys(2);
    let params = devnet_funding(&k, 10);
    let a = pay(&params, &k[0], k[1].address(), 1, 0, 0);
    let b = pay(&params, &k[0], k[1].address(), 2, 0, 0);
    assert_ne!(merkle_root(&[a.txid(), b.txid()]), merkle_root(&[b.txid(), a.txid()]));
}

#[test]
fn tampered_body_is_a_bad_copy_not_an_invalid_block() {
    let k = keys(2);
    let params = devnet_funding(&k, 10);
    let t = pay(&params, &k[0], k[1].address(), 1, 0, 0);
    let good = child_block(&params, &params.genesis().header, vec![t], k[0].address(), 0);
    // A duplicated transaction keeps the id but not the root: reported as malleation.
    let mut dup = good.clone();
    dup.txs.push(t);
    let err = check_block_structure(&params, &dup, &StrictVerifier).unwrap_err();
    assert!(matches!(err, BlockError::BadTxRoot { .. }), "{err:?}");
    assert!(err.is_body_malleation());
    // A replaced signature keeps id and root: also malleation.
    let mut resigned = good.clone();
    resigned.txs[0] = Transaction::from_parts(*t.body(), Signature([7; 64]));
    let err = check_block_structure(&params, &resigned, &StrictVerifier).unwrap_err();
    assert!(err.is_body_malleation(), "{err:?}");
    assert_eq!(resigned.id(), good.id());
}
