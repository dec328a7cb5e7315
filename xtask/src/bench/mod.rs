//! `cargo xtask bench kernels`: grim's BCR kernels against dense and CSR peers
//! on the layer shapes of `xtask/bench/layers.json` (a copy of
//! shared/bench/layers.json, so that a clone of this repository has it).
//!
//! For every layer x sparsity x block size it writes one single-Gemm ONNX model
//! (Transpose, Gemm with transB = 1 and no bias, Transpose: Y = W X with X
//! of shape [K, N]) whose W is `random_bcr_weight` (each
//! block's kept rows and columns drawn independently from a fixed seed), plus
//! one dense model per layer, and times them with `grimc bench`. Conv layers
//! are also timed as one ONNX Conv on the same W (dense and 8x), so the
//! report shows what the im2col costs; only grim runs those. The peers
//! (numpy/OpenBLAS, onnxruntime, scipy CSR, MKL CSR) run in one Python process
//! (`xtask/bench/peers.py`, in a venv under target/bench/) on the very same W,
//! read from the `.npy` files written here. The report goes to
//! docs/benchmarks/kernels.{md,json,png}; a `--quick` run (smoke test) writes
//! it to target/bench/quick/ instead, so it never replaces the real figures.
//!
//! `xtask/bench/user-layers.json` adds layers as users have them: an
//! `nn.Linear`-style Gemm pruned by mask multiplication (pruned negatives are
//! `-0.0`), timed with grimc's defaults (`grim-auto`: the cost model picks the
//! kernel and block) beside the forced BCR kernel and the dense one. Every
//! other grim row forces its kernel (`--kernel dense`, or `--kernel bcr
//! --block RxC`), so the kernel tables do not move when the cost model does.

mod cases;
mod layers;
mod machine;
mod measure;
mod models;
mod peers;
mod pruning;
mod report;
mod rnns;
mod run;

use anyhow::{bail, Context as _, Result};
use grim_model::BlockSize;
use run::{kernels, mca_command};

pub const USAGE: &str = "usage: cargo xtask bench kernels [--quick] [--runs R] [--threads 1,2]
       cargo xtask bench mca      (llvm-mca figures of the aarch64 inner loops -> docs/benchmarks/mca.md)
       cargo xtask bench models [--quick] [--threads 1,2] [--runs R] | --report-only
                                  (the zoo at 224x224 against onnxruntime, tract and MNN -> docs/benchmarks/models.md)

  --quick        smoke test: only 8x sparsity, block 8x16, 1 thread, few runs; report in target/bench/quick/
  --runs R       timed runs per measurement (default: adaptive, about 0.5 s per measurement)
  --threads LIST comma-separated thread counts (default 1,2; --quick: 1)";

/// The Python packages of the peers, installed into target/bench/venv.
const PEER_PACKAGES: &[&str] = &[
    "numpy",
    "scipy",
    "threadpoolctl",
    "onnx",
    "onnxruntime",
    "mkl",
    "sparse-dot-mkl",
];

/// The implementations compared, in table order: (key, label).
const IMPLS: &[(&str, &str)] = &[
    ("grim-bcr", "grim BCR"),
    ("grim-auto", "grim, default flags (the cost model's choice)"),
    (
        "grim-dense",
        "grim dense (dense kernel: row panels, packed activations)",
    ),
    ("numpy-openblas", "numpy/OpenBLAS sgemm (dense)"),
    ("onnxruntime", "onnxruntime MatMul (dense)"),
    ("scipy-csr", "scipy CSR x dense (single-threaded)"),
    ("mkl-csr", "Intel MKL CSR x dense (sparse_dot_mkl)"),
];
const DENSE_PEERS: &[&str] = &["numpy-openblas", "onnxruntime"];
/// The block grim packs the dense model with.
const DENSE_BLOCK: BlockSize = BlockSize { rows: 8, cols: 16 };
const SEED_NOTE: &str = "Weights: `random_bcr_weight`, each block's kept rows and columns drawn independently from a fixed seed (per-case seeds in kernels.json).";

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub quick: bool,
    pub runs: Option<usize>,
    pub threads: Vec<usize>,
}

pub fn parse_options(args: &[&str]) -> Result<Options> {
    let (mut quick, mut runs, mut threads) = (false, None, None);
    let mut it = args.iter();
    while let Some(&arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f, Some(v)),
            None => (arg, None),
        };
        let mut value = || -> Result<&str> {
            inline
                .or_else(|| it.next().copied())
                .with_context(|| format!("{flag} needs a value\n\n{USAGE}"))
        };
        match flag {
            "--quick" if inline.is_none() => quick = true,
            "--runs" => {
                let v = value()?;
                let r: usize = v
                    .parse()
                    .ok()
                    .filter(|&r| r >= 1)
                    .with_context(|| format!("--runs must be a positive integer, got '{v}'"))?;
                runs = Some(r);
            }
            "--threads" => {
                let v = value()?;
                let list: Vec<usize> = v
                    .split(',')
                    .map(|t| {
                        t.trim()
                            .parse()
                            .ok()
                            .filter(|&t: &usize| (1..=256).contains(&t))
                    })
                    .collect::<Option<_>>()
                    .with_context(|| {
                        format!(
                            "--threads must be a comma-separated list of thread counts, got '{v}'"
                        )
                    })?;
                threads = Some(list);
            }
            _ => bail!("bench kernels: unknown argument `{arg}`\n\n{USAGE}"),
        }
    }
    let mut threads = threads.unwrap_or(if quick { vec![1] } else { vec![1, 2] });
    threads.dedup();
    Ok(Options {
        quick,
        runs,
        threads,
    })
}

/// `cargo xtask bench ...`
pub fn bench(args: &[&str]) -> Result<()> {
    match args {
        ["kernels", rest @ ..] => kernels(&parse_options(rest)?, args),
        ["mca"] => mca_command(),
        ["models", rest @ ..] => models::models(rest),
        ["rnns", rest @ ..] => rnns::rnns(rest),
        ["pruning", rest @ ..] => pruning::pruning(rest),
        [] => bail!("bench: name the benchmark\n\n{USAGE}"),
        [other, ..] => bail!("bench: unknown benchmark `{other}`\n\n{USAGE}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_options() {
        assert_eq!(
            parse_options(&[]).unwrap(),
            Options {
                quick: false,
                runs: None,
                threads: vec![1, 2]
            }
        );
        assert_eq!(
            parse_options(&["--quick"]).unwrap(),
            Options {
                quick: true,
                runs: None,
                threads: vec![1]
            }
        );
        assert_eq!(
            parse_options(&["--runs", "7", "--threads=2"]).unwrap(),
            Options {
                quick: false,
                runs: Some(7),
                threads: vec![2]
            }
        );
        assert!(parse_options(&["--runs", "0"]).is_err());
        assert!(parse_options(&["--threads", "1,x"]).is_err());
        assert!(parse_options(&["--bogus"]).is_err());
        assert!(parse_options(&["--runs"]).is_err());
    }
}
