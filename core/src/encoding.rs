//! The one canonical binary encoding for everything Ember hashes, signs, sends or stores.
//!
//! bincode 2 with a single fixed configuration: little-endian, fixed-width integers (no
//! varints), so every value has exactly one encoding. Decoding always runs with a byte limit
//! and refuses trailing bytes, so an accepted input re-encodes to exactly the same bytes and
//! ids computed from encodings cannot be malleated.

use bincode::config::{self, Configuration, Fixint, Limit, LittleEndian};
use bincode::{Decode, Encode};

/// Why a byte string was refused by [`decode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input is longer than the caller allows for this type.
    #[error("input of {len} bytes exceeds the limit of {limit} bytes")]
    TooLong { len: usize, limit: usize },
    /// The bytes do not form a value of the expected type.
    #[error("malformed encoding: {0}")]
    Malformed(String),
    /// A complete value was read but bytes were left over.
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
}

/// The largest input [`decode`] accepts, whatever the caller's limit: above the largest
/// frame and block any network may have.
pub const MAX_DECODE_BYTES: usize = 8 * 1024 * 1024;

/// The configuration: fixed-width little-endian integers, and bincode's own limit set so a
/// length prefix can never make the decoder reserve more than `MAX_DECODE_BYTES` (bincode
/// reserves capacity from the prefix before reading the elements).
const CONFIG: Configuration<LittleEndian, Fixint, Limit<MAX_DECODE_BYTES>> = config::standard()
    .with_fixed_int_encoding()
    .with_little_endian()
    .with_limit::<MAX_DECODE_BYTES>();

/// Encodes a value canonically.
pub fn encode<T: Encode>(value: &T) -> Vec<u8> {
    bincode::encode_to_vec(value, CONFIG).expect("encoding into a Vec cannot fail")
}

/// Encodes a value canonically into `out` (no allocation). Returns the bytes written, or
/// `None` when `out` is too short.
pub fn encode_into<T: Encode>(value: &T, out: &mut [u8]) -> Option<usize> {
    bincode::encode_into_slice(value, out, CONFIG).ok()
}

/// Length of a value's canonical encoding, without allocating it.
pub fn encoded_len<T: Encode>(value: &T) -> usize {
    let mut counter = bincode::enc::write::SizeWriter::default();
    bincode::encode_into_writer(value, &mut counter, CONFIG).expect("size counting cannot fail");
    counter.bytes_written
}

/// Decodes exactly one value from `bytes`, which must not be longer than `limit`.
///
/// The input length is checked against `limit` (capped at [`MAX_DECODE_BYTES`]) before
/// decoding, and bincode's limit bounds what a length prefix inside the input can reserve.
pub fn decode<T: Decode<()>>(bytes: &[u8], limit: usize) -> Result<T, DecodeError> {
    let limit = limit.min(MAX_DECODE_BYTES);
    if bytes.len() > limit {
        return Err(DecodeError::TooLong { len: bytes.len(), limit });
    }
    let (value, read) = bincode::decode_from_slice_with_context(bytes, CONFIG, ())
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if read != bytes.len() {
        return Err(DecodeError::TrailingBytes(bytes.len() - read));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_fixed_width_little_endian() {
        assert_eq!(encode(&1u64), vec![1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(encode(&0x0102u16), vec![2, 1]);
        assert_eq!(encoded_len(&7u32), 4);
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(&5u32);
        bytes.push(0);
        assert_eq!(decode::<u32>(&bytes, 64), Err(DecodeError::TrailingBytes(1)));
    }

    #[test]
    fn limit_is_enforced_before_decoding() {
        let bytes = encode(&vec![0u8; 100]);
        assert!(matches!(decode::<Vec<u8>>(&bytes, 50), Err(DecodeError::TooLong { .. })));
        assert_eq!(decode::<Vec<u8>>(&bytes, 200).unwrap().len(), 100);
    }

    #[test]
    fn huge_length_prefix_does_not_allocate() {
        // A vector claiming u64::MAX elements in 8 bytes must fail, not allocate.
        let bytes = encode(&u64::MAX);
        assert!(matches!(decode::<Vec<u8>>(&bytes, 64), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn truncated_input_is_malformed() {
        assert!(matches!(decode::<u64>(&[1, 2, 3], 64), Err(DecodeError::Malformed(_))));
    }
}
