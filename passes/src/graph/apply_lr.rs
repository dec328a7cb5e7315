//! graph-apply-lr: put an LR file's per-layer choices (kernel, block, order, schedule) on the products they name.
//!
//! GRIM's layerwise representation (LR) is the per-layer description the
//! compiler reads: for each layer, dense or BCR with its block, the work
//! order and the schedule (lanes, register tile, N tile, threads). A layer
//! is matched by the product's ONNX node name (its name location, which
//! graph-simplify keeps through fusion and folding: a conv that absorbed
//! its batch norm and relu is still `/layer1/layer1.0/conv1/Conv`), else by
//! the name of the constant weight it multiplies. The product gets
//! `kernel`, `block_rows`/`block_cols`, `order` and the schedule fields as
//! attributes, which graph-choose-kernel and the bcr passes then keep.
//!
//! What it does not do: choose anything the file leaves open (that is
//! graph-choose-kernel's job), or check that a forced block suits the
//! weights. A layer of the file that matches no product, a `csr` layer, or
//! a schedule value out of range is an error naming the file and layer.
//!
//! Options: `file=PATH` (required).
//!
//! Before: `grim.conv2d(...) loc("conv1")`, LR `{"name": "conv1", "sparsity": {"kind": "bcr", "block_rows": 4, "block_cols": 16}}`.
//! After:  `grim.conv2d(...) {block_cols = 16, block_rows = 4, kernel = "bcr"}`.

use crate::{collect_ops, op_name, Pass, PassError, PassOptions};
use grim_dialects::{bcr, grim};
use grim_model::{LrFile, Sparsity};
use melior::{
    ir::{
        attribute::{IntegerAttribute, StringAttribute},
        operation::{OperationLike, OperationMutLike, OperationRefMut},
        r#type::IntegerType,
        Module,
    },
    Context,
};
use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

/// Pipeline flag.
pub const FLAG: &str = "graph-apply-lr";
/// One-line summary.
pub const SUMMARY: &str =
    "put an LR file's per-layer choices (kernel, block, order, schedule) on the products they name";
/// Accepted options.
pub const OPTIONS: &[&str] = &["file=PATH the LR file (required)"];

/// The pass object.
pub struct GraphApplyLr {
    file: PathBuf,
}

/// Makes the pass from its options.
pub fn create(options: &PassOptions) -> Result<Box<dyn Pass>, PassError> {
    options.check_documented(FLAG, OPTIONS)?;
    let file = options.string("file").ok_or_else(|| PassError::Option {
        pass: FLAG.into(),
        message: "needs file=PATH".into(),
    })?;
    Ok(Box::new(GraphApplyLr { file: file.into() }))
}

/// A product's layer name: its ONNX node name (name location), if any.
pub fn node_name<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Option<String> {
    let location = op.location();
    location
        .is_name()
        .then(|| {
            location
                .name_value()
                .as_string_ref()
                .as_str()
                .ok()
                .map(String::from)
        })
        .flatten()
        .filter(|n| !n.is_empty())
}

/// A schedule field of an LR layer: the attribute it becomes, its value,
/// whether a value is valid, and what valid means (for the error).
type ScheduleCheck<'a> = (&'a str, Option<usize>, fn(usize) -> bool, &'a str);

fn layer_error(path: &Path, layer: &str, message: String) -> PassError {
    PassError::Model(grim_model::ModelError::LrLayer {
        path: path.to_path_buf(),
        layer: layer.to_string(),
        message,
    })
}

impl Pass for GraphApplyLr {
    fn run<'c>(&self, context: &'c Context, module: &Module<'c>) -> Result<(), PassError> {
        let lr = LrFile::load(&self.file)?;
        let products = collect_ops(module, |op| {
            grim::PRODUCTS.contains(&op_name(op).as_str()) || op_name(op) == grim::RECURRENT
        });
        let mut matched = BTreeSet::new();
        let i64_type = IntegerType::new(context, 64).into();
        for raw in products {
            // SAFETY: collected above; only attributes change.
            let mut op = unsafe { OperationRefMut::from_raw(raw) };
            let node = node_name(&op).unwrap_or_default();
            let weight = grim::product_weight_name(&op).unwrap_or_default();
            // A recurrent op's units (`<node>.W`, `<node>.R`, ...) share its
            // one kernel and block: an entry of the node or of a unit sets them.
            let recurrent = op.name().as_string_ref().as_str() == Ok(grim::RECURRENT);
            let unit = || {
                lr.layers.iter().find(|l| {
                    recurrent
                        && l.name
                            .strip_prefix(node.as_str())
                            .is_some_and(|rest| rest.starts_with(".W") || rest.starts_with(".R"))
                })
            };
            let Some(layer) = lr.layer(&node).or_else(|| lr.layer(&weight)).or_else(unit) else {
                continue;
            };
            matched.insert(layer.name.clone());
            match &layer.sparsity {
                Sparsity::Bcr {
                    block_rows,
                    block_cols,
                    ..
                } => {
                    op.set_attribute(
                        grim::KERNEL_ATTR,
                        StringAttribute::new(context, grim::KERNEL_BCR).into(),
                    );
                    op.set_attribute(
                        grim::BLOCK_ATTR,
                        IntegerAttribute::new(i64_type, *block_rows as i64).into(),
                    );
                    op.set_attribute(
                        grim::BLOCK_COLS_ATTR,
                        IntegerAttribute::new(i64_type, *block_cols as i64).into(),
                    );
                }
                Sparsity::Dense => {
                    op.set_attribute(
                        grim::KERNEL_ATTR,
                        StringAttribute::new(context, grim::KERNEL_DENSE).into(),
                    );
                }
                Sparsity::Csr => {
                    return Err(layer_error(
                        &self.file,
                        &layer.name,
                        "csr is not a format grim generates code for; use bcr or dense".into(),
                    ));
                }
            }
            // The schedule: each value checked, then carried to the product
            // by lower-grim-to-bcr (the bcr passes keep what is already set).
            let schedule = layer.schedule.clone().unwrap_or_default();
            let checks: [ScheduleCheck; 4] = [
                (
                    bcr::REGISTER_TILE_ATTR,
                    schedule.register_tile,
                    |v| (1..=16).contains(&v),
                    "in 1..=16",
                ),
                (
                    bcr::VECTOR_WIDTH_ATTR,
                    schedule.vector_width,
                    |v| [1, 2, 4, 8, 16].contains(&v),
                    "1, 2, 4, 8 or 16",
                ),
                (
                    bcr::THREADS_ATTR,
                    schedule.threads,
                    |v| v >= 1,
                    "at least 1",
                ),
                (bcr::TILE_N_ATTR, schedule.tile_n, |_| true, ""),
            ];
            for (name, value, valid, expected) in checks {
                let Some(value) = value else { continue };
                if !valid(value) {
                    return Err(layer_error(
                        &self.file,
                        &layer.name,
                        format!("{name} must be {expected}, got {value}"),
                    ));
                }
                op.set_attribute(name, IntegerAttribute::new(i64_type, value as i64).into());
            }
            if let Some(order) = &layer.order {
                op.set_attribute(
                    grim::ORDER_ATTR,
                    StringAttribute::new(context, &order.to_string()).into(),
                );
            }
        }
        if let Some(layer) = lr.layers.iter().find(|l| !matched.contains(&l.name)) {
            return Err(layer_error(
                &self.file,
                &layer.name,
                "matches no gemm, conv or recurrent op of the model (by ONNX node name or weight name)".into(),
            ));
        }
        Ok(())
    }
}
