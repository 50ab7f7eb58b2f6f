//! Checks of a body's shape that run before, or beside, the parsers: nesting depth in linear time (a YAML
//! parser given 120 KB of `[` spent 14 s of CPU before it refused it), and duplicate keys at any depth (serde
//! keeps the last one silently, so `{"size": "1MiB", "size": "1TiB"}` would mean whichever came last), and
//! YAML tags, which the parser would drop silently.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// Deepest nesting of `[` / `{` a body may have. Command bodies need 3 or 4.
pub const MAX_DEPTH: usize = 32;
/// Widest indentation a YAML line may have: it bounds block nesting the way `MAX_DEPTH` bounds flow nesting.
pub const MAX_INDENT: usize = 256;

/// Refuses a body nested deeper than [`MAX_DEPTH`] or indented more than [`MAX_INDENT`], in one pass over
/// its bytes: brackets inside quoted strings and comments do not count.
pub fn check_nesting(bytes: &[u8]) -> Result<(), String> {
    // Most bodies cannot break either bound: too short for a line indented past the bound, and fewer opening
    // brackets in all than the depth allowed. Counting those is a fraction of the walk below.
    let openings = bytes.iter().filter(|&&b| b == b'[' || b == b'{').count();
    if bytes.len() <= MAX_INDENT && openings <= MAX_DEPTH {
        return Ok(());
    }
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
            Some(q) => step_in_quote(&mut quote, &mut escaped, q, byte),
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

/// One byte inside a quoted string opened by `q`: a backslash escapes the next byte in a double-quoted
/// string, and `q` itself closes it.
fn step_in_quote(quote: &mut Option<u8>, escaped: &mut bool, q: u8, byte: u8) {
    if *escaped {
        *escaped = false;
    } else if byte == b'\\' && q == b'"' {
        *escaped = true;
    } else if byte == q {
        *quote = None;
    }
}

/// Refuses YAML tags (`!!python/object:os.system`, `!custom`): the parser would drop them silently, so a
/// body would mean something other than what its writer tagged it as. A `!` counts where a token starts
/// (after a space, a line start, `[`, `{`, `,`), outside quotes and comments; `hello!` is plain text.
pub fn check_tags(bytes: &[u8]) -> Result<(), String> {
    if !bytes.contains(&b'!') {
        return Ok(());
    }
    let (mut line, mut quote, mut escaped, mut comment, mut previous) = (1usize, None::<u8>, false, false, b'\n');
    for &byte in bytes {
        if byte == b'\n' {
            (line, quote, comment, previous) = (line + 1, None, false, byte);
            continue;
        }
        match quote {
            Some(q) => step_in_quote(&mut quote, &mut escaped, q, byte),
            None if comment => {}
            None => match byte {
                b'"' | b'\'' if matches!(previous, b' ' | b'\t' | b'\n' | b'[' | b'{' | b',' | b':') => {
                    quote = Some(byte)
                }
                b'#' if matches!(previous, b' ' | b'\t' | b'\n') => comment = true,
                b'!' if matches!(previous, b' ' | b'\t' | b'\n' | b'[' | b'{' | b',') => {
                    return Err(format!("line {line}: YAML tags (`!...`) are not read; write the value plainly"));
                }
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
        let mut seen = SeenKeys::default();
        while let Some(KeyText(key)) = map.next_key::<KeyText>()? {
            if let Some(duplicate) = seen.insert(key) {
                return Err(de::Error::custom(format!("duplicate key `{duplicate}`")));
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

/// A command's `data` as a JSON value, refusing a mapping that has a key twice at any depth: the check rides
/// on the one parse the body gets, where a walk of its own beforehand cost as much again. Keys are compared as
/// [`KeyText`] makes them, so YAML's `1` and `"1"` are one key, as in [`UniqueKeys`].
pub fn unique_value<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
    UniqueValue::deserialize(deserializer).map(|unique| unique.0)
}

struct UniqueValue(Value);

impl<'de> Deserialize<'de> for UniqueValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueValueVisitor)
    }
}

struct UniqueValueVisitor;

impl<'de> Visitor<'de> for UniqueValueVisitor {
    type Value = UniqueValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueValue, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(KeyText(key)) = map.next_key::<KeyText>()? {
            let UniqueValue(value) = map.next_value()?;
            match object.entry(key.into_owned()) {
                serde_json::map::Entry::Vacant(vacant) => drop(vacant.insert(value)),
                serde_json::map::Entry::Occupied(occupied) => {
                    return Err(de::Error::custom(format!("duplicate key `{}`", occupied.key())));
                }
            }
        }
        Ok(UniqueValue(Value::Object(object)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<UniqueValue, A::Error> {
        let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
        while let Some(UniqueValue(value)) = seq.next_element()? {
            list.push(value);
        }
        Ok(UniqueValue(Value::Array(list)))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<UniqueValue, D::Error> {
        UniqueValue::deserialize(deserializer)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<UniqueValue, D::Error> {
        UniqueValue::deserialize(deserializer)
    }
    fn visit_bool<E>(self, value: bool) -> Result<UniqueValue, E> {
        Ok(UniqueValue(Value::Bool(value)))
    }
    fn visit_i64<E>(self, value: i64) -> Result<UniqueValue, E> {
        Ok(UniqueValue(Value::from(value)))
    }
    fn visit_u64<E>(self, value: u64) -> Result<UniqueValue, E> {
        Ok(UniqueValue(Value::from(value)))
    }
    fn visit_i128<E: de::Error>(self, value: i128) -> Result<UniqueValue, E> {
        match (i64::try_from(value), u64::try_from(value)) {
            (Ok(small), _) => Ok(UniqueValue(Value::from(small))),
            (_, Ok(large)) => Ok(UniqueValue(Value::from(large))),
            _ => Err(E::custom(format!("the number {value} is out of range"))),
        }
    }
    fn visit_u128<E: de::Error>(self, value: u128) -> Result<UniqueValue, E> {
        u64::try_from(value)
            .map(|fits| UniqueValue(Value::from(fits)))
            .map_err(|_| E::custom(format!("the number {value} is out of range")))
    }
    /// A NaN or an infinity is `null`, as `serde_json::Value` makes it.
    fn visit_f64<E>(self, value: f64) -> Result<UniqueValue, E> {
        Ok(UniqueValue(Value::from(value)))
    }
    fn visit_str<E>(self, text: &str) -> Result<UniqueValue, E> {
        Ok(UniqueValue(Value::String(text.to_owned())))
    }
    fn visit_string<E>(self, text: String) -> Result<UniqueValue, E> {
        Ok(UniqueValue(Value::String(text)))
    }
    fn visit_none<E>(self) -> Result<UniqueValue, E> {
        Ok(UniqueValue(Value::Null))
    }
    fn visit_unit<E>(self) -> Result<UniqueValue, E> {
        Ok(UniqueValue(Value::Null))
    }
}

/// The keys of one mapping so far. A command body's mappings have a handful of keys: they are compared one
/// by one, without hashing or allocating; a mapping past [`FEW_KEYS`] moves to a hash set, so a body of
/// 100,000 keys still takes linear time.
#[derive(Default)]
struct SeenKeys<'de> {
    few: Vec<Cow<'de, str>>,
    many: HashSet<Cow<'de, str>>,
}

// PERF(parse): duplicate keys found by a linear scan of few keys, without hashing or allocating.
const FEW_KEYS: usize = 16;

impl<'de> SeenKeys<'de> {
    /// Adds `key`; gives it back if the mapping had it already.
    fn insert(&mut self, key: Cow<'de, str>) -> Option<Cow<'de, str>> {
        if self.many.is_empty() {
            if self.few.contains(&key) {
                return Some(key);
            }
            if self.few.len() < FEW_KEYS {
                self.few.push(key);
                return None;
            }
            self.many.extend(self.few.drain(..));
        }
        if self.many.contains(&key) {
            return Some(key);
        }
        self.many.insert(key);
        None
    }
}

/// A mapping key as text, borrowed from the body when the parser allows. A key that is not a string (YAML
/// allows numbers, booleans, even sequences) is its JSON text, so `1` and `"1"` are the same key.
struct KeyText<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for KeyText<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KeyTextVisitor)
    }
}

struct KeyTextVisitor;

impl KeyTextVisitor {
    fn json<'de>(value: impl Into<serde_json::Value>) -> KeyText<'de> {
        KeyText(Cow::Owned(value.into().to_string()))
    }
}

impl<'de> Visitor<'de> for KeyTextVisitor {
    type Value = KeyText<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<KeyText<'de>, E> {
        Ok(KeyText(Cow::Borrowed(text)))
    }
    fn visit_str<E>(self, text: &str) -> Result<KeyText<'de>, E> {
        Ok(KeyText(Cow::Owned(text.to_owned())))
    }
    fn visit_string<E>(self, text: String) -> Result<KeyText<'de>, E> {
        Ok(KeyText(Cow::Owned(text)))
    }
    fn visit_bytes<E>(self, bytes: &[u8]) -> Result<KeyText<'de>, E> {
        Ok(KeyText(Cow::Owned(String::from_utf8_lossy(bytes).into_owned())))
    }
    fn visit_bool<E>(self, value: bool) -> Result<KeyText<'de>, E> {
        Ok(Self::json(value))
    }
    fn visit_i64<E>(self, value: i64) -> Result<KeyText<'de>, E> {
        Ok(Self::json(value))
    }
    fn visit_u64<E>(self, value: u64) -> Result<KeyText<'de>, E> {
        Ok(Self::json(value))
    }
    fn visit_i128<E>(self, value: i128) -> Result<KeyText<'de>, E> {
        Ok(KeyText(Cow::Owned(value.to_string())))
    }
    fn visit_u128<E>(self, value: u128) -> Result<KeyText<'de>, E> {
        Ok(KeyText(Cow::Owned(value.to_string())))
    }
    fn visit_f64<E>(self, value: f64) -> Result<KeyText<'de>, E> {
        Ok(Self::json(value))
    }
    fn visit_unit<E>(self) -> Result<KeyText<'de>, E> {
        Ok(Self::json(serde_json::Value::Null))
    }
    fn visit_none<E>(self) -> Result<KeyText<'de>, E> {
        Ok(Self::json(serde_json::Value::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<KeyText<'de>, D::Error> {
        KeyText::deserialize(deserializer)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<KeyText<'de>, D::Error> {
        KeyText::deserialize(deserializer)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<KeyText<'de>, A::Error> {
        serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Self::json)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<KeyText<'de>, A::Error> {
        serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map)).map(Self::json)
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
        // A key that is not a string counts by its text; escaped and plain spellings are one key.
        let err = serde_norway::from_slice::<UniqueKeys>(b"1: a\n\"1\": b\n").err().unwrap().to_string();
        assert!(err.contains("duplicate key `1`"), "{err}");
        let err = serde_json::from_slice::<UniqueKeys>(br#"{"a\u0062": 1, "ab": 2}"#).err().unwrap().to_string();
        assert!(err.contains("duplicate key `ab`"), "{err}");
    }

    #[test]
    fn data_with_a_key_twice_is_refused_in_the_typed_parse_at_any_depth() {
        #[derive(Debug, serde::Deserialize)]
        struct Body {
            #[serde(deserialize_with = "unique_value")]
            data: Value,
        }
        let json = br#"{"data": {"list": [{"a": 1, "a": 2}]}}"#;
        let err = serde_json::from_slice::<Body>(json).unwrap_err().to_string();
        assert!(err.contains("duplicate key `a`"), "{err}");
        let err = serde_json::from_slice::<Body>(br#"{"data": {"a\u0062": 1, "ab": 2}}"#).unwrap_err().to_string();
        assert!(err.contains("duplicate key `ab`"), "{err}");
        let err = serde_norway::from_slice::<Body>(b"data:\n  1: a\n  \"1\": b\n").unwrap_err().to_string();
        assert!(err.contains("duplicate key `1`"), "{err}");
        // What is accepted reads as `serde_json::Value` would read it.
        let text =
            r#"{"data": {"a": {"a": 1}, "b": [1, -2, 2.5, true, null, "x", {"a": 2}], "c": 18446744073709551615}}"#;
        let body: Body = serde_json::from_str(text).unwrap();
        assert_eq!(body.data, serde_json::from_str::<Value>(text).unwrap()["data"]);
    }

    #[test]
    fn a_wide_mapping_is_checked_in_linear_time_and_its_duplicate_found() {
        let keys: Vec<String> = (0..50_000).map(|i| format!("\"k{i}\": 0")).collect();
        let wide = format!("{{{}, \"k49999\": 1}}", keys.join(", "));
        let started = std::time::Instant::now();
        let err = serde_json::from_slice::<UniqueKeys>(wide.as_bytes()).err().unwrap().to_string();
        assert!(err.contains("duplicate key `k49999`"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert!(serde_json::from_slice::<UniqueKeys>(format!("{{{}}}", keys.join(", ")).as_bytes()).is_ok());
    }
}
