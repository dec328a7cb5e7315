//! The layerwise representation (LR): GRIM's per-layer description of
//! sparsity, schedule and latency, as JSON.
//!
//! `grimc inspect --lr-out` writes it (and `grimc prune` and `tune` will)
//! and `grimc compile` reads it, so it is a user-editable file: unknown fields are
//! rejected (a typo must not silently become "use the default"), syntax
//! errors point at `path:line:column`, and semantic errors name the layer.
//! Layers are named by their ONNX node name (the weight name also matches).
//!
//! Version 2 adds, per layer, the cost model's estimate of each candidate
//! kernel (`estimates_ns`, as the compiler recorded them) and the pruning
//! rate the layer was pruned to (`rate`); version 1 files still read.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::bcrc::{BlockSize, Order, MAX_BLOCK_SIDE};
use crate::error::ModelError;
use crate::fsutil::write_atomic;

/// The LR format version this crate writes.
pub const LR_VERSION: u32 = 2;
/// The oldest LR format version this crate reads.
pub const LR_OLDEST_VERSION: u32 = 1;

/// A whole LR file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrFile {
    /// Format version: [`LR_OLDEST_VERSION`] to [`LR_VERSION`].
    pub version: u32,
    /// Name of the model this LR describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// One entry per layer; names are unique.
    pub layers: Vec<LrLayer>,
}

/// One layer's entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrLayer {
    /// Layer (node) name in the model.
    pub name: String,
    /// Op type, informational (e.g. `Gemm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// Weight shape, informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<Vec<usize>>,
    /// Storage format of the layer's weights.
    pub sparsity: Sparsity,
    /// Work order of a BCR layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Order>,
    /// Kernel schedule chosen by the tuner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Measured or estimated latency in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Version 2: the cost model's estimate of each candidate kernel, in
    /// ns, by label (`dense`, `bcr 8x16`, ...); informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimates_ns: Option<std::collections::BTreeMap<String, f64>>,
    /// Version 2: the pruning rate the layer was pruned to (dense elements
    /// per kept one, at least 1); informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
}

/// Storage format of a layer's weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Sparsity {
    /// Dense weights, dense kernel.
    Dense,
    /// BCR with the given block; the keeps are what pruning aimed for
    /// (absent: detect from the weights).
    Bcr {
        /// Rows per block (1..=64).
        block_rows: usize,
        /// Columns per block (1..=64).
        block_cols: usize,
        /// Fraction of rows kept per block, in (0, 1].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        row_keep: Option<f64>,
        /// Fraction of columns kept per block, in (0, 1].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        col_keep: Option<f64>,
    },
    /// Unstructured sparsity in CSR.
    Csr,
}

/// Kernel schedule; absent fields are chosen by the compiler.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// f32 lanes per vector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_width: Option<usize>,
    /// Rows of the register tile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register_tile: Option<usize>,
    /// Columns of X per tile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tile_n: Option<usize>,
    /// Threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
}

impl Sparsity {
    /// The block size of a BCR layer, if valid.
    pub fn block(&self) -> Option<BlockSize> {
        match self {
            Sparsity::Bcr {
                block_rows,
                block_cols,
                ..
            } => BlockSize::new(*block_rows, *block_cols).ok(),
            _ => None,
        }
    }
}

/// serde_json's message ends with " at line L column C"; the position is
/// reported separately, so drop it.
fn strip_position(msg: &str) -> &str {
    match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    }
}

impl LrFile {
    /// An empty LR at the current version.
    pub fn new(model: Option<String>) -> Self {
        LrFile {
            version: LR_VERSION,
            model,
            layers: Vec::new(),
        }
    }

    /// Reads and checks an LR file.
    pub fn load(path: &Path) -> Result<LrFile, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses and checks LR text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<LrFile, ModelError> {
        let lr: LrFile = serde_json::from_str(text).map_err(|e| ModelError::Lr {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: strip_position(&e.to_string()).to_string(),
        })?;
        lr.check(path)?;
        Ok(lr)
    }

    /// Semantic checks (version, block sizes, keeps, unique names, schedule),
    /// without a file name in the errors.
    pub fn validate(&self) -> Result<(), ModelError> {
        self.check(Path::new("<lr>"))
    }

    fn check(&self, path: &Path) -> Result<(), ModelError> {
        if !(LR_OLDEST_VERSION..=LR_VERSION).contains(&self.version) {
            return Err(ModelError::LrFile {
                path: path.to_path_buf(),
                message: format!(
                    "unsupported LR version {} (this grim reads versions {LR_OLDEST_VERSION} to {LR_VERSION})",
                    self.version
                ),
            });
        }
        let mut names = BTreeSet::new();
        for layer in &self.layers {
            let err = |message: String| ModelError::LrLayer {
                path: PathBuf::from(path),
                layer: layer.name.clone(),
                message,
            };
            if layer.name.is_empty() {
                return Err(err("layer name is empty".into()));
            }
            if !names.insert(layer.name.as_str()) {
                return Err(err("duplicate layer name".into()));
            }
            if let Sparsity::Bcr {
                block_rows,
                block_cols,
                row_keep,
                col_keep,
            } = &layer.sparsity
            {
                if BlockSize::new(*block_rows, *block_cols).is_err() {
                    return Err(err(format!(
                        "block {block_rows}x{block_cols}: rows and cols must be in 1..={MAX_BLOCK_SIDE}"
                    )));
                }
                for (what, keep) in [("row_keep", row_keep), ("col_keep", col_keep)] {
                    if let Some(k) = keep {
                        if !(*k > 0.0 && *k <= 1.0) {
                            return Err(err(format!("{what} must be in (0, 1], got {k}")));
                        }
                    }
                }
            } else if layer.order.is_some() {
                return Err(err("'order' applies only to bcr layers".into()));
            }
            if let Some(s) = &layer.schedule {
                for (what, v) in [
                    ("vector_width", s.vector_width),
                    ("register_tile", s.register_tile),
                    ("tile_n", s.tile_n),
                    ("threads", s.threads),
                ] {
                    if v == Some(0) {
                        return Err(err(format!("schedule.{what} must be positive")));
                    }
                }
            }
            if self.version < 2 && (layer.estimates_ns.is_some() || layer.rate.is_some()) {
                return Err(err("'estimates_ns' and 'rate' need LR version 2".into()));
            }
            if let Some(rate) = layer.rate {
                if !(rate.is_finite() && rate >= 1.0) {
                    return Err(err(format!("rate must be a number >= 1, got {rate}")));
                }
            }
            if let Some(estimates) = &layer.estimates_ns {
                if let Some((label, ns)) = estimates
                    .iter()
                    .find(|(_, ns)| !(ns.is_finite() && **ns >= 0.0))
                {
                    return Err(err(format!(
                        "estimates_ns['{label}'] must be a non-negative number, got {ns}"
                    )));
                }
            }
            if let Some(l) = layer.latency_ms {
                if !(l.is_finite() && l >= 0.0) {
                    return Err(err(format!(
                        "latency_ms must be a non-negative number, got {l}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Writes the LR as pretty JSON, atomically (after checking it, so an
    /// invalid LR is never written).
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        self.check(path)?;
        let mut text = serde_json::to_string_pretty(self).map_err(|e| ModelError::LrFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        text.push('\n');
        write_atomic(path, text.as_bytes())
    }

    /// The layer called `name`.
    pub fn layer(&self, name: &str) -> Option<&LrLayer> {
        self.layers.iter().find(|l| l.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{
  "version": 1,
  "model": "mlp",
  "layers": [
    {"name": "fc1", "op": "Gemm", "shape": [512, 256],
     "sparsity": {"kind": "bcr", "block_rows": 8, "block_cols": 16, "row_keep": 0.5, "col_keep": 0.25},
     "order": "grouped", "schedule": {"vector_width": 8, "threads": 4}, "latency_ms": 0.12},
    {"name": "fc3", "sparsity": {"kind": "dense"}}
  ]
}"#;

    fn parse(text: &str) -> Result<LrFile, ModelError> {
        LrFile::parse(text, Path::new("m/lr.json"))
    }

    #[test]
    fn parses_and_round_trips() {
        let lr = parse(GOOD).unwrap();
        let fc1 = lr.layer("fc1").unwrap();
        assert_eq!(fc1.order, Some(Order::Grouped));
        assert_eq!(fc1.sparsity.block(), Some(BlockSize::new(8, 16).unwrap()));
        assert_eq!(fc1.schedule.as_ref().unwrap().threads, Some(4));
        assert_eq!(lr.layer("fc3").unwrap().sparsity, Sparsity::Dense);
        assert!(lr.layer("fc2").is_none());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lr.json");
        lr.save(&p).unwrap();
        assert_eq!(LrFile::load(&p).unwrap(), lr);
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let e = parse("{\n  \"version\": 1,\n  \"layers\": [,]\n}")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("m/lr.json:3:14: error: "), "{e}");
        assert!(!e.contains(" at line "), "{e}");
        // Unknown field (a typo) is rejected, with its position.
        let e = parse(&GOOD.replace("\"threads\"", "\"thread\""))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("m/lr.json:7:") && e.contains("`thread`"),
            "{e}"
        );
        let e = parse(&GOOD.replace("\"block_cols\"", "\"block_colz\""))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("m/lr.json:6:") && e.contains("block_colz"),
            "{e}"
        );
        let e = parse(&GOOD.replace("\"dense\"", "\"sparse\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("m/lr.json:") && e.contains("sparse"), "{e}");
    }

    #[test]
    fn semantic_errors_name_the_layer() {
        let e = parse(&GOOD.replace("\"version\": 1", "\"version\": 3"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("version 3") && e.contains("versions 1 to 2"),
            "{e}"
        );
        // Version 2 fields need version 2.
        let with_estimates = GOOD.replace(
            "\"latency_ms\": 0.12",
            "\"latency_ms\": 0.12, \"estimates_ns\": {\"dense\": 1000.0, \"bcr 8x16\": 250.0}, \"rate\": 8.0",
        );
        let e = parse(&with_estimates).unwrap_err().to_string();
        assert!(e.contains("layer 'fc1'") && e.contains("version 2"), "{e}");
        let v2 = parse(&with_estimates.replace("\"version\": 1", "\"version\": 2")).unwrap();
        assert_eq!(
            v2.layers[0].estimates_ns.as_ref().map(|e| e["bcr 8x16"]),
            Some(250.0)
        );
        assert_eq!(v2.layers[0].rate, Some(8.0));
        let e = parse(
            &with_estimates
                .replace("\"version\": 1", "\"version\": 2")
                .replace("8.0", "0.5"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("rate must be"), "{e}");
        let e = parse(&GOOD.replace("\"block_rows\": 8", "\"block_rows\": 0"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("layer 'fc1'") && e.contains("0x16"), "{e}");
        let e = parse(&GOOD.replace("0.25", "1.25"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("layer 'fc1'") && e.contains("col_keep"), "{e}");
        let e = parse(&GOOD.replace("\"fc3\"", "\"fc1\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("layer 'fc1'") && e.contains("duplicate"), "{e}");
        let e = parse(&GOOD.replace("\"threads\": 4", "\"threads\": 0"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("schedule.threads"), "{e}");
    }

    #[test]
    fn io_error_names_path() {
        let e = LrFile::load(Path::new("/nonexistent/lr.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/lr.json"), "{e}");
    }
}
