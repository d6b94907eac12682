//! Address parsing: what is accepted prints back canonically and parses to the same
//! address; nothing panics.
#![no_main]
use ember_core::Address;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for hrp in ["edev", "etest"] {
        if let Ok(addr) = Address::parse(text, hrp) {
            let printed = addr.to_bech32(hrp);
            assert_eq!(printed, text.to_lowercase(), "only canonical text is accepted");
            assert_eq!(Address::parse(&printed, hrp).expect("printed form parses"), addr);
        }
    }
});
