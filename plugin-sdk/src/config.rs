//! [`PluginConfig`]: the route's `config` table, handed to the plugin's init as a MessagePack map.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Why a configuration value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The bytes the host sent are not a MessagePack map with string keys.
    #[error("config is not a map with string keys: {0}")]
    NotAMap(String),
    /// A required key is absent.
    #[error("missing config key `{key}`")]
    Missing { key: String },
    /// A key is present but its value does not fit the requested type.
    #[error("config key `{key}` is invalid: {reason}")]
    Invalid { key: String, reason: String },
    /// The whole map does not fit the requested type.
    #[error("config does not fit: {0}")]
    Shape(String),
}

/// The plugin's configuration: the `config` table of its route in `runtime.toml`.
///
/// Values are held as JSON-like values, so any serde type that fits the TOML can be read back:
/// strings, integers, floats, booleans, arrays and nested tables.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PluginConfig {
    map: Map<String, Value>,
}

impl PluginConfig {
    /// No configuration at all (what a plugin sees when its route sets none).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Read the MessagePack map the host passes to `switchyard_init`. Zero bytes and `nil` both
    /// mean "no configuration".
    pub fn from_msgpack(bytes: &[u8]) -> Result<Self, ConfigError> {
        if bytes.is_empty() {
            return Ok(Self::empty());
        }
        let value: Option<Map<String, Value>> = rmp_serde::from_slice(bytes).map_err(|e| ConfigError::NotAMap(e.to_string()))?;
        Ok(Self { map: value.unwrap_or_default() })
    }

    /// Build a configuration from any serde value that serializes to a map (a struct,
    /// `serde_json::json!({...})`, a `toml::Table`, …); used by the mock host.
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Self, ConfigError> {
        let bytes = switchyard_abi::encode(&value).map_err(|e| ConfigError::NotAMap(e.to_string()))?;
        Self::from_msgpack(&bytes)
    }

    /// True when the route set no configuration (or an empty table).
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The keys present.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }

    /// The raw value of `key`, when present.
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.map.get(key)
    }

    /// `Ok(None)` when `key` is absent, `Err` when it is present but not a `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ConfigError> {
        self.map
            .get(key)
            .map(|value| T::deserialize(value).map_err(|e| ConfigError::Invalid { key: key.to_owned(), reason: e.to_string() }))
            .transpose()
    }

    /// Like [`PluginConfig::get`], but an absent key is an error.
    pub fn require<T: DeserializeOwned>(&self, key: &str) -> Result<T, ConfigError> {
        self.get(key)?.ok_or_else(|| ConfigError::Missing { key: key.to_owned() })
    }

    /// The whole map as the author's own serde type (use `#[serde(deny_unknown_fields)]` on it
    /// to refuse typos in the route's configuration).
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        T::deserialize(&Value::Object(self.map.clone())).map_err(|e| ConfigError::Shape(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[test]
    fn empty_bytes_and_nil_are_empty_config() {
        assert!(PluginConfig::from_msgpack(&[]).expect("empty").is_empty());
        assert!(PluginConfig::from_msgpack(&[0xc0]).expect("nil").is_empty());
        assert!(PluginConfig::from_msgpack(&[0x80]).expect("empty map").is_empty());
    }

    #[test]
    fn non_map_is_refused() {
        let bytes = switchyard_abi::encode(&[1, 2, 3]).expect("encode");
        let err = PluginConfig::from_msgpack(&bytes).expect_err("array is not a map");
        assert!(err.to_string().starts_with("config is not a map"), "{err}");
    }

    #[test]
    fn get_require_and_deserialize() {
        let config = PluginConfig::from_serialize(&json!({"target": "out", "n": 3, "nested": {"on": true}})).expect("config");
        assert_eq!(config.get::<String>("target").expect("string"), Some("out".to_owned()));
        assert_eq!(config.get::<u32>("absent").expect("absent is fine"), None);
        assert_eq!(config.require::<u32>("absent").expect_err("required"), ConfigError::Missing { key: "absent".into() });
        let err = config.get::<String>("n").expect_err("n is a number");
        assert!(err.to_string().starts_with("config key `n` is invalid: invalid type: integer `3`"), "{err}");

        #[derive(Deserialize, Debug, PartialEq)]
        #[serde(deny_unknown_fields)]
        struct Nested {
            on: bool,
        }
        #[derive(Deserialize, Debug, PartialEq)]
        #[serde(deny_unknown_fields)]
        struct Mine {
            target: String,
            n: u8,
            nested: Nested,
        }
        let mine: Mine = config.deserialize().expect("fits");
        assert_eq!(mine, Mine { target: "out".into(), n: 3, nested: Nested { on: true } });
        let mut keys: Vec<_> = config.keys().collect();
        keys.sort_unstable();
        assert_eq!(keys, ["n", "nested", "target"]);
    }
}
