//! Proof of work: targets, their compact form, work, and the per-block retarget.
//!
//! A block id, read as a 256-bit big-endian integer, must be `<= target`. The header carries
//! the target in Bitcoin's 32-bit compact form (`nBits`): exponent byte, 23-bit mantissa,
//! no sign bit. The retarget rule is ASERT (Bitcoin Cash's aserti3-2d) anchored at genesis:
//! every block's target follows from its parent's height and time alone, by an exponential
//! in how far the chain is ahead of or behind schedule, halving or doubling every half-life.

use bincode::{Decode, Encode};
use primitive_types::{U256, U512};
use std::fmt;

/// A target in compact form, as stored in headers.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, Encode, Decode, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct CompactTarget(pub u32);

impl fmt::Debug for CompactTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CompactTarget({:#010x})", self.0)
    }
}

/// Why a compact target is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    #[error("compact target {0:#010x} has the sign bit set")]
    Negative(u32),
    #[error("compact target {0:#010x} overflows 256 bits")]
    Overflow(u32),
    #[error("compact target {0:#010x} is zero")]
    Zero(u32),
    #[error("compact target {0:#010x} is not in canonical form")]
    NotCanonical(u32),
}

impl CompactTarget {
    /// Expands to the full 256-bit target. Only canonical, positive, non-zero compact values
    /// are accepted, so each target has exactly one compact form.
    pub fn expand(self) -> Result<U256, CompactError> {
        let bits = self.0;
        let exponent = bits >> 24;
        let mantissa = bits & 0x007f_ffff;
        if bits & 0x0080_0000 != 0 {
            return Err(CompactError::Negative(bits));
        }
        let value = if exponent <= 3 {
            U256::from(mantissa >> (8 * (3 - exponent)))
        } else {
            let shift = 8 * (exponent - 3);
            let m = U256::from(mantissa);
            if shift >= 256 || (m.bits() as u32 + shift) > 256 {
                return Err(CompactError::Overflow(bits));
            }
            m << shift
        };
        if value.is_zero() {
            return Err(CompactError::Zero(bits));
        }
        if Self::from_target(value) != self {
            return Err(CompactError::NotCanonical(bits));
        }
        Ok(value)
    }

    /// The compact form of a target (rounding the target down to 23 bits of mantissa).
    pub fn from_target(target: U256) -> Self {
        let mut size = target.bits().div_ceil(8) as u32;
        let mut compact: u32 = if size <= 3 {
            (target.low_u64() << (8 * (3 - size))) as u32
        } else {
            (target >> (8 * (size - 3))).low_u32()
        };
        // The mantissa's top bit is a sign bit in this format: move to a bigger exponent.
        if compact & 0x0080_0000 != 0 {
            compact >>= 8;
            size += 1;
        }
        CompactTarget(compact | (size << 24))
    }
}

/// Reads a 32-byte hash as a big-endian 256-bit integer.
pub fn hash_to_u256(bytes: &[u8; 32]) -> U256 {
    U256::from_big_endian(bytes)
}

/// Whether a block id meets its target.
pub fn meets_target(id: &[u8; 32], target: U256) -> bool {
    hash_to_u256(id) <= target
}

/// Expected number of hashes to find a block at this target: `2^256 / (target + 1)`.
pub fn work(target: U256) -> U256 {
    // 2^256 does not fit, so compute (2^256 - target - 1) / (target + 1) + 1, as Bitcoin does.
    if target == U256::MAX {
        return U256::one();
    }
    if target.is_zero() {
        // 2^256 does not fit; a zero target is refused by `CompactTarget::expand` anyway.
        return U256::MAX;
    }
    (!target / (target + 1)) + 1
}

/// Parameters of the ASERT retarget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asert {
    /// Target of the anchor (genesis) block.
    pub anchor_target: U256,
    /// Height of the anchor block.
    pub anchor_height: u64,
    /// Time (ms) the anchor's parent would have had: anchor time minus one spacing.
    pub anchor_parent_time_ms: i128,
    /// Target block spacing in milliseconds.
    pub spacing_ms: i128,
    /// Time (ms) for the target to double when the chain is that far behind schedule.
    pub half_life_ms: i128,
    /// The easiest allowed target.
    pub pow_limit: U256,
}

impl Asert {
    /// Target for the block after a parent at `parent_height` with time `parent_time_ms`.
    ///
    /// aserti3-2d: `target = anchor * 2^((Δt - spacing·(Δh + 1)) / half_life)`, the power of
    /// two computed in 16.16 fixed point with the cubic approximation of `2^x` on [0, 1),
    /// then clamped to `[1, pow_limit]`.
    pub fn next_target(&self, parent_height: u64, parent_time_ms: u64) -> U256 {
        let time_delta = parent_time_ms as i128 - self.anchor_parent_time_ms;
        let height_delta = parent_height as i128 - self.anchor_height as i128;
        let exponent =
            ((time_delta - self.spacing_ms * (height_delta + 1)) * 65536) / self.half_life_ms;
        // Floor division by 65536 (arithmetic shift) and the positive remainder.
        let shifts = exponent >> 16;
        let frac = (exponent - (shifts << 16)) as u128;
        debug_assert!(frac < 65536);
        let factor: u128 = 65536
            + ((195_766_423_245_049u128 * frac
                + 971_821_376u128 * frac * frac
                + 5_127u128 * frac * frac * frac
                + (1u128 << 47))
                >> 48);
        let mut next: U512 = U512::from(self.anchor_target) * U512::from(factor);
        // Apply 2^shifts then undo the 16.16 scaling; clamp far-off exponents early.
        let total_shift = shifts - 16;
        if total_shift >= 0 {
            // Any bit shifted past 512 would be lost; such a target is far above the limit.
            if total_shift >= 256 || next.bits() + total_shift as usize > 512 {
                return self.pow_limit;
            }
            next <<= total_shift as usize;
        } else {
            let right = (-total_shift) as u128;
            if right >= 512 {
                return U256::one();
            }
            next >>= right as usize;
        }
        let limit = U512::from(self.pow_limit);
        if next > limit {
            return self.pow_limit;
        }
        let next = U256::try_from(next).expect("value below pow_limit fits 256 bits");
        if next.is_zero() {
            U256::one()
        } else {
            next
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_known_values() {
        // Bitcoin's genesis bits.
        let t = CompactTarget(0x1d00ffff).expand().unwrap();
        assert_eq!(t, U256::from(0xffffu64) << 208);
        assert_eq!(CompactTarget::from_target(t), CompactTarget(0x1d00ffff));
        // Regtest's easiest target.
        let easy = CompactTarget(0x207fffff).expand().unwrap();
        assert_eq!(easy, U256::from(0x7fffffu64) << 232);
        assert_eq!(CompactTarget(0x03123456).expand().unwrap(), U256::from(0x123456u64));
    }

    #[test]
    fn compact_refuses_bad_forms() {
        assert_eq!(CompactTarget(0x04923456).expand(), Err(CompactError::Negative(0x04923456)));
        assert_eq!(CompactTarget(0x01003456).expand(), Err(CompactError::Zero(0x01003456)));
        assert_eq!(CompactTarget(0xff123456).expand(), Err(CompactError::Overflow(0xff123456)));
        // 0x04001234 and 0x03123400 >> ... : leading zero mantissa byte is not canonical.
        assert_eq!(CompactTarget(0x04001234).expand(), Err(CompactError::NotCanonical(0x04001234)));
    }

    #[test]
    fn work_of_targets() {
        assert_eq!(work(U256::MAX), U256::one());
        // target 2^255 - 1 -> work 2.
        assert_eq!(work((U256::one() << 255) - 1), U256::from(2));
        assert_eq!(work(U256::zero()), U256::MAX); // 2^256/1 saturates at MAX (never used: zero is refused)
    }

    #[test]
    fn meets_target_is_big_endian() {
        let mut id = [0u8; 32];
        id[31] = 5;
        assert!(meets_target(&id, U256::from(5)));
        assert!(!meets_target(&id, U256::from(4)));
        id[0] = 1;
        assert!(!meets_target(&id, U256::from(u64::MAX)));
    }

    fn asert() -> Asert {
        Asert {
            anchor_target: U256::one() << 220,
            anchor_height: 0,
            anchor_parent_time_ms: 0,
            spacing_ms: 10_000,
            half_life_ms: 3_600_000,
            pow_limit: (U256::one() << 236) - 1,
        }
    }

    #[test]
    fn asert_on_schedule_keeps_target() {
        let a = asert();
        // Parent at height h has time spacing*(h+1) when exactly on schedule.
        for h in [0u64, 1, 100, 10_000] {
            assert_eq!(a.next_target(h, 10_000 * (h + 1)), a.anchor_target);
        }
    }

    #[test]
    fn asert_doubles_and_halves_per_half_life() {
        let a = asert();
        let late = a.next_target(0, 10_000 + 3_600_000);
        assert_eq!(late, a.anchor_target * 2);
        let early = a.next_target(360, 10_000 * 361 - 3_600_000);
        assert_eq!(early, a.anchor_target / 2);
    }

    #[test]
    fn asert_is_clamped() {
        // An anchor at 2^255 far behind schedule must clamp to the limit, not wrap.
        let high = Asert { anchor_target: U256::one() << 255, pow_limit: U256::MAX, ..asert() };
        assert_eq!(high.next_target(0, 10_000 + 3_600_000 * 257), U256::MAX);
        let a = asert();
        assert_eq!(a.next_target(0, u64::MAX / 2), a.pow_limit);
        assert_eq!(a.next_target(10_000_000, 0), U256::one());
    }

    #[test]
    fn asert_is_monotonic_in_time() {
        let a = asert();
        let mut last = U256::zero();
        for t in (0..20).map(|i| 10_000 + i * 500_000) {
            let next = a.next_target(0, t);
            assert!(next >= last);
            last = next;
        }
    }
}
