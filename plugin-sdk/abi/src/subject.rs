//! NATS subject syntax and wildcard matching.
//!
//! A subject is a list of dot-separated tokens. In a pattern, `*` matches exactly
//! one token and `>` matches one or more trailing tokens. The host's config
//! validation uses these helpers to check subjects and stream coverage; the host
//! and the SDK's mock host both use [`matches`] and [`is_valid_subject`] for the
//! publish allow-list, so a plugin's tests see exactly the daemon's rules.
//!
//! Deliberately stricter than the server: `*` and `>` are accepted only as whole
//! tokens. NATS would treat `a*b` as a literal token, which is almost always a
//! typo in a config file.

/// Why `subject` is not a valid subject (or pattern, when `allow_wildcards`), or
/// `None` when it is valid. The reason is a lowercase phrase for error messages.
pub fn subject_problem(subject: &str, allow_wildcards: bool) -> Option<&'static str> {
    if subject.is_empty() {
        return Some("a subject must not be empty");
    }
    if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("a subject must not contain whitespace or control characters");
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    let last = tokens.len() - 1;
    for (i, token) in tokens.iter().enumerate() {
        match *token {
            "" => {
                return Some("a subject must not have an empty token (leading, trailing or double `.`)");
            }
            "*" | ">" if !allow_wildcards => {
                return Some("wildcards (`*`, `>`) are not allowed here");
            }
            ">" if i != last => return Some("`>` is only allowed as the last token"),
            "*" | ">" => {}
            t if t.contains(['*', '>']) => return Some("`*` and `>` must be whole tokens"),
            _ => {}
        }
    }
    None
}

/// Whether `subject` is a valid subject, or a valid pattern when `allow_wildcards`.
pub fn is_valid_subject(subject: &str, allow_wildcards: bool) -> bool {
    subject_problem(subject, allow_wildcards).is_none()
}

/// Whether the concrete `subject` is matched by `pattern`.
///
/// Tokens of `subject` are compared literally, so a subject that itself contains
/// wildcards only matches a pattern that has the same wildcard tokens or broader.
pub fn matches(pattern: &str, subject: &str) -> bool {
    let mut pattern = pattern.split('.');
    let mut subject = subject.split('.');
    loop {
        match (pattern.next(), subject.next()) {
            // `>` needs at least one token, which `Some(_)` guarantees.
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(p), Some(s)) if p == s => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether every subject matched by `inner` is also matched by `outer`, i.e. the
/// pattern `inner` lies inside `outer` (a consumer filter inside a stream).
pub fn is_subset(inner: &str, outer: &str) -> bool {
    let mut inner = inner.split('.');
    let mut outer = outer.split('.');
    loop {
        match (inner.next(), outer.next()) {
            (Some(_), Some(">")) => return true,
            // `>` in `inner` covers arbitrarily long tails; only `>` covers those.
            (Some(">"), Some(_)) => return false,
            (Some(_), Some("*")) => {}
            // `*` in `inner` covers any token; a literal in `outer` does not.
            (Some("*"), Some(_)) => return false,
            (Some(i), Some(o)) if i == o => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether at least one subject is matched by both patterns.
pub fn overlaps(a: &str, b: &str) -> bool {
    let mut a = a.split('.');
    let mut b = b.split('.');
    loop {
        match (a.next(), b.next()) {
            (Some(">"), Some(_)) | (Some(_), Some(">")) => return true,
            (Some("*"), Some(_)) | (Some(_), Some("*")) => {}
            (Some(x), Some(y)) if x == y => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_subjects() {
        for s in ["a", "orders.created", "a-b_c.D9", "$JS.API.INFO", "a.b.c.d.e"] {
            assert!(is_valid_subject(s, false), "{s}");
            assert!(is_valid_subject(s, true), "{s}");
        }
        for s in ["*", ">", "a.*", "a.>", "*.b.>", "a.*.c"] {
            assert!(is_valid_subject(s, true), "{s}");
            assert!(!is_valid_subject(s, false), "{s}");
        }
    }

    #[test]
    fn invalid_subjects() {
        for s in ["", " ", "a b", "a\tb", "a.", ".a", "a..b", "a.>.b", ">.a", "a*", "a.b>", "a.*b", "a\n"] {
            assert!(!is_valid_subject(s, true), "{s:?}");
        }
        assert_eq!(subject_problem("a..b", true), Some("a subject must not have an empty token (leading, trailing or double `.`)"));
        assert_eq!(subject_problem("a.>.b", true), Some("`>` is only allowed as the last token"));
    }

    #[test]
    fn matching() {
        assert!(matches("a.b", "a.b"));
        assert!(!matches("a.b", "a.c"));
        assert!(!matches("a.b", "a.b.c"));
        assert!(!matches("a.b.c", "a.b"));
        assert!(matches("a.*", "a.b"));
        assert!(!matches("a.*", "a"));
        assert!(!matches("a.*", "a.b.c"));
        assert!(matches("a.>", "a.b"));
        assert!(matches("a.>", "a.b.c.d"));
        assert!(!matches("a.>", "a"));
        assert!(matches(">", "a"));
        assert!(matches("*.b.>", "x.b.y"));
        assert!(!matches("*.b.>", "x.c.y"));
        assert!(matches("*", "a"));
        assert!(!matches("*", "a.b"));
    }

    #[test]
    fn subsets() {
        assert!(is_subset("a.b", "a.b"));
        assert!(is_subset("a.b", "a.*"));
        assert!(is_subset("a.b.c", "a.>"));
        assert!(is_subset("a.*", "a.>"));
        assert!(is_subset("a.*.c", "a.>"));
        assert!(is_subset("a.>", "a.>"));
        assert!(is_subset("a.b.>", "a.>"));
        assert!(is_subset("a.>", ">"));
        assert!(is_subset("a.*", "*.*"));
        assert!(!is_subset("a.>", "a.*"));
        assert!(!is_subset("a.*", "a.b"));
        assert!(!is_subset("a", "a.>"));
        assert!(!is_subset("a.>", "a.b.>"));
        assert!(!is_subset("b.c", "a.>"));
        assert!(!is_subset("a.b", "a.b.c"));
        assert!(!is_subset("*.b", "a.*"));
    }

    #[test]
    fn overlapping() {
        assert!(overlaps("a.b", "a.b"));
        assert!(overlaps("a.*", "a.b"));
        assert!(overlaps("a.>", "a.b.c"));
        assert!(overlaps("a.*", "*.b"));
        assert!(overlaps("a.>", "*.*.y"));
        assert!(overlaps(">", "x"));
        assert!(!overlaps("a.*", "b.*"));
        assert!(!overlaps("a.*", "a.b.c"));
        assert!(!overlaps("a.>", "a"));
        assert!(!overlaps("a.b", "a.c"));
        // Symmetric by construction; spot-check.
        assert_eq!(overlaps("x.*.z", "x.>"), overlaps("x.>", "x.*.z"));
    }
}
