//! `toolgate test`: policy test suites, cases of calls and the gate each must get.

use std::io::Write;

use super::{Error, ExitCode, TestArgs};

pub fn run(args: &TestArgs) -> Result<ExitCode, Error> {
    let mut stdout = std::io::stdout().lock();
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for file in &args.files {
        match crate::suite::run(file) {
            Ok(r) => results.extend(r),
            Err(e) => {
                let _ = writeln!(stdout, "error: {e}");
                errors.push(e);
            }
        }
    }
    for r in results.iter().filter(|r| !r.passed()) {
        let _ = writeln!(
            stdout,
            "FAIL {}: {}: expected {}, got {} ({})",
            r.place,
            r.name,
            r.expected.as_str(),
            r.got.as_str(),
            r.why
        );
    }
    let failed = results.iter().filter(|r| !r.passed()).count();
    let _ = writeln!(
        stdout,
        "{} passed, {failed} failed{}",
        results.len() - failed,
        if errors.is_empty() { String::new() } else { format!(", {} suite(s) could not run", errors.len()) }
    );
    if let Some(path) = &args.junit
        && let Err(source) = std::fs::write(path, crate::suite::junit(&results, &errors))
    {
        return Err(Error::File { verb: "write", path: path.clone(), source });
    }
    Ok(ExitCode::failed_if(failed > 0 || !errors.is_empty()))
}
