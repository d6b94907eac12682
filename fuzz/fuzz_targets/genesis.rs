//! Genesis spec files: parsing and building chain parameters never panic; an accepted spec
//! survives a round trip through its JSON form and gives the same genesis id.
#![no_main]
use ember_core::{ChainParams, GenesisSpec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(spec) = GenesisSpec::from_json(text) else { return };
    let again = GenesisSpec::from_json(&spec.to_json()).expect("printed spec parses");
    assert_eq!(again, spec);
    if let Ok(params) = ChainParams::from_spec(&spec) {
        let other = ChainParams::from_spec(&again).expect("same spec, same verdict");
        assert_eq!(params.genesis_id(), other.genesis_id());
    }
});
