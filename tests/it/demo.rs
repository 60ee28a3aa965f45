//! `toolgate demo` walked as a person would, on a real pseudo-terminal: a read runs, a write is
//! noticed, an email is held with a countdown (cancelled here), a payment asks (allowed here), a
//! delete is refused; then the session's audit trail, its intact hash chain, and what toolgate
//! learned for trust. It needs nothing but the binary.

use crate::common::pty::command_on_pty;
use crate::common::*;

#[test]
fn the_demo_tour_answers_real_prompts_and_ends_with_the_audit_trail_and_trust() {
    let env = Env::new();
    let mut cmd = env.toolgate();
    cmd.arg("demo").env("TERM", "xterm");
    let (mut child, mut screen) = command_on_pty(cmd);

    screen.wait_for("Calls that need you are asked right here");
    let noticed = screen.wait_for("ran, and the human was told");
    assert!(noticed.contains("→ read_file") && noticed.contains("gate: notify"), "{noticed}");
    screen.wait_for("a call is held");
    screen.wait_for("runs in");
    screen.type_keys("c\r");
    screen.wait_for("not run. The model reads: The user cancelled this held call to `send_email`");
    screen.wait_for("approval needed");
    screen.wait_for("> ");
    screen.type_keys("y\r");
    screen.wait_for("ran: paid 1200 to ACME Ltd");
    screen.wait_for("gate: deny");
    let trail = screen.wait_for("Its hash chain is whole");
    assert!(trail.contains("demo/send_email  hold → refused by human (terminal)"), "{trail}");
    assert!(trail.contains("demo/send_payment  ask → forwarded by human (terminal)"), "{trail}");
    assert!(trail.contains("demo/delete_file  deny → refused by policy"), "{trail}");
    let trust = screen.wait_for("lose it on a denial or an edit");
    assert!(trust.contains("demo/send_payment: not yet: as the policy says (1 of 20 approvals"), "{trust}");
    assert!(child.wait().unwrap().success());
    assert!(!env.state().join("toolgate/trust.json").exists(), "the demo leaves the user's trust record alone");
}
