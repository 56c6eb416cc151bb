//! A bounded map for per-tenant caches (clients, rate limiters): at most `capacity` entries,
//! the oldest inserted evicted first, so no tenant input can grow Ferry's memory without end.
//! An evicted entry is only rebuilt on its next use.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// See the module docs.
#[derive(Debug)]
pub struct Bounded<K, V> {
    capacity: usize,
    map: HashMap<K, V>,
    order: VecDeque<K>,
}

impl<K: Clone + Eq + Hash, V: Clone> Bounded<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        self.map.get(key).cloned()
    }

    /// The entry of `key`, inserting `make()`'s value if there is none (then evicting the
    /// oldest entries past the capacity).
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> V {
        if let Some(v) = self.map.get(&key) {
            return v.clone();
        }
        let v = make();
        self.map.insert(key.clone(), v.clone());
        self.order.push_back(key);
        while self.map.len() > self.capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
        v
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_value_and_evicts_the_oldest_past_capacity() {
        let mut c = Bounded::new(2);
        assert_eq!(c.get_or_insert_with("a", || 1), 1);
        assert_eq!(c.get_or_insert_with("a", || 9), 1, "the first value stays");
        c.get_or_insert_with("b", || 2);
        c.get_or_insert_with("c", || 3);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&"a"), None, "the oldest went");
        assert_eq!((c.get(&"b"), c.get(&"c")), (Some(2), Some(3)));
        // Many distinct keys never grow it past its capacity.
        for i in 0..10_000 {
            c.get_or_insert_with(if i % 2 == 0 { "x" } else { "y" }, || i);
        }
        assert_eq!(c.len(), 2);
    }
}
