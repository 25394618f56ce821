//! How much YAML the manifest parser accepts. Limits scale with the file: honest YAML
//! spends at least a byte of text on every parser event, so a manifest of a million
//! instances loads, while an alias bomb (a few lines whose aliases expand to billions of
//! nodes) or a deeply nested document hits a limit within milliseconds and a few MB. A limit
//! that is hit is named in words an operator understands.

use granit_parser::{Event, Parser};
use std::collections::HashMap;

/// The largest manifest read, in bytes (256 MiB: a million instances take about 120 MiB).
pub const MAX_MANIFEST_BYTES: u64 = 256 * 1024 * 1024;

/// The fewest YAML nodes any manifest may describe, its aliases expanded.
const MIN_NODES: usize = 250_000;

/// The most YAML nodes a manifest of `input_len` bytes may describe, its aliases expanded:
/// one node per byte of text is more than any honest YAML makes.
pub(super) fn max_nodes(input_len: usize) -> usize {
    input_len.max(MIN_NODES)
}

/// A manifest whose aliases would expand it beyond [`max_nodes`]: the line of the alias
/// that crossed the limit, and the words for it.
#[derive(Debug)]
pub(super) struct Expansion {
    pub(super) line: u64,
    pub(super) message: String,
}

/// Refuses, before anything is deserialized, YAML whose aliases (`*name`) would expand it
/// to more than [`max_nodes`] nodes, as an alias bomb does: each anchor's expanded size is
/// counted once, in one pass over the parser's events, so nothing is expanded and nothing
/// is held but one number per anchor. Text without a `*` cannot hold an alias and is not
/// scanned; text the parser cannot read is left for the deserializer to report.
pub(super) fn check_expansion(text: &str) -> Result<(), Expansion> {
    if !text.contains('*') {
        return Ok(());
    }
    let limit = max_nodes(text.len());
    let mut sizes: HashMap<usize, u64> = HashMap::new();
    // The open collections: their anchor and how many nodes they hold so far.
    let mut open: Vec<(usize, u64)> = Vec::new();
    let mut total: u64 = 0;
    for event in Parser::new_from_str(text) {
        let Ok((event, span)) = event else {
            return Ok(());
        };
        let nodes = match event {
            Event::Scalar(_, _, anchor, _) => {
                if anchor != 0 {
                    sizes.insert(anchor, 1);
                }
                1
            }
            Event::SequenceStart(_, anchor, _) | Event::MappingStart(_, anchor, _) => {
                open.push((anchor, 1));
                total += 1;
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some((anchor, size)) = open.pop() else {
                    continue;
                };
                if anchor != 0 {
                    sizes.insert(anchor, size);
                }
                if let Some((_, parent)) = open.last_mut() {
                    *parent = parent.saturating_add(size);
                }
                continue;
            }
            // An alias of a collection still open (a cycle) counts once; the deserializer
            // refuses it.
            Event::Alias(anchor) => sizes.get(&anchor).copied().unwrap_or(1),
            _ => continue,
        };
        if let Some((_, parent)) = open.last_mut() {
            *parent = parent.saturating_add(nodes);
        }
        total = total.saturating_add(nodes);
        if total > limit as u64 {
            return Err(Expansion {
                line: u64::try_from(span.start.line()).unwrap_or(u64::MAX),
                message: format!(
                    "the manifest exceeds a YAML safety limit: its aliases (*name) would expand \
                     it to more than {limit} YAML nodes (the limit for a file of this size, one \
                     node per byte, at least 250000); a manifest is a plain list of instances, \
                     and an \"alias bomb\" is what hits this limit"
                ),
            });
        }
    }
    Ok(())
}
