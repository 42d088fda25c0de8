//! Signed control requests. With `[host.control] allowed_keys`, a host takes a
//! control request only when it carries three headers:
//!
//! ```text
//! Switchyard-Key:       U…              an allowed nkey public key
//! Switchyard-Time:      1767225600000   when it was signed, unix milliseconds
//! Switchyard-Signature: …               ed25519 by that key, base64url without padding, over
//!                                       "<subject>\n<reply subject>\n<time>\n" + payload
//! ```
//!
//! The reply subject is signed so that a copied request cannot have its answer
//! sent elsewhere; the time bounds a replay to [`MAX_SKEW`] either way, and
//! within that window a host takes each signature once.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use async_nats::HeaderMap;
use data_encoding::BASE64URL_NOPAD;
use nkeys::{KeyPair, KeyPairType};

pub(crate) const KEY: &str = "Switchyard-Key";
pub(crate) const TIME: &str = "Switchyard-Time";
pub(crate) const SIGNATURE: &str = "Switchyard-Signature";

/// How far a request's time may be from the host's clock, either way.
pub(crate) const MAX_SKEW: Duration = Duration::from_secs(60);

/// Milliseconds since the Unix epoch.
pub(crate) fn now_millis() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

/// What the signature covers.
fn signed_bytes(subject: &str, reply: Option<&str>, time: u64, payload: &[u8]) -> Vec<u8> {
    let mut bytes = format!("{subject}\n{}\n{time}\n", reply.unwrap_or_default()).into_bytes();
    bytes.extend_from_slice(payload);
    bytes
}

/// Only user and account keys sign control requests (as `allowed_keys` says).
fn usable(pair: &KeyPair) -> bool {
    matches!(pair.key_pair_type(), KeyPairType::User | KeyPairType::Account)
}

/// The CLI's side: a seed that signs requests.
pub(crate) struct Signer {
    pair: KeyPair,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the seed.
        f.debug_struct("Signer").field("public_key", &self.pair.public_key()).finish()
    }
}

impl Signer {
    /// From an nkey seed (`SU…` or `SA…`).
    pub(crate) fn from_seed(seed: &str) -> anyhow::Result<Self> {
        let pair = KeyPair::from_seed(seed.trim()).map_err(|_| anyhow::anyhow!("not an nkey seed (`SU…` or `SA…`, 58 characters)"))?;
        anyhow::ensure!(usable(&pair), "the seed is not of a user or account key (`SU…` or `SA…`)");
        Ok(Self { pair })
    }

    /// The first line of `text` that is a seed: a file holding just the seed,
    /// or a `.creds` file.
    pub(crate) fn from_text(text: &str) -> anyhow::Result<Self> {
        text.lines().map(str::trim).filter(|l| l.starts_with('S')).find_map(|l| Self::from_seed(l).ok()).context("no nkey seed in it")
    }

    /// A new user key pair.
    pub(crate) fn generate() -> Self {
        Self { pair: KeyPair::new_user() }
    }

    pub(crate) fn public_key(&self) -> String {
        self.pair.public_key()
    }

    pub(crate) fn seed(&self) -> anyhow::Result<String> {
        self.pair.seed().map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// The headers that sign a request on `subject` with `reply` and `payload`, at `time`.
    pub(crate) fn headers(&self, subject: &str, reply: Option<&str>, payload: &[u8], time: u64) -> anyhow::Result<HeaderMap> {
        let signature = self.pair.sign(&signed_bytes(subject, reply, time, payload)).map_err(|e| anyhow::anyhow!("signing: {e}"))?;
        let mut headers = HeaderMap::new();
        headers.insert(KEY, self.public_key().as_str());
        headers.insert(TIME, time.to_string().as_str());
        headers.insert(SIGNATURE, BASE64URL_NOPAD.encode(&signature).as_str());
        Ok(headers)
    }
}

/// Why a control request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    Unsigned,
    NotAllowed {
        key: String,
    },
    Malformed {
        key: String,
        header: &'static str,
    },
    BadSignature {
        key: String,
    },
    /// Signed `off_ms` before (positive) or after (negative) the host's now.
    Stale {
        key: String,
        off_ms: i128,
    },
    Replayed {
        key: String,
    },
}

impl Refusal {
    /// The key the request claimed, if any.
    pub(crate) fn key(&self) -> Option<&str> {
        match self {
            Self::Unsigned => None,
            Self::NotAllowed { key }
            | Self::Malformed { key, .. }
            | Self::BadSignature { key }
            | Self::Stale { key, .. }
            | Self::Replayed { key } => Some(key),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsigned => write!(
                f,
                "unsigned control request: this host takes only requests signed by an allowed key \
                 (`{KEY}`, `{TIME}`, `{SIGNATURE}` headers; `--control-seed`)"
            ),
            Self::NotAllowed { key } => write!(f, "key `{key}` is not allowed to send control requests"),
            Self::Malformed { key, header } => write!(f, "request by `{key}`: malformed `{header}` header"),
            Self::BadSignature { key } => write!(f, "request by `{key}`: the signature does not match the key and the request"),
            Self::Stale { key, off_ms } => {
                let (secs, way) = (off_ms.unsigned_abs().div_ceil(1000), if *off_ms >= 0 { "ago" } else { "ahead" });
                write!(f, "request by `{key}`: signed {secs} s {way}, outside ±{} s (are the clocks in sync?)", MAX_SKEW.as_secs())
            }
            Self::Replayed { key } => write!(f, "request by `{key}`: this signature was already used (a replay)"),
        }
    }
}

/// The host's side: the allowed keys, and the signatures taken within the
/// replay window.
pub(crate) struct Verifier {
    keys: HashMap<String, KeyPair>,
    /// Signatures accepted, with their time, for as long as they could be replayed.
    accepted: HashMap<Vec<u8>, u64>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier").field("keys", &self.keys.keys().collect::<Vec<_>>()).finish()
    }
}

impl Verifier {
    /// `None` when no key is configured: requests are then not checked.
    pub(crate) fn new(allowed: &[String]) -> anyhow::Result<Option<Self>> {
        if allowed.is_empty() {
            return Ok(None);
        }
        let mut keys = HashMap::new();
        for key in allowed {
            let pair = KeyPair::from_public_key(key)
                .ok()
                .filter(usable)
                .with_context(|| format!("`host.control.allowed_keys`: `{key}` is not a user or account nkey public key"))?;
            keys.insert(key.clone(), pair);
        }
        Ok(Some(Self { keys, accepted: HashMap::new() }))
    }

    /// How many keys are allowed.
    pub(crate) fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// The allowed key that signed this request, or why it is refused.
    pub(crate) fn check(
        &mut self,
        subject: &str,
        reply: Option<&str>,
        headers: Option<&HeaderMap>,
        payload: &[u8],
        now: u64,
    ) -> Result<String, Refusal> {
        let get = |name: &str| header(headers, name);
        let Some(key) = get(KEY) else { return Err(Refusal::Unsigned) };
        let Some(pair) = self.keys.get(key) else { return Err(Refusal::NotAllowed { key: shown(key) }) };
        let key = key.to_owned();
        let malformed = |header| Refusal::Malformed { key: key.clone(), header };
        let time = get(TIME).filter(|t| t.bytes().all(|b| b.is_ascii_digit())).and_then(|t| t.parse::<u64>().ok());
        let time = time.ok_or_else(|| malformed(TIME))?;
        let signature = get(SIGNATURE).and_then(|s| BASE64URL_NOPAD.decode(s.as_bytes()).ok()).ok_or_else(|| malformed(SIGNATURE))?;
        if pair.verify(&signed_bytes(subject, reply, time, payload), &signature).is_err() {
            return Err(Refusal::BadSignature { key });
        }
        let off_ms = i128::from(now) - i128::from(time);
        let window = MAX_SKEW.as_millis() as i128;
        if off_ms.abs() > window {
            return Err(Refusal::Stale { key, off_ms });
        }
        // What is older than the window is refused as stale anyway.
        self.accepted.retain(|_, at| i128::from(now) - i128::from(*at) <= window);
        if self.accepted.insert(signature, time).is_some() {
            return Err(Refusal::Replayed { key });
        }
        Ok(key)
    }
}

fn header<'a>(headers: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    headers.and_then(|h| h.get(name)).map(|v| v.as_str())
}

/// A key as the request gave it, made safe to print: it was not checked yet.
fn shown(key: &str) -> String {
    key.chars().take(64).map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBJECT: &str = "switchyard.control.reload";
    const REPLY: Option<&str> = Some("_INBOX.abc");
    const NOW: u64 = 1_767_225_600_000;

    fn verifier(signers: &[&Signer]) -> Verifier {
        let keys: Vec<String> = signers.iter().map(|s| s.public_key()).collect();
        Verifier::new(&keys).expect("valid keys").expect("keys given")
    }

    fn signed(signer: &Signer, time: u64) -> HeaderMap {
        signer.headers(SUBJECT, REPLY, b"", time).expect("sign")
    }

    #[test]
    fn a_request_signed_by_an_allowed_key_passes_once() {
        let ops = Signer::generate();
        let mut verifier = verifier(&[&ops]);
        let headers = signed(&ops, NOW - 2_000);
        assert_eq!(verifier.check(SUBJECT, REPLY, Some(&headers), b"", NOW), Ok(ops.public_key()));
        // The same signature again is a replay; a fresh one passes.
        assert_eq!(verifier.check(SUBJECT, REPLY, Some(&headers), b"", NOW), Err(Refusal::Replayed { key: ops.public_key() }));
        let again = signed(&ops, NOW - 1_000);
        assert_eq!(verifier.check(SUBJECT, REPLY, Some(&again), b"", NOW), Ok(ops.public_key()));
    }

    #[test]
    fn no_keys_means_no_check() {
        assert!(Verifier::new(&[]).expect("empty is fine").is_none());
        assert!(Verifier::new(&["UNOTAKEY".into()]).is_err());
        let seed = Signer::generate().seed().expect("seed");
        assert!(Verifier::new(&[seed]).is_err(), "a seed is not a public key");
    }

    #[test]
    fn unsigned_and_unknown_keys_are_refused() {
        let (ops, other) = (Signer::generate(), Signer::generate());
        let mut verifier = verifier(&[&ops]);
        assert_eq!(verifier.check(SUBJECT, REPLY, None, b"", NOW), Err(Refusal::Unsigned));
        assert_eq!(verifier.check(SUBJECT, REPLY, Some(&HeaderMap::new()), b"", NOW), Err(Refusal::Unsigned));
        let by_other = signed(&other, NOW);
        assert_eq!(verifier.check(SUBJECT, REPLY, Some(&by_other), b"", NOW), Err(Refusal::NotAllowed { key: other.public_key() }));
    }

    #[test]
    fn a_signature_that_does_not_fit_is_refused() {
        let (ops, other) = (Signer::generate(), Signer::generate());
        let mut verifier = verifier(&[&ops]);
        let bad = Refusal::BadSignature { key: ops.public_key() };
        // Another key's signature under the allowed key's name.
        let mut forged = signed(&other, NOW);
        forged.insert(KEY, ops.public_key().as_str());
        assert_eq!(verifier.check(SUBJECT, REPLY, Some(&forged), b"", NOW), Err(bad.clone()));
        // A genuine signature, but for another subject, reply, payload or time.
        let headers = signed(&ops, NOW);
        assert_eq!(verifier.check("switchyard.control.status", REPLY, Some(&headers), b"", NOW), Err(bad.clone()));
        assert_eq!(verifier.check(SUBJECT, Some("_INBOX.thief"), Some(&headers), b"", NOW), Err(bad.clone()));
        assert_eq!(verifier.check(SUBJECT, None, Some(&headers), b"", NOW), Err(bad.clone()));
        assert_eq!(verifier.check(SUBJECT, REPLY, Some(&headers), b"x", NOW), Err(bad.clone()));
        let mut moved = headers.clone();
        moved.insert(TIME, (NOW + 1).to_string().as_str());
        assert_eq!(verifier.check(SUBJECT, REPLY, Some(&moved), b"", NOW), Err(bad));
        // Garbage in the headers.
        let mut garbage = headers.clone();
        garbage.insert(SIGNATURE, "not base64!");
        assert_eq!(
            verifier.check(SUBJECT, REPLY, Some(&garbage), b"", NOW),
            Err(Refusal::Malformed { key: ops.public_key(), header: SIGNATURE })
        );
        let mut garbage = headers;
        garbage.insert(TIME, "-5");
        assert_eq!(
            verifier.check(SUBJECT, REPLY, Some(&garbage), b"", NOW),
            Err(Refusal::Malformed { key: ops.public_key(), header: TIME })
        );
    }

    #[test]
    fn a_request_outside_the_window_is_refused() {
        let ops = Signer::generate();
        let mut verifier = verifier(&[&ops]);
        let window = MAX_SKEW.as_millis() as u64;
        let old = signed(&ops, NOW - window - 1);
        let refusal = verifier.check(SUBJECT, REPLY, Some(&old), b"", NOW).expect_err("stale");
        assert_eq!(refusal, Refusal::Stale { key: ops.public_key(), off_ms: i128::from(window) + 1 });
        assert!(refusal.to_string().contains("61 s ago"), "{refusal}");
        let ahead = signed(&ops, NOW + window + 5_000);
        let refusal = verifier.check(SUBJECT, REPLY, Some(&ahead), b"", NOW).expect_err("ahead");
        assert!(refusal.to_string().contains("65 s ahead"), "{refusal}");
        // At the edge of the window, either way, it passes.
        for time in [NOW - window, NOW + window] {
            assert!(verifier.check(SUBJECT, REPLY, Some(&signed(&ops, time)), b"", NOW).is_ok());
        }
    }

    #[test]
    fn seeds_are_read_from_a_file_or_a_creds_file() {
        let ops = Signer::generate();
        let seed = ops.seed().expect("seed");
        assert_eq!(Signer::from_text(&format!("\n{seed}\n")).expect("plain").public_key(), ops.public_key());
        let creds = format!(
            "-----BEGIN NATS USER JWT-----\neyJ0eXAi.x.y\n------END NATS USER JWT------\n\n\
             -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
        );
        assert_eq!(Signer::from_text(&creds).expect("creds").public_key(), ops.public_key());
        assert!(Signer::from_text("SUNOTASEED\n").is_err());
        assert!(Signer::from_seed(&ops.public_key()).is_err(), "a public key is not a seed");
        assert!(!format!("{ops:?}").contains(&seed), "Debug never shows the seed");
    }
}
