//! The private token directory (SPEC §5 steps 2 and 7): 0700, files 0600 written atomically with
//! no trailing newline, removed on drop. On tmpfs when one is writable, so tokens never reach disk.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rand::Rng;
use rand::distr::Alphanumeric;

use crate::RuntimeError;

/// Removed, with everything in it, when dropped.
#[derive(Debug)]
pub struct TokenDir {
    path: PathBuf,
}

/// Where the directory may go, best first: `$XDG_RUNTIME_DIR` and `/dev/shm` are tmpfs on
/// Linux; the system temp directory is the fallback.
fn parents() -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    all.push(PathBuf::from("/dev/shm"));
    all.push(std::env::temp_dir());
    all
}

fn random(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

impl TokenDir {
    /// A fresh directory only this user can enter.
    pub fn create() -> Result<TokenDir, RuntimeError> {
        let mut last = None;
        for parent in parents() {
            match TokenDir::create_in(&parent) {
                Ok(dir) => return Ok(dir),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| RuntimeError::Files {
            path: std::env::temp_dir(),
            detail: "no directory to hold token files".into(),
        }))
    }

    pub fn create_in(parent: &Path) -> Result<TokenDir, RuntimeError> {
        TokenDir::create_at(&parent.join(format!("keyward-run-{}", random(16))))
    }

    /// The directory at `path`, which must not exist yet (so nothing of another owner is reused).
    pub fn create_at(path: &Path) -> Result<TokenDir, RuntimeError> {
        let path = path.to_owned();
        DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| RuntimeError::Files {
                path: path.clone(),
                detail: format!("cannot create the private token directory: {e}"),
            })?;
        Ok(TokenDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to `name` atomically (a 0600 temp file renamed over it), exactly as
    /// given: the SDKs read token files raw, so no newline is added.
    pub fn write(&self, name: &str, contents: &[u8]) -> Result<PathBuf, RuntimeError> {
        let target = self.path.join(name);
        let temp = self.path.join(format!(".{name}.{}", random(8)));
        let fail = |detail: String| RuntimeError::Files {
            path: target.clone(),
            detail,
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(|e| fail(format!("cannot create {}: {e}", temp.display())))?;
        let written = file.write_all(contents).and_then(|()| file.sync_all());
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(fail(format!("cannot write: {e}")));
        }
        fs::rename(&temp, &target).map_err(|e| {
            let _ = fs::remove_file(&temp);
            fail(format!("cannot move the new file into place: {e}"))
        })?;
        Ok(target)
    }
}

impl Drop for TokenDir {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove the token directory");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn files_are_private_raw_and_replaced_atomically_and_the_directory_goes_on_drop() {
        let parent = tempfile::tempdir().unwrap();
        let dir = TokenDir::create_in(parent.path()).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir.path()), 0o700);
        let path = dir.write("token.jwt", b"eyJ.first").unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(
            fs::read(&path).unwrap(),
            b"eyJ.first",
            "no trailing newline"
        );
        dir.write("token.jwt", b"eyJ.second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"eyJ.second");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["token.jwt"], "no temp file is left behind");
        let kept = dir.path().to_owned();
        drop(dir);
        assert!(!kept.exists());
    }
}
