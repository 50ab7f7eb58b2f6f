//! Checks of a body's shape that run before, or beside, the parsers: nesting depth in linear time (a YAML
//! parser given 120 KB of `[` spent 14 s of CPU before it refused it), and duplicate keys at any depth (serde
//! keeps the last one silently, so `{"size": "1MiB", "size": "1TiB"}` would mean whichever came last).

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Deepest nesting of `[` / `{` a body may have. Command bodies need 3 or 4.
pub const MAX_DEPTH: usize = 32;
/// Widest indentation a YAML line may have: it bounds block nesting the way `MAX_DEPTH` bounds flow nesting.
pub const MAX_INDENT: usize = 256;

/// Refuses a body nested deeper than [`MAX_DEPTH`] or indented more than [`MAX_INDENT`], in one pass over
/// its bytes: brackets inside quoted strings and comments do not count.
pub fn check_nesting(bytes: &[u8]) -> Result<(), String> {
    let (mut depth, mut indent, mut line) = (0usize, 0usize, 1usize);
    let mut at_line_start = true;
    let mut quote: Option<u8> = None;
    let mut escaped = false;
    let mut comment = false;
    let mut previous = b'\n';
    for &byte in bytes {
        if byte == b'\n' {
            line += 1;
            (at_line_start, indent, comment) = (true, 0, false);
            // A YAML single-quoted or JSON string does not span lines in a command body; a stray quote
            // (an apostrophe in a plain scalar) must not hide the rest of the body from the count.
            quote = None;
            previous = byte;
            continue;
        }
        if at_line_start {
            if byte == b' ' {
                indent += 1;
                if indent > MAX_INDENT {
                    return Err(format!("line {line} is indented more than {MAX_INDENT} columns"));
                }
                previous = byte;
                continue;
            }
            at_line_start = false;
        }
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if byte == b'\\' && q == b'"' {
                    escaped = true;
                } else if byte == q {
                    quote = None;
                }
            }
            None if comment => {}
            None => match byte {
                b'"' | b'\'' => quote = Some(byte),
                b'#' if previous == b' ' || previous == b'\t' || previous == b'\n' => comment = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(format!("nested deeper than {MAX_DEPTH} levels (line {line})"));
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        previous = byte;
    }
    Ok(())
}

/// Walks a document and fails on the first mapping that has a key twice; deserialize it with the same
/// deserializer the body goes through (JSON or YAML).
pub struct UniqueKeys;

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueKeysVisitor)
    }
}

struct UniqueKeysVisitor;

impl<'de> Visitor<'de> for UniqueKeysVisitor {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueKeys, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<serde_json::Value>()? {
            let shown = match &key {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            if !seen.insert(shown.clone()) {
                return Err(de::Error::custom(format!("duplicate key `{shown}`")));
            }
            map.next_value::<UniqueKeys>()?;
        }
        Ok(UniqueKeys)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<UniqueKeys, A::Error> {
        while seq.next_element::<UniqueKeys>()?.is_some() {}
        Ok(UniqueKeys)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<UniqueKeys, D::Error> {
        UniqueKeys::deserialize(deserializer)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<UniqueKeys, D::Error> {
        UniqueKeys::deserialize(deserializer)
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<UniqueKeys, A::Error> {
        let (UniqueKeys, variant) = data.variant::<UniqueKeys>()?;
        de::VariantAccess::newtype_variant::<UniqueKeys>(variant)
    }

    fn visit_bool<E>(self, _: bool) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_i64<E>(self, _: i64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_u64<E>(self, _: u64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_i128<E>(self, _: i128) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_u128<E>(self, _: u128) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_f64<E>(self, _: f64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_str<E>(self, _: &str) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_bytes<E>(self, _: &[u8]) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_none<E>(self) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_unit<E>(self) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_flow_nesting_is_refused_in_one_pass() {
        assert!(check_nesting(b"command: x\ndata: {a: [1, {b: [2]}]}\n").is_ok());
        let deep = "[".repeat(1 << 20);
        let started = std::time::Instant::now();
        assert!(check_nesting(deep.as_bytes()).unwrap_err().contains("deeper than 32"));
        assert!(started.elapsed() < std::time::Duration::from_millis(500));
        // Brackets in strings and comments do not count.
        let quoted = format!("a: \"{}\"\nb: '{}' # {}\n", "[".repeat(100), "{".repeat(100), "[".repeat(100));
        assert!(check_nesting(quoted.as_bytes()).is_ok());
        let indented = format!("a:\n{}b: 1\n", " ".repeat(300));
        assert!(check_nesting(indented.as_bytes()).unwrap_err().contains("indented"));
    }

    #[test]
    fn duplicate_keys_are_found_at_any_depth_in_json_and_yaml() {
        let json = br#"{"command": "x", "data": {"list": [{"a": 1, "a": 2}]}}"#;
        let err = serde_json::from_slice::<UniqueKeys>(json).err().unwrap().to_string();
        assert!(err.contains("duplicate key `a`"), "{err}");
        assert!(serde_json::from_slice::<UniqueKeys>(br#"{"a": {"a": 1}, "b": [1, {"a": 2}]}"#).is_ok());
        let yaml = b"command: x\ndata:\n  size: 1MiB\n  size: 1TiB\n";
        let err = serde_norway::from_slice::<UniqueKeys>(yaml).err().unwrap().to_string();
        assert!(err.contains("duplicate") && err.contains("size"), "{err}");
    }
}
