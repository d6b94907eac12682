//! BIP39 mnemonics: the 24 English words a user writes down at wallet creation, and
//! the 64-byte seed they stand for.
//!
//! Guarantees:
//! - Ember only creates and only accepts 24-word English phrases (256 bits of entropy).
//!   A phrase of any other length is refused with [`MnemonicError::WrongWordCount`]
//!   rather than accepted, because a short phrase typed into an Ember wallet is far
//!   more likely to be a phrase with words missing than a deliberate 12-word one.
//! - Neither [`Mnemonic`] nor [`Seed`] can be printed by accident: they have no
//!   `Display`, and their `Debug` prints `<redacted>`. The words come out only through
//!   [`Mnemonic::phrase`], which the CLI calls once, to show them at creation.
//! - Every copy of the words, the entropy and the seed that this module makes is wiped
//!   from memory when dropped (`zeroize`).

use std::fmt;

use bip39::Language;
use rand::rngs::OsRng;
use zeroize::Zeroizing;

/// How many words an Ember mnemonic has: 24 words carry 256 bits of entropy plus an
/// 8-bit checksum.
pub const WORD_COUNT: usize = 24;

/// How many bytes of entropy a 24-word mnemonic encodes.
pub const ENTROPY_LEN: usize = 32;

/// How many bytes the BIP39 seed has (PBKDF2-HMAC-SHA512 output).
pub const SEED_LEN: usize = 64;

/// Why a phrase was not accepted as a mnemonic.
///
/// The messages never quote the phrase or any of its words: a mistyped word is still
/// most of a secret word, and error messages end up in terminals and logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MnemonicError {
    /// The phrase does not have exactly [`WORD_COUNT`] words.
    #[error("a recovery phrase has {expected} words, but {got} were given")]
    WrongWordCount {
        /// Words found in the phrase.
        got: usize,
        /// Words an Ember phrase has ([`WORD_COUNT`]).
        expected: usize,
    },
    /// A word is not in the BIP39 English word list (most likely a typo).
    #[error("word {position} of the recovery phrase is not in the BIP39 English word list")]
    UnknownWord {
        /// 1-based position of the word in the phrase, as a person counts.
        position: usize,
    },
    /// All words are valid but the checksum does not match: a word was swapped,
    /// misremembered, or the words are in the wrong order.
    #[error(
        "the recovery phrase checksum does not match: a word is wrong or the words are out of order"
    )]
    BadChecksum,
}

/// A 24-word BIP39 English mnemonic.
///
/// Holds only word indices (inside `bip39::Mnemonic`, which zeroizes itself on drop).
#[derive(Clone, PartialEq, Eq)]
pub struct Mnemonic(bip39::Mnemonic);

impl Mnemonic {
    /// Generates a new mnemonic from 256 bits of operating-system randomness.
    ///
    /// `OsRng` rather than a user-space generator: this is the one moment the wallet's
    /// whole future rests on the quality of randomness, and it happens once.
    pub fn generate() -> Mnemonic {
        let inner = bip39::Mnemonic::generate_in_with(&mut OsRng, Language::English, WORD_COUNT)
            .expect("24 is a valid BIP39 word count");
        Mnemonic(inner)
    }

    /// Parses a phrase typed or pasted by a user.
    ///
    /// Case and whitespace are forgiving (words may be separated by any run of spaces,
    /// tabs or newlines, and may be capitalised); everything else is checked: the word
    /// count, that each word is in the English list, and the checksum.
    pub fn parse(phrase: &str) -> Result<Mnemonic, MnemonicError> {
        let got = phrase.split_whitespace().count();
        if got != WORD_COUNT {
            return Err(MnemonicError::WrongWordCount { got, expected: WORD_COUNT });
        }
        // The normalised copy holds the secret too, so it is wiped when dropped.
        let mut normalised = Zeroizing::new(String::with_capacity(phrase.len()));
        for (i, word) in phrase.split_whitespace().enumerate() {
            if i > 0 {
                normalised.push(' ');
            }
            for c in word.chars() {
                // `to_lowercase` of a char can yield several chars; pushing them one by
                // one keeps every byte inside the zeroized buffer (capacity permitting).
                normalised.extend(c.to_lowercase());
            }
        }
        bip39::Mnemonic::parse_in(Language::English, normalised.as_str()).map(Mnemonic).map_err(
            |e| match e {
                bip39::Error::BadWordCount(got) => {
                    MnemonicError::WrongWordCount { got, expected: WORD_COUNT }
                }
                bip39::Error::UnknownWord(index) => {
                    MnemonicError::UnknownWord { position: index + 1 }
                }
                // With the count fixed at 24 and the English list fixed, the remaining
                // errors (entropy size, ambiguous language) can only mean the phrase
                // does not check out.
                bip39::Error::InvalidChecksum
                | bip39::Error::BadEntropyBitCount(_)
                | bip39::Error::AmbiguousLanguages(_) => MnemonicError::BadChecksum,
            },
        )
    }

    /// Rebuilds the mnemonic from its 32 bytes of entropy.
    pub fn from_entropy(entropy: &[u8; ENTROPY_LEN]) -> Mnemonic {
        let inner = bip39::Mnemonic::from_entropy_in(Language::English, entropy)
            .expect("32 bytes is a valid BIP39 entropy length");
        Mnemonic(inner)
    }

    /// The 32 bytes of entropy the words encode.
    pub fn entropy(&self) -> Zeroizing<[u8; ENTROPY_LEN]> {
        let (mut array, len) = self.0.to_entropy_array();
        debug_assert_eq!(len, ENTROPY_LEN, "Ember mnemonics are always 24 words");
        let mut entropy = Zeroizing::new([0u8; ENTROPY_LEN]);
        entropy.copy_from_slice(&array[..ENTROPY_LEN]);
        zeroize::Zeroize::zeroize(&mut array);
        entropy
    }

    /// The words, separated by single spaces, for showing to the user once.
    pub fn phrase(&self) -> Zeroizing<String> {
        let mut phrase = Zeroizing::new(String::with_capacity(WORD_COUNT * 9));
        for (i, word) in self.0.words().enumerate() {
            if i > 0 {
                phrase.push(' ');
            }
            phrase.push_str(word);
        }
        phrase
    }

    /// The words one by one, e.g. for showing them numbered.
    pub fn words(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.words()
    }

    /// The BIP39 seed with an empty passphrase: what a wallet restored from just the
    /// 24 words gets.
    pub fn seed(&self) -> Seed {
        self.seed_with_passphrase("")
    }

    /// The BIP39 seed with an extra passphrase (the optional "25th word"). A different
    /// passphrase gives a different, equally valid wallet: nothing can detect a typo in
    /// it, which is why the default is empty.
    pub fn seed_with_passphrase(&self, passphrase: &str) -> Seed {
        // `to_seed` NFKD-normalises the passphrase, as BIP39 requires.
        Seed(Zeroizing::new(self.0.to_seed(passphrase)))
    }
}

impl fmt::Debug for Mnemonic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Mnemonic(<redacted>)")
    }
}

/// The 64-byte BIP39 seed from which every key of the wallet is derived.
#[derive(Clone, PartialEq, Eq)]
pub struct Seed(Zeroizing<[u8; SEED_LEN]>);

impl Seed {
    /// Wraps seed bytes (read back from a keystore, or a test vector).
    pub fn from_bytes(bytes: [u8; SEED_LEN]) -> Seed {
        Seed(Zeroizing::new(bytes))
    }

    /// Copies a seed out of a longer buffer (the decrypted keystore) straight into
    /// wiped-on-drop memory, with no stray stack copy. `None` unless exactly
    /// [`SEED_LEN`] bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Seed> {
        if bytes.len() != SEED_LEN {
            return None;
        }
        let mut seed = Seed(Zeroizing::new([0u8; SEED_LEN]));
        seed.0.copy_from_slice(bytes);
        Some(seed)
    }

    /// The seed bytes, for key derivation and for the keystore.
    pub fn as_bytes(&self) -> &[u8; SEED_LEN] {
        &self.0
    }
}

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Seed(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The BIP39 reference vector (trezor/python-mnemonic vectors.json) for all-zero
    // 256-bit entropy, with passphrase "TREZOR".
    const ZERO_PHRASE: &str = "abandon abandon abandon abandon abandon abandon abandon abandon \
        abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon \
        abandon abandon abandon abandon abandon art";
    const ZERO_SEED_TREZOR: &str = "bda85446c68413707090a52022edd26a1c9462295029f2e60cd7c4f2bbd3097170af7a4d73245cafa9c3cca8d561a7c3de6f5d4a10be8ed2a5e608d68f92fcc8";

    #[test]
    fn generate_then_parse_round_trips() {
        let m = Mnemonic::generate();
        assert_eq!(m.words().count(), WORD_COUNT);
        let phrase = m.phrase();
        let parsed = Mnemonic::parse(&phrase).expect("a generated phrase parses");
        assert_eq!(parsed, m);
        assert_eq!(*parsed.entropy(), *m.entropy());
        assert_eq!(Mnemonic::from_entropy(&m.entropy()), m);
        assert_eq!(parsed.seed(), m.seed());
    }

    #[test]
    fn two_generated_mnemonics_differ() {
        assert_ne!(Mnemonic::generate(), Mnemonic::generate());
    }

    #[test]
    fn reference_vector_seed() {
        let m = Mnemonic::parse(ZERO_PHRASE).unwrap();
        assert_eq!(*m.entropy(), [0u8; 32]);
        assert_eq!(hex::encode(m.seed_with_passphrase("TREZOR").as_bytes()), ZERO_SEED_TREZOR);
        assert_ne!(m.seed(), m.seed_with_passphrase("TREZOR"));

        let seed = m.seed();
        assert_eq!(Seed::from_slice(seed.as_bytes()), Some(seed.clone()));
        assert_eq!(Seed::from_slice(&seed.as_bytes()[..63]), None);
    }

    #[test]
    fn parse_forgives_case_and_whitespace() {
        let messy = format!("  {}\n", ZERO_PHRASE.to_uppercase().replace(' ', " \t "));
        assert_eq!(Mnemonic::parse(&messy).unwrap(), Mnemonic::parse(ZERO_PHRASE).unwrap());
    }

    #[test]
    fn bad_checksum_is_refused() {
        // Last word "art" carries the checksum; "abandon" there is a valid word with
        // the wrong checksum bits.
        let bad = ZERO_PHRASE.replace(" art", " abandon");
        assert_eq!(Mnemonic::parse(&bad), Err(MnemonicError::BadChecksum));
    }

    #[test]
    fn unknown_word_is_refused_with_its_position() {
        let mut words: Vec<&str> = ZERO_PHRASE.split_whitespace().collect();
        words[2] = "abandom";
        let bad = words.join(" ");
        let err = Mnemonic::parse(&bad).unwrap_err();
        assert_eq!(err, MnemonicError::UnknownWord { position: 3 });
        let msg = err.to_string();
        assert!(msg.contains("word 3"), "{msg}");
        assert!(!msg.contains("abandom"), "the error must not quote the word");
    }

    #[test]
    fn wrong_word_count_is_refused() {
        let twelve = "abandon abandon abandon abandon abandon abandon abandon abandon \
            abandon abandon abandon about";
        assert_eq!(
            Mnemonic::parse(twelve),
            Err(MnemonicError::WrongWordCount { got: 12, expected: 24 })
        );
        assert_eq!(
            Mnemonic::parse(""),
            Err(MnemonicError::WrongWordCount { got: 0, expected: 24 })
        );
    }

    #[test]
    fn debug_is_redacted() {
        let m = Mnemonic::generate();
        let seed = m.seed();
        let shown = format!("{m:?} {seed:?}");
        for word in m.words() {
            // Short words could occur by chance inside "Mnemonic" etc.; every BIP39
            // word is at least 3 letters, so check with surrounding context.
            assert!(!shown.contains(&format!(" {word} ")), "{shown}");
        }
        assert!(!shown.contains(&hex::encode(seed.as_bytes())));
        assert!(!shown.contains(&hex::encode(&m.entropy()[..8])));
        assert_eq!(shown, "Mnemonic(<redacted>) Seed(<redacted>)");
    }
}
