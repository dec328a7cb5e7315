//! `cargo xtask digits`: scikit-learn's digits exported as `.npz` splits
//! (`xtask/digits/export.py`) into `target/digits`, for `grimc prune`'s
//! examples, tests (which find them through `GRIM_DIGITS_DIR`) and
//! benchmark.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{anyhow, bail, Result};

use crate::{heading, repo_root, run, target_dir};

/// Exports the splits if they are missing; returns their directory.
pub fn ensure() -> Result<PathBuf> {
    let dir = target_dir().join("digits");
    if dir.join("test-rows.npz").exists() {
        return Ok(dir);
    }
    heading("digits: export scikit-learn's digits");
    let python = crate::conformance::venv_python()?;
    crate::venv::pip_install(&python, "scikit-learn").map_err(|e| anyhow!("digits: {e}"))?;
    run(
        "digits (export.py)",
        Command::new(&python)
            .arg(repo_root().join("xtask/digits/export.py"))
            .arg(&dir),
    )?;
    Ok(dir)
}

/// The command.
pub fn command(args: &[&str]) -> Result<()> {
    if !args.is_empty() {
        bail!("digits: unknown arguments {args:?} (usage: cargo xtask digits)");
    }
    let dir = ensure()?;
    println!("digits: {}", dir.display());
    Ok(())
}
