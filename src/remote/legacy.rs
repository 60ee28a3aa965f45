//! The HTTP+SSE transport of protocol version 2024-11-05, for servers that offer only that.
//!
//! As the specification's backwards-compatibility section says: when a POST of `initialize` to
//! the URL fails with HTTP 400, 404 or 405 whose body is not a JSON-RPC answer of the server's
//! own, the bridge GETs the URL, expecting an event stream
//! whose first event, `endpoint`, names where to POST messages. Every later message is POSTed
//! there (the server answers 202), and everything the server says, answers included, comes on
//! that one stream. The stream cannot be resumed in this transport: when it ends, the session
//! ends, and every request on its way gets an error.
//!
//! The endpoint must be on the URL's origin (scheme, host and port): the `--header`s go with
//! every POST, and a server must not be able to send them elsewhere.

use std::sync::Arc;

use reqwest::Response;
use reqwest::header::ACCEPT;
use tokio::time::timeout;

use super::{CONNECT_TIMEOUT, Shared, Stream, content_type, describe};

/// Opens the server's event stream and reads its `endpoint` event. On success the session
/// POSTs to that endpoint from now on, and a task reads the rest of the stream (it ends the
/// session when the stream ends); `Err` says why the server does not speak this transport.
pub(super) async fn fall_back(shared: &Arc<Shared>) -> Result<(), String> {
    let request = shared.request(reqwest::Method::GET).header(ACCEPT, "text/event-stream");
    let response = match timeout(CONNECT_TIMEOUT, request.send()).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(format!("its event stream (GET) failed: {}", describe(e))),
        Err(_) => return Err("its event stream (GET) did not answer".into()),
    };
    if !response.status().is_success() || !content_type(&response).starts_with("text/event-stream") {
        return Err(format!(
            "GET answered HTTP {} with {:?}, not an event stream",
            response.status(),
            content_type(&response)
        ));
    }
    let mut stream = Stream::new(shared.max);
    let mut response = response;
    let endpoint = match timeout(CONNECT_TIMEOUT, endpoint(shared, &mut stream, &mut response)).await {
        Ok(found) => found?,
        Err(_) => return Err("its event stream named no endpoint".into()),
    };
    // Its path only: the query carries the session's id.
    tracing::info!(
        "the remote MCP server speaks the HTTP+SSE transport of 2024-11-05; messages go to {}",
        endpoint.path()
    );
    let listener = Arc::clone(shared);
    let reading = tokio::spawn(async move {
        let why = match stream.read(&listener, response, None).await {
            Ok(()) => "the remote MCP server closed its event stream".to_owned(),
            Err(why) => why,
        };
        listener.fail(why);
    });
    let mut state = shared.state.lock().expect("state");
    state.legacy = Some(endpoint);
    state.listening = Some(reading.abort_handle());
    Ok(())
}

/// Reads the stream up to its `endpoint` event (messages before it are delivered), and checks
/// the endpoint is on the URL's origin.
async fn endpoint(shared: &Shared, stream: &mut Stream, response: &mut Response) -> Result<reqwest::Url, String> {
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return Err("its event stream ended before it named an endpoint".into()),
            Err(e) => return Err(format!("its event stream was cut: {}", describe(e))),
        };
        for event in stream.parser.feed(&chunk).map_err(|e| e.to_string())? {
            if event.event.as_deref() == Some(b"endpoint") {
                let text = String::from_utf8(event.data).map_err(|_| "its endpoint is not UTF-8".to_owned())?;
                return resolve(&shared.target.url, text.trim());
            }
            if event.is_message() && !event.data.is_empty() {
                shared.deliver(event.data, None).await;
            }
        }
    }
}

/// The endpoint an `endpoint` event names, relative to `base`; refused off `base`'s origin.
fn resolve(base: &reqwest::Url, named: &str) -> Result<reqwest::Url, String> {
    let url = base.join(named).map_err(|e| format!("its endpoint is not a URL: {e}"))?;
    if url.origin() != base.origin() {
        return Err(format!(
            "its endpoint is on another origin ({}) than {}; toolgate sends the headers only to the server's own origin",
            url.origin().ascii_serialization(),
            base.origin().ascii_serialization()
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> reqwest::Url {
        reqwest::Url::parse("http://127.0.0.1:8000/sse").unwrap()
    }

    #[test]
    fn a_relative_endpoint_is_read_against_the_url() {
        let url = resolve(&base(), "/messages/?session_id=abc").unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:8000/messages/?session_id=abc");
        assert_eq!(resolve(&base(), "message?s=1").unwrap().as_str(), "http://127.0.0.1:8000/message?s=1");
    }

    #[test]
    fn an_endpoint_on_the_same_origin_spelled_in_full_is_taken() {
        let url = resolve(&base(), "http://127.0.0.1:8000/m?x=1").unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:8000/m?x=1");
    }

    #[test]
    fn an_endpoint_elsewhere_is_refused() {
        for elsewhere in [
            "http://evil.example/m",
            "//evil.example/m",
            "https://127.0.0.1:8000/m",
            "http://127.0.0.1:8001/m",
            "http://localhost:8000/m",
        ] {
            let err = resolve(&base(), elsewhere).unwrap_err();
            assert!(err.contains("another origin"), "{elsewhere}: {err}");
        }
    }
}
