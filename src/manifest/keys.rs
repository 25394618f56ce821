//! Every key a manifest may write, with the type of its value and what it means: the one
//! list the YAML reader checks keys and types against (and suggests a key from, for a
//! typo), and the JSON Schema (`--print-schema`) and the man page's reference are made from.

/// The type of a key's value, as the manifest writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// Any text (quoted or not).
    Text,
    /// A duration such as `10s`, `5m`, `1h30m`.
    Duration,
    /// An `https://` URL (or `http://` to loopback).
    Url,
    /// A whole number written in decimal digits, not quoted, within a range.
    Whole {
        /// The least value.
        min: u32,
        /// The greatest value.
        max: u32,
    },
    /// `true` or `false`, not quoted.
    Bool,
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// A colour `#rrggbb`.
    Colour,
    /// An `idInstance`: digits, quoted or not, not starting with 0.
    Id,
    /// The list of instances.
    Instances,
    /// A mapping of these keys.
    Mapping(&'static [Key]),
    /// A list of mappings, each of these keys.
    Mappings(&'static [Key]),
    /// A number of instances: a count (`2`) or a percentage (`10%`).
    Amount,
    /// A list of [`KeyType::Amount`]s.
    Amounts,
    /// A cron schedule: five fields (minute first), or six (seconds first).
    Cron,
    /// An IANA time zone name, such as `Europe/Berlin`.
    TimeZone,
    /// A list of these words, each at most once (`events: [failed, drifted]`).
    Words(&'static [&'static str]),
}

impl KeyType {
    /// What a value of this type looks like, for a problem's message.
    pub fn expected(self) -> String {
        match self {
            Self::Text => "text".to_owned(),
            Self::Duration => "a duration such as 10s, 5m or 1h30m".to_owned(),
            Self::Url => "a URL such as https://api.green-api.com".to_owned(),
            Self::Whole { min, max } => format!("a whole number from {min} to {max}"),
            Self::Bool => "true or false".to_owned(),
            Self::OneOf(words) => format!("one of: {}", words.join(", ")),
            Self::Colour => "a colour such as #ffffff".to_owned(),
            Self::Id => "an idInstance (digits, such as 1101000001)".to_owned(),
            Self::Instances => "a list of instances (each a mapping)".to_owned(),
            Self::Mapping(keys) => format!("a mapping of {}", names(keys)),
            Self::Mappings(keys) => format!("a list of mappings, each of {}", names(keys)),
            Self::Amount => "a count (such as 2) or a percentage (such as 10%)".to_owned(),
            Self::Amounts => "a list of counts or percentages, such as [1, 10%, 100%]".to_owned(),
            Self::Cron => "a cron schedule such as \"0 9 * * 1-5\"".to_owned(),
            Self::TimeZone => "an IANA time zone name such as Europe/Berlin".to_owned(),
            Self::Words(words) => format!("a list of: {}", words.join(", ")),
        }
    }
}

/// `a, b or c`: the names of `keys`.
fn names(keys: &[Key]) -> String {
    keys.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
}

/// One key of the manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    /// The key as YAML writes it.
    pub name: &'static str,
    /// The type of its value.
    pub ty: KeyType,
    /// Whether every mapping at this level must write it.
    pub required: bool,
    /// What it means, in one sentence.
    pub doc: &'static str,
}

const FITS: &[&str] = &["none", "cover", "contain", "face"];
const DRIFTS: &[&str] = &["off", "warn", "heal"];
/// A receiver's message formats.
pub const NOTIFY_FORMATS: &[&str] = &["json", "slack"];
/// The events a receiver may be told (`events:`). `halted` and `rollout` are the rollout's
/// (a halt, and one digest message per wave).
pub const NOTIFY_EVENTS: &[&str] = &["applied", "failed", "drifted", "halted", "rollout"];

const fn key(name: &'static str, ty: KeyType, doc: &'static str) -> Key {
    Key {
        name,
        ty,
        required: false,
        doc,
    }
}

const fn required(name: &'static str, ty: KeyType, doc: &'static str) -> Key {
    Key {
        name,
        ty,
        required: true,
        doc,
    }
}

/// `fit`, `size`, `background`, `quality`: written at the top (for every instance) or on
/// one instance.
pub const PROCESSING_KEYS: [Key; 4] = [
    key(
        "fit",
        KeyType::OneOf(FITS),
        "How a picture is shaped: none (keep the aspect, only scale down), cover (crop the \
         centre to a square), contain (fit inside a square, padded with the background) or \
         face (a square around the faces found, kept inside the circle WhatsApp shows; \
         else around what stands out; else the centre). Default none.",
    ),
    key(
        "size",
        KeyType::Whole { min: 16, max: 4096 },
        "The longest edge of the upload, in pixels. Default 640.",
    ),
    key(
        "background",
        KeyType::Colour,
        "The colour fit: contain pads with. Default #ffffff.",
    ),
    key(
        "quality",
        KeyType::Whole { min: 1, max: 100 },
        "The JPEG quality of the upload. Default 90.",
    ),
];

/// The keys of `rollout:`.
pub const ROLLOUT_KEYS: [Key; 4] = [
    key(
        "waves",
        KeyType::Amounts,
        "How many of the instances a revision changes have their new picture once each wave \
         is done, cumulative (canaries first): [1, 10%, 100%] is one, then a tenth, then \
         all. Default [100%].",
    ),
    key(
        "verify",
        KeyType::Bool,
        "Read each upload back (getWaSettings, compared perceptually) before its wave \
         counts as landed; a mismatch is a failure. Default false.",
    ),
    key(
        "maxFailures",
        KeyType::Amount,
        "More failures than this in one wave (a count, or a percentage of the wave) halt \
         the rollout. Default 0.",
    ),
    key(
        "pause",
        KeyType::Duration,
        "The least time between a wave landing and the next one starting. Default 0s.",
    ),
];

/// The keys of one change window (`windows:`).
pub const WINDOW_KEYS: [Key; 4] = [
    key(
        "allow",
        KeyType::Cron,
        "When an allow window opens (cron, in timezone): uploads happen only inside one. \
         One of allow, deny.",
    ),
    key(
        "deny",
        KeyType::Cron,
        "When a deny window opens (cron, in timezone): no upload while it is open.",
    ),
    required(
        "duration",
        KeyType::Duration,
        "How long the window stays open each time, in real time.",
    ),
    key(
        "timezone",
        KeyType::TimeZone,
        "The IANA time zone the schedule is read in. Default UTC.",
    ),
];

/// The keys of a window that say when it opens: exactly one of them is written.
pub const WINDOW_KIND_KEYS: [&str; 2] = ["allow", "deny"];

/// The keys of one receiver of `notify:`.
pub const NOTIFY_KEYS: [Key; 5] = [
    required(
        "url",
        KeyType::Url,
        "Where messages are POSTed: https://, or http:// to a loopback address only. \
         Redirects are not followed.",
    ),
    key(
        "format",
        KeyType::OneOf(NOTIFY_FORMATS),
        "json (the documented, versioned body) or slack (an incoming webhook's \
         {\"text\": ...}). Default json.",
    ),
    key(
        "secretFile",
        KeyType::Text,
        "A file holding a secret (relative to the manifest's folder; ${NAME} expands): each \
         body is signed with HMAC-SHA256 in the header X-Avatar-Sync-Signature.",
    ),
    key(
        "events",
        KeyType::Words(NOTIFY_EVENTS),
        "The events told: applied, failed (and its recovery), drifted, halted, rollout. \
         Default all but applied.",
    ),
    key(
        "after",
        KeyType::Whole { min: 1, max: 1000 },
        "A failure is told once it has happened this many times in a row. Default 1.",
    ),
];

/// The manifest's top-level keys.
pub const TOP_KEYS: [Key; 14] = [
    key(
        "apiUrl",
        KeyType::Url,
        "GREEN-API's base URL for every instance that sets none. Default \
         https://api.green-api.com.",
    ),
    key(
        "minInterval",
        KeyType::Duration,
        "The least time between two uploads to one instance. Default 10s (WhatsApp's limit).",
    ),
    key(
        "resyncInterval",
        KeyType::Duration,
        "How often the daemon looks again at everything, watched or not. Default 10m.",
    ),
    key(
        "adopt",
        KeyType::Bool,
        "Whether an instance with no record whose live picture already matches is recorded \
         as applied without an upload. Default true.",
    ),
    key(
        "drift",
        KeyType::OneOf(DRIFTS),
        "What to do when the live picture differs from the one applied: off, warn or heal. \
         Default warn.",
    ),
    key(
        "driftInterval",
        KeyType::Duration,
        "How often the daemon looks at each instance's live picture. Default 1h.",
    ),
    PROCESSING_KEYS[0],
    PROCESSING_KEYS[1],
    PROCESSING_KEYS[2],
    PROCESSING_KEYS[3],
    key(
        "rollout",
        KeyType::Mapping(&ROLLOUT_KEYS),
        "Spread the uploads a revision changes in waves, read back, halted on failures.",
    ),
    key(
        "windows",
        KeyType::Mappings(&WINDOW_KEYS),
        "When uploads may happen: allow and deny windows (cron, duration, timezone).",
    ),
    key(
        "notify",
        KeyType::Mappings(&NOTIFY_KEYS),
        "Who is told what happens (failures, drift, rollouts), each a receiver: a JSON or \
         Slack webhook.",
    ),
    required(
        "instances",
        KeyType::Instances,
        "The instances, each a mapping of the per-instance keys.",
    ),
];

/// The keys of one instance.
pub const INSTANCE_KEYS: [Key; 13] = [
    required(
        "idInstance",
        KeyType::Id,
        "GREEN-API's idInstance: digits, not starting with 0.",
    ),
    key(
        "apiTokenFile",
        KeyType::Text,
        "A file holding the instance's apiTokenInstance (relative to the manifest's folder; \
         ${NAME} expands). One of apiTokenFile, apiTokenEnv, apiTokenInstance.",
    ),
    key(
        "apiTokenEnv",
        KeyType::Text,
        "The environment variable holding the instance's apiTokenInstance.",
    ),
    key(
        "apiTokenInstance",
        KeyType::Text,
        "The token itself, written in the manifest (and so in git): prefer apiTokenFile.",
    ),
    required(
        "picture",
        KeyType::Text,
        "The picture: a JPEG, PNG or WebP file (relative to the manifest's folder; ${NAME} \
         expands).",
    ),
    key(
        "apiUrl",
        KeyType::Url,
        "GREEN-API's base URL for this instance.",
    ),
    PROCESSING_KEYS[0],
    PROCESSING_KEYS[1],
    PROCESSING_KEYS[2],
    PROCESSING_KEYS[3],
    key(
        "drift",
        KeyType::OneOf(DRIFTS),
        "What to do when this instance's live picture drifts: off, warn or heal.",
    ),
    key(
        "suspend",
        KeyType::Bool,
        "true: make no calls for this instance (its record stays). Default false.",
    ),
    key(
        "canary",
        KeyType::Bool,
        "true: always in a rollout's first wave. Default false.",
    ),
];

/// The keys that name an instance's token: exactly one of them is written.
pub const TOKEN_KEYS: [&str; 3] = ["apiTokenFile", "apiTokenEnv", "apiTokenInstance"];

/// The known key closest to `written`, if it is one or two edits away (a typo), or the same
/// but for case.
pub fn suggest(written: &str, keys: &[Key]) -> Option<&'static str> {
    let lower = written.to_lowercase();
    keys.iter()
        .map(|key| {
            let distance = if key.name.to_lowercase() == lower {
                0
            } else {
                edits(&lower, &key.name.to_lowercase())
            };
            (distance, key.name)
        })
        .filter(|&(distance, _)| distance <= 2)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, name)| name)
}

/// The Damerau-Levenshtein (optimal string alignment) distance between `a` and `b`.
fn edits(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_one_or_two_edits_away_is_suggested() {
        assert_eq!(suggest("pictrue", &INSTANCE_KEYS), Some("picture"));
        assert_eq!(suggest("idinstance", &INSTANCE_KEYS), Some("idInstance"));
        assert_eq!(suggest("apiTokenFil", &INSTANCE_KEYS), Some("apiTokenFile"));
        assert_eq!(suggest("minIntreval", &TOP_KEYS), Some("minInterval"));
        assert_eq!(suggest("colour", &TOP_KEYS), None);
        assert_eq!(suggest("instance", &TOP_KEYS), Some("instances"));
    }
}
