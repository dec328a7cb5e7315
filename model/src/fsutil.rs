//! Atomic file writes.
//!
//! Models, weights and LR files are consumed by later build steps; a crash or
//! full disk mid-write must never leave a truncated file that looks valid, so
//! every writer goes through a temporary file in the same directory (same
//! filesystem, so the rename is atomic) and renames it into place.

use std::io::Write;
use std::path::Path;

use crate::error::ModelError;

/// Writes `bytes` to `path` atomically: either the old file (or none) or the
/// complete new file is visible, never a partial one. The file gets the
/// permissions any new file gets (0666 less the umask), not the owner-only
/// ones of a temporary file: it is a build product others read.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".grim-tmp-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder
        .tempfile_in(dir)
        .map_err(|e| ModelError::io(path, e))?;
    tmp.write_all(bytes).map_err(|e| ModelError::io(path, e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| ModelError::io(path, e))?;
    tmp.persist(path)
        .map_err(|e| ModelError::io(path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.bin");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two!").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two!");
        // Only the target remains: no temporaries left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn new_files_follow_the_umask_not_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.bin");
        write_atomic(&p, b"x").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        // Whatever the umask, the file is not the temporary's 0600 unless the
        // umask itself removes every group and other bit.
        let umask = process_umask();
        assert_eq!(mode, 0o666 & !umask, "mode {mode:o}, umask {umask:o}");
    }

    /// The process umask, read from /proc (no libc call needed).
    #[cfg(unix)]
    fn process_umask() -> u32 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Umask:"))
                    .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            })
            .unwrap_or(0o022)
    }

    #[test]
    fn missing_dir_names_path() {
        let e = write_atomic(Path::new("/nonexistent-grim-dir/x.bin"), b"x").unwrap_err();
        assert!(e.to_string().contains("/nonexistent-grim-dir/x.bin"), "{e}");
    }
}
