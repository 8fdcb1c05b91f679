//! Sizes and durations as written in a route: a number, or a string with a unit (`"1MiB"`,
//! `"512KiB"`, `"5s"`, `"2m"`). The same type reads TOML and JSON.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A size or a duration as written: a bare number (bytes, seconds) or text with a unit.
#[derive(Clone, Debug, PartialEq)]
pub enum Quantity {
    Integer(u64),
    Float(f64),
    Text(String),
}

impl From<u64> for Quantity {
    fn from(value: u64) -> Self {
        Quantity::Integer(value)
    }
}

impl From<&str> for Quantity {
    fn from(value: &str) -> Self {
        Quantity::Text(value.to_owned())
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quantity::Integer(n) => write!(f, "{n}"),
            Quantity::Float(x) => write!(f, "{x}"),
            Quantity::Text(s) => write!(f, "{s:?}"),
        }
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Quantity::Integer(n) => serializer.serialize_u64(*n),
            Quantity::Float(x) => serializer.serialize_f64(*x),
            Quantity::Text(s) => serializer.serialize_str(s),
        }
    }
}

struct QuantityVisitor;

impl Visitor<'_> for QuantityVisitor {
    type Value = Quantity;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number or a string with a unit, like \"5s\" or \"1MiB\"")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
        Ok(Quantity::Integer(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
        u64::try_from(v)
            .map(Quantity::Integer)
            .map_err(|_| E::custom(format!("{v} is negative; write a positive number")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
        Ok(Quantity::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
        Ok(Quantity::Text(v.to_owned()))
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(QuantityVisitor)
    }
}

/// Splits `"512KiB"` into `(512.0, "KiB")`; the number may have a fraction (`"1.5s"`).
fn split(text: &str) -> Option<(f64, &str)> {
    let text = text.trim();
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(end);
    let number: f64 = number.parse().ok()?;
    Some((number, unit.trim()))
}

const SIZE_FORMS: &str = "a number of bytes or a string like \"1MiB\", \"512KiB\", \"64KB\" \
                          (units B, KB, KiB, MB, MiB, GB, GiB)";

/// `"1MiB"` → 1048576. Units: B, KB/KiB, MB/MiB, GB/GiB (case-insensitive); no unit is bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let invalid = || format!("{text:?} is not a size; write {SIZE_FORMS}");
    let (number, unit) = split(text).ok_or_else(invalid)?;
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return Err(invalid()),
    };
    let bytes = number * factor as f64;
    if !bytes.is_finite() || bytes.fract() != 0.0 || bytes > u64::MAX as f64 {
        return Err(invalid());
    }
    Ok(bytes as u64)
}

const DURATION_FORMS: &str = "a number of seconds or a string like \"500ms\", \"5s\", \"2m\", \
                              \"1h\"";

/// `"2m"` → 120 s. Units: ms, s, m, h; no unit is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("{text:?} is not a duration; write {DURATION_FORMS}");
    let (number, unit) = split(text).ok_or_else(invalid)?;
    let seconds = match unit.to_ascii_lowercase().as_str() {
        "ms" => number / 1000.0,
        "" | "s" | "sec" => number,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(invalid()),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| invalid())
}

impl Quantity {
    pub(crate) fn size(&self) -> Result<u64, String> {
        match self {
            Quantity::Integer(n) => Ok(*n),
            Quantity::Float(x) => parse_size(&x.to_string()),
            Quantity::Text(s) => parse_size(s),
        }
    }

    pub(crate) fn duration(&self) -> Result<Duration, String> {
        match self {
            Quantity::Integer(n) => Ok(Duration::from_secs(*n)),
            Quantity::Float(x) => parse_duration(&x.to_string()),
            Quantity::Text(s) => parse_duration(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_units_and_bare_numbers() {
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("64KB"), Ok(64_000));
        assert_eq!(parse_size("2048"), Ok(2048));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(Quantity::Integer(10).size(), Ok(10));
        let err = parse_size("1 MeB").unwrap_err();
        assert!(err.contains("\"1 MeB\" is not a size"), "{err}");
        assert!(parse_size("0.5B").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn durations_read_units_and_bare_numbers() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(
            Quantity::Float(1.5).duration(),
            Ok(Duration::from_millis(1500))
        );
        let err = parse_duration("5 fortnights").unwrap_err();
        assert!(err.contains("is not a duration"), "{err}");
    }

    #[test]
    fn quantities_deserialize_from_toml_and_json() {
        #[derive(Deserialize)]
        struct T {
            a: Quantity,
            b: Quantity,
        }
        let t: T = toml::from_str("a = 5\nb = \"1MiB\"").unwrap();
        assert_eq!((t.a, t.b), (Quantity::Integer(5), Quantity::from("1MiB")));
        let t: T = serde_json::from_str(r#"{"a": 2.5, "b": "5s"}"#).unwrap();
        assert_eq!((t.a, t.b), (Quantity::Float(2.5), Quantity::from("5s")));
        let err = toml::from_str::<T>("a = -1\nb = 1").err().unwrap();
        assert!(err.message().contains("negative"), "{err}");
    }
}
