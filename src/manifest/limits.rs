//! How much YAML the manifest parser accepts. Limits scale with the file: honest YAML
//! spends at least a byte of text on every parser event, so a manifest of a million
//! instances loads, while an alias bomb (a few lines whose aliases expand to billions of
//! nodes) or a deeply nested document hits a limit within milliseconds and a few MB. A limit
//! that is hit is named in words an operator understands.

use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{Budget, Options};

/// The largest manifest read, in bytes (256 MiB: a million instances take about 120 MiB).
pub const MAX_MANIFEST_BYTES: u64 = 256 * 1024 * 1024;

/// The parser's options for a manifest of `input_len` bytes.
pub(super) fn options(input_len: usize) -> Options {
    let mut budget = Budget::default();
    // One event and one node per byte of text is more than any honest YAML makes; aliases
    // are what could make more, and their own limits stay as the library sets them.
    budget.max_events = budget.max_events.max(input_len);
    budget.max_nodes = budget.max_nodes.max(input_len);
    budget.max_total_scalar_bytes = budget.max_total_scalar_bytes.max(input_len);
    let mut options = Options::default();
    options.budget = Some(budget);
    options
}

/// The limit a breach hit, in words: what was counted, how far it got, and what to do.
pub(super) fn breach_message(breach: &BudgetBreach, input_len: usize) -> String {
    let budget = options(input_len).budget.unwrap_or_default();
    let (what, limit) = match breach {
        BudgetBreach::Events { .. } => ("YAML events", budget.max_events),
        BudgetBreach::Nodes { .. } => ("YAML nodes", budget.max_nodes),
        BudgetBreach::Aliases { .. } => ("aliases (*name)", budget.max_aliases),
        BudgetBreach::Anchors { .. } => ("anchors (&name)", budget.max_anchors),
        BudgetBreach::Depth { .. } => ("levels of nesting", budget.max_depth),
        BudgetBreach::Documents { .. } => ("YAML documents", budget.max_documents),
        BudgetBreach::ScalarBytes { .. } => ("bytes of values", budget.max_total_scalar_bytes),
        BudgetBreach::MergeKeys { .. } => ("merge keys (<<)", budget.max_merge_keys),
        other => {
            return format!(
                "the manifest exceeds a YAML safety limit ({other:?}); a manifest is a plain \
                 list of instances, without anchors, aliases or deep nesting"
            );
        }
    };
    format!(
        "the manifest exceeds a YAML safety limit: more than {limit} {what}; a manifest is a \
         plain list of instances (anchors, aliases and deep nesting are what hit this limit, \
         as a YAML \"alias bomb\" does)"
    )
}
