//! `toolgate replay`: a policy's decisions on recorded traffic, or the recorded server itself.

use std::path::Path;

use super::{Error, ExitCode, ReplayArgs};
use crate::policy::Policy;

pub fn run(args: &ReplayArgs) -> Result<ExitCode, Error> {
    if args.serve {
        let mut stdout = std::io::stdout().lock();
        crate::replay::serve(&args.file, std::io::stdin().lock(), &mut stdout).map_err(Error::Serve)?;
        return Ok(ExitCode::OK);
    }
    // clap requires --policy without --serve.
    let Some(policy) = &args.policy else { return Ok(ExitCode::USAGE) };
    let load = |path: &Path| Policy::load(path).map_err(|errors| Error::Policy { errors, nothing_started: false });
    let calls = crate::replay::calls(&args.file, &args.server)?;
    let a = load(policy)?;
    let mut stdout = std::io::stdout().lock();
    match &args.against {
        None => {
            crate::replay::show(&calls, &a, &mut stdout);
            Ok(ExitCode::OK)
        }
        Some(against) => {
            let b = load(against)?;
            Ok(ExitCode::failed_if(crate::replay::compare(&calls, &a, &b, &mut stdout) > 0))
        }
    }
}
