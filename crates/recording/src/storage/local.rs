//! A local directory: directories 0700, files 0600, each written to a temporary file and then
//! hard-linked into place, so a reader never sees half an object and an existing segment is
//! never replaced (a rename would silently overwrite).
//!
//! A write returns once it is durable. Two fsyncs per segment (file and directory) cost about
//! 9 ms each on a virtual disk, which would cap a gateway at ~100 recorded requests a second, so
//! writes are made durable together: whoever finds no flush running syncs every file written
//! since the last flush and each directory they were linked into — a group commit. The syncs
//! touch only those files: a whole-file-system flush (`syncfs`) would also wait for every other
//! program's dirty pages on the disk, and stall them (seen: minutes behind a fresh build).

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use time::OffsetDateTime;

use super::ObjectInfo;
use crate::error::StorageError;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// At most this many syncs run at once in a flush: concurrent fsyncs share journal commits
/// (ext4, XFS), and a batch of hundreds needs no more threads than that to overlap.
const SYNC_THREADS: usize = 8;

/// What a failed flush did to the writes it covered: each of them returns it.
type Outcome = Arc<OnceLock<(io::ErrorKind, String)>>;

/// A write linked into place and not yet known durable.
#[derive(Debug)]
struct Pending {
    file: fs::File,
    path: PathBuf,
    /// Directories whose entries the write changed, the file's own first.
    dirs: Vec<PathBuf>,
    outcome: Outcome,
}

/// The group commit shared by every store on the same root (an organization's store is one
/// level down and shares its parent's).
#[derive(Debug)]
struct GroupSync {
    /// The top store's directory: a flush syncs every directory from a segment's up to it.
    root: PathBuf,
    /// Tickets handed out with the writes waiting for a flush, under one lock so that a flush
    /// takes exactly the writes whose tickets it settles.
    pending: Mutex<(u64, Vec<Pending>)>,
    /// The highest ticket whose flush has ended (its outcome is in the write's `Outcome`).
    settled: AtomicU64,
    /// Held for a whole flush, by the flush itself: writers queue on it, and the first in line
    /// whose write is still unsettled flushes everything pending. Owned by the flush so that a
    /// caller going away mid-flush cannot let a second flush overtake it.
    flushing: Arc<tokio::sync::Mutex<()>>,
    /// Flushes run so far (the batching's evidence in tests).
    flushes: AtomicU64,
}

impl GroupSync {
    fn new(root: PathBuf) -> GroupSync {
        GroupSync {
            root,
            pending: Mutex::new((0, Vec::new())),
            settled: AtomicU64::new(0),
            flushing: Arc::new(tokio::sync::Mutex::new(())),
            flushes: AtomicU64::new(0),
        }
    }

    /// Returns once the write (its file linked into place) is on disk, with its directory
    /// entries.
    async fn barrier(self: &Arc<Self>, written: Written) -> Result<(), StorageError> {
        let outcome = Outcome::default();
        let path = written.path.clone();
        let ticket = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.0 += 1;
            pending.1.push(Pending {
                file: written.file,
                path: written.path,
                dirs: written.dirs,
                outcome: outcome.clone(),
            });
            pending.0
        };
        let turn = self.flushing.clone().lock_owned().await;
        if self.settled.load(Ordering::Acquire) < ticket {
            let (target, batch) = {
                let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                (pending.0, std::mem::take(&mut pending.1))
            };
            let group = self.clone();
            blocking(move || {
                let outcomes: Vec<Outcome> = batch.iter().map(|w| w.outcome.clone()).collect();
                let flushed =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| flush(batch)));
                if flushed.is_err() {
                    for outcome in outcomes {
                        let _ = outcome.set((io::ErrorKind::Other, "the flush failed".to_owned()));
                    }
                }
                group.flushes.fetch_add(1, Ordering::Relaxed);
                group.settled.fetch_max(target, Ordering::AcqRel);
                drop(turn);
                Ok(())
            })
            .await?;
        }
        match outcome.get() {
            None => Ok(()),
            Some((kind, message)) => Err(StorageError::Io {
                action: "make durable (fsync)",
                path,
                source: io::Error::new(*kind, message.clone()),
            }),
        }
    }
}

/// Syncs a batch of writes: each file's data, then every directory they were linked into.
/// A failure is recorded on the writes it concerns; the others still complete.
fn flush(batch: Vec<Pending>) {
    let mut dirs: Vec<(PathBuf, Vec<Outcome>)> = Vec::new();
    {
        let mut seen = BTreeSet::new();
        for write in &batch {
            for dir in &write.dirs {
                if seen.insert(dir.clone()) {
                    dirs.push((dir.clone(), Vec::new()));
                }
            }
        }
        for write in &batch {
            for dir in &write.dirs {
                if let Some((_, waiting)) = dirs.iter_mut().find(|(d, _)| d == dir) {
                    waiting.push(write.outcome.clone());
                }
            }
        }
    }
    in_parallel(&batch, |write| {
        if let Err(e) = write.file.sync_data() {
            let _ = write
                .outcome
                .set((e.kind(), format!("{e} ({})", write.path.display())));
        }
    });
    in_parallel(&dirs, |(dir, waiting)| {
        let synced = fs::File::open(dir).and_then(|d| d.sync_all());
        if let Err(e) = synced {
            for outcome in waiting {
                let _ = outcome.set((e.kind(), format!("{e} (directory {})", dir.display())));
            }
        }
    });
}

/// Runs `each` on every item, on up to `SYNC_THREADS` threads.
fn in_parallel<T: Sync>(items: &[T], each: impl Fn(&T) + Sync) {
    let next = AtomicUsize::new(0);
    let worker = || {
        while let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) {
            each(item);
        }
    };
    let threads = items.len().min(SYNC_THREADS);
    if threads <= 1 {
        worker();
        return;
    }
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(worker);
        }
        worker();
    });
}

/// A file just linked into place, still to be made durable.
struct Written {
    file: fs::File,
    path: PathBuf,
    dirs: Vec<PathBuf>,
}

#[derive(Debug)]
pub(super) struct LocalStore {
    root: PathBuf,
    sync: Arc<GroupSync>,
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
            sync: Arc::new(GroupSync::new(root.clone())),
            root,
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
        let top = self.sync.root.clone();
        let written = blocking(move || write_new(&top, path, &bytes)).await?;
        self.sync.barrier(written).await
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

fn write_new(top: &Path, path: PathBuf, bytes: &[u8]) -> Result<Written, StorageError> {
    let dir = path.parent().ok_or_else(|| StorageError::Io {
        action: "write",
        path: path.clone(),
        source: io::Error::other("the object path has no parent directory"),
    })?;
    // A directory this write creates is a new entry in its parent: the parents must be synced
    // too, or a crash could keep the segment's data and lose its name. Another writer may have
    // created them a moment ago and not be durable yet, so every level up to the store's root
    // is synced, not only the ones this write found missing (a clean directory syncs at once).
    let dirs: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|d| d.starts_with(top))
        .map(Path::to_owned)
        .collect();
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
        fs::hard_link(&temp, &path).map_err(|source| {
            if source.kind() == io::ErrorKind::AlreadyExists {
                StorageError::AlreadyExists {
                    key: path.display().to_string(),
                }
            } else {
                StorageError::Io {
                    action: "link into place",
                    path: path.clone(),
                    source,
                }
            }
        })?;
        Ok(file)
    })();
    let _ = fs::remove_file(&temp);
    Ok(Written {
        file: result?,
        path,
        dirs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writes_share_their_flushes_and_all_land() {
        // On the real disk: each write syncs its own file and directories, never the whole file
        // system, so this stays quick even beside a build's gigabytes of dirty pages.
        let dir = tempfile::tempdir().unwrap();
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

    #[test]
    fn a_write_syncs_every_directory_up_to_the_store_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("recordings");
        let path = root.join("org-1/session-a/00000000.jsonl.zst");
        let written = write_new(&root, path.clone(), b"segment").unwrap();
        assert_eq!(
            written.dirs,
            vec![
                root.join("org-1/session-a"),
                root.join("org-1"),
                root.clone()
            ]
        );
        assert_eq!(fs::read(&path).unwrap(), b"segment");
        // The temporary name is gone; only the segment is left.
        let names: Vec<_> = fs::read_dir(root.join("org-1/session-a"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("00000000.jsonl.zst")]);
        let outcome = Outcome::default();
        flush(vec![Pending {
            file: written.file,
            path: written.path,
            dirs: written.dirs,
            outcome: outcome.clone(),
        }]);
        assert_eq!(outcome.get(), None, "the flush succeeded");
    }
}
