//! Keeps the token out of everything a server says. A hostile or broken server may echo the
//! token JSON-escaped (`\u0061…`), percent-encoded, in upper case, split across lines or
//! by zero-width characters, in part, or encoded (hex, base64); so server text is decoded
//! first, then every run that spells a piece of the token in any of those forms (case,
//! white space and invisible characters ignored) becomes `[redacted]`. Every piece of text
//! the gateway hands out (a failure's detail, an answered `urlAvatar`) passes through here.

use crate::outcome::{CallFailure, CallOutcome};

/// The shortest piece of the token that is redacted: 5 characters (20 bits of a 200-bit
/// token; a 50-character token has 46 such pieces, so ordinary text matches by chance about
/// once in 20,000 hex-looking words, and then a word is hidden, never a piece shown).
const MIN_PIECE: usize = 5;

/// The shortest piece of an encoding of the token that is redacted: as many encoded
/// characters as hold [`MIN_PIECE`] bytes (hex 2 per byte; base64 4 per 3 bytes).
const MIN_HEX_PIECE: usize = 2 * MIN_PIECE;
const MIN_BASE64_PIECE: usize = (4 * MIN_PIECE).div_ceil(3) + 1;

const REDACTED: &str = "[redacted]";

impl CallFailure {
    /// The failure with no piece of the token in its detail.
    pub(crate) fn scrubbed(self, scrubber: &Scrubber) -> Self {
        Self {
            kind: self.kind,
            detail: scrubber.clean(&self.detail),
        }
    }
}

impl CallOutcome {
    /// The outcome with no piece of the token in it: a failure's detail is cleaned, and an
    /// answered `urlAvatar` that shows the token is dropped (a redacted URL is of no use).
    pub(crate) fn scrubbed(self, scrubber: &Scrubber) -> Self {
        match self {
            Self::Failed(failure) => Self::Failed(failure.scrubbed(scrubber)),
            Self::Applied { url_avatar } => Self::Applied {
                url_avatar: url_avatar.filter(|url| {
                    let shows = scrubber.shows_token(url);
                    if shows {
                        tracing::warn!(
                            "GREEN-API answered a urlAvatar that contains the token; it is not kept"
                        );
                    }
                    !shows
                }),
            },
        }
    }
}

/// Removes one token from server text.
pub(crate) struct Scrubber {
    /// The token as written, hex-encoded and base64-encoded (each lower-cased), with the
    /// shortest piece of each that is redacted.
    forms: Vec<Form>,
}

/// One way the token may be spelled.
struct Form {
    chars: Vec<char>,
    min: usize,
}

impl Form {
    fn new(text: &str, min: usize) -> Self {
        let chars: Vec<char> = text.chars().map(|c| c.to_ascii_lowercase()).collect();
        // A token shorter than the shortest piece is redacted whole and only whole.
        let min = min.min(chars.len());
        Self { chars, min }
    }
}

impl Scrubber {
    pub(crate) fn new(token: &str) -> Self {
        let bytes = token.as_bytes();
        let mut forms = vec![
            Form::new(token, MIN_PIECE),
            Form::new(&hex(bytes), MIN_HEX_PIECE),
        ];
        // The token may start at any of three places in a base64 group; each gives its
        // own spelling (the last characters, which depend on what follows, are left off).
        for skip in 0..3.min(bytes.len()) {
            let encoded = base64(&bytes[skip..]);
            forms.push(Form::new(&encoded, MIN_BASE64_PIECE));
            forms.push(Form::new(
                &encoded.replace('+', "-").replace('/', "_"),
                MIN_BASE64_PIECE,
            ));
        }
        forms.retain(|form| form.min > 0);
        Self { forms }
    }

    /// `text` decoded (`\uXXXX`, `%XX`) with every piece of the token redacted.
    pub(crate) fn clean(&self, text: &str) -> String {
        let chars: Vec<char> = decode_escapes(text).chars().collect();
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        while at < chars.len() {
            match self.piece_at(&chars, at) {
                Some(end) => {
                    out.push_str(REDACTED);
                    at = end;
                }
                None => {
                    out.push(chars[at]);
                    at += 1;
                }
            }
        }
        out
    }

    /// Whether `text` shows any piece of the token, in any of the forms [`Self::clean`]
    /// removes.
    pub(crate) fn shows_token(&self, text: &str) -> bool {
        let chars: Vec<char> = decode_escapes(text).chars().collect();
        (0..chars.len()).any(|at| self.piece_at(&chars, at).is_some())
    }

    /// The end of the longest run starting at `start` that spells a piece of the token in
    /// any of its forms, ignoring case, white space and invisible characters inside the run.
    fn piece_at(&self, chars: &[char], start: usize) -> Option<usize> {
        if skipped(chars[start]) {
            return None;
        }
        self.forms
            .iter()
            .filter_map(|form| form.piece_at(chars, start))
            .max()
    }
}

impl Form {
    /// The end of the longest run starting at `start` that spells at least `min`
    /// consecutive characters of this form.
    fn piece_at(&self, chars: &[char], start: usize) -> Option<usize> {
        let first = chars[start].to_ascii_lowercase();
        let mut best: Option<(usize, usize)> = None; // (length, end)
        for from in (0..self.chars.len()).filter(|&p| self.chars[p] == first) {
            let (mut matched, mut at, mut end) = (from, start, start);
            while at < chars.len() && matched < self.chars.len() {
                let c = chars[at].to_ascii_lowercase();
                if skipped(c) {
                    at += 1;
                } else if c == self.chars[matched] {
                    matched += 1;
                    at += 1;
                    end = at;
                } else {
                    break;
                }
            }
            let length = matched - from;
            if length >= self.min && best.is_none_or(|(longest, _)| length > longest) {
                best = Some((length, end));
            }
        }
        best.map(|(_, end)| end)
    }
}

/// Characters a run may hold between two characters of the token without breaking it:
/// white space, and the invisible ones (zero-width spaces and joiners, direction marks and
/// embeddings, the byte-order mark, the soft hyphen).
fn skipped(c: char) -> bool {
    c.is_whitespace()
        || matches!(c,
            '\u{00AD}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}')
}

/// `bytes` as lower-case hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `bytes` in standard base64, whole groups only: a last partial group's characters depend
/// on the bytes that follow the token, so they are left off.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    bytes
        .chunks_exact(3)
        .flat_map(|group| {
            let n = u32::from(group[0]) << 16 | u32::from(group[1]) << 8 | u32::from(group[2]);
            [18, 12, 6, 0].map(|shift| char::from(ALPHABET[(n >> shift & 63) as usize]))
        })
        .collect()
}

/// Decodes `\uXXXX` (JSON), `\xNN` and `%XX` (URL) escapes; anything else is kept as
/// written.
fn decode_escapes(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while at < text.len() {
        let decoded = match bytes[at] {
            b'\\' if text[at..].starts_with("\\u") => text
                .get(at + 2..at + 6)
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .and_then(char::from_u32)
                .map(|c| (c, 6)),
            b'\\' if text[at..].starts_with("\\x") => text
                .get(at + 2..at + 4)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .filter(u8::is_ascii)
                .map(|b| (char::from(b), 4)),
            b'%' => text
                .get(at + 1..at + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .filter(u8::is_ascii)
                .map(|b| (char::from(b), 3)),
            _ => None,
        };
        match decoded {
            Some((c, len)) => {
                out.push(c);
                at += len;
            }
            None => {
                let c = text[at..].chars().next().unwrap_or_default();
                out.push(c);
                at += c.len_utf8();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "d75b3a66374942c5b3c019c698abc2067e151558acbd451f9d";

    fn clean(text: &str) -> String {
        Scrubber::new(TOKEN).clean(text)
    }

    #[test]
    fn the_token_in_every_disguise_is_redacted() {
        let escaped: String = TOKEN
            .chars()
            .map(|c| format!("\\u{:04x}", c as u32))
            .collect();
        let percent: String = TOKEN.bytes().map(|b| format!("%{b:02X}")).collect();
        let (head, tail) = TOKEN.split_at(20);
        for text in [
            format!("token {TOKEN} is wrong"),
            format!("token {} is wrong", TOKEN.to_uppercase()),
            format!("token {escaped} is wrong"),
            format!("token {percent} is wrong"),
            format!("token {head}\n  {tail} is wrong"),
            format!("token {} is wrong", &TOKEN[10..22]),
        ] {
            assert_eq!(clean(&text), "token [redacted] is wrong", "{text}");
        }
    }

    #[test]
    fn short_pieces_and_ordinary_text_are_kept() {
        for text in [
            "GREEN-API answered 400: instance in starting process try later",
            "token d75b is wrong", // four characters: not enough to be the token
            "https://pps.whatsapp.net/v/t61.24694-24/123_456_n.jpg?oh=01_Q5Aa&oe=6777",
            "",
        ] {
            assert_eq!(clean(text), text);
        }
    }

    #[test]
    fn n9_short_pieces_invisible_joins_and_plain_encodings_are_redacted() {
        use std::fmt::Write as _;
        let zero_width: String = TOKEN.chars().flat_map(|c| [c, '\u{200B}']).collect();
        let joined: String = TOKEN[..12].chars().flat_map(|c| [c, '\u{2060}']).collect();
        let hex_text = hex(TOKEN.as_bytes());
        let url_all: String = TOKEN.bytes().fold(String::new(), |mut s, b| {
            let _ = write!(s, "%{b:02x}");
            s
        });
        let backslash_x: String = TOKEN.bytes().map(|b| format!("\\x{b:02x}")).collect();
        let mut texts = vec![
            format!("token {} is wrong", &TOKEN[3..8]), // five characters
            format!("token {} is wrong", &TOKEN[30..37]), // seven characters
            format!("token {zero_width} is wrong"),
            format!("token {joined} is wrong"),
            format!("token {hex_text} is wrong"),
            format!("token {} is wrong", hex_text.to_uppercase()),
            format!("token {} is wrong", &hex_text[20..32]),
            format!("token {url_all} is wrong"),
            format!("token {backslash_x} is wrong"),
        ];
        // Base64 of the token behind a prefix of every length (each puts the token at
        // another place in a group), in both alphabets, and of a piece of it.
        for prefix in ["", "a", "ab"] {
            let encoded = standard_base64(format!("{prefix}{TOKEN}").as_bytes());
            texts.push(format!("token {encoded} is wrong"));
            let url_safe = encoded.replace('+', "-").replace('/', "_");
            texts.push(format!("token {url_safe} is wrong"));
        }
        texts.push(format!(
            "token {} is wrong",
            standard_base64(&TOKEN.as_bytes()[9..18])
        ));
        let scrubber = Scrubber::new(TOKEN);
        for text in texts {
            assert!(scrubber.shows_token(&text), "{text}");
            let cleaned = scrubber.clean(&text);
            assert!(!scrubber.shows_token(&cleaned), "{text} → {cleaned}");
            // A base64 group that mixes the prefix and the token's first byte may stay.
            assert!(cleaned.starts_with("token "), "{text} → {cleaned}");
            assert!(
                cleaned.contains("[redacted]") && cleaned.len() < 40,
                "{cleaned}"
            );
            assert!(cleaned.ends_with(" is wrong"), "{text} → {cleaned}");
        }
    }

    /// Base64 with padding, written independently of [`base64`] (bit by bit).
    fn standard_base64(bytes: &[u8]) -> String {
        let alphabet: Vec<char> = ('A'..='Z')
            .chain('a'..='z')
            .chain('0'..='9')
            .chain(['+', '/'])
            .collect();
        let bits: Vec<u8> = bytes
            .iter()
            .flat_map(|b| (0..8).rev().map(move |i| b >> i & 1))
            .collect();
        let mut out: String = bits
            .chunks(6)
            .map(|six| {
                let value = (0..6).fold(0, |v, i| v << 1 | six.get(i).copied().unwrap_or(0));
                alphabet[usize::from(value)]
            })
            .collect();
        while !out.len().is_multiple_of(4) {
            out.push('=');
        }
        out
    }

    #[test]
    fn a_short_token_is_redacted_whole_and_only_whole() {
        let scrubber = Scrubber::new("abc1");
        assert_eq!(scrubber.clean("x ABC1 y abc"), "x [redacted] y abc");
        assert_eq!(Scrubber::new("").clean("anything"), "anything");
    }

    #[test]
    fn escapes_that_are_not_the_token_are_decoded_harmlessly() {
        assert_eq!(
            clean(r"caf\u00e9 100%25 \uZZZZ %G1 \u12"),
            r"café 100% \uZZZZ %G1 \u12"
        );
    }

    #[test]
    fn shows_token_tells_a_leak_from_a_redaction() {
        let scrubber = Scrubber::new(TOKEN);
        assert!(scrubber.shows_token(&TOKEN.to_uppercase()));
        assert!(!scrubber.shows_token("said [redacted]"));
        assert!(!scrubber.shows_token("nothing here"));
    }
}
