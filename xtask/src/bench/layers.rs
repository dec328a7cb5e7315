//! Inputs: the layer shapes of xtask/bench/layers.json and the user layers of
//! xtask/bench/user-layers.json (with their pruning), parsed and checked.

use crate::repo_root;
use anyhow::{Context as _, Result};
use grim_model::BlockSize;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
pub(super) struct LayersFile {
    pub(super) layers: Vec<Layer>,
    pub(super) sparsity: Vec<Sparsity>,
    pub(super) block_sizes: Vec<[usize; 2]>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawLayer")]
pub(super) struct Layer {
    pub(super) name: String,
    pub(super) kind: String,
    pub(super) m: usize,
    pub(super) k: usize,
    pub(super) n: usize,
    /// The conv parameters of a layer of kind "conv" (checked against M, K, N).
    pub(super) conv: Option<ConvShape>,
    /// How a layer of user-layers.json is pruned; `None` for layers.json's.
    pub(super) user: Option<UserPruning>,
}

/// A user layer's pruning: its model is the user-style `nn.Linear` export
/// pruned by mask multiplication at `sparsity` with `block`, timed with
/// grimc's defaults (`grim-auto`) beside the forced BCR kernel at `block`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct UserPruning {
    /// Index into [`LayersFile::sparsity`].
    pub(super) sparsity: usize,
    pub(super) block: BlockSize,
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
pub(super) struct ConvShape {
    pub(super) cin: usize,
    pub(super) cout: usize,
    pub(super) kh: usize,
    pub(super) kw: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) stride: usize,
    pub(super) pad: usize,
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
    pub(super) fn pointwise(&self) -> bool {
        (self.kh, self.kw, self.stride, self.pad) == (1, 1, 1, 0)
    }

    /// Whether grim's BCR kernels read this conv's image in place (stride 1
    /// and output rows of at least 48, the compiler's rule).
    pub(super) fn bcr_in_place(&self) -> bool {
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
pub(super) struct Sparsity {
    pub(super) name: String,
    pub(super) row_keep: f64,
    pub(super) col_keep: f64,
}

pub(super) fn layers_file() -> PathBuf {
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
pub(super) fn load_layers() -> Result<LayersFile> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

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
}
