//! Secrets Ferry generates for itself on first start (the internal token, the API-key pepper,
//! the root key), kept in files only their owner can read.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use secrecy::SecretString;

#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("creating {path}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("{path} is empty")]
    Empty { path: PathBuf },
}

/// Reads the secret in `path`, or creates the file (mode 0600) holding `generate()`'s value.
/// Refuses a file that group or others can read.
pub fn load_or_create_secret_file(
    path: &Path,
    generate: impl FnOnce() -> SecretString,
) -> Result<SecretString, SecretFileError> {
    use secrecy::ExposeSecret;
    match std::fs::metadata(path) {
        Ok(meta) => read_secret_file(path, &meta),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = generate();
            let create = |source| SecretFileError::Create {
                path: path.to_owned(),
                source,
            };
            // create_new: two processes starting at once must not both write different secrets.
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
            {
                Ok(mut f) => {
                    f.write_all(secret.expose_secret().as_bytes())
                        .map_err(create)?;
                    f.sync_all().map_err(create)?;
                    Ok(secret)
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    // Another process created it first: use theirs.
                    let meta = std::fs::metadata(path).map_err(|source| SecretFileError::Read {
                        path: path.to_owned(),
                        source,
                    })?;
                    read_secret_file(path, &meta)
                }
                Err(e) => Err(create(e)),
            }
        }
        Err(source) => Err(SecretFileError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Reads an existing secret file, refusing one that group or others can read.
pub(crate) fn read_secret_file_checked(path: &Path) -> Result<SecretString, SecretFileError> {
    let meta = std::fs::metadata(path).map_err(|source| SecretFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    read_secret_file(path, &meta)
}

fn read_secret_file(
    path: &Path,
    meta: &std::fs::Metadata,
) -> Result<SecretString, SecretFileError> {
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretFileError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| SecretFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let value = text.trim().to_owned();
    if value.is_empty() {
        return Err(SecretFileError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(SecretString::from(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn creates_once_with_mode_0600_then_reads_back() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("token");
        let first = load_or_create_secret_file(&path, || SecretString::from("s3cret"));
        assert_eq!(
            first.map(|s| s.expose_secret().to_owned()).ok().as_deref(),
            Some("s3cret")
        );
        let mode = std::fs::metadata(&path)
            .map(|m| m.permissions().mode() & 0o777)
            .ok();
        assert_eq!(mode, Some(0o600));
        let again = load_or_create_secret_file(&path, || SecretString::from("other"));
        assert_eq!(
            again.map(|s| s.expose_secret().to_owned()).ok().as_deref(),
            Some("s3cret")
        );
    }

    #[test]
    fn refuses_a_file_others_can_read() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("token");
        std::fs::write(&path, "x").unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("{e}"));
        let err = load_or_create_secret_file(&path, || SecretString::from("y"));
        assert!(matches!(
            err,
            Err(SecretFileError::TooOpen { mode: 0o644, .. })
        ));
    }
}
