//! Python virtual environments under target/: created once, packages
//! installed with pip only when missing (pip's own check), so every xtask
//! step that needs Python stays idempotent.

use crate::{announce, run};
use anyhow::Result;
use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// Creates the venv at `dir` if it does not exist; returns its python.
pub fn create(step: &str, dir: &Path) -> Result<PathBuf> {
    let python = dir.join("bin").join("python");
    if !python.exists() {
        run(
            &format!("{step} (python venv)"),
            Command::new("python3").arg("-m").arg("venv").arg(dir),
        )?;
    }
    Ok(python)
}

/// `pip install package` in the venv of `python`; the error says why pip failed.
pub fn pip_install(python: &Path, package: &str) -> Result<(), String> {
    let mut install = Command::new(python);
    install.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--quiet",
        package,
    ]);
    announce(&install);
    match install.output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "pip install {package} failed ({}): {}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr), 6)
        )),
        Err(error) => Err(format!("cannot run pip: {error}")),
    }
}

/// The last `lines` non-empty lines of `text`, joined by ` | `.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join(" | ")
}
