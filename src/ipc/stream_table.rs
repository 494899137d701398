//! The hasher for the open-stream table: keys are stream ids the supervisor itself
//! hands out one after another, so they need spreading, not flood resistance, and the
//! table is looked up several times per request.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Open streams by id.
pub(super) type StreamMap<V> = HashMap<u32, V, BuildHasherDefault<StreamIdHasher>>;

/// Spreads a `u32` stream id over the hash's bits with one multiplication.
#[derive(Default)]
pub(super) struct StreamIdHasher(u64);

impl Hasher for StreamIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u32` keys reach this hasher; any other input is still folded in.
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u32(&mut self, id: u32) {
        self.write_u64(u64::from(id));
    }

    fn write_u64(&mut self, value: u64) {
        // An odd constant from the golden ratio: consecutive ids land far apart in the
        // high bits (the table's tags) and still cover every low bit (its buckets).
        self.0 = (self.0 ^ value).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_ids_get_distinct_hashes_and_the_table_finds_them() {
        let mut map: StreamMap<u32> = StreamMap::default();
        for id in 1..=10_000u32 {
            map.insert(id, id * 2);
        }
        map.retain(|id, _| id % 3 != 0);
        assert_eq!(map.get(&9_998), Some(&19_996));
        assert_eq!(map.get(&9_999), None);
        let hashes: std::collections::HashSet<u64> = (1..=10_000u32)
            .map(|id| {
                let mut hasher = StreamIdHasher::default();
                hasher.write_u32(id);
                hasher.finish()
            })
            .collect();
        assert_eq!(hashes.len(), 10_000);
    }
}
