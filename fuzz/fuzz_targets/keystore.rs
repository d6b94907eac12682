//! Keystore files: every check made before the key derivation never panics, and accepts
//! only the exact form Ember writes.
#![no_main]
use ember_wallet::keystore::Keystore;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(network) = Keystore::check_file(data) {
        assert!(!network.is_empty());
        assert!(std::str::from_utf8(data).is_ok(), "only UTF-8 JSON is accepted");
    }
});
