//! A JSON file of shared state under `$XDG_STATE_HOME/toolgate/` (the trust record, the review
//! queue), changed by several proxies and commands at once: every change happens under an
//! exclusive lock on a lock file beside it, and the file is written whole and renamed over the
//! old one, so a reader never sees half of it.

use std::fs::{File, OpenOptions};
use std::io;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

pub struct StateFile<T> {
    path: PathBuf,
    kind: PhantomData<T>,
}

impl<T: Default + Serialize + DeserializeOwned> StateFile<T> {
    pub fn new(path: PathBuf) -> Self {
        StateFile { path, kind: PhantomData }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state as stored now (the default when there is none yet).
    pub fn read(&self) -> io::Result<T> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", self.path.display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(T::default()),
            Err(e) => Err(e),
        }
    }

    /// Changes the state under the lock (others wait) and returns what `change` returned.
    pub fn update<R>(&self, change: impl FnOnce(&mut T) -> R) -> io::Result<R> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let lock =
            OpenOptions::new().create(true).truncate(false).write(true).open(self.path.with_extension("lock"))?;
        lock.lock()?;
        let result = (|| {
            let mut state = self.read()?;
            let out = change(&mut state);
            let tmp = self.path.with_extension(format!("tmp.{}", std::process::id()));
            let mut bytes = serde_json::to_vec_pretty(&state).map_err(io::Error::other)?;
            bytes.push(b'\n');
            std::fs::write(&tmp, &bytes)?;
            std::fs::rename(&tmp, &self.path)?;
            Ok(out)
        })();
        let _ = File::unlock(&lock);
        result
    }
}
