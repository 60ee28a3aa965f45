//! `toolgate login URL` and `toolgate logout URL`: signing in to a remote MCP server that needs
//! OAuth ahead of `run --url` (which can then start where nobody could sign in), and forgetting
//! its tokens.

use std::io::Write;

use reqwest::header::{ACCEPT, CONTENT_TYPE, WWW_AUTHENTICATE};

use super::error::FlagError;
use super::{Error, ExitCode, LoginArgs, runtime};
use crate::remote::Target;
use crate::remote::auth::{self, Auth, Challenge, Prompt};

pub fn login(args: LoginArgs) -> Result<ExitCode, Error> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let target = target(&args)?;
    runtime()?.block_on(async {
        let auth = Auth::new(&target, Prompt::Login)?.ok_or(Error::OwnAuthorization)?;
        let challenge = probe(&target).await;
        auth.sign_in(&challenge).await?;
        let _ = writeln!(
            std::io::stderr(),
            "toolgate: signed in to {}; the tokens are in {}",
            target.origin_and_path(),
            auth.path().display()
        );
        Ok(ExitCode::OK)
    })
}

pub fn logout(args: LoginArgs) -> Result<ExitCode, Error> {
    let target = target(&args)?;
    let path = auth::tokens_path(&target)?;
    let removed =
        auth::store::remove(&path).map_err(|source| Error::File { verb: "remove", path: path.clone(), source })?;
    let what = if removed { "forgot the tokens for" } else { "no tokens were kept for" };
    let _ = writeln!(std::io::stderr(), "toolgate: {what} {}", target.origin_and_path());
    Ok(ExitCode::OK)
}

fn target(args: &LoginArgs) -> Result<Target, Error> {
    Ok(Target::parse(&args.url, &args.headers, |var| std::env::var(var).ok()).map_err(FlagError::from)?)
}

/// The server's challenge to a request without a token (its `WWW-Authenticate`), which names
/// its metadata and the scopes it wants; an empty one when it gives none.
async fn probe(target: &Target) -> Challenge {
    let Ok(client) = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build() else {
        return Challenge::default();
    };
    let ping = r#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#;
    let response = client
        .post(target.url.clone())
        .headers(target.headers.clone())
        .header(ACCEPT, "application/json, text/event-stream")
        .header(CONTENT_TYPE, "application/json")
        .body(ping)
        .send()
        .await;
    match response {
        Ok(r) => Challenge::parse(r.headers().get_all(WWW_AUTHENTICATE).iter().filter_map(|v| v.to_str().ok())),
        Err(_) => Challenge::default(),
    }
}
