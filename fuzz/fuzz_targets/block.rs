//! Block decoding and structural validation (header rules, merkle root, size, duplicates,
//! signatures): anything accepted re-encodes to the same bytes, a valid block stays valid
//! after a round trip, and nothing panics.
#![no_main]
use ember_core::validate::{check_block_structure, StrictVerifier};
use ember_core::{Block, ChainParams};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static PARAMS: LazyLock<ChainParams> = LazyLock::new(ChainParams::devnet);

fuzz_target!(|data: &[u8]| {
    if let Ok(block) = Block::decode(data, PARAMS.max_block_bytes) {
        assert_eq!(block.encode(), data, "one encoding per block");
        let id = block.id();
        let verdict = check_block_structure(&PARAMS, &block, &StrictVerifier);
        let again = Block::decode(&block.encode(), PARAMS.max_block_bytes).expect("round trip");
        assert_eq!(again.id(), id);
        if verdict.is_ok() {
            assert!(check_block_structure(&PARAMS, &again, &StrictVerifier).is_ok());
        }
    }
});
