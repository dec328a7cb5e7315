//! The grim models to time: one ONNX model and one `.W.npy` weight per
//! layer x sparsity x block size (plus the dense, conv and user cases), and
//! the kernel flags `grimc` gets for each.

use super::{
    layers::{Layer, LayersFile, UserPruning},
    Options, DENSE_BLOCK,
};
use crate::lcg_values;
use anyhow::{Context as _, Result};
use grim_model::{
    conv_layer, kn_gemm, linear_layer, mask_multiplied_bcr_weight, random_bcr_weight, save_onnx,
    write_npy, BlockSize, Graph, Tensor,
};
use std::path::{Path, PathBuf};

/// One grim model to time.
#[derive(Debug, Clone)]
pub(super) struct Case {
    pub(super) id: String,
    pub(super) layer: usize,
    /// Index into `sparsity`; `None` for the dense model.
    pub(super) sparsity: Option<usize>,
    pub(super) block: BlockSize,
    pub(super) seed: u64,
    pub(super) model: PathBuf,
    /// W in its GEMM view, M x K (what the peers multiply).
    pub(super) weight: PathBuf,
    pub(super) nonzeros: usize,
    /// The model is the layer as one ONNX Conv on [1, cin, h, w] (im2col
    /// included) instead of the GEMM view; grim only, the peers skip it.
    pub(super) conv: bool,
    /// Timed with grimc's defaults (no `--block`, no `--kernel`): the cost
    /// model chooses, as for a user; grim only, the peers time the forced case
    /// of the same model.
    pub(super) auto: bool,
}

impl Case {
    pub(super) fn implementation(&self) -> &'static str {
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
    pub(super) fn is_gemm_8x_8x16(&self, file: &LayersFile) -> bool {
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

pub(super) fn make_cases(file: &LayersFile, options: &Options, dir: &Path) -> Result<Vec<Case>> {
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

/// The kernel flags `grimc` gets for `case`: none for `grim-auto`, else
/// the case's kernel forced (and its block for BCR), so no row depends on
/// the cost model's choice unless it says so.
pub(super) fn kernel_flags(case: &Case) -> Vec<String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::layers::load_layers;

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
}
