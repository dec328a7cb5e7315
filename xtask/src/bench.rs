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

use super::{
    announce, build_grimc, capture, heading, lcg_values, rel, repo_root, run, run_streaming,
    runtime, target_dir,
};
use anyhow::{bail, Context as _, Result};
use grim_model::{
    conv_layer, kn_gemm, linear_layer, mask_multiplied_bcr_weight, random_bcr_weight, save_onnx,
    write_npy, BlockSize, Graph, Tensor,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

pub const USAGE: &str = "usage: cargo xtask bench kernels [--quick] [--runs R] [--threads 1,2]
       cargo xtask bench mca      (llvm-mca figures of the aarch64 inner loops -> docs/benchmarks/mca.md)

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
        [] => bail!("bench: name the benchmark\n\n{USAGE}"),
        [other, ..] => bail!("bench: unknown benchmark `{other}`\n\n{USAGE}"),
    }
}

// ---------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
struct LayersFile {
    layers: Vec<Layer>,
    sparsity: Vec<Sparsity>,
    block_sizes: Vec<[usize; 2]>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawLayer")]
struct Layer {
    name: String,
    kind: String,
    m: usize,
    k: usize,
    n: usize,
    /// The conv parameters of a layer of kind "conv" (checked against M, K, N).
    conv: Option<ConvShape>,
    /// How a layer of user-layers.json is pruned; `None` for layers.json's.
    user: Option<UserPruning>,
}

/// A user layer's pruning: its model is the user-style `nn.Linear` export
/// pruned by mask multiplication at `sparsity` with `block`, timed with
/// grimc's defaults (`grim-auto`) beside the forced BCR kernel at `block`.
#[derive(Debug, Clone, PartialEq)]
struct UserPruning {
    /// Index into [`LayersFile::sparsity`].
    sparsity: usize,
    block: BlockSize,
}

/// user-layers.json: layers spelled as in layers.json plus their pruning.
#[derive(Debug, Clone, Deserialize)]
struct UserLayersFile {
    layers: Vec<UserLayer>,
}

#[derive(Debug, Clone, Deserialize)]
struct UserLayer {
    #[serde(flatten)]
    layer: Layer,
    sparsity: String,
    block: [usize; 2],
}

/// A conv layer (group 1, dilation 1, square stride and padding) whose GEMM
/// view is M = cout, K = cin * kh * kw, N = ho * wo.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ConvShape {
    cin: usize,
    cout: usize,
    kh: usize,
    kw: usize,
    h: usize,
    w: usize,
    stride: usize,
    pad: usize,
}

impl ConvShape {
    /// Output height and width; `None` when the kernel does not fit.
    fn output(&self) -> Option<(usize, usize)> {
        let out = |size: usize, kernel: usize| {
            (size + 2 * self.pad)
                .checked_sub(kernel)
                .filter(|_| self.stride > 0 && kernel > 0)
                .map(|d| d / self.stride + 1)
        };
        out(self.h, self.kh).zip(out(self.w, self.kw))
    }

    /// 1x1, stride 1, no padding: the image is the patch matrix.
    fn pointwise(&self) -> bool {
        (self.kh, self.kw, self.stride, self.pad) == (1, 1, 1, 0)
    }

    /// Whether grim's BCR kernels read this conv's image in place (stride 1
    /// and output rows of at least 48, the compiler's rule).
    fn bcr_in_place(&self) -> bool {
        self.stride == 1 && self.output().is_some_and(|(_, wo)| wo >= 48)
    }
}

/// A layer as layers.json spells it.
#[derive(Debug, Clone, Deserialize)]
struct RawLayer {
    name: String,
    kind: String,
    #[serde(rename = "M")]
    m: usize,
    #[serde(rename = "K")]
    k: usize,
    #[serde(rename = "N")]
    n: usize,
    cin: Option<usize>,
    cout: Option<usize>,
    kh: Option<usize>,
    kw: Option<usize>,
    h: Option<usize>,
    w: Option<usize>,
    stride: Option<usize>,
    pad: Option<usize>,
}

impl TryFrom<RawLayer> for Layer {
    type Error = String;

    fn try_from(raw: RawLayer) -> std::result::Result<Self, String> {
        let conv = if raw.kind == "conv" {
            let field = |name: &str, value: Option<usize>| {
                value.ok_or_else(|| format!("conv layer {} has no `{name}`", raw.name))
            };
            let conv = ConvShape {
                cin: field("cin", raw.cin)?,
                cout: field("cout", raw.cout)?,
                kh: field("kh", raw.kh)?,
                kw: field("kw", raw.kw)?,
                h: field("h", raw.h)?,
                w: field("w", raw.w)?,
                stride: field("stride", raw.stride)?,
                pad: field("pad", raw.pad)?,
            };
            let (ho, wo) = conv.output().ok_or_else(|| {
                format!(
                    "conv layer {}: a {}x{} kernel with stride {} and pad {} does not fit a {}x{} image",
                    raw.name, conv.kh, conv.kw, conv.stride, conv.pad, conv.h, conv.w
                )
            })?;
            let gemm = (conv.cout, conv.cin * conv.kh * conv.kw, ho * wo);
            if gemm != (raw.m, raw.k, raw.n) {
                return Err(format!(
                    "conv layer {}: its GEMM view M x K x N = {} x {} x {} (cout, cin*kh*kw, Ho*Wo = {ho}*{wo}) disagrees with the listed {} x {} x {}",
                    raw.name, gemm.0, gemm.1, gemm.2, raw.m, raw.k, raw.n
                ));
            }
            Some(conv)
        } else {
            None
        };
        Ok(Layer {
            name: raw.name,
            kind: raw.kind,
            m: raw.m,
            k: raw.k,
            n: raw.n,
            conv,
            user: None,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
struct Sparsity {
    name: String,
    row_keep: f64,
    col_keep: f64,
}

fn layers_file() -> PathBuf {
    repo_root().join("xtask").join("bench").join("layers.json")
}

fn user_layers_file() -> PathBuf {
    repo_root()
        .join("xtask")
        .join("bench")
        .join("user-layers.json")
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("bench: cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("bench: {} is not a valid layers file", path.display()))
}

/// layers.json's shapes followed by user-layers.json's (flagged `user`).
fn load_layers() -> Result<LayersFile> {
    let mut file: LayersFile = read_json(&layers_file())?;
    let users: UserLayersFile = read_json(&user_layers_file())?;
    for u in users.layers {
        let sparsity = file
            .sparsity
            .iter()
            .position(|s| s.name == u.sparsity)
            .with_context(|| {
                format!(
                    "bench: user layer {} names sparsity `{}`, which layers.json does not list",
                    u.layer.name, u.sparsity
                )
            })?;
        let block = BlockSize::new(u.block[0], u.block[1])
            .with_context(|| format!("bench: user layer {}: bad block", u.layer.name))?;
        file.layers.push(Layer {
            user: Some(UserPruning { sparsity, block }),
            ..u.layer
        });
    }
    Ok(file)
}

/// One grim model to time.
#[derive(Debug, Clone)]
struct Case {
    id: String,
    layer: usize,
    /// Index into `sparsity`; `None` for the dense model.
    sparsity: Option<usize>,
    block: BlockSize,
    seed: u64,
    model: PathBuf,
    /// W in its GEMM view, M x K (what the peers multiply).
    weight: PathBuf,
    nonzeros: usize,
    /// The model is the layer as one ONNX Conv on [1, cin, h, w] (im2col
    /// included) instead of the GEMM view; grim only, the peers skip it.
    conv: bool,
    /// Timed with grimc's defaults (no `--block`, no `--kernel`): the cost
    /// model chooses, as for a user; grim only, the peers time the forced case
    /// of the same model.
    auto: bool,
}

impl Case {
    fn implementation(&self) -> &'static str {
        if self.auto {
            return "grim-auto";
        }
        match (self.conv, self.sparsity.is_some()) {
            (false, true) => "grim-bcr",
            (false, false) => "grim-dense",
            (true, true) => "grim-conv-bcr",
            (true, false) => "grim-conv-dense",
        }
    }

    /// A GEMM-view case at 8x, block 8x16 (BCRC index bytes, llvm-mca).
    fn is_gemm_8x_8x16(&self, file: &LayersFile) -> bool {
        !self.conv
            && !self.auto
            && self.sparsity.is_some_and(|s| file.sparsity[s].name == "8x")
            && self.block == (BlockSize { rows: 8, cols: 16 })
    }
}

fn file_id(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// `y = W x` with x of shape [K, N] and y of shape [M, N], the layout of
/// layers.json ("W is M x K, X is K x N"): Transpose, Gemm (transB = 1, no
/// bias), Transpose. grimc cancels both transposes against the ones its
/// gemm lowering needs, so grim's figure is the sparse kernel reading X in
/// place, which is what the peers (W @ X) are timed on too.
fn gemm_graph(name: &str, layer: &Layer, w: Vec<f32>) -> Result<Graph> {
    Ok(kn_gemm(name, layer.m, layer.k, layer.n, w)?)
}

fn nonzeros(w: &[f32]) -> usize {
    w.iter().filter(|&&v| v != 0.0).count()
}

/// Writes the GEMM-view case of `w` (its model and `.W.npy`) and, for a conv
/// layer at 8x or dense, the same W as an ONNX Conv model.
fn write_cases(
    layer: &Layer,
    case: Case,
    w: Vec<f32>,
    with_conv: bool,
    dir: &Path,
) -> Result<Vec<Case>> {
    let save = |graph: Graph, model: &Path| {
        save_onnx(&graph, model).with_context(|| format!("bench: cannot write {}", model.display()))
    };
    write_npy(
        &case.weight,
        &Tensor::new(vec![layer.m, layer.k], w.clone())?,
    )
    .with_context(|| format!("bench: cannot write {}", case.weight.display()))?;
    save(gemm_graph(&case.id, layer, w.clone())?, &case.model)?;
    let mut cases = vec![case.clone()];
    if let (Some(c), true) = (layer.conv, with_conv) {
        // The weight [cout, cin, kh, kw] flattens row-major to the GEMM view's W [M, K].
        let id = format!("{}__conv", case.id);
        let model = dir.join(format!("{id}.onnx"));
        let graph = conv_layer(
            1,
            c.cin,
            c.h,
            c.w,
            c.cout,
            [c.kh, c.kw],
            [c.stride; 2],
            [c.pad; 4],
            [1, 1],
            false,
            w,
        )?;
        save(graph, &model)?;
        cases.push(Case {
            id,
            model,
            conv: true,
            ..case
        });
    }
    Ok(cases)
}

const SEED_BASE: u64 = 0x6772_696d_0000;

fn make_cases(file: &LayersFile, options: &Options, dir: &Path) -> Result<Vec<Case>> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("bench: cannot create {}", dir.display()))?;
    let mut cases = Vec::new();
    for (li, layer) in file.layers.iter().enumerate() {
        if let Some(user) = &layer.user {
            cases.extend(user_cases(file, li, layer, user, dir)?);
            continue;
        }
        // The dense model: random values in [-1, 1), none zero.
        let seed = SEED_BASE + 1000 * li as u64 + 999;
        let w: Vec<f32> = lcg_values(seed, layer.m * layer.k)
            .into_iter()
            .map(|v| if v == 0.0 { 0.5 } else { v })
            .collect();
        let id = format!("{}__dense", file_id(&layer.name));
        let case = Case {
            model: dir.join(format!("{id}.onnx")),
            weight: dir.join(format!("{id}.W.npy")),
            id,
            layer: li,
            sparsity: None,
            block: DENSE_BLOCK,
            seed,
            nonzeros: nonzeros(&w),
            conv: false,
            auto: false,
        };
        cases.extend(write_cases(layer, case, w, true, dir)?);
        for (si, sparsity) in file.sparsity.iter().enumerate() {
            if options.quick && sparsity.name != "8x" {
                continue;
            }
            for (bi, &[rows, cols]) in file.block_sizes.iter().enumerate() {
                let block = BlockSize::new(rows, cols)?;
                if options.quick && block != (BlockSize { rows: 8, cols: 16 }) {
                    continue;
                }
                if rows > layer.m || cols > layer.k {
                    println!(
                        "skip {} {} block {block}: larger than the {}x{} matrix",
                        layer.name, sparsity.name, layer.m, layer.k
                    );
                    continue;
                }
                let seed = SEED_BASE + 1000 * li as u64 + 10 * si as u64 + bi as u64;
                let w = random_bcr_weight(
                    layer.m,
                    layer.k,
                    block,
                    sparsity.row_keep,
                    sparsity.col_keep,
                    seed,
                );
                let id = format!("{}__{}__b{block}", file_id(&layer.name), sparsity.name);
                let case = Case {
                    model: dir.join(format!("{id}.onnx")),
                    weight: dir.join(format!("{id}.W.npy")),
                    id,
                    layer: li,
                    sparsity: Some(si),
                    block,
                    seed,
                    nonzeros: nonzeros(&w),
                    conv: false,
                    auto: false,
                };
                cases.extend(write_cases(layer, case, w, sparsity.name == "8x", dir)?);
            }
        }
    }
    Ok(cases)
}

/// A user layer's cases: its dense model (`--kernel dense`) and its
/// mask-multiplied pruned model, timed twice: with grimc's defaults
/// (`grim-auto`) and with BCR forced at the pruning's block (`grim-bcr`).
fn user_cases(
    file: &LayersFile,
    li: usize,
    layer: &Layer,
    user: &UserPruning,
    dir: &Path,
) -> Result<Vec<Case>> {
    let sparsity = &file.sparsity[user.sparsity];
    let write = |id: &str, w: Vec<f32>| -> Result<(PathBuf, PathBuf)> {
        let model = dir.join(format!("{id}.onnx"));
        let weight = dir.join(format!("{id}.W.npy"));
        write_npy(&weight, &Tensor::new(vec![layer.m, layer.k], w.clone())?)
            .with_context(|| format!("bench: cannot write {}", weight.display()))?;
        let graph = linear_layer(id, layer.m, layer.k, layer.n, w)?;
        save_onnx(&graph, &model)
            .with_context(|| format!("bench: cannot write {}", model.display()))?;
        Ok((model, weight))
    };
    let seed = SEED_BASE + 1000 * li as u64 + 999;
    let dense: Vec<f32> = lcg_values(seed, layer.m * layer.k)
        .into_iter()
        .map(|v| if v == 0.0 { 0.5 } else { v })
        .collect();
    let id = format!("{}__dense", file_id(&layer.name));
    let (model, weight) = write(&id, dense.clone())?;
    let dense_case = Case {
        id,
        layer: li,
        sparsity: None,
        block: DENSE_BLOCK,
        seed,
        model,
        weight,
        nonzeros: nonzeros(&dense),
        conv: false,
        auto: false,
    };
    let seed = SEED_BASE + 1000 * li as u64 + 10 * user.sparsity as u64;
    let w = mask_multiplied_bcr_weight(
        layer.m,
        layer.k,
        user.block,
        sparsity.row_keep,
        sparsity.col_keep,
        seed,
    );
    let id = format!(
        "{}__{}__b{}__masked",
        file_id(&layer.name),
        sparsity.name,
        user.block
    );
    let (model, weight) = write(&id, w.clone())?;
    let forced = Case {
        id: id.clone(),
        layer: li,
        sparsity: Some(user.sparsity),
        block: user.block,
        seed,
        model,
        weight,
        nonzeros: nonzeros(&w),
        conv: false,
        auto: false,
    };
    let auto = Case {
        id: format!("{id}__auto"),
        auto: true,
        ..forced.clone()
    };
    Ok(vec![dense_case, auto, forced])
}

// ---------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------

/// One timed implementation on one case and thread count.
#[derive(Debug, Clone, serde::Serialize)]
struct Row {
    implementation: String,
    layer: String,
    sparsity: Option<String>,
    block: Option<String>,
    threads: usize,
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
    runs: usize,
    /// Nonzero weights of the W this implementation multiplies.
    nonzeros: usize,
    /// 2 * nonzeros * N / median.
    useful_gflops: f64,
    /// 2 * M * K * N / median.
    dense_equiv_gflops: f64,
    seed: Option<u64>,
}

struct Budget {
    seconds: f64,
    min_runs: usize,
    max_runs: usize,
}

fn runs_for(budget: &Budget, ms: f64) -> usize {
    ((budget.seconds * 1e3 / ms.max(1e-6)).ceil() as usize).clamp(budget.min_runs, budget.max_runs)
}

struct GrimTiming {
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
    runs: usize,
    json: Value,
}

/// The kernel flags `grimc` gets for `case`: none for `grim-auto`, else
/// the case's kernel forced (and its block for BCR), so no row depends on
/// the cost model's choice unless it says so.
fn kernel_flags(case: &Case) -> Vec<String> {
    match (case.auto, case.sparsity) {
        (true, _) => Vec::new(),
        (false, None) => vec!["--kernel".into(), "dense".into()],
        (false, Some(_)) => vec![
            "--kernel".into(),
            "bcr".into(),
            "--block".into(),
            case.block.to_string(),
        ],
    }
}

fn grimc_bench(grimc: &Path, case: &Case, threads: usize, runs: usize) -> Result<GrimTiming> {
    let mut command = Command::new(grimc);
    command
        .arg("bench")
        .arg(&case.model)
        .args(kernel_flags(case));
    command.args([
        "--threads",
        &threads.to_string(),
        "--runs",
        &runs.to_string(),
        "--json",
    ]);
    let stdout = capture(&format!("bench (grimc bench {})", case.id), &mut command)?;
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .context("grimc bench printed no JSON")?;
    let json: Value = serde_json::from_str(line)
        .with_context(|| format!("grimc bench printed invalid JSON: {line}"))?;
    let number = |name: &str| {
        json[name]
            .as_f64()
            .with_context(|| format!("grimc bench JSON has no number `{name}`: {line}"))
    };
    Ok(GrimTiming {
        median_ms: number("median_ms")?,
        min_ms: number("min_ms")?,
        max_ms: number("max_ms")?,
        runs: number("runs")? as usize,
        json,
    })
}

/// The first layer row of `grimc inspect MODEL --json` with the case's kernel flags.
fn inspect_layer(grimc: &Path, case: &Case) -> Result<Value> {
    let mut command = Command::new(grimc);
    command
        .arg("inspect")
        .arg(&case.model)
        .args(kernel_flags(case))
        .arg("--json");
    let text = capture("bench (grimc inspect)", &mut command)?;
    let report: Value =
        serde_json::from_str(&text).context("grimc inspect printed invalid JSON")?;
    match report["layers"].as_array().and_then(|l| l.first()) {
        Some(row) => Ok(row.clone()),
        None => bail!("grimc inspect printed no layer: {text}"),
    }
}

/// The models llvm-mca reads: each GEMM-view layer at 8x with block 8x16,
/// as `(layer, N, model file)`.
fn mca_models(file: &LayersFile, cases: &[Case]) -> Vec<(String, usize, PathBuf)> {
    cases
        .iter()
        .filter(|c| c.is_gemm_8x_8x16(file))
        .map(|c| {
            (
                file.layers[c.layer].name.clone(),
                file.layers[c.layer].n,
                c.model.clone(),
            )
        })
        .collect()
}

fn gflops(flop_count: f64, ms: f64) -> f64 {
    flop_count / (ms * 1e6)
}

#[allow(clippy::too_many_arguments)]
fn make_row(
    implementation: &str,
    layer: &Layer,
    sparsity: Option<&str>,
    block: Option<String>,
    threads: usize,
    timing: (f64, f64, f64, usize),
    nonzeros: usize,
    seed: Option<u64>,
) -> Row {
    let (median_ms, min_ms, max_ms, runs) = timing;
    Row {
        implementation: implementation.to_string(),
        layer: layer.name.clone(),
        sparsity: sparsity.map(str::to_string),
        block,
        threads,
        median_ms,
        min_ms,
        max_ms,
        runs,
        nonzeros,
        useful_gflops: gflops(2.0 * nonzeros as f64 * layer.n as f64, median_ms),
        dense_equiv_gflops: gflops(2.0 * (layer.m * layer.k * layer.n) as f64, median_ms),
        seed,
    }
}

// ---------------------------------------------------------------------------
// Peers (Python)
// ---------------------------------------------------------------------------

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
fn python_env(bench_dir: &Path) -> (Option<PathBuf>, BTreeMap<String, String>) {
    let mut unavailable = BTreeMap::new();
    let venv = bench_dir.join("venv");
    let python = venv.join("bin").join("python");
    if !python.exists() {
        if let Err(error) = run(
            "bench (python venv)",
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
        ) {
            for (peer, _) in IMPLS.iter().filter(|(k, _)| !k.starts_with("grim")) {
                unavailable.insert(
                    peer.to_string(),
                    format!("cannot create the venv: {error:#}"),
                );
            }
            return (None, unavailable);
        }
    }
    for package in PEER_PACKAGES {
        let mut install = Command::new(&python);
        install.args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
            package,
        ]);
        announce(&install);
        let failure = match install.output() {
            Ok(out) if out.status.success() => None,
            Ok(out) => Some(format!(
                "pip install {package} failed ({}): {}",
                out.status,
                tail(&String::from_utf8_lossy(&out.stderr), 6)
            )),
            Err(error) => Some(format!("cannot run pip: {error}")),
        };
        if let Some(failure) = failure {
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

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join(" | ")
}

/// The wheel's libmkl_rt.so.N (what sparse_dot_mkl must load).
fn mkl_rt(venv: &Path) -> Option<PathBuf> {
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

// ---------------------------------------------------------------------------
// Machine facts
// ---------------------------------------------------------------------------

fn cpuinfo_field(field: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines().find_map(|l| {
        let (key, value) = l.split_once(':')?;
        (key.trim() == field).then(|| value.trim().to_string())
    })
}

fn machine_facts() -> Value {
    let flags = cpuinfo_field("flags").unwrap_or_default();
    let simd: Vec<&str> = flags
        .split_whitespace()
        .filter(|f| {
            [
                "sse4_2",
                "avx",
                "avx2",
                "fma",
                "avx512f",
                "avx512vl",
                "avx512_vnni",
            ]
            .contains(f)
        })
        .collect();
    let processors = std::fs::read_to_string("/proc/cpuinfo")
        .map(|t| t.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(0);
    json!({
        "cpu_model": cpuinfo_field("model name"),
        "cpu_family": cpuinfo_field("cpu family"),
        "cpu_model_number": cpuinfo_field("model"),
        "cpu_mhz": cpuinfo_field("cpu MHz"),
        "simd_flags": simd,
        "logical_cpus": processors,
        "available_parallelism": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).ok(),
    })
}

/// The FMA microbenchmark (xtask/bench/fma_peak.c), per thread count: GFLOP/s.
fn fma_peak(bench_dir: &Path, threads: &[usize]) -> Value {
    let source = repo_root().join("xtask").join("bench").join("fma_peak.c");
    let exe = bench_dir.join("fma_peak");
    let mut compile = Command::new("cc");
    compile
        .args(["-O2", "-march=native", "-pthread"])
        .arg(&source)
        .arg("-o")
        .arg(&exe);
    if let Err(error) = run("bench (compile fma_peak.c)", &mut compile) {
        return json!({ "error": format!("{error:#}") });
    }
    let mut out = Vec::new();
    for &t in threads {
        match capture("bench (fma peak)", Command::new(&exe).arg(t.to_string())) {
            Ok(text) => {
                let g = text
                    .split_whitespace()
                    .find_map(|kv| kv.strip_prefix("gflops="))
                    .and_then(|v| v.parse::<f64>().ok());
                println!("{}", text.trim());
                out.push(json!({ "threads": t, "gflops": g }));
            }
            Err(error) => out.push(json!({ "threads": t, "error": format!("{error:#}") })),
        }
    }
    json!({ "method": "xtask/bench/fma_peak.c (cc -O2 -march=native): 12 independent 256-bit vfmadd231ps chains per thread, best of 3", "results": out })
}

fn git_state() -> Value {
    let head = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(repo_root())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .current_dir(repo_root())
        .output()
        .ok()
        .map(|o| !o.stdout.is_empty());
    json!({ "head": head, "uncommitted_changes": dirty })
}

/// UTC now as `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days, no date crate needed).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

// ---------------------------------------------------------------------------
// The benchmark
// ---------------------------------------------------------------------------

/// `cargo xtask bench mca`: llvm-mca figures of the aarch64 inner loops, at
/// 8x with 8x16 blocks, into docs/benchmarks/mca.{md,json}.
fn mca_command() -> Result<()> {
    let file = load_layers()?;
    runtime()?;
    let grimc = build_grimc("bench mca")?;
    let bench_dir = target_dir().join("bench");
    let quick = Options {
        quick: true,
        runs: None,
        threads: vec![1],
    };
    let cases = make_cases(&file, &quick, &bench_dir.join("mca-models"))?;
    let models = mca_models(&file, &cases);
    heading("bench mca: llvm-mca");
    let figures = crate::mca::analyse(&grimc, &models, &bench_dir.join("mca"))?;
    let markdown = format!(
        "# aarch64 inner loops: static throughput\n\nGenerated by `cargo xtask bench mca` (xtask/src/mca.rs); do not edit by hand. Weights: `random_bcr_weight`, each block's kept rows and columns drawn independently from a fixed seed.\n\n{}",
        crate::mca::markdown(&figures)
    );
    print!("{markdown}");
    let out = repo_root().join("docs").join("benchmarks");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("mca.md"), markdown)?;
    std::fs::write(
        out.join("mca.json"),
        serde_json::to_string_pretty(&crate::mca::to_json(&figures))? + "\n",
    )?;
    println!("wrote docs/benchmarks/mca.md and mca.json");
    Ok(())
}

fn kernels(options: &Options, args: &[&str]) -> Result<()> {
    let started = Instant::now();
    let command_line = format!("cargo xtask bench {}", args.join(" "));
    let file = load_layers()?;
    let bench_dir = target_dir().join("bench");
    let out_dir = if options.quick {
        bench_dir.join("quick")
    } else {
        repo_root().join("docs").join("benchmarks")
    };
    let budget = if options.quick {
        Budget {
            seconds: 0.05,
            min_runs: 5,
            max_runs: 200,
        }
    } else {
        Budget {
            seconds: 0.5,
            min_runs: 10,
            max_runs: 20_000,
        }
    };

    runtime()?;
    let grimc = build_grimc("bench")?;

    heading("bench: models");
    let model_dir = bench_dir.join("models");
    let cases = make_cases(&file, options, &model_dir)?;
    println!(
        "wrote {} models and their weights (.W.npy) to {}",
        cases.len(),
        rel(&model_dir)
    );

    heading("bench: machine");
    let machine = machine_facts();
    println!("{machine}");
    let fma = fma_peak(&bench_dir, &options.threads);

    let mut failures: Vec<String> = Vec::new();
    heading("bench: the cost model's choices (grimc inspect, default flags)");
    // Each user layer's `grimc inspect --json` row: kernel, block and every
    // candidate's estimate, so the report says what grim-auto ran.
    let mut auto_rows: Vec<Value> = Vec::new();
    for case in cases.iter().filter(|c| c.auto) {
        match inspect_layer(&grimc, case) {
            Ok(mut row) => {
                println!(
                    "{}: kernel {}, block {} ({})",
                    case.id, row["kernel"], row["block"], row["reason"]
                );
                row["layer_name"] = json!(file.layers[case.layer].name);
                auto_rows.push(row);
            }
            Err(error) => failures.push(format!("grimc inspect {}: {error:#}", case.id)),
        }
    }

    heading("bench: grim");
    let mut rows: Vec<Row> = Vec::new();
    let mut grim_json: Option<Value> = None;
    for case in &cases {
        let layer = &file.layers[case.layer];
        let sparsity = case.sparsity.map(|s| file.sparsity[s].name.as_str());
        let implementation = case.implementation();
        // grim-auto's block is the one the cost model chose.
        let block = if case.auto {
            auto_rows
                .iter()
                .find(|r| r["layer_name"].as_str() == Some(&layer.name))
                .and_then(|r| r["block"].as_str())
                .unwrap_or("?")
                .to_string()
        } else {
            case.block.to_string()
        };
        let mut measured_ms: Option<f64> = None;
        for &threads in &options.threads {
            let runs = match (options.runs, measured_ms) {
                (Some(r), _) => r,
                (None, Some(ms)) => runs_for(&budget, ms),
                (None, None) => match grimc_bench(&grimc, case, threads, 3) {
                    Ok(probe) => runs_for(&budget, probe.median_ms),
                    Err(error) => {
                        failures.push(format!("{}: {error:#}", case.id));
                        println!("FAILED: {error:#}");
                        break;
                    }
                },
            };
            match grimc_bench(&grimc, case, threads, runs) {
                Ok(t) => {
                    measured_ms.get_or_insert(t.median_ms);
                    let row = make_row(
                        implementation,
                        layer,
                        sparsity,
                        Some(block.clone()),
                        threads,
                        (t.median_ms, t.min_ms, t.max_ms, t.runs),
                        case.nonzeros,
                        Some(case.seed),
                    );
                    println!(
                        "{:<24} {:<5} {:<6} {implementation:<15} T={threads}  median {:.4} ms ({} runs)  useful {:.1} GFLOP/s, dense-equivalent {:.1} GFLOP/s",
                        layer.name,
                        sparsity.unwrap_or("dense"),
                        block,
                        row.median_ms,
                        row.runs,
                        row.useful_gflops,
                        row.dense_equiv_gflops
                    );
                    rows.push(row);
                    grim_json.get_or_insert(t.json);
                }
                Err(error) => {
                    println!("FAILED: {error:#}");
                    failures.push(format!("{} (threads {threads}): {error:#}", case.id));
                }
            }
        }
    }

    heading("bench: BCRC index bytes (8x, block 8x16)");
    let mut index_rows = Vec::new();
    for case in cases.iter().filter(|c| c.is_gemm_8x_8x16(&file)) {
        match inspect_layer(&grimc, case) {
            Ok(mut r) => {
                r["layer_name"] = json!(file.layers[case.layer].name);
                index_rows.push(r);
            }
            Err(error) => failures.push(format!("grimc inspect {}: {error:#}", case.id)),
        }
    }

    heading("bench: aarch64 inner loops (llvm-mca)");
    let mca_models = mca_models(&file, &cases);
    let mca = match crate::mca::analyse(&grimc, &mca_models, &bench_dir.join("mca")) {
        Ok(figures) => figures,
        Err(error) => {
            failures.push(format!("llvm-mca: {error:#}"));
            Vec::new()
        }
    };

    heading("bench: peers (Python)");
    let (python, mut unavailable) = python_env(&bench_dir);
    let mut peers = json!({});
    if let Some(python) = python {
        // The peers multiply the GEMM view only (the conv models' W is the same).
        let peer_cases: Vec<Value> = cases
            .iter()
            .filter(|c| !c.conv && !c.auto)
            .map(|c| {
                let l = &file.layers[c.layer];
                json!({
                    "id": c.id, "kind": if c.sparsity.is_some() { "sparse" } else { "dense" }, "layer": l.name,
                    "M": l.m, "K": l.k, "N": l.n,
                    "sparsity": c.sparsity.map(|s| file.sparsity[s].name.clone()),
                    "block": c.sparsity.map(|_| c.block.to_string()),
                    "seed": c.seed, "weight": c.weight,
                })
            })
            .collect();
        let spec = json!({
            "threads": options.threads, "budget_s": budget.seconds, "min_reps": budget.min_runs, "max_reps": budget.max_runs,
            "x_seed": 1, "peak_size": if options.quick { 1024 } else { 2048 }, "unavailable": unavailable, "cases": peer_cases,
        });
        let spec_path = bench_dir.join("peer-cases.json");
        let out_path = bench_dir.join("peer-results.json");
        std::fs::write(&spec_path, serde_json::to_string_pretty(&spec)?)
            .with_context(|| format!("bench: cannot write {}", spec_path.display()))?;
        let _ = std::fs::remove_file(&out_path);
        let mut command = Command::new(&python);
        command
            .arg(repo_root().join("xtask").join("bench").join("peers.py"))
            .arg(&spec_path)
            .arg(&out_path);
        if let Some(lib) = mkl_rt(&bench_dir.join("venv")) {
            command.env("MKL_RT", lib);
        }
        let (ok, output) = run_streaming("bench (peers)", &mut command)?;
        match std::fs::read_to_string(&out_path)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        {
            Some(value) => peers = value,
            None => {
                let why = format!(
                    "peers.py {} and wrote no results: {}",
                    if ok { "succeeded" } else { "failed" },
                    tail(&output, 6)
                );
                failures.push(why.clone());
                for (peer, _) in IMPLS.iter().filter(|(k, _)| !k.starts_with("grim")) {
                    unavailable
                        .entry(peer.to_string())
                        .or_insert_with(|| why.clone());
                }
            }
        }
        if let Some(map) = peers["unavailable"].as_object() {
            for (peer, why) in map {
                unavailable
                    .entry(peer.clone())
                    .or_insert_with(|| why.as_str().unwrap_or_default().to_string());
            }
        }
        for r in peers["results"].as_array().cloned().unwrap_or_default() {
            let Some(layer) = file
                .layers
                .iter()
                .find(|l| r["layer"].as_str() == Some(&l.name))
            else {
                continue;
            };
            let case = cases
                .iter()
                .find(|c| !c.conv && !c.auto && r["case"].as_str() == Some(&c.id));
            let implementation = r["peer"].as_str().unwrap_or("?");
            let nonzeros = if DENSE_PEERS.contains(&implementation) {
                layer.m * layer.k
            } else {
                case.map_or(0, |c| c.nonzeros)
            };
            let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
            rows.push(make_row(
                implementation,
                layer,
                r["sparsity"].as_str(),
                r["block"].as_str().map(str::to_string),
                r["threads"].as_u64().unwrap_or(0) as usize,
                (
                    f("median_ms"),
                    f("min_ms"),
                    f("max_ms"),
                    r["runs"].as_u64().unwrap_or(0) as usize,
                ),
                nonzeros,
                case.map(|c| c.seed),
            ));
        }
    }

    heading("bench: report");
    let report = Report {
        file: &file,
        options,
        rows: &rows,
        unavailable: &unavailable,
        index_rows: &index_rows,
        auto_rows: &auto_rows,
        mca: &mca,
    };
    let targets = report.targets();
    let isa = grim_json
        .as_ref()
        .map(|j| json!({ "target": j["target"], "cpu": j["cpu"], "isa": j["isa"] }))
        .unwrap_or(Value::Null);
    let elapsed = started.elapsed().as_secs_f64();
    let document = json!({
        "about": "cargo xtask bench kernels: grim's BCR kernels vs dense and CSR peers. Every W is grim_model::random_bcr_weight: each block's kept rows and columns are drawn independently from a fixed seed (the per-row `seed`). Peers compute W @ X (X: K x N); grim's model is Transpose, Gemm (x W^T), Transpose on x: K x N, whose transposes the compiler cancels, so grim's kernel also reads X (K x N) in place and writes W X (M x N). Rows `grim-conv-bcr` and `grim-conv-dense` (conv layers only, grim only): the same W as one ONNX Conv on x: [1, Cin, H, W], im2col included; their M, K, N, nonzeros and GFLOP/s are the GEMM view's. Layers from user-layers.json (`user.*`) are instead an nn.Linear-style Gemm on x: [N, K] whose W is grim_model::mask_multiplied_bcr_weight (pruned negatives are -0.0); their `grim-auto` rows ran with grimc's default flags, block = the cost model's choice (`cost_model_choices`). Every other grim row forces its kernel (--kernel dense, or --kernel bcr --block B).",
        "command": command_line,
        "quick": options.quick,
        "date_utc": utc_now(),
        "duration_s": elapsed,
        "git": git_state(),
        "machine": machine,
        "grim_target": isa,
        "fma_peak": fma,
        "numpy_sgemm_peak": peers["numpy_sgemm_peak"],
        "versions": peers["versions"],
        "unavailable": unavailable,
        "peer_checks": peers["checks"],
        "timing": { "budget_s": budget.seconds, "min_runs": budget.min_runs, "max_runs": budget.max_runs, "fixed_runs": options.runs },
        "layers": serde_json::from_str::<Value>(&std::fs::read_to_string(layers_file())?)?,
        "results": rows,
        "bcrc_index": index_rows,
        "cost_model_choices": auto_rows,
        "targets": targets,
        "failures": failures,
    });
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("bench: cannot create {}", out_dir.display()))?;
    let json_path = out_dir.join("kernels.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&document)? + "\n")
        .with_context(|| format!("bench: cannot write {}", json_path.display()))?;
    let png_path = out_dir.join("kernels.png");
    let plot = match report.plot(&png_path) {
        Ok(note) => note,
        Err(error) => {
            failures.push(format!("plot: {error:#}"));
            format!("The plot could not be drawn: {error:#}")
        }
    };
    let md_path = out_dir.join("kernels.md");
    let mut markdown = report.markdown(&document, &targets, &plot);
    // The reasons behind the figures are written by hand, beside the results.
    if let Ok(analysis) = std::fs::read_to_string(
        repo_root()
            .join("docs")
            .join("benchmarks")
            .join("analysis.md"),
    ) {
        markdown.push('\n');
        markdown.push_str(&analysis);
    }
    std::fs::write(&md_path, &markdown)
        .with_context(|| format!("bench: cannot write {}", md_path.display()))?;
    println!("{}", markdown_summary(&markdown));
    println!(
        "wrote {}, {} and {} ({:.0} s)",
        rel(&md_path),
        rel(&json_path),
        rel(&png_path),
        elapsed
    );
    if !failures.is_empty() {
        bail!(
            "bench kernels: {} measurement(s) failed (the report lists them):\n  {}",
            failures.len(),
            failures.join("\n  ")
        );
    }
    Ok(())
}

/// The report's tables (everything from "## Results" on) for the terminal.
fn markdown_summary(markdown: &str) -> &str {
    markdown
        .find("## 8x at the best block")
        .map_or(markdown, |i| &markdown[i..])
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

struct Report<'a> {
    file: &'a LayersFile,
    options: &'a Options,
    rows: &'a [Row],
    unavailable: &'a BTreeMap<String, String>,
    index_rows: &'a [Value],
    /// `grimc inspect` rows of the `grim-auto` cases (the cost model's choice).
    auto_rows: &'a [Value],
    mca: &'a [crate::mca::LoopFigures],
}

#[derive(Debug, Clone, serde::Serialize)]
struct TargetCheck {
    target: String,
    subject: String,
    measured: Option<f64>,
    /// "PASS", "MISS" or "NOT MEASURED".
    status: String,
    detail: String,
}

fn label(key: &str) -> &str {
    IMPLS
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(key, |(_, l)| l)
}

fn fmt_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.1}")
    } else if ms >= 1.0 {
        format!("{ms:.3}")
    } else {
        format!("{ms:.4}")
    }
}

impl Report<'_> {
    fn find(
        &self,
        implementation: &str,
        layer: &str,
        sparsity: Option<&str>,
        block: Option<&str>,
        threads: usize,
    ) -> Option<&Row> {
        self.rows.iter().find(|r| {
            r.implementation == implementation
                && r.layer == layer
                && r.threads == threads
                && (sparsity.is_none() || r.sparsity.as_deref() == sparsity)
                && (block.is_none() || r.block.as_deref() == block)
        })
    }

    /// grim BCR's fastest block at `sparsity` and `threads` (GEMM view).
    fn best_bcr(&self, layer: &str, sparsity: &str, threads: usize) -> Option<&Row> {
        self.best_block("grim-bcr", layer, sparsity, threads)
    }

    /// `implementation`'s fastest block at `sparsity` and `threads`.
    fn best_block(
        &self,
        implementation: &str,
        layer: &str,
        sparsity: &str,
        threads: usize,
    ) -> Option<&Row> {
        self.rows
            .iter()
            .filter(|r| {
                r.implementation == implementation
                    && r.layer == layer
                    && r.sparsity.as_deref() == Some(sparsity)
                    && r.threads == threads
            })
            .min_by(|a, b| a.median_ms.total_cmp(&b.median_ms))
    }

    fn fastest_dense_peer(&self, layer: &str, threads: usize) -> Option<&Row> {
        self.rows
            .iter()
            .filter(|r| {
                DENSE_PEERS.contains(&r.implementation.as_str())
                    && r.layer == layer
                    && r.threads == threads
            })
            .min_by(|a, b| a.median_ms.total_cmp(&b.median_ms))
    }

    fn three_largest(&self) -> Vec<&Layer> {
        let mut layers: Vec<&Layer> = self.file.layers.iter().collect();
        layers.sort_by_key(|l| std::cmp::Reverse(l.m * l.k * l.n));
        layers.truncate(3);
        layers
    }

    fn targets(&self) -> Vec<TargetCheck> {
        let mut out = Vec::new();
        let at_least = |target: &str,
                        subject: String,
                        measured: Option<f64>,
                        goal: f64,
                        what: &str|
         -> TargetCheck {
            match measured {
                Some(v) if v.is_finite() => {
                    let pass = v >= goal;
                    let detail = if pass {
                        format!("{v:.2}x (target >= {goal}x)")
                    } else {
                        format!(
                            "{v:.2}x, {:.0}% short of {goal}x (needs {:.2}x more)",
                            100.0 * (1.0 - v / goal),
                            goal / v
                        )
                    };
                    TargetCheck {
                        target: target.into(),
                        subject,
                        measured: Some(v),
                        status: if pass { "PASS" } else { "MISS" }.into(),
                        detail,
                    }
                }
                _ => TargetCheck {
                    target: target.into(),
                    subject,
                    measured: None,
                    status: "NOT MEASURED".into(),
                    detail: format!("no measurement of {what}"),
                },
            }
        };
        let t1 = "grim BCR 8x (best block) vs fastest dense peer: >= 5x conv/gemm, >= 4x gemv";
        let t2 = "grim BCR vs scipy CSR and MKL CSR, same nonzeros and threads: >= 4x";
        let t3 = "grim dense within 1.25x of OpenBLAS on conv and gemm shapes";
        let t4 = "2 threads >= 1.7x faster than 1 thread on the three largest shapes";
        let t5 = "BCRC index bytes <= 15% of value bytes at 8x, block 8x16";
        let t6 = "aarch64: llvm-mca-22 -mcpu=cortex-a76 FMA-pipe utilisation >= 75% (GEMM-shaped kernels)";
        let t7 = "a user's mask-multiplied pruned Gemm, grimc's default flags, vs onnxruntime on the dense layer, 1 thread: >= 5x";
        for &threads in &self.options.threads {
            for l in &self.file.layers {
                let goal = if l.kind == "gemv" { 4.0 } else { 5.0 };
                let grim = self.best_bcr(&l.name, "8x", threads);
                let peer = self.fastest_dense_peer(&l.name, threads);
                let measured = grim.zip(peer).map(|(g, p)| p.median_ms / g.median_ms);
                let subject = format!(
                    "{} T={threads} (grim block {}, peer {})",
                    l.name,
                    grim.and_then(|g| g.block.clone()).unwrap_or("-".into()),
                    peer.map_or("-", |p| p.implementation.as_str())
                );
                out.push(at_least(
                    t1,
                    subject,
                    measured,
                    goal,
                    "grim BCR at 8x or a dense peer",
                ));
            }
        }
        for &threads in &self.options.threads {
            for l in &self.file.layers {
                let Some(grim) = self.best_bcr(&l.name, "8x", threads) else {
                    out.push(at_least(
                        t2,
                        format!("{} T={threads}", l.name),
                        None,
                        4.0,
                        "grim BCR at 8x",
                    ));
                    continue;
                };
                for peer in ["scipy-csr", "mkl-csr"] {
                    if peer == "scipy-csr" && threads != 1 {
                        continue; // scipy is single-threaded: compared at 1 thread only
                    }
                    let p = self.find(peer, &l.name, Some("8x"), grim.block.as_deref(), threads);
                    let subject = format!(
                        "{} T={threads} vs {peer} (block {})",
                        l.name,
                        grim.block.as_deref().unwrap_or("-")
                    );
                    out.push(at_least(
                        t2,
                        subject,
                        p.map(|p| p.median_ms / grim.median_ms),
                        4.0,
                        peer,
                    ));
                }
            }
        }
        for &threads in &self.options.threads {
            for l in self.file.layers.iter().filter(|l| l.kind != "gemv") {
                let g = self.find("grim-dense", &l.name, None, None, threads);
                let o = self.find("numpy-openblas", &l.name, None, None, threads);
                let subject = format!("{} T={threads}", l.name);
                out.push(match g.zip(o) {
                    Some((g, o)) => {
                        let v = g.median_ms / o.median_ms;
                        let pass = v <= 1.25;
                        let detail = if pass {
                            format!("grim dense takes {v:.2}x OpenBLAS's time (target <= 1.25x)")
                        } else {
                            format!("grim dense takes {v:.2}x OpenBLAS's time: {:.0}% over the 1.25x limit (needs {:.2}x more speed)", 100.0 * (v / 1.25 - 1.0), v / 1.25)
                        };
                        TargetCheck { target: t3.into(), subject, measured: Some(v), status: if pass { "PASS" } else { "MISS" }.into(), detail }
                    }
                    None => TargetCheck { target: t3.into(), subject, measured: None, status: "NOT MEASURED".into(), detail: "no grim dense or numpy measurement".into() },
                });
            }
        }
        let has_1_and_2 = self.options.threads.contains(&1) && self.options.threads.contains(&2);
        for l in self.three_largest() {
            let subject = format!("{} grim BCR 8x (1-thread best block)", l.name);
            if !has_1_and_2 {
                out.push(TargetCheck {
                    target: t4.into(),
                    subject,
                    measured: None,
                    status: "NOT MEASURED".into(),
                    detail: "needs --threads 1,2".into(),
                });
                continue;
            }
            let one = self.best_bcr(&l.name, "8x", 1);
            let two =
                one.and_then(|o| self.find("grim-bcr", &l.name, Some("8x"), o.block.as_deref(), 2));
            out.push(at_least(
                t4,
                subject,
                one.zip(two).map(|(o, t)| o.median_ms / t.median_ms),
                1.7,
                "grim BCR at 1 and 2 threads",
            ));
        }
        for l in &self.file.layers {
            let row = self
                .index_rows
                .iter()
                .find(|r| r["layer_name"].as_str() == Some(&l.name));
            let subject = l.name.clone();
            out.push(match row.and_then(|r| r["index_to_value"].as_f64()) {
                Some(v) => {
                    let pass = v <= 0.15;
                    let detail = if pass {
                        format!("{:.1}% (target <= 15%)", 100.0 * v)
                    } else {
                        format!("{:.1}%: {:.1} points over 15%", 100.0 * v, 100.0 * v - 15.0)
                    };
                    TargetCheck {
                        target: t5.into(),
                        subject,
                        measured: Some(v),
                        status: if pass { "PASS" } else { "MISS" }.into(),
                        detail,
                    }
                }
                None => TargetCheck {
                    target: t5.into(),
                    subject,
                    measured: None,
                    status: "NOT MEASURED".into(),
                    detail: "no grimc inspect figures".into(),
                },
            });
        }
        for figures in self.mca.iter().filter(|f| f.kernel == "spmm") {
            let a76 = figures.cpus.iter().find(|c| c.0 == "cortex-a76");
            out.push(match a76 {
                Some((_, cycles, busy, rate)) => TargetCheck {
                    target: t6.into(),
                    subject: format!("{} spmm inner loop (8x, 8x16)", figures.layer),
                    measured: Some(*busy),
                    status: if *busy >= 0.75 { "PASS" } else { "MISS" }.into(),
                    detail: format!(
                        "FP pipes busy {:.0}% in llvm-mca's model ({} FMAs in {cycles:.2} cycles per iteration); FMA rate {:.0}% of a real A76's two 128-bit FMAs per cycle",
                        100.0 * busy,
                        figures.fmas,
                        100.0 * rate
                    ),
                },
                None => TargetCheck { target: t6.into(), subject: figures.layer.clone(), measured: None, status: "NOT MEASURED".into(), detail: "llvm-mca gave no cortex-a76 figures".into() },
            });
        }
        if self.mca.is_empty() {
            out.push(TargetCheck {
                target: t6.into(),
                subject: "aarch64 inner loops".into(),
                measured: None,
                status: "NOT MEASURED".into(),
                detail: "llvm-mca analysis failed (see failures)".into(),
            });
        }
        for l in self.file.layers.iter() {
            let Some(user) = &l.user else { continue };
            let sparsity = &self.file.sparsity[user.sparsity].name;
            let grim = self.find("grim-auto", &l.name, Some(sparsity), None, 1);
            let ort = self.find("onnxruntime", &l.name, None, None, 1);
            let choice = self
                .auto_rows
                .iter()
                .find(|r| r["layer_name"].as_str() == Some(&l.name))
                .map_or("-".to_string(), |r| {
                    format!(
                        "kernel {}, block {}",
                        r["kernel"].as_str().unwrap_or("?"),
                        r["block"].as_str().unwrap_or("?")
                    )
                });
            out.push(at_least(
                t7,
                format!(
                    "{} pruned {sparsity} in {} blocks (cost model chose {choice})",
                    l.name, user.block
                ),
                grim.zip(ort).map(|(g, o)| o.median_ms / g.median_ms),
                5.0,
                "grim-auto at 1 thread or onnxruntime",
            ));
        }
        out
    }

    fn markdown(&self, document: &Value, targets: &[TargetCheck], plot_note: &str) -> String {
        let mut md = String::new();
        let threads = &self.options.threads;
        let _ = writeln!(md, "# Kernel benchmark: grim BCR vs dense and CSR peers\n");
        let _ = writeln!(md, "Generated by `cargo xtask bench kernels` (xtask/src/bench.rs); do not edit by hand, run it again.\n");
        if self.options.quick {
            let _ = writeln!(md, "**This is a `--quick` smoke run: only 8x sparsity, block 8x16, {} thread(s), few runs. Its figures are not the benchmark's results.**\n", threads.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(","));
        }
        let _ = writeln!(
            md,
            "- Command: `{}`",
            document["command"].as_str().unwrap_or("")
        );
        let _ = writeln!(
            md,
            "- Date (UTC): {}; duration {:.0} s",
            document["date_utc"].as_str().unwrap_or(""),
            document["duration_s"].as_f64().unwrap_or(0.0)
        );
        let _ = writeln!(
            md,
            "- Tree: {} (uncommitted changes: {})",
            document["git"]["head"].as_str().unwrap_or("?"),
            document["git"]["uncommitted_changes"]
        );
        let _ = writeln!(md, "- Every figure: W is `grim_model::random_bcr_weight`: each block's kept rows and columns are drawn independently from a fixed seed (no pattern shared across blocks). The dense models' W are fixed-seed values in [-1, 1), none zero. The `user.*` layers (xtask/bench/user-layers.json) are pruned by mask multiplication instead (see their section).\n");

        let _ = writeln!(md, "## Machine\n");
        let m = &document["machine"];
        let _ = writeln!(
            md,
            "- CPU: {} (family {}, model {}), {} logical CPUs; SIMD flags: {}",
            m["cpu_model"].as_str().unwrap_or("?"),
            m["cpu_family"].as_str().unwrap_or("?"),
            m["cpu_model_number"].as_str().unwrap_or("?"),
            m["logical_cpus"],
            m["simd_flags"]
                .as_array()
                .map(|a| a
                    .iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(" "))
                .unwrap_or_default()
        );
        let _ = writeln!(
            md,
            "- grim target (from `grimc bench --json`): {} / cpu {} / ISA {}",
            document["grim_target"]["target"].as_str().unwrap_or("?"),
            document["grim_target"]["cpu"].as_str().unwrap_or("?"),
            document["grim_target"]["isa"].as_str().unwrap_or("?")
        );
        let _ = writeln!(
            md,
            "- Kernel: Linux {}",
            m["kernel"].as_str().unwrap_or("?")
        );
        let peak_text = |v: &Value| {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .map(|r| {
                            format!(
                                "{} thread(s): {:.1} GFLOP/s",
                                r["threads"],
                                r["gflops"].as_f64().unwrap_or(f64::NAN)
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_else(|| "not measured".into())
        };
        let fma = &document["fma_peak"];
        match fma["error"].as_str() {
            Some(e) => {
                let _ = writeln!(md, "- FMA peak: not measured ({e})");
            }
            None => {
                let _ = writeln!(
                    md,
                    "- Measured FMA peak (theoretical-style ceiling; {}): {}",
                    fma["method"].as_str().unwrap_or(""),
                    peak_text(&fma["results"])
                );
            }
        }
        let np = &document["numpy_sgemm_peak"];
        if let Some(size) = np
            .as_array()
            .and_then(|a| a.first())
            .and_then(|r| r["size"].as_u64())
        {
            let _ = writeln!(
                md,
                "- Practical peak: numpy/OpenBLAS sgemm {size}x{size}x{size}: {}",
                peak_text(np)
            );
        }
        let _ = writeln!(md);

        let _ = writeln!(md, "## Method\n");
        let _ = writeln!(md, "- Shapes: xtask/bench/layers.json (W is M x K, activations K x N; conv layers in their GEMM view). grim's model is Transpose, Gemm (transB = 1, no bias), Transpose on x of shape [K, N]; grimc cancels both transposes against its gemm lowering, so the kernel reads X [K, N] in place and writes Y = W X [M, N], as the peers' `W @ X` (float32) does.");
        let _ = writeln!(md, "- grim: `target/release/grimc bench MODEL --kernel bcr --block RxC --threads T --runs R --json` (`--kernel dense` for the dense rows, no kernel flags for `grim, default flags`; built fresh by this command); the runner warms up once, then times R runs; median reported. R: {}.", match self.options.runs {
            Some(r) => format!("fixed at {r} (--runs)"),
            None => format!("adaptive, so one measurement takes about {} s (a 3-run probe sizes it; {}..={} runs)", document["timing"]["budget_s"], document["timing"]["min_runs"], document["timing"]["max_runs"]),
        });
        let _ = writeln!(md, "- Peers: xtask/bench/peers.py in target/bench/venv, one process; each timing = 2 warm-up calls, then the median of repeated calls sized by the same time budget. numpy and onnxruntime multiply the layer's dense W; scipy and MKL multiply the CSR form of the exact W grim compiled (read from the `.npy` xtask wrote). Threads: threadpoolctl for OpenBLAS, `intra_op_num_threads` for onnxruntime, `mkl_set_num_threads` for MKL; scipy's CSR product is single-threaded, so it appears at 1 thread only.");
        let _ = writeln!(md, "- Useful GFLOP/s = 2 x nonzero multiply-adds / time (for the dense peers the nonzeros are all M x K). Dense-equivalent GFLOP/s = 2 x M x K x N / time.");
        let _ = writeln!(
            md,
            "- Ratios `x` are peer time / grim BCR time (above 1: grim is faster).\n"
        );
        let _ = writeln!(md, "Versions:\n");
        let _ = writeln!(md, "| library | version |\n| --- | --- |");
        if let Some(v) = document["versions"].as_object() {
            for (k, v) in v {
                let _ = writeln!(
                    md,
                    "| {k} | {} |",
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                );
            }
        }
        let _ = writeln!(md);
        if !self.unavailable.is_empty() {
            let _ = writeln!(md, "Unavailable peers:\n");
            for (peer, why) in self.unavailable {
                let short = why
                    .trim()
                    .lines()
                    .last()
                    .unwrap_or("")
                    .chars()
                    .take(400)
                    .collect::<String>();
                let _ = writeln!(md, "- {}: {short}", label(peer));
            }
            let _ = writeln!(md);
        }

        // Per shape: 8x at its best block.
        let _ = writeln!(md, "## 8x at the best block size, per shape\n");
        let _ = writeln!(md, "{SEED_NOTE} The best block is grim BCR's fastest at 8x for that thread count; the CSR peers multiply that same W.\n");
        for l in &self.file.layers {
            let _ = writeln!(
                md,
                "### {} ({}, M x K x N = {} x {} x {})\n",
                l.name, l.kind, l.m, l.k, l.n
            );
            let _ = writeln!(md, "| implementation | threads | block | median ms | peer / grim BCR | useful GFLOP/s | dense-equiv GFLOP/s |\n| --- | --: | --- | --: | --: | --: | --: |");
            for &t in threads {
                let Some(grim) = self.best_bcr(&l.name, "8x", t) else {
                    let _ = writeln!(md, "| grim BCR | {t} | - | not measured | | | |");
                    continue;
                };
                for (key, name) in IMPLS {
                    let row = match *key {
                        "grim-auto" if l.user.is_none() => continue,
                        "grim-auto" => self.find(key, &l.name, Some("8x"), None, t),
                        "grim-bcr" => Some(grim),
                        "grim-dense" | "numpy-openblas" | "onnxruntime" => {
                            self.find(key, &l.name, None, None, t)
                        }
                        _ => self.find(key, &l.name, Some("8x"), grim.block.as_deref(), t),
                    };
                    match row {
                        Some(r) => {
                            let ratio = if *key == "grim-bcr" {
                                "1".to_string()
                            } else {
                                format!("{:.2}x", r.median_ms / grim.median_ms)
                            };
                            let _ = writeln!(
                                md,
                                "| {name} | {t} | {} | {} | {ratio} | {:.1} | {:.1} |",
                                r.block.as_deref().unwrap_or("-"),
                                fmt_ms(r.median_ms),
                                r.useful_gflops,
                                r.dense_equiv_gflops
                            );
                        }
                        None if *key == "scipy-csr" && t != 1 => {}
                        None => {
                            let why = if self.unavailable.contains_key(*key) {
                                "unavailable"
                            } else {
                                "not measured"
                            };
                            let _ = writeln!(md, "| {name} | {t} | | {why} | | | |");
                        }
                    }
                }
            }
            let _ = writeln!(md);
        }

        self.conv_section(&mut md);

        // grim over sparsities and blocks.
        let _ = writeln!(
            md,
            "## grim BCR over sparsities and block sizes (median ms)\n"
        );
        let _ = writeln!(md, "{SEED_NOTE} Best block per row in bold; `-`: block larger than the matrix or not run.\n");
        let blocks: Vec<String> = self
            .file
            .block_sizes
            .iter()
            .map(|[r, c]| format!("{r}x{c}"))
            .filter(|b| {
                self.rows
                    .iter()
                    .any(|r| r.implementation == "grim-bcr" && r.block.as_deref() == Some(b))
            })
            .collect();
        for &t in threads {
            let _ = writeln!(md, "{} thread(s):\n", t);
            let _ = writeln!(md, "| shape | sparsity | {} | grim dense | best useful GFLOP/s |\n| --- | --- |{} --: | --: |", blocks.join(" | "), " --: |".repeat(blocks.len()));
            for l in &self.file.layers {
                for s in &self.file.sparsity {
                    let best = self.best_bcr(&l.name, &s.name, t);
                    if best.is_none() {
                        continue;
                    }
                    let cells: Vec<String> = blocks
                        .iter()
                        .map(
                            |b| match self.find("grim-bcr", &l.name, Some(&s.name), Some(b), t) {
                                Some(r) if best.is_some_and(|x| std::ptr::eq(x, r)) => {
                                    format!("**{}**", fmt_ms(r.median_ms))
                                }
                                Some(r) => fmt_ms(r.median_ms),
                                None => "-".into(),
                            },
                        )
                        .collect();
                    let dense = self
                        .find("grim-dense", &l.name, None, None, t)
                        .map_or("-".into(), |r| fmt_ms(r.median_ms));
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {dense} | {:.1} |",
                        l.name,
                        s.name,
                        cells.join(" | "),
                        best.map_or(f64::NAN, |b| b.useful_gflops)
                    );
                }
            }
            let _ = writeln!(md);
        }

        // Threads.
        let _ = writeln!(md, "## 2 threads vs 1 thread\n");
        if threads.contains(&1) && threads.contains(&2) {
            let _ = writeln!(md, "{SEED_NOTE} Speedup = 1-thread median / 2-thread median; grim BCR at 8x with its 1-thread best block, the CSR peer on that same W.\n");
            let _ = writeln!(md, "| shape | grim BCR 8x | grim dense | numpy/OpenBLAS | onnxruntime | MKL CSR 8x |\n| --- | --: | --: | --: | --: | --: |");
            for l in &self.file.layers {
                let block = self
                    .best_bcr(&l.name, "8x", 1)
                    .and_then(|r| r.block.clone());
                let speedup = |key: &str, sparse: bool| -> String {
                    let (s, b) = if sparse {
                        (Some("8x"), block.as_deref())
                    } else {
                        (None, None)
                    };
                    match self
                        .find(key, &l.name, s, b, 1)
                        .zip(self.find(key, &l.name, s, b, 2))
                    {
                        Some((one, two)) => format!("{:.2}x", one.median_ms / two.median_ms),
                        None => "-".into(),
                    }
                };
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} |",
                    l.name,
                    speedup("grim-bcr", true),
                    speedup("grim-dense", false),
                    speedup("numpy-openblas", false),
                    speedup("onnxruntime", false),
                    speedup("mkl-csr", true)
                );
            }
        } else {
            let _ = writeln!(md, "Not measured in this run (needs `--threads 1,2`).");
        }
        let _ = writeln!(md);

        // Index bytes.
        let _ = writeln!(md, "## BCRC index bytes vs value bytes (8x, block 8x16)\n");
        let _ = writeln!(md, "{SEED_NOTE} From `grimc inspect MODEL --block 8x16 --json` (`bcrc_index_bytes`, `csr_index_bytes`, `index_to_value`). CSR with 32-bit indices needs about as many index bytes as value bytes (100%).\n");
        let _ = writeln!(md, "| shape | order | blocks | groups | stored values | nonzeros | fill | value bytes | BCRC index bytes | BCRC index / value | CSR index bytes | CSR index / nonzero value bytes |\n| --- | --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |");
        for r in self.index_rows {
            let stored = r["stored_values"].as_u64().unwrap_or(0);
            let nnz = r["nonzeros"].as_u64().unwrap_or(0);
            let csr = r["csr_index_bytes"].as_u64().unwrap_or(0);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {stored} | {nnz} | {:.3} | {} | {} | {:.1}% | {csr} | {:.1}% |",
                r["layer_name"].as_str().unwrap_or("?"),
                r["order"].as_str().unwrap_or("?"),
                r["blocks"],
                r["groups"],
                r["fill"].as_f64().unwrap_or(f64::NAN),
                4 * stored,
                r["bcrc_index_bytes"],
                100.0 * r["index_to_value"].as_f64().unwrap_or(f64::NAN),
                100.0 * csr as f64 / (4 * nnz.max(1)) as f64
            );
        }
        let _ = writeln!(md);

        // Targets.
        self.user_section(&mut md);

        let _ = writeln!(md, "## Targets\n");
        let _ = writeln!(md, "{SEED_NOTE} Ratios come from this run. A miss is stated by how much; the reasons are the lead's to add.\n");
        let mut current = "";
        for t in targets {
            if t.target != current {
                current = &t.target;
                let checks: Vec<&TargetCheck> =
                    targets.iter().filter(|x| x.target == t.target).collect();
                let summary = if checks.iter().all(|c| c.status == "PASS") {
                    "PASS".to_string()
                } else if checks.iter().all(|c| c.status == "NOT MEASURED") {
                    "NOT MEASURED".to_string()
                } else {
                    format!(
                        "MISS ({} of {} checks missed{})",
                        checks.iter().filter(|c| c.status == "MISS").count(),
                        checks.len(),
                        match checks.iter().filter(|c| c.status == "NOT MEASURED").count() {
                            0 => String::new(),
                            n => format!(", {n} not measured"),
                        }
                    )
                };
                let _ = writeln!(md, "\n### {}: {summary}\n", t.target);
                let _ = writeln!(md, "| subject | status | measured |\n| --- | --- | --- |");
            }
            let _ = writeln!(md, "| {} | {} | {} |", t.subject, t.status, t.detail);
        }
        let _ = writeln!(md);

        if !self.mca.is_empty() {
            let _ = writeln!(md, "{}", crate::mca::markdown(self.mca));
        }
        let _ = writeln!(md, "## Plot\n");
        let _ = writeln!(
            md,
            "![speedup over the fastest dense peer vs compression](kernels.png)\n"
        );
        let _ = writeln!(md, "{SEED_NOTE} {plot_note}\n");
        let failures = document["failures"].as_array().cloned().unwrap_or_default();
        if !failures.is_empty() {
            let _ = writeln!(md, "## Failed measurements\n");
            for f in failures {
                let _ = writeln!(md, "- {}", f.as_str().unwrap_or(""));
            }
        }
        md
    }

    /// The user layers: what the cost model chose for a mask-multiplied
    /// pruned layer at default flags, and why.
    fn user_section(&self, md: &mut String) {
        if self.auto_rows.is_empty() {
            return;
        }
        let _ = writeln!(
            md,
            "## Pruned as users prune, compiled with default flags\n"
        );
        let _ = writeln!(md, "Layers of xtask/bench/user-layers.json: an `nn.Linear`-style Gemm (input [N, K], weight [M, K], `transB = 1`) whose weight is a dense random matrix times a BCR mask (`grim_model::mask_multiplied_bcr_weight`; pruned negatives are `-0.0`). `grim, default flags` ran `grimc bench MODEL` with no `--block` or `--kernel`, so `graph-choose-kernel` chose from the cost model's estimates below (`grimc inspect MODEL --json`); the tables above also show BCR forced at the pruning's block and the dense kernel on the unpruned weight.\n");
        let _ = writeln!(md, "| layer | kernel | block | stored values | fill | estimates (ns) |\n| --- | --- | --- | --: | --: | --- |");
        for r in self.auto_rows {
            let estimates = r["estimates"]
                .as_object()
                .map(|m| {
                    let mut v: Vec<(&String, f64)> = m
                        .iter()
                        .map(|(k, v)| (k, v.as_f64().unwrap_or(f64::NAN)))
                        .collect();
                    v.sort_by(|a, b| a.1.total_cmp(&b.1));
                    v.iter()
                        .map(|(k, ns)| format!("{k} {ns:.0}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {:.3} | {estimates} |",
                r["layer_name"].as_str().unwrap_or("?"),
                r["kernel"].as_str().unwrap_or("?"),
                r["block"].as_str().unwrap_or("?"),
                r["stored_values"],
                r["fill"].as_f64().unwrap_or(f64::NAN)
            );
        }
        let _ = writeln!(md);
    }

    /// The conv layers as ONNX Conv models against their GEMM view: what the im2col costs.
    fn conv_section(&self, md: &mut String) {
        let convs: Vec<(&Layer, ConvShape)> = self
            .file
            .layers
            .iter()
            .filter_map(|l| l.conv.map(|c| (l, c)))
            .collect();
        if convs.is_empty() {
            return;
        }
        let _ = writeln!(md, "## Convolutions through ONNX Conv (im2col included)\n");
        let _ = writeln!(md, "{SEED_NOTE} Each conv layer is also compiled as one ONNX `Conv` (group 1, no bias) on x of shape [1, Cin, H, W], with the same W (the weight [Cout, Cin, kh, kw] flattens row-major to the GEMM view's W [M, K]), seed and block as its GEMM-view cases above, and timed by `grimc bench` the same way; in the JSON these rows are `grim-conv-bcr` and `grim-conv-dense`, with the GEMM view's M, K, N and nonzeros. The dense kernel reads the image through an implicit im2col (patches copied into its packed activation blocks); the BCR kernels read the image in place when its output rows are at least 48 wide with stride 1 (zero-padded first by a 1x1 `bcr.im2col`), and otherwise multiply an explicit patch matrix that `bcr.im2col` writes once per image; a pointwise conv (1x1, stride 1, no padding) multiplies the image as it is, with no im2col. The best block is chosen separately for the conv and for the GEMM view. Conv / GEMM = conv median / GEMM-view median (above 1: what the im2col and the NCHW layout cost). The peers are timed on the GEMM view only, without any im2col, so the OpenBLAS / conv ratios include grim's im2col and not the peers'.\n");
        let _ = writeln!(md, "| shape | threads | im2col | grim conv BCR 8x ms (block) | grim BCR 8x GEMM view ms (block) | conv / GEMM | grim conv dense ms | grim dense GEMM view ms | conv / GEMM | numpy/OpenBLAS ms (GEMM view) | OpenBLAS / grim conv BCR | OpenBLAS / grim conv dense |\n| --- | --: | --- | --: | --: | --: | --: | --: | --: | --: | --: | --: |");
        let ms = |r: Option<&Row>| {
            r.map_or("-".into(), |r| match &r.block {
                Some(b) if r.sparsity.is_some() => format!("{} ({b})", fmt_ms(r.median_ms)),
                _ => fmt_ms(r.median_ms),
            })
        };
        let ratio = |over: Option<&Row>, under: Option<&Row>| {
            over.zip(under).map_or("-".into(), |(o, u)| {
                format!("{:.2}x", o.median_ms / u.median_ms)
            })
        };
        for (l, c) in convs {
            let im2col = if c.pointwise() {
                "none (pointwise)"
            } else if c.bcr_in_place() {
                "dense: implicit (packing); BCR: implicit (padded image)"
            } else {
                "dense: implicit (packing); BCR: explicit (`bcr.im2col`)"
            };
            for &t in &self.options.threads {
                let conv_bcr = self.best_block("grim-conv-bcr", &l.name, "8x", t);
                let gemm_bcr = self.best_bcr(&l.name, "8x", t);
                let conv_dense = self.find("grim-conv-dense", &l.name, None, None, t);
                let gemm_dense = self.find("grim-dense", &l.name, None, None, t);
                let openblas = self.find("numpy-openblas", &l.name, None, None, t);
                let _ = writeln!(
                    md,
                    "| {} | {t} | {im2col} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    l.name,
                    ms(conv_bcr),
                    ms(gemm_bcr),
                    ratio(conv_bcr, gemm_bcr),
                    ms(conv_dense),
                    ms(gemm_dense),
                    ratio(conv_dense, gemm_dense),
                    ms(openblas),
                    ratio(openblas, conv_bcr),
                    ratio(openblas, conv_dense)
                );
            }
        }
        let _ = writeln!(md);
    }

    /// Speedup of grim BCR (best block per sparsity) over the fastest dense peer vs compression,
    /// one line per shape, one panel per thread count. Returns the legend text for kernels.md.
    fn plot(&self, path: &Path) -> Result<String> {
        use plotters::prelude::*;
        const COLORS: [RGBColor; 8] = [
            RGBColor(31, 119, 180),
            RGBColor(255, 127, 14),
            RGBColor(44, 160, 44),
            RGBColor(214, 39, 40),
            RGBColor(148, 103, 189),
            RGBColor(140, 86, 75),
            RGBColor(227, 119, 194),
            RGBColor(127, 127, 127),
        ];
        const COLOR_NAMES: [&str; 8] = [
            "blue", "orange", "green", "red", "purple", "brown", "pink", "grey",
        ];
        let fonts = [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        ];
        let font = fonts
            .iter()
            .find_map(|p| std::fs::read(p).ok().map(|b| (p, b)));
        let text = match font {
            Some((_, bytes)) => plotters::style::register_font(
                "sans-serif",
                FontStyle::Normal,
                Box::leak(bytes.into_boxed_slice()),
            )
            .is_ok(),
            None => false,
        };
        let compression = |name: &str| name.trim_end_matches('x').parse::<f64>().ok();
        // series[t][layer] = ([(compression, speedup)], the conv model's point at 8x)
        type Line = (String, Vec<(f64, f64)>, Option<(f64, f64)>);
        let mut series: Vec<(usize, Vec<Line>)> = Vec::new();
        let mut y_max: f64 = 1.0;
        for &t in &self.options.threads {
            let mut lines = Vec::new();
            for l in &self.file.layers {
                let mut points = Vec::new();
                for s in &self.file.sparsity {
                    let (Some(x), Some(g), Some(p)) = (
                        compression(&s.name),
                        self.best_bcr(&l.name, &s.name, t),
                        self.fastest_dense_peer(&l.name, t),
                    ) else {
                        continue;
                    };
                    let y = p.median_ms / g.median_ms;
                    y_max = y_max.max(y);
                    points.push((x, y));
                }
                let conv = self
                    .best_block("grim-conv-bcr", &l.name, "8x", t)
                    .zip(self.fastest_dense_peer(&l.name, t))
                    .zip(compression("8x"))
                    .map(|((g, p), x)| (x, p.median_ms / g.median_ms));
                if let Some((_, y)) = conv {
                    y_max = y_max.max(y);
                }
                lines.push((l.name.clone(), points, conv));
            }
            series.push((t, lines));
        }
        let x_max = self
            .file
            .sparsity
            .iter()
            .filter_map(|s| compression(&s.name))
            .fold(1.0, f64::max)
            * 1.1;
        let y_top = (y_max * 1.15).max(6.0);
        let panels = series.len().max(1);
        let root = BitMapBackend::new(path, (720 * panels as u32, 540)).into_drawing_area();
        root.fill(&WHITE)?;
        let areas = root.split_evenly((1, panels));
        for ((t, lines), area) in series.iter().zip(areas.iter()) {
            let mut builder = ChartBuilder::on(area);
            builder.margin(20);
            if text {
                builder
                    .caption(
                        format!("grim BCR speedup over the fastest dense peer, {t} thread(s)"),
                        ("sans-serif", 18),
                    )
                    .x_label_area_size(40)
                    .y_label_area_size(50);
            } else {
                builder.x_label_area_size(10).y_label_area_size(10);
            }
            let mut chart = builder.build_cartesian_2d(0.0..x_max, 0.0..y_top)?;
            if text {
                chart
                    .configure_mesh()
                    .light_line_style(WHITE)
                    .x_labels(10)
                    .x_label_formatter(&|x| format!("{x:.0}"))
                    .y_label_formatter(&|y| format!("{y:.0}"))
                    .x_desc("compression (dense elements / nonzeros)")
                    .y_desc("speedup (peer ms / grim ms)")
                    .label_style(("sans-serif", 14))
                    .draw()?;
            } else {
                chart
                    .configure_mesh()
                    .disable_x_mesh()
                    .disable_y_mesh()
                    .x_labels(0)
                    .y_labels(0)
                    .draw()?;
            }
            // Parity (1x) and the 5x target.
            for (y, color) in [(1.0, BLACK.mix(0.6)), (5.0, RED.mix(0.35))] {
                chart.draw_series(DashedLineSeries::new(
                    vec![(0.0, y), (x_max, y)],
                    6,
                    4,
                    color.stroke_width(1),
                ))?;
            }
            for (i, (name, points, conv)) in lines.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                let drawn =
                    chart.draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?;
                if text {
                    drawn.label(name.clone()).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                    });
                }
                chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
                chart.draw_series(
                    conv.iter()
                        .map(|&p| Circle::new(p, 7, color.stroke_width(2))),
                )?;
            }
            if text {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperLeft)
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .label_font(("sans-serif", 13))
                    .draw()?;
            }
        }
        root.present()?;
        let legend: Vec<String> = self
            .file
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| format!("{} = {}", COLOR_NAMES[i % COLOR_NAMES.len()], l.name))
            .collect();
        Ok(format!(
            "x: compression (4x, 8x, 16x); y: fastest dense peer's median / grim BCR's median at its best block for that sparsity; one panel per thread count ({}); dashed: 1x (black) and the 5x target (red); rings at 8x: the conv layers through ONNX Conv (im2col included; the peers stay on the GEMM view). Colours: {}.{}",
            self.options.threads.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", "),
            legend.join(", "),
            if text { "" } else { " (No TTF font was found, so the plot has no text.)" }
        ))
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

    #[test]
    fn layers_copy_parses_and_matches_shared() {
        let file = load_layers().unwrap();
        assert!(
            file.layers.len() >= 3 && !file.sparsity.is_empty() && !file.block_sizes.is_empty()
        );
        // The copy must not drift from the design repository's list when that is beside us.
        let shared = repo_root()
            .join("..")
            .join("shared")
            .join("bench")
            .join("layers.json");
        if let Ok(text) = std::fs::read_to_string(&shared) {
            let a: Value = serde_json::from_str(&text).unwrap();
            let b: Value =
                serde_json::from_str(&std::fs::read_to_string(layers_file()).unwrap()).unwrap();
            assert_eq!(
                a,
                b,
                "xtask/bench/layers.json differs from {}",
                shared.display()
            );
        }
    }

    #[test]
    fn user_layers_parse_and_name_a_listed_sparsity() {
        let file = load_layers().unwrap();
        let users: Vec<&Layer> = file.layers.iter().filter(|l| l.user.is_some()).collect();
        assert!(!users.is_empty(), "user-layers.json lists no layer");
        let l = users.iter().find(|l| l.name == "user.linear1536").unwrap();
        assert_eq!((l.m, l.k, l.n), (1536, 1536, 64));
        let user = l.user.as_ref().unwrap();
        assert_eq!(file.sparsity[user.sparsity].name, "8x");
        assert_eq!(user.block, BlockSize { rows: 8, cols: 16 });
    }

    #[test]
    fn user_cases_time_defaults_beside_forced_kernels() {
        let file = load_layers().unwrap();
        let li = file.layers.iter().position(|l| l.user.is_some()).unwrap();
        let dir = std::env::temp_dir().join(format!("grim-bench-user-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let layer = &file.layers[li];
        let cases = user_cases(&file, li, layer, layer.user.as_ref().unwrap(), &dir).unwrap();
        let kinds: Vec<&str> = cases.iter().map(Case::implementation).collect();
        assert_eq!(kinds, ["grim-dense", "grim-auto", "grim-bcr"]);
        assert_eq!(kernel_flags(&cases[0]), ["--kernel", "dense"]);
        assert!(kernel_flags(&cases[1]).is_empty());
        assert_eq!(
            kernel_flags(&cases[2]),
            ["--kernel", "bcr", "--block", "8x16"]
        );
        // The pruned weight is mask-multiplied: 1/8 nonzero, pruned negatives -0.0.
        let w = grim_model::read_npy(&cases[2].weight).unwrap();
        assert_eq!(cases[2].nonzeros, layer.m * layer.k / 8);
        assert!(w.data.iter().any(|v| *v == 0.0 && v.is_sign_negative()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn conv_layers_agree_with_their_gemm_view() {
        let file = load_layers().unwrap();
        for l in &file.layers {
            assert_eq!(l.conv.is_some(), l.kind == "conv", "{}", l.name);
        }
        let layer = |extra: &str| {
            serde_json::from_str::<Layer>(&format!(
                r#"{{"name": "c", "kind": "conv", "M": 8, "K": 36, "N": 16{extra}}}"#
            ))
        };
        let c = layer(
            r#", "cin": 4, "cout": 8, "kh": 3, "kw": 3, "h": 8, "w": 8, "stride": 2, "pad": 1"#,
        )
        .unwrap()
        .conv
        .unwrap();
        assert_eq!(c.output(), Some((4, 4)));
        assert!(!c.pointwise());
        let wrong = layer(
            r#", "cin": 4, "cout": 8, "kh": 3, "kw": 3, "h": 8, "w": 8, "stride": 1, "pad": 1"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            wrong.contains("8 x 36 x 64") && wrong.contains("8 x 36 x 16"),
            "{wrong}"
        );
        let missing = layer(r#", "cin": 4, "cout": 8"#).unwrap_err().to_string();
        assert!(missing.contains("no `kh`"), "{missing}");
        let unfit = layer(
            r#", "cin": 4, "cout": 8, "kh": 3, "kw": 3, "h": 1, "w": 1, "stride": 1, "pad": 0"#,
        )
        .unwrap_err()
        .to_string();
        assert!(unfit.contains("does not fit"), "{unfit}");
    }

    #[test]
    fn adaptive_runs_are_clamped() {
        let b = Budget {
            seconds: 0.5,
            min_runs: 10,
            max_runs: 1000,
        };
        assert_eq!(runs_for(&b, 50.0), 10);
        assert_eq!(runs_for(&b, 1.0), 500);
        assert_eq!(runs_for(&b, 0.0001), 1000);
    }

    #[test]
    fn utc_date_format() {
        let now = utc_now();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.starts_with("20") && now.ends_with('Z'));
    }
}
