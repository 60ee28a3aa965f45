//! The strict checker and envelope reader, on any line: never a panic; anything accepted is valid
//! JSON that serde_json reads too, no deeper than the limit, with a `params` range that holds a
//! JSON value of the line; `tools/call` params are read without a panic whatever they hold. The
//! check the envelope reader uses (`check_members`, the same walk noting where the top-level keys
//! lie) accepts exactly the lines `check` accepts, and the members it finds from where the keys
//! lie are the values as a second, lenient read of the line finds them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;

use serde_json::Value;
use serde_json::value::RawValue;
use toolgate::wire::{CallToolParams, envelope, strict};

fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&limit, line)) = input.split_first() else { return };
    let max_depth = usize::from(limit % 16) + 1;
    let checked = strict::check(line, max_depth);
    let members = strict::check_members(line, max_depth);
    assert_eq!(checked.is_ok(), members.is_ok(), "the checks disagree: {checked:?} / {members:?}");
    if let Ok((text, found)) = &members {
        let all: HashMap<String, &RawValue> = serde_json::from_str(text).expect("an accepted line is an object");
        let raw = |key: &str| all.get(key).map(|r| r.get());
        let expected = [raw("jsonrpc"), raw("id"), raw("method"), raw("params"), raw("result"), raw("error")];
        let got = [found.jsonrpc, found.id, found.method, found.params, found.result, found.error];
        assert_eq!(got, expected, "members found where they do not lie");
    }
    let parsed = envelope::parse(line, max_depth);
    if let Ok(text) = &checked {
        let value: Value = serde_json::from_str(text).expect("the strict check accepted what serde_json refuses");
        assert!(depth(&value) <= max_depth, "deeper than the limit");
    }
    if parsed.is_ok() {
        assert!(checked.is_ok(), "an envelope from a line the strict check refuses");
    }
    if let Ok(env) = parsed {
        if let Some(range) = env.params.clone() {
            let params = std::str::from_utf8(&line[range]).expect("params are text");
            let _: Value = serde_json::from_str(params).expect("params are one JSON value");
            let _ = CallToolParams::parse(Some(params));
        }
        let _ = env.method();
    }
    let _ = envelope::sniff_id(line);
    let _ = envelope::readable_ids(line);
});
