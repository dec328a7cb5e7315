//! Output files: written whole or not at all.

/// Writes `bytes` to `path` through a temporary file in the same directory
/// and a rename, so a failure never leaves a half-written file behind
/// (`grim_model::write_atomic`, the one writer every tool shares). The
/// error names the path.
pub fn write_atomically(
    path: &std::path::Path,
    bytes: &[u8],
) -> Result<(), grim_model::ModelError> {
    grim_model::write_atomic(path, bytes)
}
