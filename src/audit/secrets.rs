//! Secrets stay out of the audit log: an argument whose key looks like a secret (a password, a
//! token, an API key, ...) is recorded as a digest of its value, at any depth. The digest lets
//! two records be compared ("the same token as before?") without storing the value.
//!
//! The keys are matched ignoring case, with `-` read as `_`, by substring: `api_key` covers
//! `OPENAI_API_KEY`. The list is `audit_secret_keys` in the policy's `[settings]`.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The keys recorded as a digest when the policy names none.
pub const DEFAULT: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "credential",
    "private_key",
];

/// Which argument keys hold secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretKeys(Vec<String>);

impl Default for SecretKeys {
    fn default() -> Self {
        SecretKeys::new(DEFAULT.iter().copied())
    }
}

impl SecretKeys {
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a str>) -> SecretKeys {
        SecretKeys(keys.into_iter().map(normal).filter(|k| !k.is_empty()).collect())
    }

    /// The policy's list, or the default one.
    pub fn from_setting(keys: Option<&[String]>) -> SecretKeys {
        match keys {
            Some(keys) => SecretKeys::new(keys.iter().map(String::as_str)),
            None => SecretKeys::default(),
        }
    }

    pub fn is_secret(&self, key: &str) -> bool {
        let key = normal(key);
        self.0.iter().any(|k| key.contains(k.as_str()))
    }

    /// Whether any key in these arguments, at any depth, holds a secret.
    pub fn any_in(&self, arguments: &Map<String, Value>) -> bool {
        arguments.iter().any(|(k, v)| self.is_secret(k) || self.any_in_value(v))
    }

    fn any_in_value(&self, value: &Value) -> bool {
        match value {
            Value::Object(map) => self.any_in(map),
            Value::Array(items) => items.iter().any(|v| self.any_in_value(v)),
            _ => false,
        }
    }

    /// Replaces every secret's value with its digest, at any depth.
    pub fn hide(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if self.is_secret(k) {
                        *v = Value::String(digest(v));
                    } else {
                        self.hide(v);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.hide(v)),
            _ => {}
        }
    }
}

fn normal(key: &str) -> String {
    key.to_lowercase().replace('-', "_")
}

/// `"[secret sha256:…]"`: the digest of the value as JSON text.
fn digest(value: &Value) -> String {
    format!("[secret sha256:{}]", super::chain::hex(&Sha256::digest(value.to_string().as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_values_become_digests_at_any_depth_and_nothing_else_changes() {
        let keys = SecretKeys::default();
        let mut args = json!({"user": "ada", "Password": "hunter2", "headers": {"Authorization": "Bearer x"}, "list": [{"api-key": 1}]});
        assert!(keys.any_in(args.as_object().unwrap()));
        keys.hide(&mut args);
        assert_eq!(args["user"], "ada");
        let shown = args.to_string();
        assert!(!shown.contains("hunter2") && !shown.contains("Bearer x"), "{shown}");
        assert!(args["Password"].as_str().unwrap().starts_with("[secret sha256:"));
        assert!(args["list"][0]["api-key"].as_str().unwrap().starts_with("[secret sha256:"));
        let mut same = json!({"password": "hunter2"});
        keys.hide(&mut same);
        assert_eq!(same["password"], args["Password"], "the same secret gives the same digest");
        assert!(!keys.any_in(json!({"path": "/tmp"}).as_object().unwrap()));
        assert!(!SecretKeys::new(["pin"]).is_secret("password"));
    }
}
