//! Human units on the wire: durations like `15s`, `1m30s`, `1.5h`, `250ms` (Go's syntax) and sizes like
//! `100 MB`, `1GiB`, `512KiB` or plain byte counts, as the reference Tarsier accepted them.

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

/// For `sleep` and `deadlock`'s `duration`: a negative duration (`-5s`, as Go's `time.ParseDuration` takes it)
/// means no wait, as it did in the reference (its `time.Sleep` returns at once). Use with
/// `#[serde(deserialize_with = "negative_is_zero")]`; other durations stay refused when negative.
pub fn negative_is_zero<'de, D: Deserializer<'de>>(deserializer: D) -> Result<HumanDuration, D::Error> {
    struct WaitVisitor;
    impl Visitor<'_> for WaitVisitor {
        type Value = HumanDuration;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a duration such as `15s`, `1m30s` or `250ms`")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            match v.trim().strip_prefix('-') {
                // Still a duration after the sign: `-fast` stays an error.
                Some(magnitude) => HumanDuration::parse(magnitude).map(|_| HumanDuration(Duration::ZERO)),
                None => HumanDuration::parse(v),
            }
            .map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            self.visit_u64(v.max(0) as u64)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            HumanDuration::deserialize(de::value::U64Deserializer::new(v))
        }
    }
    deserializer.deserialize_any(WaitVisitor)
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
/// Every unit is a power of 1024, `MB` as much as `MiB`: the reference Tarsier's sizes (its pattern
/// `^(\d+) *(([kKMGT]?)i?B)?$` with binary multipliers) meant that, and bodies written for it must hold
/// what they held there.
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
        parse_size::Config::new()
            .with_binary()
            .parse_size(text)
            .map(Self)
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
        for (text, ms) in [
            ("15s", 15_000),
            ("1m30s", 90_000),
            ("250ms", 250),
            ("2h", 7_200_000),
            ("0", 0),
            ("1m 30s", 90_000),
            ("1.5h", 5_400_000),
            ("2h45m", 9_900_000),
        ] {
            assert_eq!(HumanDuration::parse(text).unwrap().0.as_millis(), ms, "{text}");
        }
        for bad in ["-5s", "5", "fast", "", "5 parsecs"] {
            assert!(HumanDuration::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(HumanDuration::from_secs(90).to_string(), "1m30s");
        assert_eq!(HumanDuration::parse("1µs").unwrap().0, Duration::from_micros(1));
    }

    #[derive(Debug, Deserialize)]
    struct Wait {
        #[serde(deserialize_with = "negative_is_zero")]
        duration: HumanDuration,
    }

    #[test]
    fn a_negative_wait_is_no_wait_but_still_a_duration() {
        for (json, ms) in [(r#""-5s""#, 0), (r#""-1m30s""#, 0), ("-3", 0), (r#""250ms""#, 250), ("0", 0)] {
            let wait: Wait = serde_json::from_str(&format!(r#"{{"duration": {json}}}"#)).unwrap();
            assert_eq!(wait.duration.0.as_millis(), ms, "{json}");
        }
        for bad in [r#""-fast""#, r#""5""#, "7"] {
            assert!(serde_json::from_str::<Wait>(&format!(r#"{{"duration": {bad}}}"#)).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_in_reference_styles() {
        for (text, bytes) in
            [("10MB", 10 << 20), ("100 MB", 100 << 20), ("1GiB", 1 << 30), ("512KiB", 512 << 10), ("4096", 4096)]
        {
            assert_eq!(ByteSize::parse(text).unwrap().0, bytes, "{text}");
        }
        // The reference's own spellings: every unit binary, `kB` and `KB` alike, with or without a space.
        for (text, bytes) in [("1kB", 1024), ("1KB", 1024), ("256MB", 256 << 20), ("2 GB", 2 << 30), ("1TB", 1 << 40)] {
            assert_eq!(ByteSize::parse(text).unwrap().0, bytes, "{text}");
        }
        for bad in ["-1MB", "lots", "12 XB"] {
            assert!(ByteSize::parse(bad).is_err(), "{bad}");
        }
        let from_json: ByteSize = serde_json::from_str("-3").map(|v: ByteSize| v).unwrap_or(ByteSize(7));
        assert_eq!(from_json, ByteSize(7));
    }
}
