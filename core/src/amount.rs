//! Amounts of coin: `u64` base units, 1 coin = 10^8 units.
//!
//! Arithmetic is checked only (no `Add` impl that could wrap or panic), and the text form is
//! decimal coins with at most 8 fractional digits: "1.5" is 150,000,000 units. Parsing
//! refuses anything ambiguous (signs, exponents, spaces, too many decimals) instead of
//! rounding, because a payment amount that is silently rounded is a lost payment.

use bincode::{Decode, Encode};
use std::fmt;
use std::str::FromStr;

/// Base units per coin.
pub const UNITS_PER_COIN: u64 = 100_000_000;
/// Number of decimal places a coin amount may have.
pub const DECIMALS: usize = 8;

/// An amount of coin in base units.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    Encode,
    Decode,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Amount(u64);

/// Why a decimal coin string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountParseError {
    #[error("amount is empty")]
    Empty,
    #[error("amount {0:?} is not a decimal number of coins (digits, at most one '.')")]
    Invalid(String),
    #[error("amount {0:?} has more than 8 decimal places (1 unit = 0.00000001 coin)")]
    TooManyDecimals(String),
    #[error("amount {0:?} is larger than the largest possible amount")]
    Overflow(String),
}

impl Amount {
    pub const ZERO: Amount = Amount(0);
    pub const MAX: Amount = Amount(u64::MAX);

    pub const fn from_units(units: u64) -> Self {
        Amount(units)
    }
    /// Whole coins; `None` when they do not fit in a u64 of units.
    pub const fn from_coins(coins: u64) -> Option<Self> {
        match coins.checked_mul(UNITS_PER_COIN) {
            Some(u) => Some(Amount(u)),
            None => None,
        }
    }
    pub const fn units(self) -> u64 {
        self.0
    }
    pub const fn checked_add(self, rhs: Amount) -> Option<Amount> {
        match self.0.checked_add(rhs.0) {
            Some(v) => Some(Amount(v)),
            None => None,
        }
    }
    pub const fn checked_sub(self, rhs: Amount) -> Option<Amount> {
        match self.0.checked_sub(rhs.0) {
            Some(v) => Some(Amount(v)),
            None => None,
        }
    }
    /// Sum of an iterator of amounts; `None` on overflow.
    pub fn checked_sum<I: IntoIterator<Item = Amount>>(iter: I) -> Option<Amount> {
        iter.into_iter().try_fold(Amount::ZERO, Amount::checked_add)
    }
}

impl fmt::Display for Amount {
    /// Decimal coins, trailing zeros of the fraction trimmed ("1.5", "0.00000001", "3").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / UNITS_PER_COIN;
        let frac = self.0 % UNITS_PER_COIN;
        if frac == 0 {
            write!(f, "{whole}")
        } else {
            let digits = format!("{frac:08}");
            write!(f, "{whole}.{}", digits.trim_end_matches('0'))
        }
    }
}
impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({} units)", self.0)
    }
}

impl FromStr for Amount {
    type Err = AmountParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(AmountParseError::Empty);
        }
        let invalid = || AmountParseError::Invalid(s.to_string());
        let (whole, frac) = match s.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (s, None),
        };
        let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(whole) || frac.is_some_and(|f| !all_digits(f)) {
            return Err(invalid());
        }
        // "." alone, ".5" and "5." are refused: they are typos more often than intent.
        if whole.is_empty() || frac.is_some_and(str::is_empty) {
            return Err(invalid());
        }
        let frac = frac.unwrap_or("");
        if frac.len() > DECIMALS {
            return Err(AmountParseError::TooManyDecimals(s.to_string()));
        }
        let overflow = || AmountParseError::Overflow(s.to_string());
        let whole: u64 = whole.parse().map_err(|_| overflow())?;
        let frac_units: u64 = if frac.is_empty() {
            0
        } else {
            let padded = format!("{frac:0<8}");
            padded.parse().expect("eight ASCII digits always parse")
        };
        whole
            .checked_mul(UNITS_PER_COIN)
            .and_then(|w| w.checked_add(frac_units))
            .map(Amount)
            .ok_or_else(overflow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_and_print() {
        assert_eq!("1.5".parse::<Amount>().unwrap().units(), 150_000_000);
        assert_eq!("0.00000001".parse::<Amount>().unwrap().units(), 1);
        assert_eq!("42".parse::<Amount>().unwrap(), Amount::from_coins(42).unwrap());
        assert_eq!(Amount::from_units(150_000_000).to_string(), "1.5");
        assert_eq!(Amount::from_units(1).to_string(), "0.00000001");
        assert_eq!(Amount::ZERO.to_string(), "0");
        assert_eq!(Amount::MAX.to_string(), "184467440737.09551615");
        assert_eq!("184467440737.09551615".parse::<Amount>().unwrap(), Amount::MAX);
    }

    #[test]
    fn refuses_ambiguous_input() {
        for bad in ["", "-1", "+1", "1e8", " 1", "1 ", "1.2.3", ".5", "5.", "0x10", "1,5"] {
            assert!(bad.parse::<Amount>().is_err(), "{bad:?} must be refused");
        }
        assert_eq!(
            "0.000000001".parse::<Amount>(),
            Err(AmountParseError::TooManyDecimals("0.000000001".into()))
        );
        assert!(matches!(
            "184467440737.09551616".parse::<Amount>(),
            Err(AmountParseError::Overflow(_))
        ));
        assert!(matches!(
            "99999999999999999999999".parse::<Amount>(),
            Err(AmountParseError::Overflow(_))
        ));
    }

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(Amount::MAX.checked_add(Amount::from_units(1)), None);
        assert_eq!(Amount::ZERO.checked_sub(Amount::from_units(1)), None);
        assert_eq!(Amount::checked_sum([Amount::MAX, Amount::from_units(1)]), None);
        assert_eq!(Amount::from_coins(u64::MAX), None);
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(units in any::<u64>()) {
            let a = Amount::from_units(units);
            prop_assert_eq!(a.to_string().parse::<Amount>().unwrap(), a);
        }
        #[test]
        fn encoding_round_trip(units in any::<u64>()) {
            let a = Amount::from_units(units);
            let bytes = crate::encoding::encode(&a);
            prop_assert_eq!(bytes.len(), 8);
            let back: Amount = crate::encoding::decode(&bytes, 8).unwrap();
            prop_assert_eq!(back, a);
            prop_assert_eq!(crate::encoding::encode(&back), bytes);
        }
    }
}
