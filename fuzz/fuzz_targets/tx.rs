//! Transaction decoding and structural validation: anything accepted re-encodes to the
//! same bytes, and the checks never panic.
#![no_main]
use ember_core::validate::{check_tx_structure, StrictVerifier};
use ember_core::{ChainParams, Transaction};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static PARAMS: LazyLock<ChainParams> = LazyLock::new(ChainParams::devnet);

fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = Transaction::decode(data) {
        assert_eq!(tx.encode(), data, "one encoding per transaction");
        let verdict = check_tx_structure(&PARAMS, &tx);
        let again = Transaction::decode(&tx.encode()).expect("re-encoded bytes decode");
        assert_eq!(check_tx_structure(&PARAMS, &again).is_ok(), verdict.is_ok());
        let _ = StrictVerifier;
    }
});
