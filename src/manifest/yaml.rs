//! YAML text → the manifest as parsed ([`ParsedManifest`]), read from the YAML parser's
//! events against the list of keys ([`super::keys`]).
//!
//! One pass finds every problem of shape: unknown keys (with the known key a typo was
//! probably meant to be), keys written twice, missing keys, values of the wrong type, each
//! in the manifest's words with its line. Numbers are read as strictly as ids (decimal
//! digits, not quoted), booleans are `true` or `false`. The `instances` list is read one
//! instance at a time, and a shard keeps only its own instances (every instance's shape is
//! still checked, so every shard refuses the same manifest): a shard's memory follows its
//! shard, not the fleet. Anchors, aliases and merge keys (`<<`) work as YAML says, within
//! [`super::limits`].

use super::keys::{
    INSTANCE_KEYS, Key, KeyType, NOTIFY_KEYS, ROLLOUT_KEYS, TOP_KEYS, WINDOW_KEYS, suggest,
};
use super::parsed::{
    At, ParsedInstance, ParsedManifest, ParsedProcessing, ParsedReceiver, ParsedRollout, ParsedTop,
    ParsedWindow,
};
use super::problem::{ManifestError, Problem, ProblemKind, visible};
use super::{InstanceId, Shard};
use granit_parser::{Event, Parser, ScalarStyle, ScanError, Span, StrInput};
use std::collections::HashMap;
use std::iter::Peekable;
use std::path::Path;

/// The deepest nesting a manifest may have (it needs three levels).
const MAX_DEPTH: usize = 32;

/// A manifest read from YAML: what parsed, and every problem of shape found.
pub(super) struct Read {
    /// The manifest as parsed (a shard's: only its own instances).
    pub(super) parsed: ParsedManifest,
    /// The problems of shape, by line.
    pub(super) problems: Vec<Problem>,
}

/// Reads the manifest `text` (from `path`), keeping only `shard`'s instances when it is
/// one. Text that is not YAML, or breaks a safety limit, is one problem and nothing else.
pub(super) fn read(text: &str, path: &Path, shard: Option<Shard>) -> Result<Read, ManifestError> {
    let mut reader = Reader {
        events: Parser::new_from_str(text).peekable(),
        anchors: HashMap::new(),
        path,
        problems: Vec::new(),
        written: 0,
    };
    let parsed = reader.document(shard).map_err(|fatal| {
        ManifestError::one(
            fatal.kind,
            path,
            Some(fatal.line).filter(|&l| l > 0),
            fatal.message,
        )
    })?;
    let mut problems = reader.problems;
    problems.sort_by_key(|p| p.line.unwrap_or(0));
    Ok(Read { parsed, problems })
}

/// A problem after which nothing more can be read.
struct Fatal {
    kind: ProblemKind,
    line: u64,
    message: String,
}

impl Fatal {
    fn yaml(line: u64, message: impl Into<String>) -> Self {
        Self {
            kind: ProblemKind::Yaml,
            line,
            message: message.into(),
        }
    }
}

impl From<ScanError> for Fatal {
    fn from(e: ScanError) -> Self {
        Self::yaml(
            to_line(e.marker().line()),
            format!("not valid YAML: {}", e.info()),
        )
    }
}

/// One YAML node, built whole (an instance, a value): small, and what aliases copy.
#[derive(Clone)]
struct Node {
    line: u64,
    value: Value,
}

#[derive(Clone)]
enum Value {
    /// A scalar's text; `plain` when it was written without quotes or a tag.
    Scalar {
        text: String,
        plain: bool,
    },
    List(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// What the node is, for a message: `the text "x"`, `a list`, `a mapping`.
    fn describe(&self) -> String {
        match &self.value {
            Value::Scalar { text, plain: true } if is_null(text) => "nothing".to_owned(),
            Value::Scalar { text, plain: true } => format!("`{text}`"),
            Value::Scalar { text, plain: false } => format!("the quoted text \"{text}\""),
            Value::List(_) => "a list".to_owned(),
            Value::Map(_) => "a mapping".to_owned(),
        }
    }

    fn scalar(&self) -> Option<(&str, bool)> {
        match &self.value {
            Value::Scalar { text, plain } => Some((text, *plain)),
            _ => None,
        }
    }
}

/// Plain YAML that means "no value".
fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

fn to_line(line: usize) -> u64 {
    u64::try_from(line).unwrap_or(u64::MAX)
}

fn line_of(span: &Span) -> u64 {
    to_line(span.start.line())
}

/// The known keys of a mapping, with their values, and the line it starts at.
struct MapOf {
    line: u64,
    known: Vec<(&'static Key, Node)>,
}

struct Reader<'a> {
    events: Peekable<Parser<'a, StrInput<'a>>>,
    /// Each anchor's node, for its aliases.
    anchors: HashMap<usize, Node>,
    path: &'a Path,
    problems: Vec<Problem>,
    written: usize,
}

impl<'a> Reader<'a> {
    /// The next event that is part of the document's content.
    fn next(&mut self) -> Result<(Event<'a>, Span), Fatal> {
        loop {
            match self.events.next() {
                None => return Err(Fatal::yaml(0, "the manifest ends in the middle")),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok((Event::Anchor(..), _))) => {}
                Some(Ok(event)) => return Ok(event),
            }
        }
    }

    fn peek(&mut self) -> Result<&Event<'a>, Fatal> {
        while let Some(Ok((Event::Anchor(..), _))) = self.events.peek() {
            self.events.next();
        }
        match self.events.peek() {
            None => Err(Fatal::yaml(0, "the manifest ends in the middle")),
            Some(Err(e)) => Err(e.clone().into()),
            Some(Ok((event, _))) => Ok(event),
        }
    }

    fn problem(&mut self, kind: ProblemKind, line: u64, who: Option<&str>, message: String) {
        self.problems.push(Problem {
            kind,
            path: self.path.to_owned(),
            line: Some(line).filter(|&l| l > 0),
            instance: who.map(str::to_owned),
            message: visible(&message),
        });
    }

    /// The one document: a mapping of the top-level keys.
    fn document(&mut self, shard: Option<Shard>) -> Result<ParsedManifest, Fatal> {
        let mut parsed = ParsedManifest {
            top: ParsedTop::default(),
            instances: Vec::new(),
            written: 0,
        };
        let (event, span) = self.next()?;
        debug_assert!(matches!(event, Event::StreamStart));
        let (event, span) = match self.next()? {
            (Event::StreamEnd, _) => {
                return Err(Fatal::yaml(line_of(&span), "the manifest is empty"));
            }
            (Event::DocumentStart(..), _) => self.next()?,
            other => other,
        };
        let Event::MappingStart(..) = event else {
            return Err(Fatal::yaml(
                line_of(&span),
                "the manifest must be a mapping of keys (instances:, and the settings above \
                 them), not a single value or a list",
            ));
        };
        let top_line = line_of(&span);
        let mut seen: HashMap<&'static str, u64> = HashMap::new();
        let mut values: Vec<(&'static Key, Node)> = Vec::new();
        loop {
            if matches!(self.peek()?, Event::MappingEnd) {
                self.next()?;
                break;
            }
            let key = self.node(1)?;
            let Some(known) = self.key(&key, &TOP_KEYS, &mut seen, None) else {
                self.node(1)?;
                continue;
            };
            if known.ty == KeyType::Instances {
                self.instances(shard, &mut parsed.instances)?;
            } else {
                values.push((known, self.node(1)?));
            }
        }
        for (key, node) in values {
            self.top_value(key, node, &mut parsed.top);
        }
        if !seen.contains_key("instances") {
            let message = "no instances: the manifest needs a list `instances:`".to_owned();
            self.problem(ProblemKind::MissingKey, top_line, None, message);
        }
        match self.next()? {
            (Event::DocumentEnd, _) => {}
            (_, span) => return Err(Fatal::yaml(line_of(&span), "not valid YAML after here")),
        }
        if let (Event::DocumentStart(..), span) = self.next()? {
            let message = "the manifest holds a second YAML document (after ---); it must be one";
            return Err(Fatal::yaml(line_of(&span), message));
        }
        parsed.written = self.written;
        Ok(parsed)
    }

    /// The known key `node` names at a level of `keys`, or `None` (and a problem) when it is
    /// not one, or is written twice.
    fn key(
        &mut self,
        node: &Node,
        keys: &'static [Key],
        seen: &mut HashMap<&'static str, u64>,
        who: Option<&str>,
    ) -> Option<&'static Key> {
        let Some((text, _)) = node.scalar() else {
            let message = format!("a key must be a word, not {}", node.describe());
            self.problem(ProblemKind::UnknownKey, node.line, who, message);
            return None;
        };
        let Some(key) = keys.iter().find(|key| key.name == text) else {
            let hint = match suggest(text, keys) {
                Some(near) => format!("; did you mean `{near}`?"),
                None => format!(
                    "; the keys here are {}",
                    keys.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
                ),
            };
            let message = format!("unknown key `{text}`{hint}");
            self.problem(ProblemKind::UnknownKey, node.line, who, message);
            return None;
        };
        if let Some(first) = seen.insert(key.name, node.line) {
            seen.insert(key.name, first);
            let message = format!("`{}` is written twice (first at line {first})", key.name);
            self.problem(ProblemKind::DuplicateKey, node.line, who, message);
            return None;
        }
        Some(key)
    }

    /// `instances:`, read one instance at a time.
    fn instances(
        &mut self,
        shard: Option<Shard>,
        out: &mut Vec<At<ParsedInstance>>,
    ) -> Result<(), Fatal> {
        if let Event::SequenceStart(_, 0, _) = self.peek()? {
            self.next()?;
            loop {
                if matches!(self.peek()?, Event::SequenceEnd) {
                    self.next()?;
                    return Ok(());
                }
                let node = self.node(2)?;
                self.instance(node, shard, out);
            }
        }
        let node = self.node(1)?;
        match node.value {
            Value::List(items) => {
                for item in items {
                    self.instance(item, shard, out);
                }
            }
            _ => {
                let message = format!(
                    "instances must be {}, not {}",
                    KeyType::Instances.expected(),
                    node.describe()
                );
                self.problem(ProblemKind::Yaml, node.line, None, message);
            }
        }
        Ok(())
    }

    /// One item of `instances:`, kept in `out` when it has its required keys and belongs to
    /// `shard`.
    fn instance(&mut self, node: Node, shard: Option<Shard>, out: &mut Vec<At<ParsedInstance>>) {
        self.written += 1;
        let line = node.line;
        let Value::Map(pairs) = node.value else {
            let message = format!(
                "each instance must be a mapping of keys (idInstance:, picture:, a token), \
                 not {}",
                node.describe()
            );
            self.problem(ProblemKind::Yaml, line, None, message);
            return;
        };
        // The id first, so every problem of the instance names it.
        let id = pairs
            .iter()
            .find(|(key, _)| key.scalar().is_some_and(|(text, _)| text == "idInstance"))
            .and_then(|(_, value)| value.scalar())
            .and_then(|(text, _)| InstanceId::parse_written(text).ok());
        let who = id.as_ref().map(InstanceId::as_str);
        let mut seen = HashMap::new();
        let mut instance = Fields::default();
        for (key, value) in pairs {
            if let Some(key) = self.key(&key, &INSTANCE_KEYS, &mut seen, who) {
                instance.set(self, key, value, who);
            }
        }
        for key in INSTANCE_KEYS.iter().filter(|key| key.required) {
            if !seen.contains_key(key.name) {
                let message = format!("the instance has no `{}`", key.name);
                self.problem(ProblemKind::MissingKey, line, who, message);
            }
        }
        // An id that is no id belongs to every shard: each names the problem.
        let mine = match (&id, shard) {
            (Some(id), Some(shard)) => shard.contains(id),
            _ => true,
        };
        if mine && let Some(instance) = instance.instance() {
            out.push(At(instance, line));
        }
    }

    /// A top-level value other than `instances`.
    fn top_value(&mut self, key: &'static Key, node: Node, top: &mut ParsedTop) {
        match key.name {
            "apiUrl" => top.api_url = self.text(key, node, None),
            "minInterval" => top.min_interval = self.text(key, node, None),
            "resyncInterval" => top.resync_interval = self.text(key, node, None),
            "adopt" => top.adopt = self.boolean(key, node, None),
            "drift" => top.drift = self.text(key, node, None),
            "driftInterval" => top.drift_interval = self.text(key, node, None),
            "rollout" => top.rollout = self.rollout(key, node),
            "windows" => top.windows = self.windows(key, node),
            "notify" => top.notify = self.receivers(key, node),
            _ => processing(self, &mut top.processing, key, node, None),
        }
    }

    /// The pairs of a mapping of `keys` (each known and written once), or `None` (and a
    /// problem) when `node` is not a mapping.
    fn mapping(&mut self, key: &Key, node: Node, keys: &'static [Key]) -> Option<MapOf> {
        let line = node.line;
        let Value::Map(pairs) = node.value else {
            self.wrong_type(key, &node, None);
            return None;
        };
        let mut seen = HashMap::new();
        let mut known = Vec::with_capacity(pairs.len());
        for (name, value) in pairs {
            if let Some(k) = self.key(&name, keys, &mut seen, None) {
                known.push((k, value));
            }
        }
        for k in keys.iter().filter(|k| k.required) {
            if !seen.contains_key(k.name) {
                let message = format!("`{}` has no `{}`", key.name, k.name);
                self.problem(ProblemKind::MissingKey, line, None, message);
            }
        }
        Some(MapOf { line, known })
    }

    /// `rollout:`, a mapping of [`ROLLOUT_KEYS`].
    fn rollout(&mut self, key: &Key, node: Node) -> Option<At<ParsedRollout>> {
        let map = self.mapping(key, node, &ROLLOUT_KEYS)?;
        let mut rollout = ParsedRollout::default();
        for (k, value) in map.known {
            match k.name {
                "waves" => rollout.waves = self.amounts(k, value),
                "verify" => rollout.verify = self.boolean(k, value, None),
                "maxFailures" => rollout.max_failures = self.text(k, value, None),
                _ => rollout.pause = self.text(k, value, None),
            }
        }
        Some(At(rollout, map.line))
    }

    /// `windows:`, a list of mappings of [`WINDOW_KEYS`].
    fn windows(&mut self, key: &Key, node: Node) -> Vec<At<ParsedWindow>> {
        let Value::List(items) = node.value else {
            self.wrong_type(key, &node, None);
            return Vec::new();
        };
        let mut windows = Vec::with_capacity(items.len());
        for item in items {
            let Some(map) = self.mapping(key, item, &WINDOW_KEYS) else {
                continue;
            };
            let mut window = ParsedWindow::default();
            for (k, value) in map.known {
                let text = self.text(k, value, None);
                match k.name {
                    "allow" => window.allow = text,
                    "deny" => window.deny = text,
                    "duration" => window.duration = text,
                    _ => window.timezone = text,
                }
            }
            windows.push(At(window, map.line));
        }
        windows
    }

    /// A list of counts or percentages, as written (checked by validation).
    fn amounts(&mut self, key: &Key, node: Node) -> Option<At<Vec<At<String>>>> {
        let line = node.line;
        let Value::List(items) = node.value else {
            self.wrong_type(key, &node, None);
            return None;
        };
        let amounts: Vec<At<String>> = (items.into_iter())
            .filter_map(|item| self.text(key, item, None))
            .collect();
        Some(At(amounts, line))
    }

    /// `notify:`, a list of mappings of [`NOTIFY_KEYS`].
    fn receivers(&mut self, key: &Key, node: Node) -> Vec<At<ParsedReceiver>> {
        let Value::List(items) = node.value else {
            self.wrong_type(key, &node, None);
            return Vec::new();
        };
        let mut receivers = Vec::with_capacity(items.len());
        for item in items {
            let Some(map) = self.mapping(key, item, &NOTIFY_KEYS) else {
                continue;
            };
            let mut receiver = ParsedReceiver::default();
            for (k, value) in map.known {
                match k.name {
                    "url" => receiver.url = self.text(k, value, None),
                    "format" => receiver.format = self.text(k, value, None),
                    "secretFile" => receiver.secret_file = self.text(k, value, None),
                    "events" => receiver.events = self.words(k, value),
                    _ => receiver.after = self.whole(k, value, None),
                }
            }
            receivers.push(At(receiver, map.line));
        }
        receivers
    }

    /// A list of words (`[failed, drifted]`), each one of its key's, each at most once.
    fn words(&mut self, key: &Key, node: Node) -> Option<At<Vec<String>>> {
        let KeyType::Words(allowed) = key.ty else {
            unreachable!("words() is called for list-of-words keys");
        };
        let Value::List(items) = &node.value else {
            self.wrong_type(key, &node, None);
            return None;
        };
        let mut words: Vec<String> = Vec::with_capacity(items.len());
        for item in items {
            match item.scalar() {
                Some((text, _)) if allowed.contains(&text) => {
                    if words.iter().any(|w| w == text) {
                        let message = format!("`{}` names `{text}` twice", key.name);
                        self.problem(ProblemKind::InvalidOption, item.line, None, message);
                    } else {
                        words.push(text.to_owned());
                    }
                }
                _ => {
                    let message = format!(
                        "`{}` may name {}, not {}",
                        key.name,
                        allowed.join(", "),
                        item.describe()
                    );
                    self.problem(ProblemKind::InvalidOption, item.line, None, message);
                }
            }
        }
        Some(At(words, node.line))
    }

    /// A value of a text type (text, a duration, a URL, a word, a colour, an id).
    fn text(&mut self, key: &Key, node: Node, who: Option<&str>) -> Option<At<String>> {
        match node.value {
            Value::Scalar { text, plain } if !(plain && is_null(&text)) => {
                Some(At(text, node.line))
            }
            _ => {
                self.wrong_type(key, &node, who);
                None
            }
        }
    }

    /// `true` or `false`, written without quotes.
    fn boolean(&mut self, key: &Key, node: Node, who: Option<&str>) -> Option<bool> {
        match node.scalar() {
            Some(("true" | "True" | "TRUE", true)) => Some(true),
            Some(("false" | "False" | "FALSE", true)) => Some(false),
            _ => {
                self.wrong_type(key, &node, who);
                None
            }
        }
    }

    /// A whole number in its key's range, written in decimal digits without quotes.
    fn whole(&mut self, key: &Key, node: Node, who: Option<&str>) -> Option<At<u32>> {
        let KeyType::Whole { min, max } = key.ty else {
            unreachable!("whole() is called for whole-number keys");
        };
        let number = match node.scalar() {
            Some((text, true)) if is_decimal(text) => text.parse::<u64>().ok(),
            _ => None,
        };
        match number {
            Some(n) if (u64::from(min)..=u64::from(max)).contains(&n) => {
                Some(At(u32::try_from(n).ok()?, node.line))
            }
            Some(n) => {
                let message = format!("{} {n} is out of range: {min} to {max}", key.name);
                self.problem(ProblemKind::InvalidOption, node.line, who, message);
                None
            }
            None => {
                self.wrong_type(key, &node, who);
                None
            }
        }
    }

    fn wrong_type(&mut self, key: &Key, node: &Node, who: Option<&str>) {
        let found = node.describe();
        let hint = match (key.ty, node.scalar()) {
            (KeyType::Whole { .. }, Some((text, false))) if is_decimal(text) => {
                format!(" (write it without quotes: `{}: {text}`)", key.name)
            }
            (KeyType::Bool, Some((text, false))) if text == "true" || text == "false" => {
                format!(" (write it without quotes: `{}: {text}`)", key.name)
            }
            _ => String::new(),
        };
        let message = format!(
            "`{}` must be {}, not {found}{hint}",
            key.name,
            key.ty.expected()
        );
        self.problem(ProblemKind::Yaml, node.line, who, message);
    }

    /// The next node, built whole (aliases resolved, merge keys applied).
    fn node(&mut self, depth: usize) -> Result<Node, Fatal> {
        let (event, span) = self.next()?;
        let line = line_of(&span);
        if depth > MAX_DEPTH {
            return Err(Fatal {
                kind: ProblemKind::YamlLimit,
                line,
                message: format!(
                    "the manifest exceeds a YAML safety limit: more than {MAX_DEPTH} levels of \
                     nesting; a manifest is a plain list of instances"
                ),
            });
        }
        let (node, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                let plain = style == ScalarStyle::Plain && tag.is_none();
                let text = text.into_owned();
                (
                    Node {
                        line,
                        value: Value::Scalar { text, plain },
                    },
                    anchor,
                )
            }
            Event::SequenceStart(_, anchor, _) => {
                let mut items = Vec::new();
                while !matches!(self.peek()?, Event::SequenceEnd) {
                    items.push(self.node(depth + 1)?);
                }
                self.next()?;
                (
                    Node {
                        line,
                        value: Value::List(items),
                    },
                    anchor,
                )
            }
            Event::MappingStart(_, anchor, _) => {
                let mut pairs = Vec::new();
                while !matches!(self.peek()?, Event::MappingEnd) {
                    let key = self.node(depth + 1)?;
                    let value = self.node(depth + 1)?;
                    pairs.push((key, value));
                }
                self.next()?;
                let pairs = merge(pairs, line)?;
                (
                    Node {
                        line,
                        value: Value::Map(pairs),
                    },
                    anchor,
                )
            }
            Event::Alias(anchor) => {
                let node = self.anchors.get(&anchor).cloned().ok_or_else(|| {
                    Fatal::yaml(line, "an alias (*name) to an anchor not defined before it")
                })?;
                return Ok(node);
            }
            _ => return Err(Fatal::yaml(line, "not valid YAML here")),
        };
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }
}

/// A mapping's pairs with its merge keys (`<<: *name`, `<<: [*a, *b]`) applied as YAML
/// says: a key written in the mapping wins over a merged one, an earlier merge over a later.
fn merge(pairs: Vec<(Node, Node)>, line: u64) -> Result<Vec<(Node, Node)>, Fatal> {
    let is_merge = |key: &Node| key.scalar() == Some(("<<", true));
    if !pairs.iter().any(|(key, _)| is_merge(key)) {
        return Ok(pairs);
    }
    let (merges, mut own): (Vec<_>, Vec<_>) = pairs.into_iter().partition(|(key, _)| is_merge(key));
    let name = |key: &Node| key.scalar().map(|(text, _)| text.to_owned());
    let mut present: Vec<String> = own.iter().filter_map(|(key, _)| name(key)).collect();
    for (_, value) in merges {
        let sources = match value.value {
            Value::Map(pairs) => vec![pairs],
            Value::List(items) => items
                .into_iter()
                .map(|item| match item.value {
                    Value::Map(pairs) => Ok(pairs),
                    _ => Err(()),
                })
                .collect::<Result<_, _>>()
                .map_err(|()| Fatal::yaml(line, "a merge key (<<) takes mappings only"))?,
            Value::Scalar { .. } => {
                return Err(Fatal::yaml(line, "a merge key (<<) takes mappings only"));
            }
        };
        for (key, value) in sources.into_iter().flatten() {
            if let Some(text) = name(&key)
                && !present.contains(&text)
            {
                present.push(text);
                own.push((key, value));
            }
        }
    }
    Ok(own)
}

/// Decimal digits only: no sign, no `0x`, no `_`, no leading zero (but `0` itself).
fn is_decimal(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'))
}

/// A processing key's value, at the top or on an instance.
fn processing(
    reader: &mut Reader<'_>,
    out: &mut ParsedProcessing,
    key: &'static Key,
    node: Node,
    who: Option<&str>,
) {
    match key.name {
        "fit" => out.fit = reader.text(key, node, who),
        "size" => out.size = reader.whole(key, node, who),
        "background" => out.background = reader.text(key, node, who),
        "quality" => {
            out.quality = reader
                .whole(key, node, who)
                .and_then(|q| Some(At(u8::try_from(q.0).ok()?, q.1)));
        }
        other => unreachable!("{other} is not a processing key"),
    }
}

/// An instance's values as they are read.
#[derive(Default)]
struct Fields {
    id: Option<At<String>>,
    picture: Option<At<String>>,
    api_token_file: Option<At<String>>,
    api_token_env: Option<At<String>>,
    api_token_instance: Option<At<String>>,
    api_url: Option<At<String>>,
    processing: ParsedProcessing,
    drift: Option<At<String>>,
    suspend: bool,
    canary: bool,
}

impl Fields {
    fn set(&mut self, reader: &mut Reader<'_>, key: &'static Key, node: Node, who: Option<&str>) {
        match key.name {
            "idInstance" => self.id = reader.text(key, node, who),
            "picture" => self.picture = reader.text(key, node, who),
            "apiTokenFile" => self.api_token_file = reader.text(key, node, who),
            "apiTokenEnv" => self.api_token_env = reader.text(key, node, who),
            "apiTokenInstance" => self.api_token_instance = reader.text(key, node, who),
            "apiUrl" => self.api_url = reader.text(key, node, who),
            "drift" => self.drift = reader.text(key, node, who),
            "suspend" => self.suspend = reader.boolean(key, node, who).unwrap_or(false),
            "canary" => self.canary = reader.boolean(key, node, who).unwrap_or(false),
            _ => processing(reader, &mut self.processing, key, node, who),
        }
    }

    /// The instance, when its required values are there.
    fn instance(self) -> Option<ParsedInstance> {
        Some(ParsedInstance {
            id_instance: self.id?,
            picture: self.picture?,
            api_token_file: self.api_token_file,
            api_token_env: self.api_token_env,
            api_token_instance: self.api_token_instance,
            api_url: self.api_url,
            processing: self.processing,
            drift: self.drift,
            suspend: self.suspend,
            canary: self.canary,
        })
    }
}
