//! Credentials made in the test, for nats-servers that demand them: a
//! certificate authority with server and client certificates (rcgen), user
//! nkeys, and NATS's decentralised authentication — an operator, its accounts,
//! their users' JWTs and `.creds` files — plus the nats-server config files
//! that require each.
//!
//! Nothing is fixed in the tree: every key is new per test, so a test can also
//! make the wrong credential (another CA, an unknown nkey, an account the
//! server was never told about).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use data_encoding::{BASE32_NOPAD, BASE64URL_NOPAD};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair as CertKey, KeyUsagePurpose};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Write `text` as `dir/name`; returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// A certificate and its private key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A certificate authority that signs server and client certificates.
pub struct Ca {
    params: CertificateParams,
    key: CertKey,
    pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let key = CertKey::generate().expect("CA key");
        let pem = params.self_signed(&key).expect("self-signed CA certificate").pem();
        Ca { params, key, pem }
    }

    /// Write the CA's certificate (what a peer trusts) as `dir/name`.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        write(dir, name, &self.pem)
    }

    /// A server certificate for 127.0.0.1 and localhost, as `dir/name.pem`
    /// and `dir/name-key.pem`.
    pub fn server(&self, dir: &Path, name: &str) -> CertFiles {
        self.issue(dir, name, &["127.0.0.1", "localhost"], ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate whose subject is `name`.
    pub fn client(&self, dir: &Path, name: &str) -> CertFiles {
        self.issue(dir, name, &[], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(&self, dir: &Path, name: &str, sans: &[&str], usage: ExtendedKeyUsagePurpose) -> CertFiles {
        let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(sans).expect("certificate parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let key = CertKey::generate().expect("certificate key");
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).expect("sign certificate");
        CertFiles {
            cert: write(dir, &format!("{name}.pem"), &cert.pem()),
            key: write(dir, &format!("{name}-key.pem"), &key.serialize_pem()),
        }
    }
}

/// A nats-server `tls { }` block serving `server`; with `verify`, clients
/// must present a certificate signed by the CA in `ca`.
pub fn tls_block(server: &CertFiles, ca: &Path, verify: bool) -> String {
    format!(
        "tls {{\n  cert_file: {}\n  key_file: {}\n  ca_file: {}\n  verify: {verify}\n  timeout: 2\n}}\n",
        quoted(&server.cert),
        quoted(&server.key),
        quoted(ca)
    )
}

/// A path as a quoted nats-server config string.
pub fn quoted(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

/// A new user nkey: (public key "U…", seed "SU…").
pub fn user_nkey() -> (String, String) {
    let key = nkeys::KeyPair::new_user();
    (key.public_key(), key.seed().expect("user nkey seed"))
}

/// A signed NATS JWT (v2): `nats` is the claim's type-specific part, `issuer`
/// signs it, `subject` is the public key it is about.
pub fn jwt(issuer: &nkeys::KeyPair, subject: &str, name: &str, nats: Value) -> String {
    let iat = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    let mut claims = json!({ "jti": "", "iat": iat, "iss": issuer.public_key(), "name": name, "sub": subject, "nats": nats });
    // The JWT's id is the hash of its claims (as nats-io/jwt makes it).
    let hash = Sha256::digest(serde_json::to_vec(&claims).expect("claims to JSON"));
    claims["jti"] = Value::String(BASE32_NOPAD.encode(&hash));
    let header = BASE64URL_NOPAD.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let body = BASE64URL_NOPAD.encode(&serde_json::to_vec(&claims).expect("claims to JSON"));
    let signed = format!("{header}.{body}");
    let signature = issuer.sign(signed.as_bytes()).expect("sign JWT");
    format!("{signed}.{}", BASE64URL_NOPAD.encode(&signature))
}

/// The text of a `.creds` file, as `nsc` writes it.
pub fn creds(jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n"
    )
}

/// An operator: the root of trust of a nats-server in operator mode.
pub struct Operator {
    name: String,
    key: nkeys::KeyPair,
    system: Account,
}

/// An account: signed by its operator, signs its users.
pub struct Account {
    key: nkeys::KeyPair,
    pub jwt: String,
}

impl Operator {
    /// A new operator, with its system account.
    pub fn new(name: &str) -> Operator {
        let key = nkeys::KeyPair::new_operator();
        let system = Account::signed_by(&key, "SYS", false);
        Operator { name: name.to_owned(), key, system }
    }

    /// The operator's own (self-signed) JWT.
    pub fn jwt(&self) -> String {
        let nats = json!({ "type": "operator", "version": 2, "system_account": self.system.public_key() });
        jwt(&self.key, &self.key.public_key(), &self.name, nats)
    }

    /// An account of this operator, with JetStream (no limits) if `jetstream`.
    pub fn account(&self, name: &str, jetstream: bool) -> Account {
        Account::signed_by(&self.key, name, jetstream)
    }

    /// A nats-server config in operator mode that knows `accounts` (and the
    /// system account), from a memory resolver: written into `dir`.
    pub fn server_config(&self, dir: &Path, accounts: &[&Account]) -> PathBuf {
        let operator = write(dir, "operator.jwt", &self.jwt());
        let preload: String = std::iter::once(&self.system)
            .chain(accounts.iter().copied())
            .map(|a| format!("  {}: \"{}\"\n", a.public_key(), a.jwt))
            .collect();
        let conf = format!(
            "operator: {}\nsystem_account: {}\nresolver: MEMORY\nresolver_preload: {{\n{preload}}}\n",
            quoted(&operator),
            self.system.public_key()
        );
        write(dir, "operator.conf", &conf)
    }
}

impl Account {
    fn signed_by(operator: &nkeys::KeyPair, name: &str, jetstream: bool) -> Account {
        let key = nkeys::KeyPair::new_account();
        let mut limits = json!({
            "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
            "wildcards": true, "conn": -1, "leaf": -1,
        });
        if jetstream {
            for limit in ["mem_storage", "disk_storage", "streams", "consumer"] {
                limits[limit] = json!(-1);
            }
        }
        let nats = json!({
            "limits": limits,
            "default_permissions": { "pub": {}, "sub": {} },
            "type": "account",
            "version": 2,
        });
        let jwt = jwt(operator, &key.public_key(), name, nats);
        Account { key, jwt }
    }

    pub fn public_key(&self) -> String {
        self.key.public_key()
    }

    /// A new user of this account, allowed everything: its `.creds` file,
    /// written as `dir/name.creds`.
    pub fn user_creds(&self, dir: &Path, name: &str) -> PathBuf {
        let user = nkeys::KeyPair::new_user();
        let nats = json!({ "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1, "type": "user", "version": 2 });
        let jwt = jwt(&self.key, &user.public_key(), name, nats);
        write(dir, &format!("{name}.creds"), &creds(&jwt, &user.seed().expect("user seed")))
    }
}
