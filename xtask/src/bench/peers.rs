//! Peers (Python): the venv under target/bench/ with the peer packages, and
//! what `xtask/bench/peers.py` needs to run in it.

use super::{IMPLS, PEER_PACKAGES};
use crate::venv;
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

/// Which peers a failed package takes down.
fn peers_of_package(package: &str) -> &'static [&'static str] {
    match package {
        "numpy" => &["numpy-openblas", "onnxruntime", "scipy-csr", "mkl-csr"],
        "scipy" => &["scipy-csr", "mkl-csr"],
        "onnx" | "onnxruntime" => &["onnxruntime"],
        "mkl" | "sparse-dot-mkl" => &["mkl-csr"],
        _ => &[],
    }
}

/// Creates target/bench/venv and installs the peer packages (only what is missing).
/// Returns the venv's python and, per peer, why it is unavailable.
pub(super) fn python_env(bench_dir: &Path) -> (Option<PathBuf>, BTreeMap<String, String>) {
    let mut unavailable = BTreeMap::new();
    let python = match venv::create("bench", &bench_dir.join("venv")) {
        Ok(python) => python,
        Err(error) => {
            for (peer, _) in IMPLS.iter().filter(|(k, _)| !k.starts_with("grim")) {
                unavailable.insert(
                    peer.to_string(),
                    format!("cannot create the venv: {error:#}"),
                );
            }
            return (None, unavailable);
        }
    };
    for package in PEER_PACKAGES {
        if let Err(failure) = venv::pip_install(&python, package) {
            println!("{failure}");
            for peer in peers_of_package(package) {
                unavailable
                    .entry(peer.to_string())
                    .or_insert_with(|| failure.clone());
            }
        }
    }
    (Some(python), unavailable)
}

/// The wheel's libmkl_rt.so.N (what sparse_dot_mkl must load).
pub(super) fn mkl_rt(venv: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(venv.join("lib"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libmkl_rt.so."))
        })
        .collect();
    found.sort();
    found.pop()
}
