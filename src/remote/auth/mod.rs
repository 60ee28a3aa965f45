//! MCP authorization for a remote server (OAuth 2.1, as the MCP spec of 2025-11-25 asks): what
//! toolgate does when the server answers 401.
//!
//! [`Auth`] holds the server's tokens (loaded from its tokens file, `store.rs`) and sends the
//! access token with every request. On a 401 it first refreshes the token, if it has a refresh
//! token; when that fails, or there is none, it signs in again (`signin.rs`): discovery
//! (`discovery.rs`), dynamic client registration, the authorization-code flow with PKCE in the
//! user's browser, a loopback redirect. One sign-in at a time: requests that meet a 401 while
//! another is signing in wait for it and then use its tokens. When no browser can be opened and
//! there is no terminal to show the link on, the sign-in fails at once, saying to run
//! `toolgate login URL`. A user's own `Authorization` header (`--header`) turns all of this off.

pub mod discovery;
mod signin;
pub mod store;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};

pub use discovery::Challenge;
pub use signin::Prompt;

use super::Target;

/// How long a person has to sign in.
pub const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(300);

/// Why toolgate could not get a token. None shows a token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot discover how to sign in: {0}")]
    Discovery(String),
    #[error("cannot register toolgate with the authorization server: {0}")]
    Registration(String),
    #[error("the sign-in failed: {0}")]
    SignIn(String),
    #[error(
        "the remote MCP server needs you to sign in, and toolgate can neither open a browser nor show a link on a \
         terminal here; run `toolgate login {0}` in a terminal, then start again"
    )]
    NobodyToSignIn(String),
    #[error("nobody signed in within {} seconds", SIGN_IN_TIMEOUT.as_secs())]
    TimedOut,
    #[error("cannot keep the tokens in {path}: {why}")]
    Store { path: String, why: String },
    #[error("no state folder to keep tokens in (set XDG_STATE_HOME or HOME)")]
    NoStateFolder,
}

/// The tokens of one server, and the one sign-in that may be going on.
pub struct Auth {
    target: Target,
    path: PathBuf,
    http: reqwest::Client,
    prompt: Prompt,
    /// The stored tokens and their generation (bumped with each new access token).
    current: Mutex<(u64, Option<store::Stored>)>,
    /// Held while refreshing or signing in; whoever waits for it waits in order.
    turn: tokio::sync::Mutex<()>,
}

impl Auth {
    /// Authorization for `target`, with the tokens stored for it; none when the user sends an
    /// `Authorization` header of their own.
    pub fn new(target: &Target, prompt: Prompt) -> Result<Option<Auth>, AuthError> {
        if target.headers.contains_key(AUTHORIZATION) {
            return Ok(None);
        }
        let path = tokens_path(target)?;
        let stored = store::load(&path, &target.origin_and_path());
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(30))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| AuthError::Discovery(format!("cannot set up HTTP: {e}")))?;
        Ok(Some(Auth {
            target: target.clone(),
            path,
            http,
            prompt,
            current: Mutex::new((0, stored)),
            turn: tokio::sync::Mutex::new(()),
        }))
    }

    /// The generation of the tokens and the `Authorization` header to send, if toolgate holds a
    /// token. The value is marked sensitive, so no `Debug` of a request shows it.
    pub fn header(&self) -> (u64, Option<HeaderValue>) {
        let current = self.current.lock().expect("tokens");
        let header = current.1.as_ref().and_then(|s| {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", s.access_token)).ok()?;
            value.set_sensitive(true);
            Some(value)
        });
        (current.0, header)
    }

    /// The server refused the token of generation `seen` (401, or 403 for more scopes): gets
    /// new tokens by refreshing or signing in, unless another request already did.
    pub async fn refused(&self, seen: u64, challenge: &Challenge) -> Result<(), AuthError> {
        let _turn = self.turn.lock().await;
        let stored = {
            let current = self.current.lock().expect("tokens");
            if current.0 != seen {
                return Ok(());
            }
            current.1.clone()
        };
        if let Some(stored) = &stored
            && stored.refresh_token.is_some()
            && !challenge.insufficient_scope()
        {
            match signin::refresh(&self.http, stored).await {
                Ok(fresh) => {
                    tracing::info!("refreshed the access token for {}", self.target.origin_and_path());
                    return self.keep(fresh);
                }
                Err(e) => tracing::info!("could not refresh the access token ({e}); signing in again"),
            }
        }
        let scope = match (challenge.insufficient_scope(), stored.as_ref().and_then(|s| s.scope.clone())) {
            // Step-up: the scopes held and the ones the server asks for.
            (true, Some(held)) => Some(union(&held, challenge.scope.as_deref().unwrap_or_default())),
            _ => challenge.scope.clone(),
        };
        let fresh = signin::sign_in(&self.http, &self.target, challenge, scope, stored.as_ref(), self.prompt).await?;
        self.keep(fresh)
    }

    /// Signs in whatever is stored (`toolgate login`).
    pub async fn sign_in(&self, challenge: &Challenge) -> Result<(), AuthError> {
        let _turn = self.turn.lock().await;
        let stored = self.current.lock().expect("tokens").1.clone();
        let fresh =
            signin::sign_in(&self.http, &self.target, challenge, challenge.scope.clone(), stored.as_ref(), self.prompt)
                .await?;
        self.keep(fresh)
    }

    /// Where the tokens are kept.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    fn keep(&self, fresh: store::Stored) -> Result<(), AuthError> {
        store::save(&self.path, &fresh)
            .map_err(|e| AuthError::Store { path: self.path.display().to_string(), why: e.to_string() })?;
        let mut current = self.current.lock().expect("tokens");
        current.0 += 1;
        current.1 = Some(fresh);
        Ok(())
    }
}

/// The tokens file of `target`.
pub fn tokens_path(target: &Target) -> Result<PathBuf, AuthError> {
    let state = crate::paths::state_dir().ok_or(AuthError::NoStateFolder)?;
    Ok(store::path_for(&state, &target.origin_and_path()))
}

fn union(held: &str, asked: &str) -> String {
    let mut scopes: Vec<&str> = held.split_whitespace().collect();
    for s in asked.split_whitespace() {
        if !scopes.contains(&s) {
            scopes.push(s);
        }
    }
    scopes.join(" ")
}
