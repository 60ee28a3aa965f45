//! Editing one member of a JSON object as written: every other value keeps its exact bytes.
//!
//! When toolgate must change a message (removing its confidence property from a call, adding it
//! to a tool's schema, putting a person's edited arguments in), re-encoding the whole message
//! would also rewrite values it never meant to touch: `1e2` would become `100.0` and a 20-digit
//! integer a float. Here only the member named changes; the others are copied byte for byte.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// An object's members in order: decoded keys and the raw text of their values.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Members<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'a>, A::Error> {
                let mut members = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, &'de RawValue>()? {
                    members.push((key, value));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// The raw text of an object's member, if the object has it.
pub fn member<'a>(object: &'a str, key: &str) -> Option<&'a str> {
    let Members(members) = serde_json::from_str(object).ok()?;
    members.into_iter().find(|(k, _)| k == key).map(|(_, v)| v.get())
}

/// The object with `key` set to the raw JSON `value` (replaced in place, or added at the end),
/// or removed when `value` is `None`. `None` when `object` is not a JSON object.
pub fn set_member(object: &str, key: &str, value: Option<&str>) -> Option<String> {
    let Members(members) = serde_json::from_str(object).ok()?;
    let mut out = String::with_capacity(object.len() + value.map_or(0, str::len) + key.len() + 4);
    out.push('{');
    let mut placed = false;
    let mut first = true;
    let mut push = |out: &mut String, k: &str, v: &str| {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(&serde_json::to_string(k).unwrap_or_default());
        out.push(':');
        out.push_str(v);
    };
    for (k, v) in &members {
        if k == key {
            placed = true;
            if let Some(value) = value {
                push(&mut out, k, value);
            }
        } else {
            push(&mut out, k, v.get());
        }
    }
    if let (false, Some(value)) = (placed, value) {
        push(&mut out, key, value);
    }
    out.push('}');
    Some(out)
}

/// The raw text of each item of a JSON array.
pub fn items(array: &str) -> Option<Vec<&str>> {
    let items: Vec<&RawValue> = serde_json::from_str(array).ok()?;
    Some(items.into_iter().map(RawValue::get).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OBJ: &str = r#"{"big": 18446744073709551616, "e":1e2,"p":0.10000000000000000001,"c":0.9,"s":"caf\u00e9"}"#;

    #[test]
    fn removing_a_member_keeps_every_other_value_as_written() {
        assert_eq!(
            set_member(OBJ, "c", None).unwrap(),
            r#"{"big":18446744073709551616,"e":1e2,"p":0.10000000000000000001,"s":"caf\u00e9"}"#
        );
    }

    #[test]
    fn setting_replaces_in_place_or_appends() {
        assert_eq!(set_member(r#"{"a":1,"b":2}"#, "a", Some("[1e2]")).unwrap(), r#"{"a":[1e2],"b":2}"#);
        assert_eq!(set_member(r#"{"a":1}"#, "z", Some("{}")).unwrap(), r#"{"a":1,"z":{}}"#);
        assert_eq!(set_member("{}", "z", None).unwrap(), "{}");
        assert!(set_member("[1]", "z", None).is_none());
    }

    #[test]
    fn members_and_items_are_read_raw() {
        assert_eq!(member(OBJ, "e"), Some("1e2"));
        assert_eq!(member(OBJ, "nope"), None);
        assert_eq!(items(r#"[1e2, {"a" : 1}]"#).unwrap(), vec!["1e2", r#"{"a" : 1}"#]);
    }
}
