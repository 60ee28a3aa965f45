//! Where a remote server is: its URL and the headers every request to it carries
//! (`run --url URL --header NAME=VALUE`), checked before anything starts.
//!
//! Header values may name environment variables as `${NAME}`, expanded once at start, so that a
//! token need not be written into a client's configuration. Values are secrets: they are marked
//! sensitive (so that no `Debug` shows them) and no error or log line repeats them.

use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

/// Headers the transport sets itself, which `--header` may not.
const OWN_HEADERS: [&str; 7] =
    ["accept", "content-type", "content-length", "host", "mcp-session-id", "mcp-protocol-version", "last-event-id"];

/// A remote MCP server.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: Url,
    pub headers: HeaderMap,
}

/// Why `--url` or a `--header` cannot be used. None of them shows a header's value.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("--url {url:?} is not a URL: {why}")]
    Url { url: String, why: String },
    #[error("--url must be http:// or https://, not {0}://")]
    Scheme(String),
    #[error("--url must not carry a user name or password (they would be logged); send them with --header")]
    Credentials,
    #[error("--header must be NAME=VALUE (no `=` in the one given for {0:?})")]
    NoEquals(String),
    #[error("--header {0:?}: not a valid header name")]
    Name(String),
    #[error("--header {0}: toolgate sets this header itself")]
    Own(String),
    #[error("--header {header}: the environment variable {var} is not set")]
    Unset { header: String, var: String },
    #[error("--header {0}: `${{` with no closing `}}`, or a bad variable name in it")]
    BadVariable(String),
    #[error("--header {0}: the value (after expanding variables) is not a valid header value")]
    Value(String),
}

impl Target {
    /// Checks the URL and the headers, expanding `${VAR}` from `env`.
    pub fn parse(url: &str, headers: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Target, TargetError> {
        let parsed = Url::parse(url).map_err(|e| Target::bad_url(url, e.to_string()))?;
        match parsed.scheme() {
            "http" | "https" => {}
            other => return Err(TargetError::Scheme(other.to_owned())),
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(Target::bad_url(url, "it names no host".into()));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(TargetError::Credentials);
        }
        let mut map = HeaderMap::new();
        for given in headers {
            let (name, value) = given.split_once('=').ok_or_else(|| {
                // The part before any `:` is shown at most: a value must not reach the terminal.
                TargetError::NoEquals(given.split(':').next().unwrap_or_default().chars().take(40).collect())
            })?;
            let name = name.trim();
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| TargetError::Name(name.to_owned()))?;
            if OWN_HEADERS.contains(&header.as_str()) {
                return Err(TargetError::Own(name.to_owned()));
            }
            let value = expand(value, name, &env)?;
            let mut value = HeaderValue::from_str(&value).map_err(|_| TargetError::Value(name.to_owned()))?;
            value.set_sensitive(true);
            map.append(header, value);
        }
        Ok(Target { url: parsed, headers: map })
    }

    fn bad_url(url: &str, why: String) -> TargetError {
        // What follows a `?` may be a key: not shown.
        TargetError::Url { url: url.split('?').next().unwrap_or_default().to_owned(), why }
    }

    /// What names the server for people and for trust: scheme, host, port and path; never its
    /// query, which may carry a key.
    pub fn origin_and_path(&self) -> String {
        let url = &self.url;
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().map(|p| format!(":{p}")).unwrap_or_default();
        // An IPv6 host keeps its brackets.
        let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_owned() };
        format!("{}://{}{}{}", url.scheme(), host.to_ascii_lowercase(), port, url.path())
    }
}

/// `value` with every `${NAME}` replaced by the variable's value.
fn expand(value: &str, header: &str, env: &impl Fn(&str) -> Option<String>) -> Result<String, TargetError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after.find('}').ok_or_else(|| TargetError::BadVariable(header.to_owned()))?;
        let var = &after[..end];
        let well_formed = var.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !well_formed {
            return Err(TargetError::BadVariable(header.to_owned()));
        }
        let found = env(var).ok_or_else(|| TargetError::Unset { header: header.to_owned(), var: var.to_owned() })?;
        out.push_str(&found);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(var: &str) -> Option<String> {
        (var == "TOKEN").then(|| "s3cret".to_owned())
    }

    fn headers(given: &[&str]) -> Result<Target, TargetError> {
        let given: Vec<String> = given.iter().map(|s| s.to_string()).collect();
        Target::parse("https://mcp.example.com/v1/mcp?key=k", &given, env)
    }

    #[test]
    fn variables_are_expanded_and_values_never_shown() {
        let t = headers(&["Authorization=Bearer ${TOKEN}", "X-Plain=a=b $HOME"]).unwrap();
        assert_eq!(t.headers["authorization"], "Bearer s3cret");
        assert_eq!(t.headers["x-plain"], "a=b $HOME", "only ${{...}} is expanded; the first = splits");
        assert!(!format!("{t:?}").contains("s3cret"), "{t:?}");

        let unset = headers(&["Authorization=Bearer ${MISSING}"]).unwrap_err().to_string();
        assert_eq!(unset, "--header Authorization: the environment variable MISSING is not set");
        for bad in ["X=${TOKEN", "X=${1A}", "X=${}"] {
            assert!(matches!(headers(&[bad]), Err(TargetError::BadVariable(_))), "{bad}");
        }
        let no_equals = headers(&["Authorization: Bearer s3cret"]).unwrap_err().to_string();
        assert!(!no_equals.contains("s3cret"), "{no_equals}");
        let bad_value = headers(&["X-Token=a\u{1}${TOKEN}"]).unwrap_err().to_string();
        assert!(!bad_value.contains("s3cret"), "{bad_value}");
    }

    #[test]
    fn the_transport_s_own_headers_are_refused() {
        assert!(matches!(headers(&["Mcp-Session-Id=x"]), Err(TargetError::Own(_))));
        assert!(matches!(headers(&["accept=x"]), Err(TargetError::Own(_))));
        assert!(matches!(headers(&["bad name=x"]), Err(TargetError::Name(_))));
    }

    #[test]
    fn urls_are_http_with_a_host_and_no_credentials() {
        let parse = |u: &str| Target::parse(u, &[], env);
        assert!(matches!(parse("ftp://example.com/"), Err(TargetError::Scheme(_))));
        assert!(matches!(parse("https://me:pw@example.com/"), Err(TargetError::Credentials)));
        let bad = parse("not a url?key=secret").unwrap_err().to_string();
        assert!(!bad.contains("secret"), "{bad}");
        let t = parse("HTTPS://Example.COM/mcp?key=secret#x").unwrap();
        assert_eq!(t.origin_and_path(), "https://example.com:443/mcp");
        assert_eq!(parse("http://[::1]:8080/").unwrap().origin_and_path(), "http://[::1]:8080/");
    }
}
