//! `toolgate review`: the review queue, and a person's verdicts on its items.

use super::{Error, ExitCode, ReviewArgs};

pub fn run(args: ReviewArgs) -> Result<ExitCode, Error> {
    let path = crate::review::default_path().ok_or(Error::NoStateDir("the review queue"))?;
    let request = crate::review::command::Request {
        approve: args.approve,
        reject: args.reject,
        flag: args.flag,
        reviewed: args.reviewed,
        reason: args.reason,
        write_rule: args.write_rule,
        run: args.run.map(|n| (n, args.command)),
        expiry: args.expiry,
        json: args.json,
    };
    let file = crate::review::QueueFile::new(path);
    let nothing_asked = request.approve.is_empty()
        && request.reject.is_empty()
        && request.flag.is_empty()
        && request.reviewed.is_empty()
        && request.run.is_none();
    let on_terminal =
        std::io::IsTerminal::is_terminal(&std::io::stdin()) && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let code = if nothing_asked && !request.json && on_terminal {
        crate::review::command::interactive(&file, request.expiry, &mut std::io::stdout().lock())?
    } else {
        crate::review::command::review(&file, &request, &mut std::io::stdout().lock())?
    };
    Ok(code)
}
