//! Amount parsing: what is accepted prints and parses back to the same amount.
#![no_main]
use ember_core::Amount;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(a) = text.parse::<Amount>() {
        let printed = a.to_string();
        assert_eq!(printed.parse::<Amount>().expect("printed amount parses"), a);
    }
});
