//! The policy loader, on any text: never a panic; every error points at a line and column in
//! the text (line 0 is for a file that cannot be read at all); a policy that loads decides a call.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use toolgate::policy::{Call, Policy};

fuzz_target!(|text: &str| {
    match Policy::from_toml(text, "fuzz.toml") {
        Ok(policy) => {
            let arguments: Map<String, Value> =
                json!({"path": "/home/me/project/a.rs", "amount": 12, "to": ["x@example.com"]}).as_object().unwrap().clone();
            for tool in ["read_file", "send_payment", ""] {
                let call = Call::new("fuzz", tool, &arguments).with_confidence(Some(0.5));
                let _ = policy.decide(&call);
            }
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error without a problem");
            let lines = text.split('\n').count();
            for e in &errors.0 {
                assert!(e.line >= 1 && e.line <= lines, "line {} of {lines}: {e}", e.line);
                assert!(e.column >= 1, "{e}");
                assert!(!e.message.is_empty());
            }
            let _ = errors.to_string();
        }
    }
});
