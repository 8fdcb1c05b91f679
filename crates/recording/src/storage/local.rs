//! A local directory: directories 0700, files 0600, each written to a temporary file and then
//! hard-linked into place, so a reader never sees half an object and an existing segment is
//! never replaced (a rename would silently overwrite).
//!
//! A write returns once it is durable. Two fsyncs per segment (file and directory) cost about
//! 9 ms each on a virtual disk, which would cap a gateway at ~100 recorded requests a second, so
//! writes are made durable together: whoever finds no flush running syncs the file system once
//! (`syncfs`) for every write finished before it started — a group commit.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use time::OffsetDateTime;

use super::ObjectInfo;
use crate::error::StorageError;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The group commit shared by every store on the same root (an organization's store is one
/// level down and shares its parent's).
#[derive(Debug)]
struct GroupSync {
    /// Tickets handed out: a write takes one after its file is linked into place.
    issued: AtomicU64,
    /// The highest ticket known durable.
    durable: tokio::sync::watch::Sender<u64>,
    /// Held by the one writer running a flush.
    flushing: tokio::sync::Mutex<()>,
    /// Flushes run so far (the batching's evidence in tests).
    flushes: AtomicU64,
}

impl GroupSync {
    fn new() -> GroupSync {
        GroupSync {
            issued: AtomicU64::new(0),
            durable: tokio::sync::watch::channel(0).0,
            flushing: tokio::sync::Mutex::new(()),
            flushes: AtomicU64::new(0),
        }
    }

    /// Returns once everything written before the call is on disk.
    async fn barrier(&self, on: PathBuf) -> Result<(), StorageError> {
        let mut durable = self.durable.subscribe();
        let ticket = self.issued.fetch_add(1, Ordering::AcqRel) + 1;
        loop {
            if *durable.borrow_and_update() >= ticket {
                return Ok(());
            }
            if let Ok(_leader) = self.flushing.try_lock() {
                if *self.durable.borrow() >= ticket {
                    return Ok(());
                }
                // Every ticket issued so far belongs to a write already in place.
                let target = self.issued.load(Ordering::Acquire);
                let path = on.clone();
                blocking(move || {
                    let file = fs::File::open(&path).map_err(io_err("open to sync", &path))?;
                    rustix::fs::syncfs(&file).map_err(|e| StorageError::Io {
                        action: "sync the file system of",
                        path: path.clone(),
                        source: e.into(),
                    })
                })
                .await?;
                self.flushes.fetch_add(1, Ordering::Relaxed);
                self.durable.send_modify(|d| *d = (*d).max(target));
                return Ok(());
            }
            // A flush is running; it may not cover this ticket, so look again when it ends.
            let _ = durable.changed().await;
        }
    }
}

#[derive(Debug)]
pub(super) struct LocalStore {
    root: PathBuf,
    sync: std::sync::Arc<GroupSync>,
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
        LocalStore {
            root,
            sync: std::sync::Arc::new(GroupSync::new()),
        }
    }

    pub(super) fn within(&self, part: &str) -> LocalStore {
        LocalStore {
            root: self.root.join(part),
            sync: self.sync.clone(),
        }
    }

    pub(super) fn describe(&self) -> String {
        format!("local directory {}", self.root.display())
    }

    pub(super) async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        let path = self.root.join(key);
        let linked = path.clone();
        blocking(move || write_new(&linked, &bytes)).await?;
        self.sync.barrier(path).await
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
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writes_share_their_flushes_and_all_land() {
        // This checks the batching, not the disk: `syncfs` flushes the whole file system, and
        // on a CI disk still full of a fresh build's dirty pages one flush took over 300 s. On
        // tmpfs (where there is one) a flush costs nothing but the batching is the same.
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm).unwrap()
        } else {
            tempfile::tempdir().unwrap()
        };
        let store = LocalStore::new(dir.path().to_owned());
        let writes = 200;
        let mut tasks = Vec::new();
        for i in 0..writes {
            let store = LocalStore {
                root: store.root.join(format!("org-{}", i % 3)),
                sync: store.sync.clone(),
            };
            tasks.push(tokio::spawn(async move {
                store
                    .put(&format!("s{i}/00000000.jsonl.zst"), vec![i as u8; 64])
                    .await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        for i in 0..writes {
            let path = dir
                .path()
                .join(format!("org-{}/s{i}/00000000.jsonl.zst", i % 3));
            assert_eq!(fs::read(&path).unwrap(), vec![i as u8; 64]);
        }
        let flushes = store.sync.flushes.load(Ordering::Relaxed);
        assert!(flushes >= 1);
        assert!(
            flushes < writes,
            "{flushes} flushes for {writes} concurrent writes: none was shared"
        );
        // A write after the batch still waits for its own flush.
        store.put("late/00000000.jsonl.zst", vec![1]).await.unwrap();
        assert_eq!(store.sync.flushes.load(Ordering::Relaxed), flushes + 1);
    }
}
