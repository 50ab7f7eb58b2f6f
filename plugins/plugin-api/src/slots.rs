//! What every plugin keeps of what it holds, in the order it took it, and how a free/close command names an
//! item: by `index`, its position in the current list (as the reference Tarsier numbered them: freeing one moves
//! the ones after it down), or by `id`, the stable number the command that took it answered (never reused, so
//! it is the safe choice when several clients free things at once).

use std::fmt;
use std::sync::{Mutex, MutexGuard};

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

use crate::{CancelFlag, DataError};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where an item is: its position now (`index`) and its stable `id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Place {
    pub index: u64,
    pub id: u64,
}

/// Items held in the order they were taken, each under a stable id.
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

    pub fn remove(&self, id: u64) -> Option<T> {
        let mut inner = self.lock();
        let pos = inner.1.iter().position(|(i, _)| *i == id)?;
        Some(inner.1.remove(pos).1)
    }

    fn remove_at(&self, index: u64) -> Option<T> {
        let mut inner = self.lock();
        let pos = usize::try_from(index).ok().filter(|&pos| pos < inner.1.len())?;
        Some(inner.1.remove(pos).1)
    }

    pub fn take_all(&self) -> Vec<T> {
        std::mem::take(&mut self.lock().1).into_iter().map(|(_, item)| item).collect()
    }

    /// Removes what `target` names; `None` when it names an item that is not held.
    pub fn take(&self, target: Target) -> Option<Vec<T>> {
        match target {
            Target::All => Some(self.take_all()),
            Target::Index(index) => self.remove_at(index).map(|item| vec![item]),
            Target::Id(id) => self.remove(id).map(|item| vec![item]),
        }
    }

    /// The error for a `target` that names nothing held, with what is held, for the field the client used.
    pub fn not_held(&self, target: Target, what: &str) -> DataError {
        let ids = self.ids();
        let held = match ids.len() {
            0 => "nothing is held".to_owned(),
            n => format!("{n} held: indexes 0 to {}, ids {ids:?}", n - 1),
        };
        DataError::field(target.field(), format!("no {what} {target} ({held})"))
    }

    pub fn len(&self) -> usize {
        self.lock().1.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn ids(&self) -> Vec<u64> {
        self.lock().1.iter().map(|(i, _)| *i).collect()
    }

    /// Looks at every item with its place, in order, under the lock.
    pub fn map<R>(&self, f: impl FnMut(Place, &T) -> R) -> Vec<R> {
        let mut f = f;
        self.lock()
            .1
            .iter()
            .enumerate()
            .map(|(pos, (id, item))| f(Place { index: pos as u64, id: *id }, item))
            .collect()
    }
}

/// What a free/close command releases: everything, the item at a position, or the item with an id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Target {
    #[default]
    All,
    Index(u64),
    Id(u64),
}

impl Target {
    /// From a command's `index` and `id` fields: at most one of them; neither means all (the reference's
    /// default `index: -1`).
    pub fn pick(index: Option<Index>, id: Option<u64>) -> Result<Target, DataError> {
        match (index, id) {
            (Some(_), Some(_)) => Err(DataError::field("id", "give `index` (a position) or `id`, not both")),
            (Some(Index::All) | None, None) => Ok(Target::All),
            (Some(Index::At(index)), None) => Ok(Target::Index(index)),
            (None, Some(id)) => Ok(Target::Id(id)),
        }
    }

    /// The body field this target came from.
    pub fn field(self) -> &'static str {
        match self {
            Target::Id(_) => "id",
            _ => "index",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::All => f.write_str("at all"),
            Target::Index(i) => write!(f, "at index {i}"),
            Target::Id(i) => write!(f, "with id {i}"),
        }
    }
}

/// `index` on the wire: a position in the current list, or -1 for all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Index {
    All,
    At(u64),
}

impl Serialize for Index {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Index::All => serializer.serialize_i64(-1),
            Index::At(i) => serializer.serialize_u64(*i),
        }
    }
}

impl<'de> Deserialize<'de> for Index {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = i64::deserialize(deserializer)?;
        match raw {
            -1 => Ok(Index::All),
            i if i >= 0 => Ok(Index::At(i as u64)),
            i => Err(serde::de::Error::custom(format!("{i} is not an index; use -1 for all"))),
        }
    }
}

impl JsonSchema for Index {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Index".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "integer",
            "minimum": -1,
            "description": "A position in the list the stats command shows (0 is the oldest held); -1 for all."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_are_positions_and_ids_are_stable() {
        let slots = Slots::default();
        let (a, b, c) = (slots.insert('a'), slots.insert('b'), slots.insert('c'));
        assert_eq!((a, b, c), (0, 1, 2));
        assert_eq!(slots.take(Target::Id(1)), Some(vec!['b']));
        assert_eq!(slots.take(Target::Id(1)), None);
        assert_eq!(slots.ids(), vec![0, 2]);
        assert_eq!(slots.insert('d'), 3);
        // The reference's rule: gobble; gobble; free 0; free 0 frees both.
        assert_eq!(slots.take(Target::Index(0)), Some(vec!['a']));
        assert_eq!(slots.take(Target::Index(0)), Some(vec!['c']));
        assert_eq!(slots.map(|place, item| (place, *item)), vec![(Place { index: 0, id: 3 }, 'd')]);
        assert_eq!(slots.take(Target::Index(1)), None);
        assert_eq!(slots.take(Target::All).map(|v| v.len()), Some(1));
        assert!(slots.is_empty());
    }

    #[test]
    fn target_from_index_and_id() {
        let index = |json: &str| serde_json::from_str::<Index>(json);
        assert_eq!(Target::pick(Some(index("-1").unwrap()), None).unwrap(), Target::All);
        assert_eq!(Target::pick(Some(index("4").unwrap()), None).unwrap(), Target::Index(4));
        assert_eq!(Target::pick(None, Some(4)).unwrap(), Target::Id(4));
        assert_eq!(Target::pick(None, None).unwrap(), Target::All);
        assert!(Target::pick(Some(Index::At(1)), Some(1)).is_err());
        assert!(index("-2").unwrap_err().to_string().contains("not an index"));
    }
}
