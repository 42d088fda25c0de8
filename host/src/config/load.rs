//! Text → [`Config`], reporting every schema problem instead of the first.
//!
//! `toml::from_str` stops at the first error. Here the document is parsed once
//! into a spanned tree (`DeTable`); then each section, each `[[streams]]` and
//! `[[routes]]` entry and each `[plugins.NAME]` is deserialized on its own, so a
//! typo in one route does not hide a bad duration in another plugin. Inside one
//! item, the key that failed is removed and the item is tried again, so several
//! bad keys of the same route are all reported too.

use std::collections::BTreeSet;
use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::problems::Problems;
use super::schema::Config;
use super::source::Source;

/// The top-level keys of `runtime.toml`, in the order the docs present them.
const SECTIONS: &[&str] = &["nats", "host", "dead_letter", "admin", "telemetry", "streams", "buckets", "plugins", "routes"];

/// What [`parse_source`] produced: the items that deserialized, what did not,
/// and the problems found so far.
pub(super) struct Parsed {
    /// Sections and items that failed are left out (sections: defaults).
    pub config: Config,
    pub broken: Broken,
    pub problems: Problems,
}

/// Items that failed to deserialize, so validation of the rest does not add
/// follow-on errors such as "unknown plugin" for a plugin that is merely broken.
#[derive(Debug, Default)]
pub(super) struct Broken {
    /// The document is not TOML: nothing else can be checked.
    pub syntax: bool,
    pub plugins: BTreeSet<String>,
    pub streams: BTreeSet<String>,
    /// A broken stream without a usable name: any stream name may be it.
    pub unnamed_stream: bool,
    pub dead_letter: bool,
    /// The file index of each parsed stream and route (they differ from the
    /// parsed index after an entry that failed), to place their problems.
    pub stream_positions: Vec<usize>,
    pub route_positions: Vec<usize>,
    pub buckets: BTreeSet<String>,
    pub unnamed_bucket: bool,
    pub bucket_positions: Vec<usize>,
}

impl Broken {
    /// Where the `i`-th parsed stream is in the file.
    pub(super) fn stream_position(&self, i: usize) -> usize {
        self.stream_positions.get(i).copied().unwrap_or(i)
    }

    /// Where the `i`-th parsed route is in the file.
    pub(super) fn route_position(&self, i: usize) -> usize {
        self.route_positions.get(i).copied().unwrap_or(i)
    }

    /// Where the `i`-th parsed bucket is in the file.
    pub(super) fn bucket_position(&self, i: usize) -> usize {
        self.bucket_positions.get(i).copied().unwrap_or(i)
    }

    pub(super) fn bucket(&self, name: &str) -> bool {
        self.unnamed_bucket || self.buckets.contains(name)
    }

    pub(super) fn plugin(&self, name: &str) -> bool {
        self.plugins.contains(name)
    }

    pub(super) fn stream(&self, name: &str) -> bool {
        self.unnamed_stream || self.streams.contains(name)
    }
}

/// Parses and type-checks `source`, collecting every problem. Paths are left as
/// written.
pub(super) fn parse_source(source: &Source) -> Parsed {
    let mut problems = source.problems();
    let mut broken = Broken::default();
    let mut config = Config::default();
    let root = match DeTable::parse(source.text()) {
        Ok(root) => root.into_inner(),
        Err(error) => {
            // After a syntax error the rest of the document cannot be trusted.
            let message = syntax_message(&error, source.text());
            match error.span() {
                Some(span) => problems.push_spanned(span, message),
                None => problems.push(message),
            }
            broken.syntax = true;
            return Parsed { config, broken, problems };
        }
    };

    for (key, value) in root {
        let p = &mut problems;
        match key.get_ref().as_ref() {
            "nats" => {
                set(&mut config.nats, item(value, String::new(), &["nats"], p));
            }
            "host" => {
                set(&mut config.host, item(value, String::new(), &["host"], p));
            }
            "admin" => {
                set(&mut config.admin, item(value, String::new(), &["admin"], p));
            }
            "telemetry" => {
                set(&mut config.telemetry, item(value, String::new(), &["telemetry"], p));
            }
            "dead_letter" => {
                broken.dead_letter = !set(&mut config.dead_letter, item(value, String::new(), &["dead_letter"], p));
            }
            "streams" => {
                let (streams, positions, failed) = array_items(value, "streams", "stream", p);
                config.streams = streams;
                broken.stream_positions = positions;
                for name in failed {
                    match name {
                        Some(name) => {
                            broken.streams.insert(name);
                        }
                        None => broken.unnamed_stream = true,
                    }
                }
            }
            "routes" => (config.routes, broken.route_positions, _) = array_items(value, "routes", "route", p),
            "buckets" => {
                let (buckets, positions, failed) = array_items(value, "buckets", "bucket", p);
                config.buckets = buckets;
                broken.bucket_positions = positions;
                broken.unnamed_bucket = failed.iter().any(Option::is_none);
                broken.buckets.extend(failed.into_iter().flatten());
            }
            "plugins" => match value.into_inner() {
                DeValue::Table(table) => {
                    for (name, plugin) in table {
                        let name = name.into_inner().into_owned();
                        match item(plugin, format!("plugin `{name}`"), &[], p) {
                            Some(plugin) => {
                                config.plugins.insert(name, plugin);
                            }
                            None => {
                                broken.plugins.insert(name);
                            }
                        }
                    }
                }
                other => {
                    p.push_spanned(key.span(), format!("`plugins` must be a table of `[plugins.NAME]` tables, found {}", kind(&other)))
                }
            },
            other => p.push_spanned(key.span(), format!("unknown key `{other}`, expected one of {}", quoted(SECTIONS))),
        }
    }
    Parsed { config, broken, problems }
}

/// Stores `value` if there is one; whether there was.
fn set<T>(slot: &mut T, value: Option<T>) -> bool {
    value.map(|value| *slot = value).is_some()
}

/// The entries of `[[streams]]` or `[[routes]]`, each deserialized on its own,
/// with their indices in the file, and the names (if readable) of those that failed.
fn array_items<T: DeserializeOwned>(
    value: Spanned<DeValue<'_>>,
    key: &str,
    noun: &str,
    problems: &mut Problems,
) -> (Vec<T>, Vec<usize>, Vec<Option<String>>) {
    let span = value.span();
    let array = match value.into_inner() {
        DeValue::Array(array) => array,
        other => {
            let message = format!("`{key}` must be an array of tables (`[[{key}]]`), found {}", kind(&other));
            problems.push_spanned(span, message);
            return (Vec::new(), Vec::new(), vec![None]);
        }
    };
    let (mut items, mut positions, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for (i, entry) in array.into_iter().enumerate() {
        let name = match entry.get_ref() {
            DeValue::Table(t) => match t.get("name").map(|n| n.get_ref()) {
                Some(DeValue::String(name)) if !name.is_empty() => Some(name.to_string()),
                _ => None,
            },
            _ => None,
        };
        // Name the entry by its `name` when it has a usable one.
        let context = match &name {
            Some(name) => format!("{noun} `{name}`"),
            None => format!("{noun} #{}", i + 1),
        };
        match item(entry, context, &[], problems) {
            Some(item) => {
                items.push(item);
                positions.push(i);
            }
            None => failed.push(name),
        }
    }
    (items, positions, failed)
}

/// Deserializes one item, reporting each of its problems prefixed by `context`
/// (e.g. "route `orders`") and the dotted key path, which starts with `prefix`.
/// `None` when anything was wrong.
fn item<T: DeserializeOwned>(value: Spanned<DeValue<'_>>, context: String, prefix: &[&str], problems: &mut Problems) -> Option<T> {
    let span = value.span();
    let mut value = value.into_inner();
    let mut removed: Vec<String> = Vec::new();
    loop {
        let deserializer = ValueDeserializer::from(Spanned::new(span.clone(), value.clone()));
        let error = match T::deserialize(deserializer) {
            Ok(item) => return removed.is_empty().then_some(item),
            Err(error) => error,
        };
        // A key removed for being wrong is not also missing.
        if removed.iter().any(|key| error.message() == format!("missing field `{key}`")) {
            return None;
        }
        let at = error.span().unwrap_or_else(|| span.clone());
        let (mut path, on_key) = key_path(&value, at.start);
        let top = path.first().cloned();
        if on_key {
            // "unknown key `x`" is about the table that holds `x`.
            path.pop();
        }
        let full: Vec<&str> = prefix.iter().copied().chain(path.iter().map(String::as_str)).collect();
        let mut parts = Vec::new();
        if !context.is_empty() {
            parts.push(context.clone());
        }
        if !full.is_empty() {
            parts.push(format!("`{}`", full.join(".")));
        }
        parts.push(tidy(error.message()));
        problems.push_spanned(at, parts.join(": "));

        // Drop the offending top-level key and try again to find the next problem.
        let DeValue::Table(table) = &mut value else {
            return None;
        };
        match top {
            Some(key) if table.remove(key.as_str()).is_some() => removed.push(key),
            _ => return None,
        }
    }
}

/// The keys leading to the byte `offset` inside `value`, and whether the offset
/// is on the last key itself rather than inside its value.
fn key_path(value: &DeValue<'_>, offset: usize) -> (Vec<String>, bool) {
    let mut path = Vec::new();
    let mut current = value;
    loop {
        let next = match current {
            DeValue::Table(table) => {
                let hit = table.iter().find(|(k, v)| contains(&k.span(), offset) || subtree_contains(v, offset));
                match hit {
                    Some((k, v)) => {
                        path.push(k.get_ref().to_string());
                        if contains(&k.span(), offset) {
                            return (path, true);
                        }
                        v
                    }
                    None => return (path, false),
                }
            }
            DeValue::Array(array) => match array.iter().find(|v| subtree_contains(v, offset)) {
                Some(v) => v,
                None => return (path, false),
            },
            _ => return (path, false),
        };
        current = next.get_ref();
    }
}

fn subtree_contains(value: &Spanned<DeValue<'_>>, offset: usize) -> bool {
    contains(&value.span(), offset)
        || match value.get_ref() {
            DeValue::Table(t) => t.iter().any(|(k, v)| contains(&k.span(), offset) || subtree_contains(v, offset)),
            DeValue::Array(a) => a.iter().any(|v| subtree_contains(v, offset)),
            _ => false,
        }
}

fn contains(span: &Range<usize>, offset: usize) -> bool {
    span.contains(&offset) || (span.is_empty() && span.start == offset)
}

/// A toml syntax error as one line (toml's own `Display` adds a source snippet).
fn syntax_message(error: &toml::de::Error, text: &str) -> String {
    let mut message = error.message().trim().replace('\n', "; ");
    if message == "duplicate key"
        && let Some(key) = error.span().and_then(|s| text.get(s))
    {
        message = format!("duplicate key `{key}`");
    }
    format!("invalid TOML: {message}")
}

/// Rewrites serde's wording into the words of a TOML file ("key", "table").
fn tidy(message: &str) -> String {
    let mut m = message.trim().replace('\n', "; ");
    for (from, to) in [
        ("unknown field `", "unknown key `"),
        ("missing field `", "missing key `"),
        ("unknown variant `", "unknown value `"),
        (", there are no fields", ", this table takes no keys"),
        ("expected a map", "expected a table"),
        ("expected a sequence", "expected an array"),
    ] {
        m = m.replace(from, to);
    }
    // serde quotes strings as "x"; our messages quote values as `x`.
    for lead in ["invalid type: string \"", "invalid value: string \""] {
        if let Some(rest) = m.strip_prefix(lead)
            && let Some(end) = rest.rfind("\", expected")
        {
            m = format!("{}`{}`{}", &lead[..lead.len() - 1], &rest[..end], &rest[end + 1..]);
        }
    }
    if let Some(i) = m.find("expected struct ") {
        m.replace_range(i.., "expected a table");
    }
    for (from, to) in [
        ("expected usize", "expected a non-negative integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected u16", "expected an integer from 0 to 65535"),
        ("expected i64", "expected an integer"),
    ] {
        if let Some(head) = m.strip_suffix(from) {
            m = format!("{head}{to}");
        }
    }
    m
}

fn kind(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// `a`, `b`, `c`
pub(super) fn quoted<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> String {
    names.into_iter().map(|n| format!("`{}`", n.as_ref())).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> String {
        let parsed = parse_source(&Source::new("t.toml", text));
        if parsed.problems.is_empty() { "ok".into() } else { parsed.problems.to_string() }
    }

    #[test]
    fn several_bad_keys_in_one_item_are_all_reported() {
        let text = "[[routes]]\nname = \"a\"\nplugin = \"p\"\nconcurrency = -1\nextra = 1\nack_wait = \"soon\"\n";
        let out = problems(text);
        assert!(
            out.contains("t.toml:4:15: error: route `a`: `concurrency`: invalid value: integer `-1`, expected a non-negative integer"),
            "{out}"
        );
        assert!(out.contains("t.toml:5:1: error: route `a`: unknown key `extra`, expected one of"), "{out}");
        assert!(out.contains("t.toml:6:12: error: route `a`: `ack_wait`: invalid duration `soon`"), "{out}");
        assert!(out.ends_with("3 problems found in t.toml"), "{out}");
    }

    #[test]
    fn a_wrong_required_key_is_not_also_missing() {
        let out = problems("[[routes]]\nname = 5\nplugin = \"p\"\n");
        assert_eq!(out, "t.toml:2:8: error: route #1: `name`: invalid type: integer `5`, expected a string\n1 problem found in t.toml");
    }

    #[test]
    fn nested_paths_and_section_shapes() {
        let out = problems("[nats.tls]\ncafile = \"x\"\n[routes]\nname = 1\n");
        assert!(
            out.contains("t.toml:2:1: error: `nats.tls`: unknown key `cafile`, expected one of `ca`, `cert`, `key`, `required`"),
            "{out}"
        );
        assert!(out.contains("t.toml:3:1: error: `routes` must be an array of tables (`[[routes]]`), found a table"), "{out}");
        let out = problems("[[routes]]\nname = \"a\"\nplugin = \"p\"\n[routes.retry]\ndelays = [\"1s\", \"1 parsec\"]\n");
        assert!(out.starts_with("t.toml:5:17: error: route `a`: `retry.delays`: invalid duration `1 parsec`"), "{out}");
        assert_eq!(
            problems("nats = 5"),
            "t.toml:1:8: error: `nats`: invalid type: integer `5`, expected a table\n1 problem found in t.toml"
        );
    }

    #[test]
    fn syntax_errors_are_one_line() {
        assert_eq!(problems("a = 1\na = 2\n"), "t.toml:2:1: error: invalid TOML: duplicate key `a`\n1 problem found in t.toml");
        assert_eq!(tidy("invalid type: integer `1`, expected struct RouteConfig"), "invalid type: integer `1`, expected a table");
        assert_eq!(tidy("invalid type: string \"b\", expected a sequence"), "invalid type: string `b`, expected an array");
    }
}
