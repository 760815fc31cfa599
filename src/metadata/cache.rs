//! Rows this process keeps in memory when it owns the database (SQLite, see [`super::connect`]): every
//! change to them goes through this process, and each write forgets the entries it may have changed
//! (see [`super::Touches`]), so what stays is exact. A row read from the database is kept only if no
//! write happened while it was read (the generation did not move), so a stale row never outlives the
//! write that changed it. On a shared database (Postgres) it is disabled.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A read cache of at most `max_weight` (bytes, roughly) of values.
#[derive(Debug)]
pub struct ReadCache<K, V> {
    enabled: bool,
    max_weight: usize,
    state: RwLock<State<K, V>>,
}

#[derive(Debug)]
struct State<K, V> {
    generation: u64,
    weight: usize,
    /// Each value with its weight.
    entries: HashMap<K, (V, usize)>,
}

/// What a lookup found: the value, or the generation to hand back to [`ReadCache::keep`].
pub enum Lookup<V> {
    Hit(V),
    Miss(u64),
}

impl<K: Eq + Hash, V: Clone> ReadCache<K, V> {
    pub fn new(enabled: bool, max_weight: usize) -> Self {
        ReadCache {
            enabled,
            max_weight,
            state: RwLock::new(State {
                generation: 0,
                weight: 0,
                entries: HashMap::new(),
            }),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State<K, V>> {
        self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State<K, V>> {
        self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn lookup<Q>(&self, key: &Q) -> Lookup<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.enabled {
            return Lookup::Miss(0);
        }
        let state = self.read();
        match state.entries.get(key) {
            Some((value, _)) => Lookup::Hit(value.clone()),
            None => Lookup::Miss(state.generation),
        }
    }

    /// Keeps a value read from the database at `generation`, unless a write came since. When the cache
    /// would grow past its weight it starts over empty (simple, and cheap next to the reads it saves).
    /// Only rows found are kept, never "not found": so a write that creates a row forgets nothing.
    pub fn keep(&self, generation: u64, key: K, value: V, weight: usize) {
        if !self.enabled || weight > self.max_weight / 16 {
            return;
        }
        let mut state = self.write();
        if state.generation != generation {
            return;
        }
        if state.weight + weight > self.max_weight {
            state.entries.clear();
            state.weight = 0;
        }
        state.weight += weight;
        if let Some((_, replaced)) = state.entries.insert(key, (value, weight)) {
            state.weight -= replaced;
        }
    }

    /// Empties the cache.
    pub fn forget_all(&self) {
        self.forget_where(|_, _| true);
    }

    /// Forgets the entries `changed` picks; reads under way when it is called keep nothing.
    pub fn forget_where(&self, changed: impl Fn(&K, &V) -> bool) {
        if !self.enabled {
            return;
        }
        let mut state = self.write();
        state.generation += 1;
        let mut freed = 0;
        state.entries.retain(|key, (value, weight)| {
            let keep = !changed(key, value);
            if !keep {
                freed += *weight;
            }
            keep
        });
        state.weight -= freed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(cache: &ReadCache<String, u32>, key: &str) -> Option<u32> {
        match cache.lookup(key) {
            Lookup::Hit(v) => Some(v),
            Lookup::Miss(_) => None,
        }
    }

    fn generation(cache: &ReadCache<String, u32>, key: &str) -> u64 {
        match cache.lookup(key) {
            Lookup::Hit(_) => panic!("expected a miss"),
            Lookup::Miss(g) => g,
        }
    }

    #[test]
    fn a_value_read_before_a_write_is_not_kept() {
        let cache = ReadCache::new(true, 1 << 20);
        let g = generation(&cache, "a");
        cache.keep(g, "a".to_owned(), 1, 10);
        assert_eq!(hit(&cache, "a"), Some(1));

        let g = generation(&cache, "b");
        cache.forget_all(); // a write lands while "b" is being read
        cache.keep(g, "b".to_owned(), 2, 10);
        assert_eq!(hit(&cache, "b"), None);
        assert_eq!(hit(&cache, "a"), None, "the write emptied the cache");
    }

    #[test]
    fn a_write_forgets_what_it_changed_and_keeps_the_rest() {
        let cache = ReadCache::new(true, 1 << 20);
        for key in ["r1/a", "r1/b", "r2/a"] {
            let g = generation(&cache, key);
            cache.keep(g, key.to_owned(), 1, 10);
        }
        let g = generation(&cache, "r2/b");
        cache.forget_where(|key, _| key.starts_with("r1/"));
        cache.keep(g, "r2/b".to_owned(), 2, 10);
        assert_eq!(hit(&cache, "r1/a"), None);
        assert_eq!(hit(&cache, "r1/b"), None);
        assert_eq!(hit(&cache, "r2/a"), Some(1), "another registry's entry stays");
        assert_eq!(
            hit(&cache, "r2/b"),
            None,
            "a read under way during the write is not kept"
        );
        assert_eq!(cache.read().weight, 10);
    }

    #[test]
    fn weight_is_bounded_and_a_disabled_cache_keeps_nothing() {
        let cache = ReadCache::new(true, 1600);
        for i in 0..100u32 {
            let g = generation(&cache, &i.to_string());
            cache.keep(g, i.to_string(), i, 100);
            assert!(cache.read().weight <= 1600);
        }
        let g = generation(&cache, "big");
        cache.keep(g, "big".to_owned(), 0, 101); // over a sixteenth of the whole: never kept
        assert_eq!(hit(&cache, "big"), None);

        let disabled = ReadCache::new(false, 1600);
        disabled.keep(0, "a".to_owned(), 1, 1);
        assert_eq!(hit(&disabled, "a"), None);
    }
}
