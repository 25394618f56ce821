//! Keeps the token out of everything a server says. A hostile or broken server may echo the
//! token JSON-escaped (`\u0061…`), percent-encoded, in upper case, split across lines, or
//! in part; so server text is decoded first, then every run that spells a long enough piece
//! of the token (case and white space ignored) becomes `[redacted]`. Every piece of text
//! the gateway hands out (a failure's detail, an answered `urlAvatar`) passes through here.

/// The shortest piece of the token that is redacted: long enough that ordinary text never
/// matches by chance (a 50-character hex token has 43 pieces of 8; a chance match is about
/// 1 in 10^8 per position), short enough that no useful part of it is shown.
use crate::outcome::{CallFailure, CallOutcome};

const MIN_PIECE: usize = 8;

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
    /// The token, lower-cased (tokens are ASCII).
    token: Vec<char>,
}

impl Scrubber {
    pub(crate) fn new(token: &str) -> Self {
        Self {
            token: token.chars().map(|c| c.to_ascii_lowercase()).collect(),
        }
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

    /// The end of the longest run starting at `start` that spells at least
    /// [`MIN_PIECE`] consecutive characters of the token (the whole token, if shorter),
    /// ignoring case and white space inside the run.
    fn piece_at(&self, chars: &[char], start: usize) -> Option<usize> {
        let min = MIN_PIECE.min(self.token.len());
        let first = chars[start].to_ascii_lowercase();
        if min == 0 || first.is_whitespace() {
            return None;
        }
        let mut best: Option<(usize, usize)> = None; // (length, end)
        for from in (0..self.token.len()).filter(|&p| self.token[p] == first) {
            let (mut matched, mut at, mut end) = (from, start, start);
            while at < chars.len() && matched < self.token.len() {
                let c = chars[at].to_ascii_lowercase();
                if c.is_whitespace() {
                    at += 1;
                } else if c == self.token[matched] {
                    matched += 1;
                    at += 1;
                    end = at;
                } else {
                    break;
                }
            }
            let length = matched - from;
            if length >= min && best.is_none_or(|(longest, _)| length > longest) {
                best = Some((length, end));
            }
        }
        best.map(|(_, end)| end)
    }
}

/// Decodes `\uXXXX` (JSON) and `%XX` (URL) escapes; anything else is kept as written.
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
            "token d75b3a6 is wrong", // seven characters: not enough to be the token
            "https://pps.whatsapp.net/v/t61.24694-24/123_456_n.jpg?oh=01_Q5Aa&oe=6777",
            "",
        ] {
            assert_eq!(clean(text), text);
        }
    }

    #[test]
    fn a_short_token_is_redacted_whole_and_only_whole() {
        let scrubber = Scrubber::new("abc123");
        assert_eq!(scrubber.clean("x ABC123 y abc12"), "x [redacted] y abc12");
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
