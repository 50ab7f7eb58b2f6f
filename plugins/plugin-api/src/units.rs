//! Human units on the wire: durations like `15s`, `1m30s`, `250ms` and sizes like `100 MB`, `1GiB`, `512KiB`
//! or plain byte counts, as the reference Tarsier accepted them.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written as a human string (`15s`, `1m30s`, `250ms`, `2h`). The number `0` is accepted too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.starts_with('-') {
            return Err(format!("duration `{text}` must not be negative"));
        }
        if text.chars().all(|c| c.is_ascii_digit()) && !text.is_empty() && text.trim_start_matches('0').is_empty() {
            return Ok(Self(Duration::ZERO));
        }
        humantime::parse_duration(text)
            .map(Self)
            .map_err(|err| format!("invalid duration `{text}` ({err}); write it like `15s`, `1m30s` or `250ms`"))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_zero() {
            return f.write_str("0s");
        }
        write!(f, "{}", humantime::format_duration(self.0).to_string().replace(' ', ""))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as `15s`, `1m30s` or `250ms`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                HumanDuration::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                if v == 0 {
                    Ok(HumanDuration(Duration::ZERO))
                } else {
                    Err(E::custom(format!("duration {v} has no unit; write it like `{v}s` or `{v}ms`")))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                if v < 0 {
                    Err(E::custom(format!("duration {v} must not be negative")))
                } else {
                    self.visit_u64(v as u64)
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Err(E::custom(format!("duration {v} has no unit; write it like `1.5s` or `250ms`")))
            }
        }
        deserializer.deserialize_any(DurationVisitor)
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A human duration: `15s`, `1m30s`, `250ms`, `2h`.",
            "examples": ["15s", "1m30s", "250ms"]
        })
    }
}

/// A size in bytes, written as a human string (`100 MB`, `1GiB`, `512KiB`) or a plain byte count.
/// Decimal units are powers of 1000 and binary ones powers of 1024, as the reference accepted them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const fn mib(n: u64) -> Self {
        Self(n * 1024 * 1024)
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.starts_with('-') {
            return Err(format!("size `{text}` must not be negative"));
        }
        text.parse::<bytesize::ByteSize>()
            .map(|size| Self(size.as_u64()))
            .map_err(|err| format!("invalid size `{text}` ({err}); write it like `100 MB`, `1GiB` or `4096`"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", bytesize::ByteSize(self.0).display().iec())
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as `100 MB`, `1GiB`, `512KiB` or a byte count")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v).map(ByteSize).map_err(|_| E::custom(format!("size {v} must not be negative")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Err(E::custom(format!("size {v} is not a whole number of bytes; write it like `1.5 GiB`")))
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> Cow<'static, str> {
        "ByteSize".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["string", "integer"],
            "description": "A size: `100 MB`, `1GiB`, `512KiB` or a plain byte count.",
            "examples": ["64MiB", "100 MB", 4096]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_go_and_human_styles() {
        for (text, ms) in
            [("15s", 15_000), ("1m30s", 90_000), ("250ms", 250), ("2h", 7_200_000), ("0", 0), ("1m 30s", 90_000)]
        {
            assert_eq!(HumanDuration::parse(text).unwrap().0.as_millis(), ms, "{text}");
        }
        for bad in ["-5s", "5", "fast", "", "5 parsecs"] {
            assert!(HumanDuration::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(HumanDuration::from_secs(90).to_string(), "1m30s");
    }

    #[test]
    fn sizes_in_reference_styles() {
        for (text, bytes) in
            [("10MB", 10_000_000), ("100 MB", 100_000_000), ("1GiB", 1 << 30), ("512KiB", 512 << 10), ("4096", 4096)]
        {
            assert_eq!(ByteSize::parse(text).unwrap().0, bytes, "{text}");
        }
        for bad in ["-1MB", "lots", "12 XB"] {
            assert!(ByteSize::parse(bad).is_err(), "{bad}");
        }
        let from_json: ByteSize = serde_json::from_str("-3").map(|v: ByteSize| v).unwrap_or(ByteSize(7));
        assert_eq!(from_json, ByteSize(7));
    }
}
