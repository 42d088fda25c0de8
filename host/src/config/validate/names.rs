//! What makes a valid name for each kind of thing the config names.

/// Why `name` cannot name a stream, consumer or route, if it cannot.
///
/// NATS forbids these characters in stream and consumer names because the names
/// become tokens of `$JS.API…` subjects; route names become durable consumer
/// names and tokens of dead-letter subjects, so they follow the same rule.
pub(super) fn token_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("must not contain whitespace".into());
    }
    ['.', '*', '>', '/', '\\'].iter().find(|c| name.contains(**c)).map(|c| format!("must not contain `{c}`"))
}

/// Why `name` cannot name a plugin, if it cannot. Plugin names end up in log
/// fields, metric labels, dead-letter headers and cache file names, so they are
/// kept to a portable set.
pub(super) fn plugin_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Some("may only contain ASCII letters, digits, `-` and `_`".into());
    }
    None
}

/// Why `name` cannot be an environment variable name, if it cannot.
pub(super) fn env_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.contains(['=', '\0']) {
        return Some("must not contain `=` or NUL".into());
    }
    None
}

/// Why `name` cannot be a queue group, if it cannot.
pub(super) fn queue_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("must not contain whitespace".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(token_name_problem("ORDERS_v2-x"), None);
        assert_eq!(token_name_problem("a.b").as_deref(), Some("must not contain `.`"));
        assert_eq!(token_name_problem("a b").as_deref(), Some("must not contain whitespace"));
        assert_eq!(token_name_problem("").as_deref(), Some("must not be empty"));
        assert_eq!(plugin_name_problem("echo-2_x"), None);
        assert!(plugin_name_problem("my plugin").is_some());
        assert!(plugin_name_problem("é").is_some());
        assert_eq!(env_name_problem("RUST_LOG"), None);
        assert!(env_name_problem("A=B").is_some());
        assert_eq!(queue_problem("workers"), None);
        assert!(queue_problem("a b").is_some());
    }
}
