//! The `requestState` verifier. Arbitrary text is never accepted. A real state, changed in any
//! byte or presented with other arguments, another tool or another server, is refused; the
//! unchanged state is accepted once and refused after (single use).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use toolgate::proxy::request_state::Sealer;

fn arguments(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

fuzz_target!(|input: &[u8]| {
    let mut sealer = Sealer::new();
    let args = arguments(json!({"to": "ACME", "amount": 1200}));
    let ttl = std::time::Duration::from_secs(60);
    // Every open happens a second after the seal, well within the state's minute.
    let (sealed_at, now) = (1_795_479_600_000, 1_795_479_601_000);

    // Any text at all.
    if let Ok(text) = std::str::from_utf8(input) {
        assert!(sealer.open(text, "pay", "send_payment", &args, now).is_err(), "accepted a made-up state");
        let forged = format!("toolgate.1.{text}");
        assert!(sealer.open(&forged, "pay", "send_payment", &args, now).is_err(), "accepted a made-up state");
    }

    // A real state, changed as the input says.
    let state = sealer.seal("pay", "send_payment", &args, ttl, Some(json!({"server": "own"})), sealed_at);
    let Some((&how, rest)) = input.split_first() else { return };
    let mut bytes = state.clone().into_bytes();
    let (mut server, mut tool, mut presented) = ("pay", "send_payment", args.clone());
    match how % 4 {
        0 => {
            // Overwrite bytes at positions the input picks.
            for pair in rest.chunks(2) {
                if let [at, byte] = *pair {
                    let at = usize::from(at) * bytes.len() / 256;
                    bytes[at] = byte;
                }
            }
        }
        1 => presented = arguments(json!({"to": "ACME", "amount": u64::from(*rest.first().unwrap_or(&0)) + 1201})),
        2 => tool = "send_email",
        _ => server = "other",
    }
    let Ok(changed) = String::from_utf8(bytes) else { return };
    let unchanged = changed == state && server == "pay" && tool == "send_payment" && presented == args;
    let first = sealer.open(&changed, server, tool, &presented, now);
    assert_eq!(first.is_ok(), unchanged, "a changed state or call was accepted, or the real one refused");
    if unchanged {
        assert_eq!(first.unwrap(), Some(json!({"server": "own"})), "what the state carried comes back");
    }
    assert!(sealer.open(&state, "pay", "send_payment", &args, now).is_err() || !unchanged, "a state was used twice");
});
