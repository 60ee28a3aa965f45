//! What a tool's input schema declares at one place in its arguments: the JSON types a value
//! there may have. A value of the one type declared is read as it is; anywhere else (no schema,
//! no `type`, a union such as pydantic's `Decimal`, a value of another type) the server may
//! coerce it, and every coercion is a reading.

use serde_json::{Map, Value};

/// A set of JSON types; [`Declared::UNKNOWN`] when the schema does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declared(u8);

const NULL: u8 = 1;
const BOOLEAN: u8 = 2;
const INTEGER: u8 = 4;
const NUMBER: u8 = 8;
const STRING: u8 = 16;
const ARRAY: u8 = 32;
const OBJECT: u8 = 64;

/// How deep `$ref`s and combinators are followed; a schema deeper than this declares nothing.
const MAX_DEPTH: usize = 32;

impl Declared {
    /// Every type: the schema does not constrain the value.
    pub const UNKNOWN: Declared = Declared(NULL | BOOLEAN | INTEGER | NUMBER | STRING | ARRAY | OBJECT);
    const NONE: Declared = Declared(0);

    /// Whether the declared type is exactly the value's own, so that no validator coerces it.
    /// `null` in a union (an optional value) does not make a non-null value ambiguous.
    pub fn exactly(self, value: &Value) -> bool {
        let others = self.0 & !NULL;
        match value {
            Value::Null => self.0 == NULL,
            Value::Bool(_) => others == BOOLEAN,
            Value::Number(n) => {
                let integral = n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0);
                let only_numbers = others != 0 && others & !(INTEGER | NUMBER) == 0;
                only_numbers && (integral || others & NUMBER != 0)
            }
            Value::String(_) => others == STRING,
            Value::Array(_) => others == ARRAY,
            Value::Object(_) => others == OBJECT,
        }
    }

    /// Whether a string here may be read as JSON text: the schema allows an object or an array.
    pub fn may_hold_json_text(self) -> bool {
        self.0 & (ARRAY | OBJECT) != 0
    }

    pub fn is_unknown(self) -> bool {
        self == Declared::UNKNOWN
    }
}

/// A place in a tool's input schema: the schema nodes that apply to one value (several when
/// combinators or `$ref`s lead to more than one), within the schema document they come from.
#[derive(Debug, Clone)]
pub struct SchemaAt<'s> {
    root: Option<&'s Value>,
    nodes: Vec<&'s Value>,
}

impl<'s> SchemaAt<'s> {
    /// The whole arguments object of a tool with this input schema (`None`: not known).
    pub fn arguments(schema: Option<&'s Value>) -> SchemaAt<'s> {
        SchemaAt { root: schema, nodes: schema.into_iter().collect() }
    }

    /// A place the schema says nothing of.
    pub fn unknown() -> SchemaAt<'s> {
        SchemaAt { root: None, nodes: Vec::new() }
    }

    /// The types declared here.
    pub fn declared(&self) -> Declared {
        if self.nodes.is_empty() {
            return Declared::UNKNOWN;
        }
        let mut out = Declared::NONE;
        for node in &self.nodes {
            out.0 |= types(node, self.root, 0).0;
        }
        out
    }

    /// The place of a member of an object (a key) or an element of an array (an index) here.
    pub fn child(&self, token: &str) -> SchemaAt<'s> {
        let mut nodes = Vec::new();
        for node in &self.nodes {
            children(node, self.root, token, 0, &mut nodes);
        }
        if nodes.is_empty() {
            return SchemaAt::unknown();
        }
        SchemaAt { root: self.root, nodes }
    }
}

/// The types one schema node allows.
fn types(node: &Value, root: Option<&Value>, depth: usize) -> Declared {
    if depth > MAX_DEPTH {
        return Declared::UNKNOWN;
    }
    let map = match node {
        Value::Bool(true) => return Declared::UNKNOWN,
        Value::Bool(false) => return Declared::NONE,
        Value::Object(map) => map,
        _ => return Declared::UNKNOWN,
    };
    let mut known: Option<Declared> = None;
    let mut narrow = |d: Declared| {
        known = Some(match known {
            None => d,
            Some(k) => Declared(k.0 & d.0),
        })
    };
    if let Some(t) = map.get("type") {
        narrow(type_keyword(t));
    }
    if let Some(values) = map.get("enum").and_then(Value::as_array) {
        narrow(Declared(values.iter().map(type_of).fold(0, |a, b| a | b)));
    }
    if let Some(value) = map.get("const") {
        narrow(Declared(type_of(value)));
    }
    if let Some(target) = map.get("$ref").and_then(Value::as_str) {
        narrow(match resolve_ref(root, target) {
            Some(target) => types(target, root, depth + 1),
            None => Declared::UNKNOWN,
        });
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(branches) = map.get(key).and_then(Value::as_array) {
            narrow(Declared(branches.iter().map(|b| types(b, root, depth + 1).0).fold(0, |a, b| a | b)));
        }
    }
    if let Some(branches) = map.get("allOf").and_then(Value::as_array) {
        for branch in branches {
            narrow(types(branch, root, depth + 1));
        }
    }
    let declared = known.unwrap_or(Declared::UNKNOWN);
    // An "integer" is also a "number" to every validator.
    if declared.0 & NUMBER != 0 { Declared(declared.0 | INTEGER) } else { declared }
}

fn type_keyword(t: &Value) -> Declared {
    let one = |name: &str| match name {
        "null" => NULL,
        "boolean" => BOOLEAN,
        "integer" => INTEGER,
        "number" => NUMBER | INTEGER,
        "string" => STRING,
        "array" => ARRAY,
        "object" => OBJECT,
        // A type no validator knows: nothing can be assumed.
        _ => Declared::UNKNOWN.0,
    };
    match t {
        Value::String(name) => Declared(one(name)),
        Value::Array(names) => {
            Declared(names.iter().map(|n| n.as_str().map_or(Declared::UNKNOWN.0, one)).fold(0, |a, b| a | b))
        }
        _ => Declared::UNKNOWN,
    }
}

fn type_of(value: &Value) -> u8 {
    match value {
        Value::Null => NULL,
        Value::Bool(_) => BOOLEAN,
        Value::Number(_) => NUMBER | INTEGER,
        Value::String(_) => STRING,
        Value::Array(_) => ARRAY,
        Value::Object(_) => OBJECT,
    }
}

/// The schema nodes that apply to the member `token` of a value at `node`.
fn children<'s>(node: &'s Value, root: Option<&'s Value>, token: &str, depth: usize, out: &mut Vec<&'s Value>) {
    if depth > MAX_DEPTH {
        return;
    }
    let Value::Object(map) = node else { return };
    if let Some(target) = map.get("$ref").and_then(Value::as_str)
        && let Some(target) = resolve_ref(root, target)
    {
        children(target, root, token, depth + 1, out);
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        for branch in map.get(key).and_then(Value::as_array).into_iter().flatten() {
            children(branch, root, token, depth + 1, out);
        }
    }
    object_member(map, token, out);
    array_element(map, token, out);
}

fn object_member<'s>(map: &'s Map<String, Value>, token: &str, out: &mut Vec<&'s Value>) {
    if let Some(property) = map.get("properties").and_then(|p| p.get(token)) {
        out.push(property);
        return;
    }
    // A key that only a pattern or `additionalProperties` covers: the schema's word on it is
    // whatever those say; with several patterns, all of them (more readings, never fewer).
    let mut covered = false;
    if let Some(Value::Object(patterns)) = map.get("patternProperties") {
        for schema in patterns.values() {
            out.push(schema);
            covered = true;
        }
    }
    if let Some(additional) = map.get("additionalProperties") {
        out.push(additional);
        covered = true;
    }
    if !covered && (map.contains_key("properties") || map.get("type").and_then(Value::as_str) == Some("object")) {
        // Any key is allowed and nothing is said of it.
        out.push(&Value::Bool(true));
    }
}

fn array_element<'s>(map: &'s Map<String, Value>, token: &str, out: &mut Vec<&'s Value>) {
    let Ok(index) = token.parse::<usize>() else { return };
    if let Some(item) = map.get("prefixItems").and_then(Value::as_array).and_then(|p| p.get(index)) {
        out.push(item);
        return;
    }
    match map.get("items") {
        // Draft 4-7 tuples.
        Some(Value::Array(items)) => out.extend(items.get(index).or_else(|| map.get("additionalItems"))),
        Some(items) => out.push(items),
        None if map.get("type").and_then(Value::as_str) == Some("array") => out.push(&Value::Bool(true)),
        None => {}
    }
}

/// A local `$ref` (`#`, `#/$defs/Name`, `#/definitions/Name`, any JSON pointer into the schema).
/// A reference to another document cannot be followed: conformity refuses such schemas.
pub fn resolve_ref<'s>(root: Option<&'s Value>, target: &str) -> Option<&'s Value> {
    let pointer = target.strip_prefix('#')?;
    let pointer = super::path::percent_decode(pointer);
    root?.pointer(&pointer)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn at(schema: &Value, pointer: &[&str]) -> Declared {
        let mut place = SchemaAt::arguments(Some(schema));
        for token in pointer {
            place = place.child(token);
        }
        place.declared()
    }

    #[test]
    fn plain_types_nested_objects_refs_and_arrays() {
        let schema = json!({
            "type": "object",
            "properties": {
                "recursive": {"type": "boolean"},
                "options": {"$ref": "#/$defs/Options"},
                "amount": {"anyOf": [{"type": "number"}, {"type": "string"}]},
                "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "paths": {"type": "array", "items": {"type": "string"}},
                "anything": {}
            },
            "$defs": {"Options": {"type": "object", "properties": {"force": {"type": "boolean"}}}}
        });
        assert!(at(&schema, &["recursive"]).exactly(&json!(true)));
        assert!(!at(&schema, &["recursive"]).exactly(&json!("true")));
        assert!(at(&schema, &["options", "force"]).exactly(&json!(false)));
        assert!(at(&schema, &["options"]).exactly(&json!({})));
        assert!(!at(&schema, &["amount"]).exactly(&json!("5_000")), "pydantic's Decimal: number or string");
        assert!(at(&schema, &["note"]).exactly(&json!("x")), "an optional string is a string");
        assert!(at(&schema, &["paths", "3"]).exactly(&json!("/a")));
        assert!(at(&schema, &["anything"]).is_unknown());
        assert!(at(&schema, &["not", "listed"]).is_unknown());
        assert!(!at(&schema, &["recursive"]).may_hold_json_text());
        assert!(at(&schema, &["options"]).may_hold_json_text());
    }

    #[test]
    fn integers_are_numbers_and_unknown_types_declare_nothing() {
        let schema =
            json!({"properties": {"n": {"type": "integer"}, "x": {"type": "number"}, "odd": {"type": "decimal"}}});
        assert!(at(&schema, &["n"]).exactly(&json!(5)));
        assert!(at(&schema, &["n"]).exactly(&json!(5.0)));
        assert!(at(&schema, &["x"]).exactly(&json!(5)));
        assert!(at(&schema, &["x"]).exactly(&json!(5.5)));
        assert!(!at(&schema, &["n"]).exactly(&json!(5.5)));
        assert!(at(&schema, &["odd"]).is_unknown());
        assert!(SchemaAt::arguments(None).child("a").declared().is_unknown());
    }
}
