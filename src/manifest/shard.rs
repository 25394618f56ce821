//! Shards: `--shard K/N` splits a manifest's instances between N processes (a StatefulSet's
//! pods), each acting on the instances that hash to its K, with its own state directory.
//!
//! An instance's shard is jump consistent hash (Lamping and Veach, 2014) of a stable 64-bit
//! hash of its `idInstance` (the first 8 bytes of SHA-256): it needs no table, spreads
//! evenly, and going from N to N+1 shards moves only the instances that land on the new
//! shard, about 1/(N+1) of them. Neither hash may ever change: a change would move
//! instances between shards and their states.

use super::InstanceId;
use sha2::Digest as _;
use std::fmt;
use std::str::FromStr;

/// The largest number of shards (a StatefulSet of this many pods is far past any need).
pub const MAX_SHARDS: u32 = 10_000;

/// Shard `index` of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// Shard `index` of `count`, when `index < count <= MAX_SHARDS`.
    pub fn new(index: u32, count: u32) -> Result<Self, String> {
        if count == 0 || count > MAX_SHARDS {
            return Err(format!(
                "the number of shards must be 1 to {MAX_SHARDS}, not {count}"
            ));
        }
        if index >= count {
            return Err(format!(
                "shard {index} does not exist in {count} shards: K counts from 0 to {}",
                count - 1
            ));
        }
        Ok(Self { index, count })
    }

    /// The shard of a StatefulSet pod named like `avatar-sync-3` (its ordinal), of `count`.
    pub fn from_hostname(hostname: &str, count: u32) -> Result<Self, String> {
        // As the kernel or a file gives it (a final newline), and nothing looser: `+1`,
        // `-1` or ` 1` are no ordinal.
        let name = hostname.strip_suffix('\n').unwrap_or(hostname);
        // A StatefulSet's name is a DNS label: it neither is empty nor ends with `-`.
        let ordinal = name
            .rsplit_once('-')
            .filter(|(set, _)| !set.is_empty() && !set.ends_with('-'))
            .and_then(|(_, ordinal)| number(ordinal))
            .ok_or_else(|| {
                format!(
                    "the host name `{hostname}` does not end in a StatefulSet ordinal \
                     (like avatar-sync-3)"
                )
            })?;
        Self::new(ordinal, count).map_err(|e| format!("host name `{name}`: {e}"))
    }

    /// Whether `id` belongs to this shard.
    pub fn contains(&self, id: &InstanceId) -> bool {
        shard_of(id.as_str(), self.count) == self.index
    }

    /// This shard's number, from 0.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// How many shards there are.
    pub fn count(&self) -> u32 {
        self.count
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `K/N`, like `0/3`.
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("`{text}` is not a shard; write K/N, like 0/3 (K from 0 to N-1)");
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let (k, n) = (number(k).ok_or_else(bad)?, number(n).ok_or_else(bad)?);
        Self::new(k, n)
    }
}

/// `s` as a number if it is ASCII digits only (no sign, no space).
fn number(s: &str) -> Option<u32> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse::<u32>().ok())
        .flatten()
}

/// The shard (from 0) of the instance `id` among `count` shards.
pub fn shard_of(id: &str, count: u32) -> u32 {
    let digest = sha2::Sha256::digest(id.as_bytes());
    let mut key = [0u8; 8];
    key.copy_from_slice(&digest[..8]);
    jump_consistent_hash(u64::from_be_bytes(key), count)
}

/// Jump consistent hash: the bucket of `key` among `buckets` (at least 1).
fn jump_consistent_hash(mut key: u64, buckets: u32) -> u32 {
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < i64::from(buckets.max(1)) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        // (b + 1) × 2^31 / ((key >> 33) + 1), in floating point as the paper writes it.
        j = ((b + 1) as f64 * (f64::from(1u32 << 31) / ((key >> 33) + 1) as f64)) as i64;
    }
    u32::try_from(b).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u64) -> Vec<String> {
        (0..n).map(|i| (1_101_000_000 + i).to_string()).collect()
    }

    #[test]
    fn shards_parse_as_k_of_n_and_refuse_the_rest() {
        assert_eq!("0/3".parse(), Ok(Shard::new(0, 3).unwrap()));
        assert_eq!("2/3".parse::<Shard>().unwrap().to_string(), "2/3");
        for bad in [
            "4/3", "3/3", "0/0", "a/b", "1", "-1/3", "1/-3", "/3", "1/", "1/3/4", " / ",
        ] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert!(format!("{}", MAX_SHARDS + 1).parse::<u32>().is_ok());
        assert!(Shard::new(0, MAX_SHARDS + 1).is_err());
    }

    #[test]
    fn a_statefulset_pod_name_gives_its_ordinal() {
        assert_eq!(
            Shard::from_hostname("avatar-sync-3", 4),
            Ok(Shard::new(3, 4).unwrap())
        );
        assert_eq!(
            Shard::from_hostname("my-avatar-sync-0\n", 2),
            Ok(Shard::new(0, 2).unwrap())
        );
        assert!(Shard::from_hostname("avatar-sync-4", 4).is_err());
        assert!(Shard::from_hostname("avatar-sync", 4).is_err());
        assert!(Shard::from_hostname("host", 4).is_err());
    }

    #[test]
    fn n8_ordinals_and_shards_are_read_strictly() {
        for loose in [
            "avatar-sync-+1",
            "avatar-sync--1",
            "avatar-sync- 1",
            "avatar-sync-1 ",
            " avatar-sync-1\n\n",
        ] {
            assert!(Shard::from_hostname(loose, 4).is_err(), "{loose:?}");
        }
        for loose in [" 1/3", "1/3 ", "+1/3", "1/+3", "1 /3"] {
            assert!(loose.parse::<Shard>().is_err(), "{loose:?}");
        }
    }

    #[test]
    fn going_from_three_to_four_shards_moves_a_quarter_and_only_to_the_new_one() {
        let ids = ids(10_000);
        let mut moved = 0;
        for id in &ids {
            let (before, after) = (shard_of(id, 3), shard_of(id, 4));
            if before != after {
                moved += 1;
                assert_eq!(after, 3, "{id} moved between old shards");
            }
        }
        let share = f64::from(moved) / 10_000.0;
        assert!((0.15..=0.35).contains(&share), "moved {share}");
    }

    #[test]
    fn shards_are_balanced() {
        let ids = ids(10_000);
        let mut sizes = [0u32; 4];
        for id in &ids {
            sizes[shard_of(id, 4) as usize] += 1;
        }
        for size in sizes {
            assert!((2_200..=2_800).contains(&size), "{sizes:?}");
        }
        assert!(ids.iter().all(|id| shard_of(id, 1) == 0));
    }

    #[test]
    fn jump_hash_gives_the_published_answers() {
        // Values other implementations of the paper's code publish in their tests.
        assert_eq!(jump_consistent_hash(256, 1024), 520);
        assert_eq!(jump_consistent_hash(10_863_919_174_838_991, 11), 6);
        assert_eq!(jump_consistent_hash(2_016_238_256_797_177_309, 11), 3);
        assert_eq!(jump_consistent_hash(u64::MAX, 1), 0);
    }

    #[test]
    fn the_assignment_never_changes() {
        // Pinned: a different answer here moves instances between shards and their states.
        let pinned: Vec<u32> = ["1101000001", "1101000002", "7103000001", "7103812345"]
            .iter()
            .map(|id| shard_of(id, 5))
            .collect();
        assert_eq!(pinned, PINNED);
    }

    /// `shard_of(…, 5)` of the ids above, as first computed.
    const PINNED: [u32; 4] = [2, 1, 2, 0];
}
