//! Checks of `[host.control]`: each allowed key is an nkey public key (a user
//! or account key), listed once, and never a seed.

use std::collections::HashSet;

use super::super::problems::Problems;
use super::super::schema::ControlConfig;

pub(super) fn check(control: &ControlConfig, problems: &mut Problems) {
    let mut seen = HashSet::new();
    for (i, key) in control.allowed_keys.iter().enumerate() {
        let idx = i.to_string();
        let at = ["host", "control", "allowed_keys", idx.as_str()];
        match key_problem(key) {
            Some(why) => problems.push_at(&at, format!("`host.control.allowed_keys`: {why}")),
            None if !seen.insert(key.as_str()) => {
                problems.push_at(&at, format!("`host.control.allowed_keys`: `{key}` is listed twice"));
            }
            None => {}
        }
    }
}

/// Why `key` cannot be an allowed key, if it cannot.
fn key_problem(key: &str) -> Option<String> {
    if key.starts_with('S') && nkeys::decode_seed(key).is_ok() {
        // Never echo a seed: it is the secret half.
        return Some("this entry is an nkey seed (`S…`), a secret: list its public key instead (`switchyard control-key public`)".into());
    }
    let shown: String = key.chars().take(64).collect();
    // As the host reads it at start (`reload::signature::Verifier`).
    match nkeys::KeyPair::from_public_key(key).map(|pair| pair.key_pair_type()) {
        Ok(nkeys::KeyPairType::User | nkeys::KeyPairType::Account) => None,
        Ok(_) => Some(format!("`{shown}` is an nkey public key of another kind; expected a user (`U…`) or account (`A…`) key")),
        Err(_) => {
            Some(format!("`{shown}` is not an nkey public key (`U…` or `A…`, 56 characters, as `switchyard control-key new` prints it)"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::key_problem;

    #[test]
    fn user_and_account_keys_pass_seeds_and_others_do_not() {
        let user = nkeys::KeyPair::new_user();
        assert_eq!(key_problem(&user.public_key()), None);
        assert_eq!(key_problem(&nkeys::KeyPair::new_account().public_key()), None);
        let seed = user.seed().expect("seed");
        let why = key_problem(&seed).expect("a seed is refused");
        assert!(why.contains("seed") && !why.contains(&seed), "{why}");
        assert!(key_problem(&nkeys::KeyPair::new_operator().public_key()).is_some_and(|w| w.contains("another kind")));
        assert!(key_problem("UABC").is_some_and(|w| w.contains("not an nkey public key")));
        // One character changed: the checksum catches it.
        let mut typo = user.public_key();
        typo.replace_range(10..11, if &typo[10..11] == "A" { "B" } else { "A" });
        assert!(key_problem(&typo).is_some());
    }
}
