//! Secrets stay out of the audit log: an argument whose key looks like a secret (a password, a
//! token, an API key, ...) is recorded as a digest of its value, at any depth. The digest lets
//! two records be compared ("the same token as before?") without storing the value.
//!
//! The keys are matched ignoring case, with `-` read as `_`, by substring: `api_key` covers
//! `OPENAI_API_KEY`. The list is `audit_secret_keys` in the policy's `[settings]`.
//!
//! Huge values stay out too: a string argument over [`LARGE_VALUE`] bytes (a whole file's
//! contents, say) is recorded as its digest and length, so one call cannot put 64 MiB into the
//! log, nor a third copy of it into toolgate's memory.

use std::borrow::Cow;

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

/// Strings longer than this are recorded as a digest and their length.
pub const LARGE_VALUE: usize = 64 * 1024;

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
        SecretKeys(keys.into_iter().map(|k| normal(k).into_owned()).filter(|k| !k.is_empty()).collect())
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

    /// The arguments as the audit log records them: secrets and large strings as digests.
    /// `None` when they are recorded as they are (the common case costs no copy).
    pub fn recordable(&self, arguments: &Map<String, Value>) -> Option<Map<String, Value>> {
        self.needs_hiding(arguments).then(|| self.hidden(arguments))
    }

    fn needs_hiding(&self, arguments: &Map<String, Value>) -> bool {
        arguments.iter().any(|(k, v)| self.is_secret(k) || self.value_needs_hiding(v))
    }

    fn value_needs_hiding(&self, value: &Value) -> bool {
        match value {
            Value::String(s) => s.len() > LARGE_VALUE,
            Value::Object(map) => self.needs_hiding(map),
            Value::Array(items) => items.iter().any(|v| self.value_needs_hiding(v)),
            _ => false,
        }
    }

    fn hidden(&self, arguments: &Map<String, Value>) -> Map<String, Value> {
        arguments
            .iter()
            .map(|(k, v)| {
                let shown = if self.is_secret(k) { Value::String(digest(v)) } else { self.hidden_value(v) };
                (k.clone(), shown)
            })
            .collect()
    }

    fn hidden_value(&self, value: &Value) -> Value {
        match value {
            Value::String(s) if s.len() > LARGE_VALUE => Value::String(format!(
                "[large sha256:{}, {} bytes]",
                crate::hex::encode(&Sha256::digest(s.as_bytes())),
                s.len()
            )),
            Value::Object(map) => Value::Object(self.hidden(map)),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.hidden_value(v)).collect()),
            other => other.clone(),
        }
    }
}

/// A key lower-cased, with `-` read as `_`; most keys already are, and are not copied.
fn normal(key: &str) -> Cow<'_, str> {
    if key.bytes().any(|b| b.is_ascii_uppercase() || b == b'-' || !b.is_ascii()) {
        Cow::Owned(key.to_lowercase().replace('-', "_"))
    } else {
        Cow::Borrowed(key)
    }
}

/// `"[secret sha256:…]"`: the digest of the value as JSON text.
fn digest(value: &Value) -> String {
    format!("[secret sha256:{}]", crate::hex::encode(&Sha256::digest(value.to_string().as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_values_become_digests_at_any_depth_and_nothing_else_changes() {
        let keys = SecretKeys::default();
        let args = json!({"user": "ada", "Password": "hunter2", "headers": {"Authorization": "Bearer x"}, "list": [{"api-key": 1}]});
        let args = Value::Object(keys.recordable(args.as_object().unwrap()).unwrap());
        assert_eq!(args["user"], "ada");
        let shown = args.to_string();
        assert!(!shown.contains("hunter2") && !shown.contains("Bearer x"), "{shown}");
        assert!(args["Password"].as_str().unwrap().starts_with("[secret sha256:"));
        assert!(args["list"][0]["api-key"].as_str().unwrap().starts_with("[secret sha256:"));
        let same = keys.recordable(json!({"password": "hunter2"}).as_object().unwrap()).unwrap();
        assert_eq!(same["password"], args["Password"], "the same secret gives the same digest");
        assert_eq!(keys.recordable(json!({"path": "/tmp"}).as_object().unwrap()), None);
        assert!(!SecretKeys::new(["pin"]).is_secret("password"));
    }

    #[test]
    fn large_strings_become_a_digest_and_their_length() {
        let keys = SecretKeys::default();
        let big = "z".repeat(LARGE_VALUE + 1);
        let args = json!({"path": "/a", "contents": big, "parts": [big, "small"]});
        let shown = keys.recordable(args.as_object().unwrap()).unwrap();
        assert_eq!(shown["path"], "/a");
        let expected =
            format!("[large sha256:{}, {} bytes]", crate::hex::encode(&Sha256::digest(big.as_bytes())), big.len());
        assert_eq!(shown["contents"], Value::String(expected.clone()));
        assert_eq!(shown["parts"], json!([expected, "small"]));
        let at_the_limit = json!({"contents": "z".repeat(LARGE_VALUE)});
        assert_eq!(keys.recordable(at_the_limit.as_object().unwrap()), None);
    }
}
