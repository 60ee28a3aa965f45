//! A canonical form of JSON values, for digests that must not depend on how a peer ordered the
//! keys of an object (argument digests in `requestState`, tool definitions in the trust record).

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Writes `value` with every object's keys sorted, and no spaces.
pub fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend(serde_json::to_vec(k).unwrap_or_default());
                out.push(b':');
                write(&map[k], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out);
            }
            out.push(b']');
        }
        other => out.extend(serde_json::to_vec(other).unwrap_or_default()),
    }
}

/// The SHA-256 of the canonical form, as hex.
pub fn sha256_hex(value: &Value) -> String {
    let mut canonical = Vec::new();
    write(value, &mut canonical);
    crate::hex::encode(&Sha256::digest(&canonical))
}
