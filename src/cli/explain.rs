//! `toolgate explain`: how a policy decides one call.

use std::io::Write;

use super::error::FlagError;
use super::{Error, ExitCode, ExplainArgs};
use crate::policy::{Call, Source};

pub fn run(args: &ExplainArgs) -> Result<ExitCode, Error> {
    let mut arguments = match serde_json::from_str::<serde_json::Value>(&args.args) {
        Ok(serde_json::Value::Object(map)) => map,
        Ok(_) => return Err(FlagError::ArgsNotAnObject.into()),
        Err(e) => return Err(FlagError::ArgsNotJson(e).into()),
    };
    if let Some(c) = args.confidence.filter(|c| !(0.0..=1.0).contains(c)) {
        return Err(FlagError::Confidence(c).into());
    }
    let policy = Source::locate(args.policy.as_deref())
        .load()
        .map_err(|errors| Error::Policy { errors, nothing_started: false })?;
    // With the server's tools, the arguments are checked against the tool's schema as `run` does.
    let verdict = match args.tools.as_deref().map(super::check::read_tools).transpose()? {
        None => None,
        Some(tools) => {
            let mut listed = crate::conformity::Tools::default();
            listed.learn(&tools, true, true);
            Some(listed.check(&args.tool, &mut arguments))
        }
    };
    let schema = match &verdict {
        Some(crate::conformity::Verdict::Conforms(schema)) => Some(schema.clone()),
        _ => None,
    };
    // Paths are read as if the server ran here: this folder, this home, this disk.
    let place = crate::policy::reading::Local;
    let context =
        crate::policy::reading::Context { schema: schema.as_deref(), text: Some(args.args.as_str()), place: &place };
    let call = Call::new(&args.server, &args.tool, &arguments)
        .with_identity(args.identity.as_deref())
        .with_confidence(args.confidence)
        .with_context(context);
    let mut explanation = crate::explain::explain(&policy, &call);
    if let Some(verdict) = &verdict {
        let setting = policy.settings.arguments;
        crate::conformity::apply(setting, verdict, &args.tool, &mut explanation.decision);
        explanation.arguments = Some(crate::explain::ArgumentsCheck::of(setting, verdict));
    }
    let text = if args.json {
        crate::visible::to_json_pretty(&explanation).unwrap_or_default() + "\n"
    } else {
        crate::explain::render(&explanation)
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(ExitCode::OK)
}
