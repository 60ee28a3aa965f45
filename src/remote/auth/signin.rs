//! One sign-in: discovery, registration, the authorization-code flow with PKCE through the
//! user's browser and a loopback redirect (RFC 8252 §7.3), and the token requests. The `oauth2`
//! crate builds the authorization URL, the PKCE pair and the token requests; toolgate adds the
//! `resource` parameter (RFC 8707) to each, registers the client itself (RFC 7591, which
//! `oauth2` does not do) and reads the redirect on its own small listener.

use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::time::Duration;

use oauth2::basic::BasicClient;
use oauth2::{
    AsyncHttpClient, AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, HttpRequest,
    HttpResponse, PkceCodeChallenge, RedirectUrl, RefreshToken, Scope, TokenResponse, TokenUrl,
};
use reqwest::Url;
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::discovery::{self, Challenge, ResourceMetadata, ServerMetadata};
use super::store::Stored;
use super::{AuthError, SIGN_IN_TIMEOUT, Target};

/// Where the link to sign in is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    /// `run --url`: the browser, and the controlling terminal if there is one; stdin and stdout
    /// are the client's.
    Proxy,
    /// `toolgate login`: the browser, and stderr.
    Login,
}

/// The largest metadata or token response toolgate reads.
const MAX_BODY: usize = 1024 * 1024;

/// Discovers, registers if need be, and signs in through the browser: the new tokens.
pub async fn sign_in(
    http: &reqwest::Client,
    target: &Target,
    challenge: &Challenge,
    scope: Option<String>,
    stored: Option<&Stored>,
    prompt: Prompt,
) -> Result<Stored, AuthError> {
    let (resource, metadata, scopes_supported) = match resource_metadata(http, target, challenge).await? {
        Some((resource, prm)) => {
            let issuer_text = prm.authorization_servers.first().ok_or_else(|| {
                AuthError::Discovery("the protected-resource metadata names no authorization server".into())
            })?;
            let issuer = Url::parse(issuer_text).map_err(|e| {
                AuthError::Discovery(format!("the authorization server {issuer_text:?} is not a URL: {e}"))
            })?;
            discovery::check_secure(&target.url, &issuer, "authorization server")?;
            let metadata = server_metadata(http, &issuer)
                .await?
                .ok_or_else(|| AuthError::Discovery(format!("no authorization server metadata for {issuer_text}")))?;
            (resource, metadata, prm.scopes_supported)
        }
        None => (discovery::canonical_resource(&target.url), of_2025_03_26(http, &target.url).await?, None),
    };
    for (url, what) in [
        (Some(&metadata.authorization_endpoint), "authorization endpoint"),
        (Some(&metadata.token_endpoint), "token endpoint"),
        (metadata.registration_endpoint.as_ref(), "registration endpoint"),
    ] {
        if let Some(url) = url {
            let parsed = Url::parse(url).map_err(|e| AuthError::Discovery(format!("the {what} is not a URL: {e}")))?;
            discovery::check_secure(&target.url, &parsed, what)?;
        }
    }
    let scope = scope.or_else(|| scopes_supported.map(|s| s.join(" "))).filter(|s| !s.is_empty());

    // A client registered before with this issuer is used again when its redirect port is free.
    let reusable = stored.filter(|s| s.issuer == metadata.issuer);
    let (listener, client) = match reusable.and_then(|s| Some((s, loopback_port(&s.redirect_uri)?))) {
        Some((s, port)) => match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(listener) => (listener, Client::from(s)),
            Err(_) => register_on_new_port(http, &metadata, scope.as_deref()).await?,
        },
        None => register_on_new_port(http, &metadata, scope.as_deref()).await?,
    };

    let oauth = client.oauth(&metadata.authorization_endpoint, &metadata.token_endpoint)?;
    let (challenge_code, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = oauth
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge_code)
        .add_extra_param("resource", resource.clone());
    if let Some(scope) = &scope {
        request = request.add_scopes(scope.split_whitespace().map(|s| Scope::new(s.to_owned())));
    }
    let (link, state) = request.url();
    show(link.as_str(), &target.origin_and_path(), prompt).await?;
    let code = tokio::time::timeout(SIGN_IN_TIMEOUT, redirect(&listener, state.secret()))
        .await
        .map_err(|_| AuthError::TimedOut)??;
    let token = oauth
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .add_extra_param("resource", resource.clone())
        .request_async(&Http(http))
        .await
        .map_err(|e| AuthError::SignIn(format!("the token request failed: {}", token_error(&e))))?;
    let mut stored = Stored {
        server: target.origin_and_path(),
        resource,
        issuer: metadata.issuer.clone(),
        authorization_endpoint: metadata.authorization_endpoint.clone(),
        token_endpoint: metadata.token_endpoint.clone(),
        client_id: client.id,
        client_secret: client.secret,
        client_auth_method: client.auth_method,
        redirect_uri: client.redirect_uri,
        scope,
        access_token: String::new(),
        refresh_token: None,
        expires_at_ms: None,
    };
    take(&mut stored, &token);
    tracing::info!("signed in to {}", target.origin_and_path());
    Ok(stored)
}

/// A new access token from the refresh token; the refresh token too, when the server rotates it.
pub async fn refresh(http: &reqwest::Client, stored: &Stored) -> Result<Stored, AuthError> {
    let refresh_token = stored.refresh_token.clone().ok_or_else(|| AuthError::SignIn("no refresh token".into()))?;
    let oauth = Client::from(stored).oauth(&stored.authorization_endpoint, &stored.token_endpoint)?;
    let token = oauth
        .exchange_refresh_token(&RefreshToken::new(refresh_token))
        .add_extra_param("resource", stored.resource.clone())
        .request_async(&Http(http))
        .await
        .map_err(|e| AuthError::SignIn(format!("the refresh failed: {}", token_error(&e))))?;
    let mut fresh = stored.clone();
    take(&mut fresh, &token);
    Ok(fresh)
}

fn take(stored: &mut Stored, token: &oauth2::basic::BasicTokenResponse) {
    stored.access_token = token.access_token().secret().clone();
    if let Some(refresh) = token.refresh_token() {
        stored.refresh_token = Some(refresh.secret().clone());
    }
    stored.expires_at_ms = token.expires_in().map(|d| crate::clock::now_ms().saturating_add(d.as_millis() as u64));
    if let Some(scopes) = token.scopes() {
        stored.scope = Some(scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "));
    }
}

/// What a token request's failure says, without the response body (which could hold a token).
fn token_error<E: std::error::Error>(
    error: &oauth2::RequestTokenError<E, oauth2::basic::BasicErrorResponse>,
) -> String {
    match error {
        oauth2::RequestTokenError::ServerResponse(r) => {
            let mut text = r.error().to_string();
            if let Some(d) = r.error_description() {
                text.push_str(": ");
                text.push_str(&crate::visible::visible(d));
            }
            text
        }
        oauth2::RequestTokenError::Request(e) => e.to_string(),
        oauth2::RequestTokenError::Parse(e, _) => format!("an unreadable answer ({})", e.path()),
        oauth2::RequestTokenError::Other(e) => e.clone(),
    }
}

/// The client toolgate is at one authorization server.
struct Client {
    id: String,
    secret: Option<String>,
    auth_method: Option<String>,
    redirect_uri: String,
}

impl From<&Stored> for Client {
    fn from(s: &Stored) -> Client {
        Client {
            id: s.client_id.clone(),
            secret: s.client_secret.clone(),
            auth_method: s.client_auth_method.clone(),
            redirect_uri: s.redirect_uri.clone(),
        }
    }
}

type OAuthClient = oauth2::Client<
    oauth2::basic::BasicErrorResponse,
    oauth2::basic::BasicTokenResponse,
    oauth2::basic::BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

impl Client {
    fn oauth(&self, authorize: &str, token: &str) -> Result<OAuthClient, AuthError> {
        let bad =
            |what: &str, e: oauth2::url::ParseError| AuthError::Discovery(format!("the {what} is not a URL: {e}"));
        let mut client = BasicClient::new(ClientId::new(self.id.clone()))
            .set_auth_uri(AuthUrl::new(authorize.to_owned()).map_err(|e| bad("authorization endpoint", e))?)
            .set_token_uri(TokenUrl::new(token.to_owned()).map_err(|e| bad("token endpoint", e))?)
            .set_redirect_uri(RedirectUrl::new(self.redirect_uri.clone()).map_err(|e| bad("redirect URI", e))?);
        if let Some(secret) = &self.secret {
            client = client.set_client_secret(ClientSecret::new(secret.clone()));
            if self.auth_method.as_deref() == Some("client_secret_post") {
                client = client.set_auth_type(AuthType::RequestBody);
            }
        }
        Ok(client)
    }
}

fn loopback_port(redirect_uri: &str) -> Option<u16> {
    let url = Url::parse(redirect_uri).ok()?;
    (url.host_str() == Some("127.0.0.1")).then(|| url.port()).flatten()
}

/// A loopback listener on a port of its own, and a client registered for it (RFC 7591).
async fn register_on_new_port(
    http: &reqwest::Client,
    metadata: &ServerMetadata,
    scope: Option<&str>,
) -> Result<(TcpListener, Client), AuthError> {
    let Some(endpoint) = &metadata.registration_endpoint else {
        let why = if metadata.client_id_metadata_document_supported == Some(true) {
            "it offers only client ID metadata documents, and toolgate has no HTTPS URL to publish one at"
        } else {
            "it offers no dynamic client registration (no registration_endpoint)"
        };
        return Err(AuthError::Registration(why.into()));
    };
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| AuthError::SignIn(format!("cannot listen on a loopback port for the redirect: {e}")))?;
    let port = listener.local_addr().map_err(|e| AuthError::SignIn(e.to_string()))?.port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let mut body = json!({
        "client_name": "toolgate",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    if let Some(scope) = scope {
        body["scope"] = json!(scope);
    }
    let response = http
        .post(endpoint)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| AuthError::Registration(super::super::describe(e)))?;
    let status = response.status();
    let bytes = limited(response).await.map_err(AuthError::Registration)?;
    if !status.is_success() {
        return Err(AuthError::Registration(format!("HTTP {status}{}", super::super::hint(&bytes))));
    }
    #[derive(Deserialize)]
    struct Registered {
        client_id: String,
        #[serde(default)]
        client_secret: Option<String>,
        #[serde(default)]
        token_endpoint_auth_method: Option<String>,
    }
    let registered: Registered =
        serde_json::from_slice(&bytes).map_err(|e| AuthError::Registration(format!("an unreadable answer: {e}")))?;
    tracing::info!("registered toolgate with the authorization server {}", metadata.issuer);
    let client = Client {
        id: registered.client_id,
        secret: registered.client_secret,
        auth_method: registered.token_endpoint_auth_method,
        redirect_uri,
    };
    Ok((listener, client))
}

/// The server's resource metadata, from the first URI that has it, and the resource to ask for;
/// `None` when no URI has any (metadata found for another resource is an error, not `None`).
async fn resource_metadata(
    http: &reqwest::Client,
    target: &Target,
    challenge: &Challenge,
) -> Result<Option<(String, ResourceMetadata)>, AuthError> {
    let mut tried = Vec::new();
    for url in discovery::resource_metadata_urls(&target.url, challenge) {
        discovery::check_secure(&target.url, &url, "protected-resource metadata")?;
        match get_json::<ResourceMetadata>(http, &url).await {
            Ok(metadata) => return Ok(Some((discovery::check_resource(&target.url, &metadata)?, metadata))),
            Err(why) => tried.push(format!("{url}: {why}")),
        }
    }
    tracing::debug!("no protected-resource metadata ({})", tried.join("; "));
    Ok(None)
}

/// The issuer's metadata, checked, from the first URI that has it; `None` when none has any.
async fn server_metadata(http: &reqwest::Client, issuer: &Url) -> Result<Option<ServerMetadata>, AuthError> {
    let mut tried = Vec::new();
    for url in discovery::server_metadata_urls(issuer) {
        match get_json::<ServerMetadata>(http, &url).await {
            Ok(metadata) => {
                discovery::check_server(issuer, &metadata)?;
                return Ok(Some(metadata));
            }
            Err(why) => tried.push(format!("{url}: {why}")),
        }
    }
    tracing::debug!("no authorization server metadata for {issuer} ({})", tried.join("; "));
    Ok(None)
}

/// Where to sign in to a server of protocol version 2025-03-26, which publishes no
/// protected-resource metadata: that version's authorization server is the MCP server's own
/// origin, with its metadata (RFC 8414) there, or else the default endpoints `/authorize`,
/// `/token` and `/register` (PKCE was required of every server then).
async fn of_2025_03_26(http: &reqwest::Client, server: &Url) -> Result<ServerMetadata, AuthError> {
    let mut origin = server.clone();
    origin.set_path("");
    origin.set_query(None);
    origin.set_fragment(None);
    if let Some(metadata) = server_metadata(http, &origin).await? {
        return Ok(metadata);
    }
    tracing::info!("{origin} publishes no authorization metadata: signing in at its default endpoints (2025-03-26)");
    let at = |path: &str| origin.join(path).map(String::from).unwrap_or_default();
    Ok(ServerMetadata {
        issuer: discovery::canonical_resource(&origin),
        authorization_endpoint: at("/authorize"),
        token_endpoint: at("/token"),
        registration_endpoint: Some(at("/register")),
        code_challenge_methods_supported: Some(vec!["S256".into()]),
        client_id_metadata_document_supported: None,
    })
}

async fn get_json<T: serde::de::DeserializeOwned>(http: &reqwest::Client, url: &Url) -> Result<T, String> {
    let response = http
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(super::super::describe)?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    let bytes = limited(response).await?;
    serde_json::from_slice(&bytes).map_err(|e| format!("not the metadata expected: {e}"))
}

async fn limited(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(super::super::describe)? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err("the answer is too large".into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Shows the link: the browser, and the terminal (`run`) or stderr (`login`). Fails when it can
/// be shown nowhere.
async fn show(link: &str, server: &str, prompt: Prompt) -> Result<(), AuthError> {
    let owned = link.to_owned();
    let browser = tokio::task::spawn_blocking(move || webbrowser::open(&owned)).await;
    let opened = matches!(browser, Ok(Ok(())));
    if !opened {
        tracing::debug!("could not open a browser to sign in");
    }
    let text = format!(
        "toolgate: {server} needs you to sign in. {}\n  {link}\n",
        if opened { "A browser was opened; if nothing shows, open this link:" } else { "Open this link to sign in:" }
    );
    let shown = match prompt {
        Prompt::Login => std::io::stderr().write_all(text.as_bytes()).is_ok(),
        Prompt::Proxy => {
            crate::human::terminal::available().is_ok()
                && std::fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/tty")
                    .and_then(|mut tty| tty.write_all(text.as_bytes()))
                    .is_ok()
        }
    };
    if opened || shown {
        tracing::info!("waiting for a sign-in to {server}");
        Ok(())
    } else {
        Err(AuthError::NobodyToSignIn(server.to_owned()))
    }
}

/// Waits on the loopback listener for the redirect with `state`: its code.
async fn redirect(listener: &TcpListener, state: &str) -> Result<String, AuthError> {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else { continue };
        let mut head = Vec::new();
        let mut buf = [0u8; 2048];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            match tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        let line = String::from_utf8_lossy(&head).lines().next().unwrap_or_default().to_owned();
        let target = line.strip_prefix("GET ").and_then(|rest| rest.split(' ').next()).unwrap_or_default();
        let Ok(url) = Url::parse(&format!("http://127.0.0.1{target}")) else { continue };
        if url.path() != "/callback" {
            let _ = reply(&mut socket, "404 Not Found", "Not here.").await;
            continue;
        }
        let param = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
        if param("state").as_deref() != Some(state) {
            // Not the answer to this sign-in (an old tab, or someone else's request).
            let _ = reply(&mut socket, "400 Bad Request", "This sign-in is not the one toolgate is waiting for.").await;
            continue;
        }
        if let Some(error) = param("error") {
            let _ = reply(&mut socket, "200 OK", "The sign-in was refused. You can close this tab.").await;
            let description = param("error_description").map(|d| format!(": {}", crate::visible::visible(&d)));
            return Err(AuthError::SignIn(format!(
                "the authorization server said {}{}",
                crate::visible::visible(&error),
                description.unwrap_or_default()
            )));
        }
        let Some(code) = param("code") else {
            let _ = reply(&mut socket, "400 Bad Request", "No code in the redirect.").await;
            continue;
        };
        let _ = reply(&mut socket, "200 OK", "toolgate is signed in. You can close this tab.").await;
        return Ok(code);
    }
}

async fn reply(socket: &mut tokio::net::TcpStream, status: &str, text: &str) -> std::io::Result<()> {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    socket.write_all(response.as_bytes()).await?;
    socket.shutdown().await
}

/// `oauth2`'s requests, sent with toolgate's reqwest client (the crate's own reqwest support
/// is for another reqwest version).
struct Http<'a>(&'a reqwest::Client);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpFailure(String);

impl<'c> AsyncHttpClient<'c> for Http<'_> {
    type Error = HttpFailure;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpFailure>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request = reqwest::Request::try_from(request).map_err(|e| HttpFailure(super::super::describe(e)))?;
            let response = self.0.execute(request).await.map_err(|e| HttpFailure(super::super::describe(e)))?;
            let mut builder = oauth2::http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let body = limited(response).await.map_err(HttpFailure)?;
            builder.body(body).map_err(|e| HttpFailure(e.to_string()))
        })
    }
}
