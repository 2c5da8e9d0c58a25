//! [`BoundedMap`]: a hash map with a fixed capacity that forgets its oldest entries, for the
//! tables an attacker can grow (the guessing throttle, the anomaly reports).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// A map of at most `capacity` entries. Inserting a new key into a full map first evicts the
/// key inserted longest ago (first in, first out: updating an entry does not move it), so
/// every operation is O(1) and the memory is fixed whatever the traffic.
#[derive(Debug)]
pub(crate) struct BoundedMap<K, V> {
    map: HashMap<K, V>,
    /// The keys in insertion order; always the same set as `map`'s keys.
    order: VecDeque<K>,
    capacity: usize,
}

impl<K: Hash + Eq + Copy, V> BoundedMap<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.map.get_mut(key)
    }

    /// The entry of `key`, made with `make` (evicting the oldest if full) when absent.
    pub(crate) fn entry_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        if !self.map.contains_key(&key) {
            while self.map.len() >= self.capacity {
                let Some(old) = self.order.pop_front() else {
                    break;
                };
                self.map.remove(&old);
            }
            self.order.push_back(key);
        }
        self.map.entry(key).or_insert_with(make)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_holds_more_than_its_capacity_and_forgets_the_oldest() {
        let mut m = BoundedMap::new(3);
        for i in 0..10u32 {
            *m.entry_or_insert_with(i, || 0) += 1;
            assert!(m.len() <= 3);
        }
        assert!(m.get_mut(&6).is_none());
        assert!(m.get_mut(&7).is_some() && m.get_mut(&9).is_some());
        // Updating keeps the entry where it was.
        *m.entry_or_insert_with(7, || 0) += 1;
        assert_eq!(m.get_mut(&7).copied(), Some(2));
        m.entry_or_insert_with(10, || 0);
        assert!(m.get_mut(&7).is_none());
        assert_eq!(m.order.len(), m.map.len());
    }
}
