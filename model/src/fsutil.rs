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
/// complete new file is visible, never a partial one.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".grim-tmp-")
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

    #[test]
    fn missing_dir_names_path() {
        let e = write_atomic(Path::new("/nonexistent-grim-dir/x.bin"), b"x").unwrap_err();
        assert!(e.to_string().contains("/nonexistent-grim-dir/x.bin"), "{e}");
    }
}
