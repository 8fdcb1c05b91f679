//! A local directory: directories 0700, files 0600, each written to a temporary file, synced and
//! then hard-linked into place, so a reader never sees half an object and an existing segment is
//! never replaced (a rename would silently overwrite).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use time::OffsetDateTime;

use super::ObjectInfo;
use crate::error::StorageError;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

#[derive(Debug)]
pub(super) struct LocalStore {
    root: PathBuf,
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StorageError + 'a {
    move |source| {
        if source.kind() == io::ErrorKind::NotFound {
            StorageError::NotFound {
                key: path.display().to_string(),
            }
        } else {
            StorageError::Io {
                action,
                path: path.to_owned(),
                source,
            }
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Task(e.to_string()))?
}

impl LocalStore {
    pub(super) fn new(root: PathBuf) -> LocalStore {
        LocalStore { root }
    }

    pub(super) fn within(&self, part: &str) -> LocalStore {
        LocalStore {
            root: self.root.join(part),
        }
    }

    pub(super) fn describe(&self) -> String {
        format!("local directory {}", self.root.display())
    }

    pub(super) async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        let path = self.root.join(key);
        blocking(move || write_new(&path, &bytes)).await
    }

    pub(super) async fn get(&self, key: &str) -> Result<Vec<u8>, StorageError> {
        let path = self.root.join(key);
        blocking(move || fs::read(&path).map_err(io_err("read", &path))).await
    }

    pub(super) async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = self.root.join(key);
        blocking(move || fs::remove_file(&path).map_err(io_err("delete", &path))).await
    }

    pub(super) async fn list(
        &self,
        session: Option<&str>,
    ) -> Result<Vec<ObjectInfo>, StorageError> {
        let root = self.root.clone();
        let session = session.map(str::to_owned);
        blocking(move || {
            let sessions = match session {
                Some(s) => vec![s],
                None => match fs::read_dir(&root) {
                    Ok(entries) => entries
                        .filter_map(Result::ok)
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .filter_map(|e| e.file_name().into_string().ok())
                        .collect(),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
                    Err(source) => {
                        return Err(StorageError::Io {
                            action: "list",
                            path: root,
                            source,
                        });
                    }
                },
            };
            let mut out = Vec::new();
            for session in sessions {
                let dir = root.join(&session);
                let entries = match fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(source) => {
                        return Err(StorageError::Io {
                            action: "list",
                            path: dir,
                            source,
                        });
                    }
                };
                for entry in entries.filter_map(Result::ok) {
                    let Ok(name) = entry.file_name().into_string() else {
                        continue;
                    };
                    let Ok(meta) = entry.metadata() else { continue };
                    if !meta.is_file() {
                        continue;
                    }
                    out.push(ObjectInfo {
                        key: format!("{session}/{name}"),
                        size: meta.len(),
                        modified: meta.modified().ok().map(OffsetDateTime::from),
                    });
                }
            }
            Ok(out)
        })
        .await
    }
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let dir = path.parent().ok_or_else(|| StorageError::Io {
        action: "write",
        path: path.to_owned(),
        source: io::Error::other("the object path has no parent directory"),
    })?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err("create the directory", dir))?;
    let temp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(io_err("create", &temp))?;
        file.write_all(bytes).map_err(io_err("write", &temp))?;
        file.sync_all().map_err(io_err("sync", &temp))?;
        fs::hard_link(&temp, path).map_err(|source| {
            if source.kind() == io::ErrorKind::AlreadyExists {
                StorageError::AlreadyExists {
                    key: path.display().to_string(),
                }
            } else {
                StorageError::Io {
                    action: "link into place",
                    path: path.to_owned(),
                    source,
                }
            }
        })
    })();
    let _ = fs::remove_file(&temp);
    result?;
    // The directory entry is durable only once the directory itself is synced.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
