//! `toolgate approve`: one approver answers the held calls of two running proxies; an approver
//! and the proxy's own terminal prompt race, the first answer wins and the other is withdrawn;
//! and another user can neither open the socket folder nor, if it is opened to them, talk to
//! the proxy. On the socket itself: a line that is not strictly one JSON-RPC request is refused
//! and never acted on, only a connection that subscribed and was offered a call may answer it,
//! and a line over the size limit is refused as soon as it passes it.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

use crate::common::approvers::{Socket, answer, event};
use crate::common::pty::{Place, toolgate_on_pty};
use crate::common::*;
use serde_json::{Value, json};

const POLICY: &str = "[settings]\ndefault_tier = \"low\"\napproval_timeout = \"30s\"\n\
[[rules]]\nname = \"money needs a yes\"\ntools = [\"send_payment\"]\ntier = \"high\"\nreason = \"it moves money\"\n";

/// A proxy in front of the demo server under this file's policy.
fn proxy(env: &Env, work: &Path, name: &str) -> Peer {
    env.proxy_with(work, name, POLICY, &[])
}

fn pay(peer: &mut Peer, id: i64, to: &str) {
    peer.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "send_payment", "arguments": {"to": to, "amount": 1200}}}));
}

/// Calls to `echo` need a yes; everything else is allowed.
const ECHO_NEEDS_A_YES: &str = "[settings]\ndefault_tier = \"low\"\napproval_timeout = \"30s\"\n\
[[rules]]\nname = \"echo needs a yes\"\ntools = [\"echo\"]\ntier = \"high\"\n";

/// A proxy in front of the fake server, which records every line it receives in
/// `work/received.jsonl`.
fn echo_proxy(env: &Env, work: &Path) -> Peer {
    let record = work.join("received.jsonl").display().to_string();
    let server = fake_server();
    env.proxy_before(work, "echo", ECHO_NEEDS_A_YES, &[], &["python3", &server, "--record", &record])
}

fn echo(peer: &mut Peer, id: i64, text: &str) {
    peer.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": text}}}));
}

/// The `tools/call` lines the fake server has received, once a `tools/list` through the proxy
/// is answered (the server records a line before it answers it, so nothing sent earlier is
/// still on its way).
fn calls_received(proxy: &mut Peer, work: &Path, id: i64) -> Vec<String> {
    proxy.request(id, "tools/list", json!({}));
    let recorded = std::fs::read_to_string(work.join("received.jsonl")).unwrap();
    recorded
        .lines()
        .map(|l| serde_json::from_str::<String>(l).unwrap())
        .filter(|line| line.contains("tools/call"))
        .collect()
}

/// The ticket of the next approval offered to a subscribed socket.
fn offered_ticket(socket: &mut Socket) -> Value {
    socket.notification("offered")["ticket"].clone()
}

/// The echo server behind toolgate, one approver subscribed, and call 1 held: the ticket it was
/// offered.
fn held_echo(env: &Env, work: &Path) -> (Peer, Socket, Value) {
    let mut proxy = echo_proxy(env, work);
    let mut approver = env.connect(&proxy);
    approver.subscribe();
    echo(&mut proxy, 1, "held");
    let ticket = offered_ticket(&mut approver);
    (proxy, approver, ticket)
}

fn text(response: &Value) -> String {
    response["result"]["content"][0]["text"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn one_approver_answers_two_proxies_at_once() {
    let env = Env::new();
    let work = env.path();
    let mut a = proxy(&env, work, "bank-a");
    let mut b = proxy(&env, work, "bank-b");
    let mut approver = env.approver();
    let pids: Vec<Value> = (0..2).map(|_| event(&approver, "connected")["proxy"].clone()).collect();
    assert!(pids.contains(&json!(a.child.id())) && pids.contains(&json!(b.child.id())), "{pids:?}");

    pay(&mut a, 1, "ACME");
    pay(&mut b, 1, "Initech");
    let first = event(&approver, "offered");
    let second = event(&approver, "offered");
    let [from_a, from_b] = if first["proxy"] == json!(a.child.id()) { [first, second] } else { [second, first] };
    assert_eq!(from_a["approval"]["server"], "bank-a");
    assert_eq!(from_a["approval"]["tool"], "send_payment");
    assert_eq!(from_a["approval"]["arguments"]["to"], "ACME");
    assert_eq!(from_a["approval"]["rules"][0]["reason"], "it moves money");
    assert_eq!(from_b["approval"]["arguments"]["to"], "Initech");

    answer(&mut approver, &from_b, "deny", Some("wrong vendor"));
    answer(&mut approver, &from_a, "allow_once", None);
    let ran = a.response(&json!(1));
    assert_ne!(ran["result"]["isError"], true, "{ran}");
    assert!(text(&ran).contains("paid 1200 to ACME"), "{ran}");
    let refused = b.response(&json!(1));
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    assert!(text(&refused).contains("wrong vendor"), "{refused}");
    for _ in 0..2 {
        assert_eq!(event(&approver, "answered")["settled"], true);
    }
    let audit_a = audit_decisions(&work.join("bank-a.jsonl"));
    assert_eq!((audit_a[0]["decided_by"].as_str(), audit_a[0]["channel"].as_str()), (Some("human"), Some("approver")));
    let audit_b = audit_decisions(&work.join("bank-b.jsonl"));
    assert_eq!(audit_b[0]["verdict"], "refused");

    // An answer to what is no longer pending is refused, and says so.
    answer(&mut approver, &from_a, "allow_once", None);
    let late = event(&approver, "answered");
    assert_eq!(late["settled"], false);
    assert!(late["error"].as_str().unwrap().contains("no longer pending"), "{late}");

    // A proxy that ends is reported, and its socket is gone.
    a.close_stdin();
    a.wait();
    assert_eq!(event(&approver, "disconnected")["proxy"], json!(a.child.id()));
    assert!(!env.socket_folder().join(format!("{}.sock", a.child.id())).exists());
}

#[test]
fn an_approver_started_later_is_offered_what_already_waits() {
    let env = Env::new();
    let work = env.path();
    let mut first = env.approver();
    let mut proxy = proxy(&env, work, "bank");
    event(&first, "connected");
    pay(&mut proxy, 7, "ACME");
    event(&first, "offered");
    let mut second = env.approver();
    let offered = event(&second, "offered");
    assert_eq!(offered["approval"]["arguments"]["to"], "ACME");
    answer(&mut second, &offered, "deny", None);
    let withdrawn = event(&first, "withdrawn");
    assert_eq!(withdrawn["why"], "answered_elsewhere");
    assert_eq!(proxy.response(&json!(7))["result"]["isError"], true);
    first.close_stdin();
    assert!(first.wait().success(), "the approver ends when its input ends");
}

#[test]
fn with_no_approver_and_no_other_channel_the_call_is_refused_at_once_saying_how_to_be_asked() {
    let env = Env::new();
    let work = env.path();
    let mut proxy = proxy(&env, work, "bank");
    pay(&mut proxy, 1, "ACME");
    let refused = proxy.response(&json!(1));
    assert_eq!(refused["result"]["isError"], true);
    assert!(text(&refused).contains("run `toolgate approve`"), "{refused}");
}

#[test]
fn the_terminal_prompt_and_an_approver_race_and_the_first_answer_wins() {
    let env = Env::new();
    let work = env.path();
    let policy = policy_file(work, POLICY);
    let (mut proxy, mut screen) = toolgate_on_pty(&env, &policy, &work.join("audit.jsonl"), Place::Foreground, &[]);
    initialize(&mut proxy, "2025-11-25");
    let mut approver = env.approver();
    event(&approver, "connected");

    // The approver answers first: the terminal's prompt is taken back.
    pay(&mut proxy, 1, "ACME");
    screen.wait_for("send_payment");
    screen.wait_for("> ");
    let offered = event(&approver, "offered");
    answer(&mut approver, &offered, "allow_once", None);
    screen.wait_for("answered elsewhere");
    assert_ne!(proxy.response(&json!(1))["result"]["isError"], true);
    assert!(screen.canonical(), "the terminal's mode is restored after the withdrawal");

    // The terminal answers first: the approver is told the approval was withdrawn.
    pay(&mut proxy, 2, "Initech");
    screen.wait_for("Initech");
    screen.wait_for("> ");
    let offered = event(&approver, "offered");
    screen.type_keys("n\r\r");
    let withdrawn = event(&approver, "withdrawn");
    assert_eq!(withdrawn["ticket"], offered["approval"]["ticket"]);
    assert_eq!(withdrawn["why"], "answered_elsewhere");
    assert_eq!(proxy.response(&json!(2))["result"]["isError"], true);
    answer(&mut approver, &offered, "allow_once", None);
    assert_eq!(event(&approver, "answered")["settled"], false, "the late answer changes nothing");

    let audit = audit_decisions(&work.join("audit.jsonl"));
    let channels: Vec<&str> = audit.iter().map(|r| r["channel"].as_str().unwrap_or("-")).collect();
    assert_eq!(channels, ["approver", "terminal"]);
}

/// What became of a connection attempt made as the unprivileged user `nobody`.
#[derive(Debug, PartialEq)]
enum AsNobody {
    /// connect(2) failed with this errno.
    Refused(i32),
    /// The proxy hung up without a word after being sent `subscribe`.
    HungUp,
    /// The proxy answered.
    Answered,
}

/// Connects to `socket` from a child process that first becomes `nobody` (uid and gid 65534),
/// sends a `subscribe` request and reads. The child uses only async-signal-safe calls.
fn connect_as_nobody(socket: &Path) -> AsNobody {
    use std::os::unix::ffi::OsStrExt;
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, src) in addr.sun_path.iter_mut().zip(socket.as_os_str().as_bytes()) {
        *dst = *src as libc::c_char;
    }
    let request = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"subscribe\"}\n";
    // SAFETY: the child only makes raw system calls and ends with _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        unsafe {
            if libc::setgroups(0, std::ptr::null()) != 0 || libc::setresgid(65534, 65534, 65534) != 0 {
                libc::_exit(100);
            }
            if libc::setresuid(65534, 65534, 65534) != 0 {
                libc::_exit(101);
            }
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
            if libc::connect(fd, (&raw const addr).cast(), len) != 0 {
                libc::_exit(*libc::__errno_location());
            }
            libc::write(fd, request.as_ptr().cast(), request.len());
            let mut poll = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            if libc::poll(&mut poll, 1, 30_000) != 1 {
                libc::_exit(102);
            }
            let mut buf = [0u8; 64];
            let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            // End of stream, or a reset because the proxy closed with our request unread.
            libc::_exit(if n > 0 { 1 } else { 0 });
        }
    }
    let mut status = 0;
    unsafe { libc::waitpid(pid, &mut status, 0) };
    match libc::WEXITSTATUS(status) {
        0 => AsNobody::HungUp,
        1 => AsNobody::Answered,
        code @ 100.. => panic!("the child could not become nobody or read ({code})"),
        errno => AsNobody::Refused(errno),
    }
}

#[test]
fn another_user_cannot_reach_the_socket() {
    // Switching to another user needs root; CI runs as root. Fail saying so rather than pass
    // silently: a developer who is not root skips it with `-E 'not test(another_user)'`.
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test must run as root to act as another user (uid 65534); as another user, skip it with \
         `cargo nextest run -E 'not test(another_user)'`"
    );
    let env = Env::new();
    let work = env.path();
    let mut proxy = proxy(&env, work, "bank");
    let mut approver = env.approver();
    event(&approver, "connected");
    let socket = env.socket_folder().join(format!("{}.sock", proxy.child.id()));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&env.socket_folder()), 0o700);
    assert_eq!(mode(&socket), 0o600);

    // The folder keeps another user out (the folders above it let them through).
    for open in [env.path().to_owned(), env.runtime()] {
        std::fs::set_permissions(open, std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    assert_eq!(connect_as_nobody(&socket), AsNobody::Refused(libc::EACCES));

    // Opened to them by mistake, the proxy still checks who connects and hangs up unread.
    std::fs::set_permissions(env.socket_folder(), std::fs::Permissions::from_mode(0o711)).unwrap();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(connect_as_nobody(&socket), AsNobody::HungUp);

    // Their approver will not use a folder that is not theirs. (It runs from a copy of the
    // binary they can read: the checkout may sit in a folder closed to them.)
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let their_toolgate = shared.path().join("toolgate");
    std::fs::copy(toolgate(), &their_toolgate).unwrap();
    let out = env.command(&their_toolgate).args(["approve", "--json"]).uid(65534).gid(65534).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("owned by another user"), "{out:?}");

    // The proxy's own user is still served.
    pay(&mut proxy, 1, "ACME");
    let offered = event(&approver, "offered");
    answer(&mut approver, &offered, "allow_once", None);
    assert_ne!(proxy.response(&json!(1))["result"]["isError"], true);
}

#[test]
fn each_pending_approval_pops_up_a_desktop_notification_unless_turned_off() {
    let env = Env::new();
    let work = env.path();
    let bin = work.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let shown = work.join("notifications.txt");
    let notifier = bin.join("notify-send");
    std::fs::write(
        &notifier,
        format!("#!/bin/sh\nprintf '%s|' \"$@\" >> {}\necho >> {}\n", shown.display(), shown.display()),
    )
    .unwrap();
    std::fs::set_permissions(&notifier, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let mut approver = env.approver();

    // Turned off: no notification for the quiet bank's call.
    let quiet_policy = POLICY.replace("[settings]\n", "[settings]\ndesktop_notifications = false\n");
    let mut quiet = env.proxy_with(work, "quiet-bank", &quiet_policy, &[("PATH", &path)]);
    event(&approver, "connected");
    pay(&mut quiet, 1, "ACME");
    let offered = event(&approver, "offered");
    answer(&mut approver, &offered, "deny", None);
    quiet.response(&json!(1));

    let mut loud = env.proxy_with(work, "loud-bank", POLICY, &[("PATH", &path)]);
    event(&approver, "connected");
    pay(&mut loud, 1, "ACME");
    let offered = event(&approver, "offered");
    let deadline = std::time::Instant::now() + PATIENCE;
    let line = loop {
        // The notifier runs on its own; wait for the line it writes.
        assert!(std::time::Instant::now() < deadline, "no notification within {PATIENCE:?}");
        if let Ok(text) = std::fs::read_to_string(&shown)
            && text.ends_with('\n')
        {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(line.contains("toolgate: loud-bank wants to run send_payment"), "{line}");
    assert!(line.contains("it moves money"), "{line}");
    assert!(!line.contains("quiet-bank"), "notifications were turned off for it: {line}");
    answer(&mut approver, &offered, "allow_once", None);
    loud.response(&json!(1));
}

#[test]
fn an_answer_with_a_duplicate_decision_is_refused_and_the_held_call_does_not_run() {
    let env = Env::new();
    let work = env.path();
    let (mut proxy, mut approver, ticket) = held_echo(&env, work);

    // Read last-wins, each of these lines would allow the call; plainly and with an escape.
    for (id, key) in [(2, "decision"), (3, "d\\u0065cision")] {
        let line = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"answer","params":{{"ticket":{ticket},"decision":"deny","{key}":"allow_once"}}}}"#
        );
        approver.send_raw(format!("{line}\n").as_bytes());
        let reply = approver.reply(&json!(id));
        assert_eq!(reply["error"]["code"], -32600, "{line}: {reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(message.contains(r#"the key "decision" appears twice"#), "{reply}");
    }

    // The call still waits: a well-formed answer settles it, and it is the one that counts.
    approver.send(&json!({"jsonrpc": "2.0", "id": 4, "method": "answer",
        "params": {"ticket": ticket, "decision": "deny", "reason": "not now"}}));
    assert_eq!(approver.reply(&json!(4))["result"]["settled"], true);
    let denied = proxy.response(&json!(1));
    assert_eq!(denied["result"]["isError"], true, "{denied}");
    assert!(text(&denied).contains("not now"), "{denied}");
    assert_eq!(calls_received(&mut proxy, work, 5), Vec::<String>::new(), "the server never saw the call");
}

#[test]
fn an_oversized_answer_is_refused_before_it_ends_and_the_held_call_waits_for_a_good_one() {
    let env = Env::new();
    let work = env.path();
    let (mut proxy, mut approver, ticket) = held_echo(&env, work);

    // An 8 MiB edit answer: the reply comes once 2 MiB of it are sent, before the line ends.
    let head = format!(
        r#"{{"jsonrpc":"2.0","id":2,"method":"answer","params":{{"ticket":{ticket},"decision":"edit","arguments":{{"text":""#
    );
    approver.send_raw(head.as_bytes());
    approver.send_raw(&vec![b'a'; 2 << 20]);
    let reply = approver.reply(&json!(2));
    assert_eq!(reply["error"]["code"], -32600, "{reply}");
    assert!(reply["error"]["message"].as_str().unwrap().contains("longer than 1048576 bytes (1 MiB)"), "{reply}");
    // The rest of the line is skipped, and the connection reads the next one.
    approver.send_raw(&vec![b'a'; 6 << 20]);
    approver.send_raw(b"\"}}}\n");
    let reply = approver.answer(3, &ticket, "allow_once");
    assert_eq!(reply["result"]["settled"], true, "{reply}");
    assert!(text(&proxy.response(&json!(1))).contains("held"));
    let calls = calls_received(&mut proxy, work, 4);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(
        calls[0].contains(r#""text":"held""#),
        "the call ran as it was held: {}",
        &calls[0][..100.min(calls[0].len())]
    );
}

#[test]
fn a_connection_that_never_subscribed_cannot_answer_a_pending_call() {
    let env = Env::new();
    let work = env.path();
    let (mut proxy, mut subscriber, ticket) = held_echo(&env, work);

    // Same user, right ticket, well-formed answer; but it was shown nothing.
    let mut stranger = env.connect(&proxy);
    let reply = stranger.answer(7, &ticket, "allow_once");
    assert_eq!(reply["error"]["code"], -32003, "{reply}");
    assert!(reply["error"]["message"].as_str().unwrap().contains("has not subscribed"), "{reply}");

    // The call still waits: the subscriber's answer settles it (a settled call would get -32001).
    let reply = subscriber.answer(8, &ticket, "deny");
    assert_eq!(reply["result"]["settled"], true, "{reply}");
    assert_eq!(proxy.response(&json!(1))["result"]["isError"], true);
    assert_eq!(calls_received(&mut proxy, work, 2), Vec::<String>::new(), "the server never saw the call");
    let audit = audit_decisions(&work.join("echo.jsonl"));
    assert_eq!((audit[0]["decided_by"].as_str(), audit[0]["verdict"].as_str()), (Some("human"), Some("refused")));
}

#[test]
fn a_subscribed_connection_is_offered_calls_and_answers_them() {
    let env = Env::new();
    let work = env.path();
    let mut proxy = echo_proxy(&env, work);
    let mut early = env.connect(&proxy);
    assert_eq!(early.subscribe()["pending"], json!([]));

    // Offered in an `offered` notification.
    echo(&mut proxy, 1, "first");
    let offered = early.notification("offered");
    assert_eq!((&offered["tool"], &offered["arguments"]), (&json!("echo"), &json!({"text": "first"})));
    assert_eq!(early.answer(2, &offered["ticket"], "allow_once")["result"]["settled"], true);
    assert!(text(&proxy.response(&json!(1))).contains("first"));

    // Offered in the `subscribe` result of a connection that comes while the call waits.
    echo(&mut proxy, 3, "second");
    let ticket = offered_ticket(&mut early);
    let mut late = env.connect(&proxy);
    let pending = late.subscribe()["pending"].clone();
    assert_eq!(pending.as_array().map(Vec::len), Some(1), "{pending}");
    assert_eq!(pending[0]["ticket"], ticket);
    assert_eq!(late.answer(4, &ticket, "allow_once")["result"]["settled"], true);
    assert_eq!(early.notification("withdrawn"), json!({"ticket": ticket, "why": "answered_elsewhere"}));
    assert!(text(&proxy.response(&json!(3))).contains("second"));

    // Each ran once; answering again changes nothing.
    assert_eq!(early.answer(5, &ticket, "allow_once")["error"]["code"], -32001);
    let calls = calls_received(&mut proxy, work, 6);
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(calls[0].contains("first") && calls[1].contains("second"), "{calls:?}");
}

#[test]
fn a_call_that_runs_under_notify_reaches_every_approver_as_a_notice() {
    let env = Env::new();
    let policy = "[settings]\ndefault_tier = \"low\"\ndesktop_notifications = false\n\
        [[rules]]\nname = \"emails are noticed\"\ntools = [\"send_email\"]\ntier = \"medium\"\n";
    let mut peer = env.proxy_with(env.path(), "mail", policy, &[]);
    let approver = env.approver();
    event(&approver, "connected");
    let answer = peer.request(1, "tools/call", json!({"name": "send_email", "arguments": {"to": "a@example.com"}}));
    assert!(answer.get("result").is_some(), "a notify call runs at once: {answer}");
    let notice = event(&approver, "notice");
    assert_eq!(
        (&notice["proxy"], &notice["server"], &notice["tool"]),
        (&json!(peer.child.id()), &json!("mail"), &json!("send_email"))
    );
    assert!(notice["text"].as_str().unwrap().contains("ran `send_email`"), "{notice}");
    // A read runs without a notice: nothing more is said until the proxy ends.
    peer.request(2, "tools/call", json!({"name": "read_file", "arguments": {"path": "a.txt"}}));
    peer.close_stdin();
    peer.wait();
    let next = approver.recv();
    assert_eq!((&next["event"], &next["proxy"]), (&json!("disconnected"), &json!(peer.child.id())), "{next}");
}
