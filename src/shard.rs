//! Shards: which instances one process acts on when several share a manifest (contract
//! section 9). PURE: no I/O, no clock, nothing from the rest of the crate.
//!
//! A [`Shard`] is "shard K of N", from `--shard K/N` or from a StatefulSet pod's hostname
//! (`avatar-sync-3` is shard 3). An instance belongs to exactly one shard: its `idInstance`
//! text is hashed with SHA-256, the first 8 bytes (big-endian) are the key, and the key goes
//! through jump consistent hash (Lamping and Veach, "A Fast, Minimal Memory, Consistent Hash
//! Algorithm", 2014) into one of N buckets. Jump hash moves the fewest instances when N
//! changes: from N to N+1 shards, about 1/(N+1) of them move, all to the new shard N, and
//! the others stay where they were.
//!
//! **The assignment must never change**, across versions, platforms and architectures:
//! every change moves instances between shards, and a moved instance is uploaded again by
//! its new shard (whose state directory does not know it). So the key is a cryptographic
//! hash of the text (no `std::hash`, whose output may change between Rust releases), and
//! the jump step uses exact integer arithmetic instead of the paper's floating point. The
//! tests pin a few ids to their shards.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

/// Shard K of N: this process acts only on the instances whose `idInstance` hashes to K.
/// Always `index < count` (and so `count ≥ 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u32,
    count: u32,
}

/// Why a shard (`K/N`) or a hostname's ordinal was refused. The messages are for people;
/// [`ShardError::label`] is for scripts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// Not of the form `K/N`.
    #[error("`{text}` is not a shard: write K/N, like 0/3 for the first of 3 shards")]
    NotKOfN {
        /// What was given.
        text: String,
    },
    /// `K` is not a whole number (`a/3`, `-1/3`, `+1/3`, too large for 32 bits).
    #[error("`{text}` is not a shard: K must be a whole number from 0 to N-1, like 0/3")]
    IndexNotANumber {
        /// What was given.
        text: String,
    },
    /// `N` is not a whole number.
    #[error(
        "`{text}` is not a shard: N, the number of shards, must be a whole number of at least 1, like 0/3"
    )]
    CountNotANumber {
        /// What was given.
        text: String,
    },
    /// `N` is 0.
    #[error("`{text}` is not a shard: there must be at least one shard (N is 0)")]
    NoShards {
        /// What was given.
        text: String,
    },
    /// `K` is N or more.
    #[error(
        "`{text}` is not a shard: there are {count} shards, numbered 0 to {last}, so there is no shard {index}"
    )]
    IndexOutOfRange {
        /// What was given.
        text: String,
        /// K.
        index: u32,
        /// N.
        count: u32,
        /// N - 1.
        last: u32,
    },
    /// The hostname's ordinal is N or more.
    #[error(
        "the hostname `{hostname}` is pod {index}, but there are {count} shards, numbered 0 to {last}: is N the StatefulSet's replicas?"
    )]
    OrdinalOutOfRange {
        /// The hostname.
        hostname: String,
        /// Its ordinal.
        index: u32,
        /// N.
        count: u32,
        /// N - 1.
        last: u32,
    },
    /// The hostname does not end in `-<ordinal>`.
    #[error(
        "the hostname `{hostname}` does not end in a StatefulSet ordinal like `-3` (as in avatar-sync-3), so it names no shard"
    )]
    NoOrdinal {
        /// The hostname.
        hostname: String,
    },
}

impl ShardError {
    /// A stable machine label for logs and `--json`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::NotKOfN { .. } | Self::IndexNotANumber { .. } | Self::CountNotANumber { .. } => {
                "shard-syntax"
            }
            Self::NoShards { .. } => "shard-count-zero",
            Self::IndexOutOfRange { .. } | Self::OrdinalOutOfRange { .. } => "shard-out-of-range",
            Self::NoOrdinal { .. } => "shard-hostname",
        }
    }
}

impl Shard {
    /// Shard `index` of `count`; `text` is what the user wrote, for the error message.
    fn checked(index: u32, count: u32, text: &str) -> Result<Self, ShardError> {
        if count == 0 {
            return Err(ShardError::NoShards { text: text.into() });
        }
        if index >= count {
            return Err(ShardError::IndexOutOfRange {
                text: text.into(),
                index,
                count,
                last: count - 1,
            });
        }
        Ok(Self { index, count })
    }

    /// Shard `index` of `count`: an error unless `index < count`.
    pub fn new(index: u32, count: u32) -> Result<Self, ShardError> {
        Self::checked(index, count, &format!("{index}/{count}"))
    }

    /// The shard of a StatefulSet pod: its ordinal is the number after the hostname's last
    /// `-` (`avatar-sync-3` is shard 3 of `count`). A fully qualified name
    /// (`avatar-sync-3.avatar-sync.ns.svc.cluster.local`) counts by its first label, and
    /// surrounding whitespace (the newline of `/etc/hostname`) is ignored.
    pub fn from_hostname(hostname: &str, count: u32) -> Result<Self, ShardError> {
        let trimmed = hostname.trim();
        let name = trimmed.split('.').next().unwrap_or_default();
        let no_ordinal = || ShardError::NoOrdinal {
            hostname: trimmed.into(),
        };
        let (_, ordinal) = name.rsplit_once('-').ok_or_else(no_ordinal)?;
        let index = whole_number(ordinal).ok_or_else(no_ordinal)?;
        Self::checked(index, count, trimmed).map_err(|error| match error {
            ShardError::IndexOutOfRange { last, .. } => ShardError::OrdinalOutOfRange {
                hostname: trimmed.into(),
                index,
                count,
                last,
            },
            other => other,
        })
    }

    /// K: this shard's number, from 0 to `count() - 1`.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// N: how many shards there are.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether the instance `id` (its `idInstance`, as digits) belongs to this shard.
    pub fn contains(&self, id: &str) -> bool {
        shard_of(id, self.count_non_zero()) == self.index
    }

    fn count_non_zero(&self) -> NonZeroU32 {
        // `checked` makes every Shard with count ≥ 1; MIN (1) is never used.
        NonZeroU32::new(self.count).unwrap_or(NonZeroU32::MIN)
    }
}

/// `K/N`, as it is written on the command line.
impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Parses `K/N` (surrounding whitespace ignored): K and N whole numbers, N ≥ 1, K < N.
impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        let (index, count) = trimmed.split_once('/').ok_or_else(|| ShardError::NotKOfN {
            text: trimmed.into(),
        })?;
        if index.is_empty() || count.is_empty() || count.contains('/') {
            return Err(ShardError::NotKOfN {
                text: trimmed.into(),
            });
        }
        let index = whole_number(index).ok_or_else(|| ShardError::IndexNotANumber {
            text: trimmed.into(),
        })?;
        let count = whole_number(count).ok_or_else(|| ShardError::CountNotANumber {
            text: trimmed.into(),
        })?;
        Self::checked(index, count, trimmed)
    }
}

/// ASCII digits only (no sign, no spaces), fitting in 32 bits.
fn whole_number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The shard (0 to `count - 1`) that the instance `id` belongs to when there are `count`
/// shards. Stable forever: see the module's documentation.
pub fn shard_of(id: &str, count: NonZeroU32) -> u32 {
    jump_consistent_hash(id_key(id), count)
}

/// The 64-bit key of an id: the first 8 bytes of the SHA-256 of its text, big-endian.
fn id_key(id: &str) -> u64 {
    let digest = Sha256::digest(id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// Jump consistent hash (Lamping and Veach 2014): the bucket, 0 to `buckets - 1`, of `key`.
///
/// The paper's loop, with its one floating-point step,
/// `j = floor((b + 1) * (2^31 / ((key >> 33) + 1)))`, computed exactly in integers:
/// `(b + 1) * 2^31` is at most 2^32 · 2^31 = 2^63 and fits in a u64. The result is then
/// the same on every platform (no rounding mode, no x87 extended precision).
fn jump_consistent_hash(mut key: u64, buckets: NonZeroU32) -> u32 {
    let buckets = u64::from(buckets.get());
    let mut bucket = 0u64; // b; the loop runs at least once, as key's first jump is from 0
    let mut next = 0u64; // j
    while next < buckets {
        bucket = next;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        next = ((bucket + 1) << 31) / ((key >> 33) + 1);
    }
    // `bucket` is the last `next` below `buckets` ≤ u32::MAX: it fits.
    u32::try_from(bucket).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u32) -> Vec<String> {
        // Realistic idInstance values: ten digits, consecutive (the worst case for a weak hash).
        (0..n).map(|i| format!("{}", 1_101_000_000 + i)).collect()
    }

    fn n(count: u32) -> NonZeroU32 {
        NonZeroU32::new(count).unwrap()
    }

    #[test]
    fn parses_k_of_n() {
        assert_eq!("0/1".parse::<Shard>(), Shard::new(0, 1));
        let shard: Shard = "2/3".parse().unwrap();
        assert_eq!((shard.index(), shard.count()), (2, 3));
        assert_eq!(shard.to_string(), "2/3");
        // The environment variable may carry a newline.
        assert_eq!(" 1/3\n".parse::<Shard>(), Shard::new(1, 3));
        assert_eq!(
            "4294967294/4294967295".parse::<Shard>().unwrap().index(),
            4_294_967_294
        );
    }

    #[test]
    fn refuses_what_is_not_a_shard_in_plain_words() {
        let error = |text: &str| text.parse::<Shard>().unwrap_err();

        assert_eq!(
            error("4/3").to_string(),
            "`4/3` is not a shard: there are 3 shards, numbered 0 to 2, so there is no shard 4"
        );
        assert_eq!(error("3/3").label(), "shard-out-of-range");
        assert_eq!(
            error("0/0").to_string(),
            "`0/0` is not a shard: there must be at least one shard (N is 0)"
        );
        assert_eq!(error("0/0").label(), "shard-count-zero");
        assert_eq!(
            error("a/b").to_string(),
            "`a/b` is not a shard: K must be a whole number from 0 to N-1, like 0/3"
        );
        assert_eq!(
            error("1").to_string(),
            "`1` is not a shard: write K/N, like 0/3 for the first of 3 shards"
        );
        assert_eq!(
            error("1/b").to_string(),
            "`1/b` is not a shard: N, the number of shards, must be a whole number of at least 1, like 0/3"
        );
        for text in [
            "-1/3",
            "1/-3",
            "+1/3",
            "1/+3",
            "",
            "/",
            "1/",
            "/3",
            "1/2/3",
            "1 / 3",
            "1.0/3",
            "0x1/3",
            "4294967296/3",
            "0/4294967296",
            "١/٣",
        ] {
            assert_eq!(error(text).label(), "shard-syntax", "{text:?}");
        }
        assert_eq!(
            Shard::new(3, 3).unwrap_err().to_string(),
            "`3/3` is not a shard: there are 3 shards, numbered 0 to 2, so there is no shard 3"
        );
    }

    #[test]
    fn takes_the_ordinal_from_a_statefulset_hostname() {
        let shard = |hostname: &str, count| Shard::from_hostname(hostname, count);
        assert_eq!(shard("avatar-sync-3", 4), Shard::new(3, 4));
        assert_eq!(shard("avatar-sync-0", 1), Shard::new(0, 1));
        assert_eq!(shard("avatar-sync-0\n", 3), Shard::new(0, 3));
        // A kustomize namePrefix makes longer names; the ordinal is after the last dash.
        assert_eq!(shard("prod-avatar-sync-12", 16), Shard::new(12, 16));
        assert_eq!(
            shard("avatar-sync-2.avatar-sync.default.svc.cluster.local", 3),
            Shard::new(2, 3)
        );

        let error = |hostname: &str, count| shard(hostname, count).unwrap_err();
        assert_eq!(
            error("avatar-sync-3", 3).to_string(),
            "the hostname `avatar-sync-3` is pod 3, but there are 3 shards, numbered 0 to 2: \
             is N the StatefulSet's replicas?"
        );
        assert_eq!(error("avatar-sync-3", 3).label(), "shard-out-of-range");
        assert_eq!(error("avatar-sync-0", 0).label(), "shard-count-zero");
        assert_eq!(
            error("laptop", 3).to_string(),
            "the hostname `laptop` does not end in a StatefulSet ordinal like `-3` \
             (as in avatar-sync-3), so it names no shard"
        );
        for hostname in [
            "avatar-sync",
            "avatar-sync-",
            "3",
            "",
            "avatar-sync-1a",
            "avatar-sync-+1",
        ] {
            assert_eq!(error(hostname, 3).label(), "shard-hostname", "{hostname:?}");
        }
    }

    #[test]
    fn the_key_is_the_first_8_bytes_of_the_sha256_of_the_id() {
        // printf 1101000001 | sha256sum
        //   937ed244c1cc6962… (the first 16 hex digits are the key)
        assert_eq!(id_key("1101000001"), 0x937e_d244_c1cc_6962);
        assert_eq!(id_key("1"), 0x6b86_b273_ff34_fce1);
    }

    #[test]
    fn pinned_ids_stay_in_their_shards_forever() {
        // If this fails, the assignment changed: every deployment that upgrades would move
        // instances between shards and upload them again. Do not "fix" the numbers.
        let pinned: [(&str, [u32; 4]); 6] = [
            // id, its shard among 1, 2, 3 and 10 shards (checked against the paper's algorithm
            // run by hand in Python on `hashlib.sha256(id).digest()[:8]`)
            ("1101000001", [0, 1, 2, 9]),
            ("1101000002", [0, 1, 1, 8]),
            ("7103000001", [0, 1, 2, 2]),
            ("7103000002", [0, 1, 1, 5]),
            ("1", [0, 1, 2, 4]),
            ("9999999999", [0, 0, 2, 2]),
        ];
        for (id, shards) in pinned {
            let got = [1, 2, 3, 10].map(|count| shard_of(id, n(count)));
            assert_eq!(got, shards, "shards of {id} among 1, 2, 3, 10");
        }
    }

    #[test]
    fn going_from_3_to_4_shards_moves_about_a_quarter_and_only_to_the_new_shard() {
        let ids = ids(10_000);
        let mut moved = 0;
        for id in &ids {
            let (before, after) = (shard_of(id, n(3)), shard_of(id, n(4)));
            if before != after {
                assert_eq!(
                    after, 3,
                    "{id} moved from {before} to {after}, not to the new shard 3"
                );
                moved += 1;
            }
        }
        // Ideal: 1/4 = 2,500.
        assert!(
            (1_500..=3_500).contains(&moved),
            "{moved} of 10,000 moved from 3 to 4 shards; expected 15 % to 35 %"
        );
    }

    #[test]
    fn every_step_up_moves_only_to_the_new_shard_and_about_1_in_n_plus_1() {
        let keys: Vec<u64> = ids(10_000).iter().map(|id| id_key(id)).collect();
        for count in 1..=16u32 {
            let mut moved = 0;
            for &key in &keys {
                let (before, after) = (
                    jump_consistent_hash(key, n(count)),
                    jump_consistent_hash(key, n(count + 1)),
                );
                if before != after {
                    assert_eq!(after, count, "from {count} to {} shards", count + 1);
                    moved += 1;
                }
            }
            let ideal = 10_000.0 / f64::from(count + 1);
            let moved = f64::from(moved);
            assert!(
                (moved - ideal).abs() < ideal * 0.15,
                "from {count} to {} shards: {moved} moved, ideal {ideal:.0}",
                count + 1
            );
        }
    }

    #[test]
    fn shards_are_balanced() {
        let ids = ids(10_000);
        for count in [2u32, 3, 4, 8, 10] {
            let mut sizes = vec![0u32; count as usize];
            for id in &ids {
                sizes[shard_of(id, n(count)) as usize] += 1;
            }
            let ideal = 10_000.0 / f64::from(count);
            for (index, &size) in sizes.iter().enumerate() {
                // A fair split of 10,000 has a standard deviation under 50 per shard; 10 %
                // of the ideal is at least 2.5 of them.
                assert!(
                    (f64::from(size) - ideal).abs() < ideal * 0.10,
                    "shard {index}/{count} has {size} of 10,000; ideal {ideal:.0} ({sizes:?})"
                );
            }
        }
    }

    #[test]
    fn one_shard_holds_everything() {
        let all = Shard::new(0, 1).unwrap();
        assert!(ids(1_000).iter().all(|id| all.contains(id)));
    }

    #[test]
    fn every_id_is_in_exactly_one_shard() {
        let shards: Vec<Shard> = (0..5).map(|k| Shard::new(k, 5).unwrap()).collect();
        for id in ids(2_000) {
            let holders = shards.iter().filter(|shard| shard.contains(&id)).count();
            assert_eq!(holders, 1, "{id}");
        }
    }

    #[test]
    fn integer_jump_agrees_with_the_papers_floating_point_version() {
        // The paper's C++, as published; our integer step must give the same buckets (it
        // computes the same floor exactly), so published properties carry over.
        fn paper(mut key: u64, buckets: i64) -> i64 {
            let (mut b, mut j) = (-1i64, 0i64);
            while j < buckets {
                b = j;
                key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
                j = ((b + 1) as f64 * ((1i64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
            }
            b
        }
        for id in ids(10_000) {
            let key = id_key(&id);
            for count in [1u32, 2, 3, 7, 10, 100, 1_000] {
                assert_eq!(
                    i64::from(jump_consistent_hash(key, n(count))),
                    paper(key, i64::from(count)),
                    "{id} among {count}"
                );
            }
        }
    }
}
