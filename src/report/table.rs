//! The one table writer every mode prints with: a header, aligned rows (the last column
//! runs free), lines of notes, then a summary line after a blank one.

use std::fmt::Write as _;

/// A table for people.
#[derive(Clone, Debug, Default)]
pub(crate) struct Table {
    /// Column titles, each with the least width its column takes.
    pub columns: Vec<(&'static str, usize)>,
    /// The cells, one `Vec` per row, as many as there are columns.
    pub rows: Vec<Vec<String>>,
    /// Lines printed after the rows (warnings).
    pub notes: Vec<String>,
    /// The last line (counts), after a blank line; none when empty.
    pub summary: String,
}

impl Table {
    /// A table with these column titles.
    pub(crate) fn new(titles: &[&'static str]) -> Self {
        Self {
            columns: titles.iter().map(|&title| (title, 0)).collect(),
            ..Self::default()
        }
    }

    /// Column `index` is at least `width` characters wide.
    pub(crate) fn min_width(mut self, index: usize, width: usize) -> Self {
        if let Some(column) = self.columns.get_mut(index) {
            column.1 = width;
        }
        self
    }

    /// The text, every line ending in a newline. With no rows, the header is left out
    /// and the summary stands alone.
    pub(crate) fn render(&self) -> String {
        if self.rows.is_empty() && self.notes.is_empty() && !self.summary.is_empty() {
            return format!("{}\n", self.summary);
        }
        let mut widths: Vec<usize> = self
            .columns
            .iter()
            .map(|(title, min)| title.chars().count().max(*min))
            .collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let titles: Vec<&str> = self.columns.iter().map(|(title, _)| *title).collect();
        line(&mut out, &widths, &titles);
        for row in &self.rows {
            let cells: Vec<&str> = row.iter().map(String::as_str).collect();
            line(&mut out, &widths, &cells);
        }
        for note in &self.notes {
            let _ = writeln!(out, "{note}");
        }
        if !self.summary.is_empty() {
            let _ = writeln!(out, "\n{}", self.summary);
        }
        out
    }
}

/// One row: every cell but the last padded to its column's width, two spaces between.
fn line(out: &mut String, widths: &[usize], cells: &[&str]) {
    let last = cells.len().saturating_sub(1);
    for (i, cell) in cells.iter().enumerate() {
        if i == last {
            let _ = write!(out, "{cell}");
        } else {
            let pad = widths[i].saturating_sub(cell.chars().count());
            let _ = write!(out, "{cell}{:pad$}  ", "");
        }
    }
    out.push('\n');
}

/// `n thing` or `n things`, with thousands separated (`30,000 instances`).
pub(crate) fn plural(n: usize, thing: &str) -> String {
    format!("{} {thing}{}", thousands(n), if n == 1 { "" } else { "s" })
}

/// `n` with its thousands separated by commas: `29,990`.
pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The first 12 hex digits of a SHA-256 or a commit id, for tables, messages and labels.
pub(crate) fn short_sha(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_the_last_runs_free() {
        let mut table = Table::new(&["ID", "STATUS", "DETAIL"]).min_width(1, 9);
        table
            .rows
            .push(vec!["1".into(), "ok".into(), "fine".into()]);
        table.rows.push(vec![
            "12345".into(),
            "failed".into(),
            "a long detail".into(),
        ]);
        table.notes.push("warning: careful".into());
        table.summary = "2 instances".into();
        assert_eq!(
            table.render(),
            "ID     STATUS     DETAIL\n\
             1      ok         fine\n\
             12345  failed     a long detail\n\
             warning: careful\n\
             \n\
             2 instances\n"
        );
    }

    #[test]
    fn a_table_without_rows_is_its_summary_alone() {
        let mut table = Table::new(&["ID", "DETAIL"]);
        table.summary = "3 instances: 3 in sync".into();
        assert_eq!(table.render(), "3 instances: 3 in sync\n");
    }

    #[test]
    fn helpers_count_and_shorten() {
        assert_eq!(plural(1, "instance"), "1 instance");
        assert_eq!(plural(2, "instance"), "2 instances");
        assert_eq!(plural(30_000, "instance"), "30,000 instances");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(short_sha("0123456789abcdef"), "0123456789ab");
        assert_eq!(short_sha("abc"), "abc");
    }
}
