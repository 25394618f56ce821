//! What must never leave the process as it is: the values that `${NAME}` expanded to in
//! the manifest. A `picture:` path may name a secret (`/x/${SALES_TOKEN}.jpg`), and a
//! path's folder may be private. Every text that leaves the process (logs, stdout, the
//! status page) goes through [`scrub`], which writes each such value back as the
//! `${NAME}` it came from, so people see paths as they wrote them.

use std::borrow::Cow;
use std::sync::RwLock;

/// Values shorter than this are not worth hiding and would match too much.
const MIN_LEN: usize = 3;

/// Each expanded value and the `${NAME}` it came from, longest value first (so a value
/// that holds another is written back whole).
static EXPANDED: RwLock<Vec<(String, String)>> = RwLock::new(Vec::new());

/// Notes that `${name}` expanded to `value`.
pub(crate) fn expanded(name: &str, value: &str) {
    if value.len() < MIN_LEN {
        return;
    }
    // A fleet's instances expand the same few names: most calls only read.
    let known = |list: &[(String, String)]| list.iter().any(|(known, _)| known == value);
    if known(&EXPANDED.read().unwrap_or_else(|e| e.into_inner())) {
        return;
    }
    let mut list = EXPANDED.write().unwrap_or_else(|e| e.into_inner());
    if known(&list) {
        return;
    }
    list.push((value.to_owned(), format!("${{{name}}}")));
    list.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
}

/// `text` with every expanded value written back as its `${NAME}`.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let list = EXPANDED.read().unwrap_or_else(|e| e.into_inner());
    let mut out = Cow::Borrowed(text);
    for (value, name) in list.iter() {
        if out.contains(value.as_str()) {
            out = Cow::Owned(out.replace(value.as_str(), name));
        }
    }
    out
}

/// A writer that passes what it is given through [`scrub`] (a whole log line a call).
pub(crate) struct Scrubbed<W>(pub W);

impl<W: std::io::Write> std::io::Write for Scrubbed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) => self.0.write_all(scrub(text).as_bytes())?,
            Err(_) => self.0.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n1_an_expanded_value_is_written_back_as_its_name_wherever_it_appears() {
        expanded("N1_SALES_TOKEN", "N1sEcReTtOkEn0123456789");
        expanded("N1_SHORT", "ab");
        expanded("N1_PICTURES", "/srv/n1-pictures");
        let text = "picture /srv/n1-pictures/N1sEcReTtOkEn0123456789.jpg is missing (ab)";
        assert_eq!(
            scrub(text),
            "picture ${N1_PICTURES}/${N1_SALES_TOKEN}.jpg is missing (ab)"
        );
        assert!(matches!(scrub("nothing to hide"), Cow::Borrowed(_)));
        let mut out = Vec::new();
        std::io::Write::write_all(&mut Scrubbed(&mut out), text.as_bytes()).unwrap();
        assert!(!String::from_utf8(out).unwrap().contains("N1sEcReT"));
    }
}
