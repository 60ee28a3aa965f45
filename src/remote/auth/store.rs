//! The tokens of one remote server on disk: a JSON file of its own under the state folder
//! (`$XDG_STATE_HOME/toolgate/oauth/`), named by a digest of the server's identity (scheme,
//! host, port, path), so that a token is only ever sent to the server it was issued for.
//!
//! The file is written whole to a temporary file created with mode 0600 (never wider, not even
//! for a moment), synced, and renamed over the old one; its folder is 0700. Nothing here
//! implements `Debug` or logs a value: a token must not reach a log line.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What toolgate keeps for one server: the client it registered, and the tokens it holds.
#[derive(Clone, Serialize, Deserialize)]
pub struct Stored {
    /// The server's identity (`Target::origin_and_path`): a file for another server is ignored.
    pub server: String,
    /// The `resource` (RFC 8707) the tokens were issued for.
    pub resource: String,
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// `client_secret_post` or `client_secret_basic` when the client has a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_auth_method: Option<String>,
    /// The loopback redirect the client was registered with.
    pub redirect_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// When the access token expires, in milliseconds since the epoch, if the server said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
}

/// Where the tokens of the server named `server` (its identity) are kept.
pub fn path_for(state_dir: &Path, server: &str) -> PathBuf {
    let digest = Sha256::digest(server.as_bytes());
    state_dir.join("oauth").join(format!("{}.json", crate::hex::encode(&digest[..16])))
}

/// The stored tokens at `path` for `server`; none when there are none, they are unreadable or
/// they belong to another server.
pub fn load(path: &Path, server: &str) -> Option<Stored> {
    let text = fs::read(path).ok()?;
    match serde_json::from_slice::<Stored>(&text) {
        Ok(stored) if stored.server == server => Some(stored),
        Ok(_) => None,
        Err(e) => {
            // serde's message names the field, never a value of a string.
            tracing::warn!("ignoring the unreadable tokens file {}: {}", path.display(), e);
            None
        }
    }
}

/// Writes `stored` to `path`: a 0600 temporary file beside it, synced, then renamed.
pub fn save(path: &Path, stored: &Stored) -> io::Result<()> {
    let folder = path.parent().ok_or_else(|| io::Error::other("the tokens file has no folder"))?;
    DirBuilder::new().recursive(true).mode(0o700).create(folder)?;
    let text = serde_json::to_vec_pretty(stored).map_err(io::Error::other)?;
    let temporary = folder.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("tokens"),
        std::process::id()
    ));
    let _ = fs::remove_file(&temporary);
    let written = (|| {
        let mut file: File = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temporary)?;
        file.write_all(&text)?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

/// Removes the tokens at `path`; whether there were any.
pub fn remove(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn stored(server: &str) -> Stored {
        Stored {
            server: server.into(),
            resource: "http://127.0.0.1:1/mcp".into(),
            issuer: "http://127.0.0.1:1".into(),
            authorization_endpoint: "http://127.0.0.1:1/authorize".into(),
            token_endpoint: "http://127.0.0.1:1/token".into(),
            client_id: "c".into(),
            client_secret: None,
            client_auth_method: None,
            redirect_uri: "http://127.0.0.1:2/callback".into(),
            scope: None,
            access_token: "a".into(),
            refresh_token: Some("r".into()),
            expires_at_ms: None,
        }
    }

    #[test]
    fn tokens_are_written_0600_in_a_0700_folder_and_only_read_for_their_server() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(dir.path(), "http://127.0.0.1:1/mcp");
        assert_ne!(path, path_for(dir.path(), "http://127.0.0.1:1/other"));
        save(&path, &stored("http://127.0.0.1:1/mcp")).unwrap();
        save(&path, &stored("http://127.0.0.1:1/mcp")).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1, "no temporary file is left");
        assert!(load(&path, "http://127.0.0.1:1/mcp").is_some());
        assert!(load(&path, "http://127.0.0.1:1/other").is_none(), "another server's tokens are not used");
        assert!(remove(&path).unwrap());
        assert!(!remove(&path).unwrap());
    }
}
