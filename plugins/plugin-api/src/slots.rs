//! What every plugin keeps of what it holds: items under stable indexes (freeing one does not renumber the
//! others, so `free index 3` always means the item `stats` showed as 3), and a target that is one index or all.

use std::fmt;
use std::sync::{Mutex, MutexGuard};

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

use crate::CancelFlag;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Items held under stable indexes.
pub struct Slots<T> {
    inner: Mutex<(u64, Vec<(u64, T)>)>,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Self { inner: Mutex::new((0, Vec::new())) }
    }
}

impl<T> Slots<T> {
    fn lock(&self) -> MutexGuard<'_, (u64, Vec<(u64, T)>)> {
        // Each change below is one push or remove: a panic elsewhere cannot leave the list half-changed.
        self.inner.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    pub fn insert(&self, item: T) -> u64 {
        self.try_insert_with(|_| Ok::<T, std::convert::Infallible>(item)).unwrap_or_else(|never| match never {})
    }

    /// Builds the item from its index (a file named after it) and holds it if that worked.
    pub fn try_insert_with<E>(&self, make: impl FnOnce(u64) -> Result<T, E>) -> Result<u64, E> {
        let mut inner = self.lock();
        let index = inner.0;
        let item = make(index)?;
        inner.0 += 1;
        inner.1.push((index, item));
        Ok(index)
    }

    /// Holds `item` unless `cancel` was raised, deciding under the lock that `take_all` takes too: a command
    /// cancelled by `/abort` (which cancels, then releases everything) can never slip an item in after the
    /// release. A cancelled item comes back for the caller to release.
    pub fn insert_unless(&self, cancel: &CancelFlag, item: T) -> Result<u64, T> {
        let mut inner = self.lock();
        if cancel.is_raised() {
            return Err(item);
        }
        let index = inner.0;
        inner.0 += 1;
        inner.1.push((index, item));
        Ok(index)
    }

    /// Removes the items at `indexes` that are still held (a cancelled command giving back what it took).
    pub fn remove_all(&self, indexes: &[u64]) -> Vec<T> {
        let mut wanted = indexes.to_vec();
        wanted.sort_unstable();
        let mut inner = self.lock();
        let (taken, kept): (Vec<_>, Vec<_>) =
            std::mem::take(&mut inner.1).into_iter().partition(|(i, _)| wanted.binary_search(i).is_ok());
        inner.1 = kept;
        taken.into_iter().map(|(_, item)| item).collect()
    }

    pub fn remove(&self, index: u64) -> Option<T> {
        let mut inner = self.lock();
        let pos = inner.1.iter().position(|(i, _)| *i == index)?;
        Some(inner.1.remove(pos).1)
    }

    pub fn take_all(&self) -> Vec<T> {
        std::mem::take(&mut self.lock().1).into_iter().map(|(_, item)| item).collect()
    }

    /// Removes what `target` names; `None` when it names an index that is not held.
    pub fn take(&self, target: Target) -> Option<Vec<T>> {
        match target {
            Target::All => Some(self.take_all()),
            Target::One(index) => self.remove(index).map(|item| vec![item]),
        }
    }

    pub fn len(&self) -> usize {
        self.lock().1.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn indexes(&self) -> Vec<u64> {
        self.lock().1.iter().map(|(i, _)| *i).collect()
    }

    /// Looks at every item with its index, under the lock.
    pub fn map<R>(&self, f: impl FnMut(u64, &T) -> R) -> Vec<R> {
        let mut f = f;
        self.lock().1.iter().map(|(i, item)| f(*i, item)).collect()
    }
}

/// `index` in free/close commands: one held item, or -1 for all of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Target {
    #[default]
    All,
    One(u64),
}

impl Serialize for Target {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Target::All => serializer.serialize_i64(-1),
            Target::One(i) => serializer.serialize_u64(*i),
        }
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = i64::deserialize(deserializer)?;
        match raw {
            -1 => Ok(Target::All),
            i if i >= 0 => Ok(Target::One(i as u64)),
            i => Err(serde::de::Error::custom(format!("{i} is not an index; use -1 for all"))),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::All => f.write_str("all"),
            Target::One(i) => write!(f, "{i}"),
        }
    }
}

impl JsonSchema for Target {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Index".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "integer", "minimum": -1, "description": "An index as listed by the stats command; -1 for all." })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_are_stable() {
        let slots = Slots::default();
        let (a, b, c) = (slots.insert('a'), slots.insert('b'), slots.insert('c'));
        assert_eq!((a, b, c), (0, 1, 2));
        assert_eq!(slots.take(Target::One(1)), Some(vec!['b']));
        assert_eq!(slots.take(Target::One(1)), None);
        assert_eq!(slots.indexes(), vec![0, 2]);
        assert_eq!(slots.insert('d'), 3);
        assert_eq!(slots.take(Target::All).map(|v| v.len()), Some(3));
        assert!(slots.is_empty());
    }

    #[test]
    fn target_from_numbers() {
        assert_eq!(serde_json::from_str::<Target>("-1").unwrap(), Target::All);
        assert_eq!(serde_json::from_str::<Target>("4").unwrap(), Target::One(4));
        assert!(serde_json::from_str::<Target>("-2").unwrap_err().to_string().contains("not an index"));
    }
}
