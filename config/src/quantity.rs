//! Resource quantities (`500m`, `128Mi`, `1e3`, `2`), parsed as Kubernetes'
//! `resource.ParseQuantity` parses them.
//!
//! A [`Quantity`] keeps its value exactly in nano-units (value × 10⁹), which covers every
//! suffix from `n` to `Ei`; values finer than a nano-unit are rounded up. Quantities
//! compare by value, so `1Gi > 1G` and `1000m == 1`.

use std::cmp::Ordering;
use std::fmt;

/// The regular expression Kubernetes quotes when a quantity does not parse.
pub const QUANTITY_REGEX: &str = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$";

const NANO: i128 = 1_000_000_000;

/// Why a string is not a quantity (Kubernetes' wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The string does not have the shape of a number followed by a suffix.
    #[error("quantities must match the regular expression '{QUANTITY_REGEX}'")]
    FormatWrong,
    /// The number is fine but the suffix is not one Kubernetes knows.
    #[error("unable to parse quantity's suffix")]
    Suffix,
}

/// How the quantity was written: the suffix family Kubernetes remembers for re-encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `Ki`, `Mi`, … `Ei`.
    BinarySI,
    /// `n`, `u`, `m`, ``, `k`, `M`, … `E`.
    DecimalSI,
    /// `e3`, `E-2`, …
    DecimalExponent,
}

/// A parsed resource quantity.
#[derive(Debug, Clone)]
pub struct Quantity {
    nanos: i128,
    format: Format,
    original: String,
}

impl Quantity {
    /// The value in thousandths, rounded up (CPU millicores).
    pub fn as_milli(&self) -> i128 {
        div_ceil(self.nanos, 1_000_000)
    }

    /// The value as a whole number, rounded up (bytes for memory and storage).
    pub fn as_bytes(&self) -> i128 {
        div_ceil(self.nanos, NANO)
    }

    /// Same as [`Quantity::as_bytes`]: the integer value rounded up.
    pub fn value(&self) -> i128 {
        self.as_bytes()
    }

    /// The value in billionths (exact unless the input was finer than that).
    pub fn as_nanos(&self) -> i128 {
        self.nanos
    }

    /// The suffix family the quantity was written with.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The string the quantity was parsed from.
    pub fn as_str(&self) -> &str {
        &self.original
    }

    /// True when the value is below zero.
    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// True when the value is zero.
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_quantity(s)
    }
}

fn div_ceil(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b != 0 && a > 0 {
        q + 1
    } else {
        q
    }
}

/// Parses a Kubernetes quantity string.
pub fn parse_quantity(s: &str) -> Result<Quantity, QuantityError> {
    let bytes = s.as_bytes();
    if bytes.is_empty() {
        return Err(QuantityError::FormatWrong);
    }
    let mut i = 0;
    let mut negative = false;
    if bytes[0] == b'+' || bytes[0] == b'-' {
        negative = bytes[0] == b'-';
        i = 1;
    }
    let mut int_digits = String::new();
    let mut frac_digits = String::new();
    let mut seen_point = false;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_digit() {
            if seen_point {
                frac_digits.push(c as char);
            } else {
                int_digits.push(c as char);
            }
        } else if c == b'.' && !seen_point {
            seen_point = true;
        } else {
            break;
        }
        i += 1;
    }
    if int_digits.is_empty() && frac_digits.is_empty() {
        return Err(QuantityError::FormatWrong);
    }
    let suffix = &s[i..];
    // The suffix must only contain the characters the regular expression allows.
    if !suffix
        .chars()
        .all(|c| "eEinumkKMGTP+-0123456789".contains(c))
    {
        return Err(QuantityError::FormatWrong);
    }
    let (format, mult): (Format, Mult) = match suffix {
        "" => (Format::DecimalSI, Mult::Dec(0)),
        "n" => (Format::DecimalSI, Mult::Dec(-9)),
        "u" => (Format::DecimalSI, Mult::Dec(-6)),
        "m" => (Format::DecimalSI, Mult::Dec(-3)),
        "k" => (Format::DecimalSI, Mult::Dec(3)),
        "M" => (Format::DecimalSI, Mult::Dec(6)),
        "G" => (Format::DecimalSI, Mult::Dec(9)),
        "T" => (Format::DecimalSI, Mult::Dec(12)),
        "P" => (Format::DecimalSI, Mult::Dec(15)),
        "E" => (Format::DecimalSI, Mult::Dec(18)),
        "Ki" => (Format::BinarySI, Mult::Bin(10)),
        "Mi" => (Format::BinarySI, Mult::Bin(20)),
        "Gi" => (Format::BinarySI, Mult::Bin(30)),
        "Ti" => (Format::BinarySI, Mult::Bin(40)),
        "Pi" => (Format::BinarySI, Mult::Bin(50)),
        "Ei" => (Format::BinarySI, Mult::Bin(60)),
        other => {
            let rest = other
                .strip_prefix('e')
                .or_else(|| other.strip_prefix('E'))
                .ok_or(QuantityError::Suffix)?;
            let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(QuantityError::Suffix);
            }
            let exp: i32 = rest.parse().map_err(|_| QuantityError::Suffix)?;
            (Format::DecimalExponent, Mult::Dec(exp))
        }
    };

    // mantissa × 10^(-frac) × mult, expressed in nanos.
    let mut all_digits = int_digits;
    all_digits.push_str(&frac_digits);
    let trimmed = all_digits.trim_start_matches('0');
    let mut scale: i64 = 9 - frac_digits.len() as i64;
    let mantissa: i128 = if trimmed.is_empty() {
        0
    } else if trimmed.len() > 30 {
        // Keep the 30 leading digits; the rest only move the value by a tiny fraction.
        scale += (trimmed.len() - 30) as i64;
        trimmed[..30].parse::<i128>().unwrap_or(i128::MAX) + 1
    } else {
        trimmed.parse::<i128>().unwrap_or(i128::MAX)
    };
    let mut value = mantissa;
    let mut saturated = false;
    match mult {
        Mult::Dec(e) => scale += e as i64,
        Mult::Bin(b) => match value.checked_mul(1i128 << b) {
            Some(v) => value = v,
            None => saturated = true,
        },
    }
    if !saturated && value != 0 {
        if scale >= 0 {
            for _ in 0..scale {
                match value.checked_mul(10) {
                    Some(v) => value = v,
                    None => {
                        saturated = true;
                        break;
                    }
                }
            }
        } else {
            let mut remainder = false;
            for _ in 0..(-scale) {
                if value % 10 != 0 {
                    remainder = true;
                }
                value /= 10;
                if value == 0 {
                    remainder = true;
                    break;
                }
            }
            if remainder {
                value += 1;
            }
        }
    }
    if saturated {
        value = i128::MAX / 2;
    }
    if negative {
        value = -value;
    }
    Ok(Quantity {
        nanos: value,
        format,
        original: s.to_string(),
    })
}

enum Mult {
    Dec(i32),
    Bin(u32),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        parse_quantity(s).unwrap()
    }

    #[test]
    fn suffixes() {
        assert_eq!(q("500m").as_milli(), 500);
        assert_eq!(q("1").as_milli(), 1000);
        assert_eq!(q("0.5").as_milli(), 500);
        assert_eq!(q("1Ki").as_bytes(), 1024);
        assert_eq!(q("128Mi").as_bytes(), 128 * 1024 * 1024);
        assert_eq!(q("1Gi").as_bytes(), 1 << 30);
        assert_eq!(q("1Ei").as_bytes(), 1 << 60);
        assert_eq!(q("1k").as_bytes(), 1000);
        assert_eq!(q("1M").as_bytes(), 1_000_000);
        assert_eq!(q("2G").as_bytes(), 2_000_000_000);
        assert_eq!(q("1T").as_bytes(), 1_000_000_000_000);
        assert_eq!(q("1P").as_bytes(), 1_000_000_000_000_000);
        assert_eq!(q("1E").as_bytes(), 1_000_000_000_000_000_000);
        assert_eq!(q("100n").as_nanos(), 100);
        assert_eq!(q("3u").as_nanos(), 3000);
        assert_eq!(q("1e3").as_bytes(), 1000);
        assert_eq!(q("1E3").as_bytes(), 1000);
        assert_eq!(q("15e-1").as_milli(), 1500);
        assert_eq!(q("1.5Gi").as_bytes(), 3 << 29);
        assert_eq!(q("-1").as_milli(), -1000);
        assert_eq!(q("+2").as_bytes(), 2);
        assert_eq!(q(".5").as_milli(), 500);
        assert_eq!(q("1.").as_bytes(), 1);
    }

    #[test]
    fn rounding_up() {
        assert_eq!(q("0.1m").as_milli(), 1);
        assert_eq!(q("1m").as_bytes(), 1);
        assert_eq!(q("0.0000000001").as_nanos(), 1);
        assert_eq!(q("1e-20").as_nanos(), 1);
    }

    #[test]
    fn ordering() {
        assert!(q("1Gi") > q("1G"));
        assert_eq!(q("1000m"), q("1"));
        assert!(q("250m") < q("0.5"));
        assert!(q("1e3") == q("1k"));
        assert_eq!(q("64Mi").format(), Format::BinarySI);
        assert_eq!(q("1e3").format(), Format::DecimalExponent);
    }

    #[test]
    fn errors() {
        for bad in [
            "", "abc", "1.2.3", "5 Mi", "1Zi", "Mi", ".", "1e", "1ee3", "1mi", "--1",
        ] {
            assert!(parse_quantity(bad).is_err(), "{bad} should not parse");
        }
        assert_eq!(
            parse_quantity("abc").unwrap_err().to_string(),
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        );
        assert_eq!(
            parse_quantity("1Zi").unwrap_err(),
            QuantityError::FormatWrong
        );
        assert_eq!(parse_quantity("1mi").unwrap_err(), QuantityError::Suffix);
    }

    #[test]
    fn huge_values_saturate() {
        assert!(q("1e100") > q("1Ei"));
        assert!(q("99999999999999999999999999999999999999999") > q("1Ei"));
    }
}
