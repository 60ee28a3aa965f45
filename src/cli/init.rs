//! `toolgate init`: a starter policy tuned to the servers in the MCP clients' configurations.

use std::io::Write;

use super::{Error, ExitCode, InitArgs};
use crate::policy::Policy;

pub fn run(args: &InitArgs) -> Result<ExitCode, Error> {
    let mut servers = crate::init::find_servers();
    if args.list_tools {
        for server in &mut servers {
            server.tools = crate::init::list_tools(server, std::time::Duration::from_secs(20));
            match &server.tools {
                Some(tools) => tracing::info!("{}: {} tools", server.name, tools.len()),
                None => tracing::warn!("{}: its tools could not be listed; it gets general rules", server.name),
            }
        }
    }
    let text = crate::init::policy(&servers);
    Policy::from_toml(&text, "the starter policy").map_err(Error::StarterPolicy)?;
    let mut stdout = std::io::stdout().lock();
    if args.print {
        let _ = stdout.write_all(text.as_bytes());
        return Ok(ExitCode::OK);
    }
    let path = crate::init::default_path().ok_or(Error::NoConfigDir)?;
    if path.exists() && !args.force {
        return Err(Error::PolicyExists(path));
    }
    let written = path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| std::fs::write(&path, &text));
    if let Err(source) = written {
        return Err(Error::File { verb: "write", path, source });
    }
    let names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
    let _ = writeln!(
        stdout,
        "wrote {} ({} servers: {}); toolgate run uses it from now on",
        path.display(),
        servers.len(),
        if names.is_empty() { "none found".to_owned() } else { names.join(", ") }
    );
    Ok(ExitCode::OK)
}
