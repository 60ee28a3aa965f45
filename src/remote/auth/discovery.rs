//! Finding where to sign in (MCP authorization, 2025-11-25): the server's protected-resource
//! metadata (RFC 9728), named by its `WWW-Authenticate` challenge or at the well-known URIs,
//! then its authorization server's metadata (RFC 8414, with the OpenID Connect discovery
//! fallbacks), in the orders the spec gives. Each document is checked before it is used: the
//! resource must be the server toolgate talks to, the issuer the one asked, and the
//! authorization server must offer PKCE with S256.

use reqwest::Url;
use serde::Deserialize;

use super::AuthError;

/// What a 401 or 403 said in `WWW-Authenticate: Bearer ...`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub resource_metadata: Option<String>,
    pub scope: Option<String>,
    pub error: Option<String>,
}

impl Challenge {
    /// The Bearer challenge among `headers` (`WWW-Authenticate` values), if any.
    pub fn parse<'a>(headers: impl IntoIterator<Item = &'a str>) -> Challenge {
        let mut challenge = Challenge::default();
        for header in headers {
            let Some(params) = bearer_params(header) else { continue };
            for (name, value) in params {
                match name.to_ascii_lowercase().as_str() {
                    "resource_metadata" => challenge.resource_metadata = Some(value),
                    "scope" => challenge.scope = Some(value),
                    "error" => challenge.error = Some(value),
                    _ => {}
                }
            }
        }
        challenge
    }

    /// A 403 asking for more scopes (step-up).
    pub fn insufficient_scope(&self) -> bool {
        self.error.as_deref() == Some("insufficient_scope")
    }
}

/// The auth-params of a `Bearer` challenge: `name=token` or `name="quoted \" string"`, comma
/// separated (RFC 9110 §11.2).
fn bearer_params(header: &str) -> Option<Vec<(String, String)>> {
    let header = header.trim_start();
    let (scheme, rest) = header.split_at(header.find(char::is_whitespace).unwrap_or(header.len()));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let name: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',' && !c.is_whitespace())).collect();
        if name.is_empty() {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next_if_eq(&'=').is_none() {
            continue;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ',' && !c.is_whitespace())).collect();
        }
        params.push((name, value));
    }
    Some(params)
}

/// RFC 9728 protected-resource metadata, the parts toolgate uses.
#[derive(Debug, Deserialize)]
pub struct ResourceMetadata {
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    #[serde(default)]
    pub scopes_supported: Option<Vec<String>>,
}

/// RFC 8414 authorization server metadata, the parts toolgate uses.
#[derive(Debug, Deserialize)]
pub struct ServerMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub registration_endpoint: Option<String>,
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    pub client_id_metadata_document_supported: Option<bool>,
}

/// The resource metadata URIs to try, in order: the challenge's, else the well-known URI with
/// the server's path inserted, then at the root.
pub fn resource_metadata_urls(server: &Url, challenge: &Challenge) -> Vec<Url> {
    if let Some(named) = challenge.resource_metadata.as_deref().and_then(|u| Url::parse(u).ok()) {
        return vec![named];
    }
    well_known(server, "oauth-protected-resource", false)
}

/// The authorization server metadata URIs to try for `issuer`, in the spec's order.
pub fn server_metadata_urls(issuer: &Url) -> Vec<Url> {
    let mut urls = well_known(issuer, "oauth-authorization-server", true);
    urls.truncate(1);
    urls.extend(well_known(issuer, "openid-configuration", true));
    if has_path(issuer) {
        let mut appended = issuer.clone();
        appended.set_query(None);
        appended.set_path(&format!("{}/.well-known/openid-configuration", issuer.path().trim_end_matches('/')));
        urls.truncate(2);
        urls.push(appended);
    }
    urls
}

fn has_path(url: &Url) -> bool {
    !url.path().trim_matches('/').is_empty()
}

/// `/.well-known/NAME` with `url`'s path inserted after it, and (`only_inserted` false, or no
/// path) at the root.
fn well_known(url: &Url, name: &str, only_inserted: bool) -> Vec<Url> {
    let mut root = url.clone();
    root.set_query(None);
    root.set_fragment(None);
    root.set_path(&format!("/.well-known/{name}"));
    if !has_path(url) {
        return vec![root];
    }
    let mut inserted = root.clone();
    inserted.set_path(&format!("/.well-known/{name}{}", url.path().trim_end_matches('/')));
    if only_inserted { vec![inserted] } else { vec![inserted, root] }
}

/// Whether toolgate may send anything of the sign-in to `url`: the MCP spec has every
/// authorization server endpoint (and the metadata that names them) served over HTTPS. Plain
/// HTTP is taken only on the loopback interface, and only when the MCP server itself is there
/// (a server on this machine, as in development). So a server cannot have toolgate send a code,
/// a verifier or a token in the clear, nor send its metadata requests to plain-HTTP addresses.
pub fn check_secure(server: &Url, url: &Url, what: &str) -> Result<(), AuthError> {
    let loopback = |u: &Url| {
        let host = u.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback(url) && loopback(server) => Ok(()),
        _ => Err(AuthError::Discovery(format!(
            "the {what} is not an HTTPS URL ({}://{}); the MCP specification has every authorization endpoint \
             served over HTTPS, and toolgate sends nothing of a sign-in otherwise",
            url.scheme(),
            url.host_str().unwrap_or("")
        ))),
    }
}

/// The canonical URI of the MCP server (RFC 8707 §2, as the MCP spec asks): lower-case scheme
/// and host, no fragment, no query, and no lone trailing slash.
pub fn canonical_resource(server: &Url) -> String {
    let mut url = server.clone();
    url.set_fragment(None);
    url.set_query(None);
    let text = url.to_string();
    if url.path() == "/" { text.trim_end_matches('/').to_owned() } else { text }
}

/// The resource the metadata names, when it is the server's: the same origin, and a path that
/// is the server's or one of its parents (RFC 9728 §3.3 and §7.3: metadata for another
/// resource is not used).
pub fn check_resource(server: &Url, metadata: &ResourceMetadata) -> Result<String, AuthError> {
    let ours = canonical_resource(server);
    let Some(named) = &metadata.resource else { return Ok(ours) };
    let Ok(named_url) = Url::parse(named) else {
        return Err(AuthError::Discovery(format!(
            "the protected-resource metadata names a resource that is not a URL: {named:?}"
        )));
    };
    let same_origin = named_url.origin() == server.origin();
    let path = named_url.path().trim_end_matches('/');
    let covers = server.path() == path || server.path().starts_with(&format!("{path}/")) || path.is_empty();
    if same_origin && covers {
        Ok(canonical_resource(&named_url))
    } else {
        Err(AuthError::Discovery(format!(
            "the protected-resource metadata is for {named:?}, not for {ours:?}; toolgate does not use it"
        )))
    }
}

/// Checks what the spec asks of authorization server metadata before using it.
pub fn check_server(issuer: &Url, metadata: &ServerMetadata) -> Result<(), AuthError> {
    if Url::parse(&metadata.issuer).ok().as_ref() != Some(issuer) && metadata.issuer != issuer.as_str() {
        return Err(AuthError::Discovery(format!(
            "the authorization server's metadata names the issuer {:?}, not {:?} where it was found (RFC 8414 §3.3)",
            metadata.issuer,
            issuer.as_str()
        )));
    }
    let s256 = metadata.code_challenge_methods_supported.as_ref().is_some_and(|m| m.iter().any(|m| m == "S256"));
    if !s256 {
        return Err(AuthError::Discovery(
            "the authorization server does not list S256 in code_challenge_methods_supported: \
             without PKCE toolgate does not sign in"
                .into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn strings(urls: Vec<Url>) -> Vec<String> {
        urls.into_iter().map(String::from).collect()
    }

    #[test]
    fn a_bearer_challenge_is_read_with_quoted_and_bare_values() {
        let c = Challenge::parse([
            r#"Basic realm="x""#,
            r#"Bearer error="insufficient_scope", scope="files:read files:write", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource", x=y"#,
        ]);
        assert_eq!(c.scope.as_deref(), Some("files:read files:write"));
        assert_eq!(
            c.resource_metadata.as_deref(),
            Some("https://mcp.example.com/.well-known/oauth-protected-resource")
        );
        assert!(c.insufficient_scope());
        let bare = Challenge::parse(["bearer error=invalid_token,scope=a"]);
        assert_eq!((bare.error.as_deref(), bare.scope.as_deref()), (Some("invalid_token"), Some("a")));
        assert_eq!(Challenge::parse(["Bearer"]), Challenge::default());
        assert_eq!(Challenge::parse([r#"Bearer scope="a\"b""#]).scope.as_deref(), Some("a\"b"));
    }

    #[test]
    fn sign_in_traffic_goes_over_https_unless_server_and_endpoint_are_both_on_this_machine() {
        let public = url("https://mcp.example.com/mcp");
        let local = url("http://127.0.0.1:8000/mcp");
        assert!(check_secure(&public, &url("https://auth.example.com/token"), "token endpoint").is_ok());
        for insecure in ["http://auth.example.com/token", "http://127.0.0.1/token", "http://192.168.1.1/x", "ftp://a/b"]
        {
            let err = check_secure(&public, &url(insecure), "token endpoint").unwrap_err().to_string();
            assert!(err.contains("not an HTTPS URL"), "{insecure}: {err}");
        }
        for fine in ["http://127.0.0.1:9000/token", "http://localhost/t", "http://[::1]:1/t", "https://a.example/t"] {
            assert!(check_secure(&local, &url(fine), "token endpoint").is_ok(), "{fine}");
        }
        assert!(check_secure(&local, &url("http://10.0.0.1/token"), "token endpoint").is_err());
    }

    #[test]
    fn well_known_uris_come_in_the_spec_s_order() {
        let none = Challenge::default();
        assert_eq!(
            strings(resource_metadata_urls(&url("https://example.com/public/mcp?k=1"), &none)),
            [
                "https://example.com/.well-known/oauth-protected-resource/public/mcp",
                "https://example.com/.well-known/oauth-protected-resource"
            ]
        );
        assert_eq!(
            strings(resource_metadata_urls(&url("https://example.com/"), &none)),
            ["https://example.com/.well-known/oauth-protected-resource"]
        );
        let named = Challenge { resource_metadata: Some("https://example.com/prm".into()), ..none };
        assert_eq!(
            strings(resource_metadata_urls(&url("https://example.com/mcp"), &named)),
            ["https://example.com/prm"]
        );
        assert_eq!(
            strings(server_metadata_urls(&url("https://auth.example.com/tenant1"))),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
                "https://auth.example.com/.well-known/openid-configuration/tenant1",
                "https://auth.example.com/tenant1/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            strings(server_metadata_urls(&url("https://auth.example.com"))),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server",
                "https://auth.example.com/.well-known/openid-configuration"
            ]
        );
    }

    #[test]
    fn only_the_server_s_own_resource_and_an_s256_issuer_are_used() {
        let server = url("HTTPS://MCP.example.com/v1/mcp?key=k");
        assert_eq!(canonical_resource(&server), "https://mcp.example.com/v1/mcp");
        assert_eq!(canonical_resource(&url("https://mcp.example.com/")), "https://mcp.example.com");
        let named = |r: &str| ResourceMetadata {
            resource: Some(r.into()),
            authorization_servers: vec![],
            scopes_supported: None,
        };
        assert_eq!(
            check_resource(&server, &named("https://mcp.example.com/v1/mcp")).unwrap(),
            "https://mcp.example.com/v1/mcp"
        );
        assert_eq!(check_resource(&server, &named("https://mcp.example.com")).unwrap(), "https://mcp.example.com");
        assert!(check_resource(&server, &named("https://evil.example.com/v1/mcp")).is_err());
        assert!(check_resource(&server, &named("https://mcp.example.com/v1/mc")).is_err());

        let issuer = url("https://auth.example.com");
        let metadata = |iss: &str, methods: Option<Vec<String>>| ServerMetadata {
            issuer: iss.into(),
            authorization_endpoint: "https://auth.example.com/authorize".into(),
            token_endpoint: "https://auth.example.com/token".into(),
            registration_endpoint: None,
            code_challenge_methods_supported: methods,
            client_id_metadata_document_supported: None,
        };
        assert!(check_server(&issuer, &metadata("https://auth.example.com", Some(vec!["S256".into()]))).is_ok());
        assert!(check_server(&issuer, &metadata("https://auth.example.com", None)).is_err(), "no PKCE listed");
        assert!(check_server(&issuer, &metadata("https://auth.example.com", Some(vec!["plain".into()]))).is_err());
        assert!(check_server(&issuer, &metadata("https://other.example.com", Some(vec!["S256".into()]))).is_err());
    }
}
