//! graph-choose-kernel: choose each product's kernel (dense, or BCR with a block size) by the cost model's estimates, recording every candidate's.
//!
//! For every product (`grim.gemm` in canonical form, `grim.conv2d`) the
//! cost model (`grim_model::cost`, on the module's `grim.target`) estimates
//! the dense kernel and the BCR kernel at each candidate block, counting
//! the blocks, kept rows and columns the weight really has when packed with
//! that block (`grim_model::bcrc::bcr_shape`; `+0.0` and `-0.0` are both
//! zeros). The cheapest wins, a tie goes to dense. Every candidate's
//! estimate is recorded in `estimates = {dense = ..., "bcr 8x16" = ...}`
//! (ns), so `grimc inspect` can show why a layer stayed dense. A conv also
//! gets its im2col route (`im2col`: pointwise, implicit or explicit) for
//! the chosen kernel.
//!
//! The candidates are GRIM's block sizes (`BLOCK_CANDIDATES`: 4x16, 8x16,
//! 16x16, 16x32, 32x32), or just one block when the LR file (block
//! attributes on the product) or the `block` option fixes it. A kernel the
//! LR file fixed (`kernel`) is kept; its estimates are still recorded. A
//! product whose weight is not a constant runs the dense kernel (BCR needs
//! the weight's values to pack it), and a grouped conv (depthwise
//! included) the direct kernel, which `kernel_reason` says.
//!
//! A `grim.recurrent` gets one `kernel` and block for all its W and R
//! matrices, by the sum of the estimates of the products its lowering runs
//! (per direction `W` over all `T x B` columns once, `R` over `B` columns
//! `T` times; a GRU without `linear_before_reset` `R_zr` and `R_h`), each
//! candidate's sum recorded in `estimates`. Run-time W or R: dense.
//!
//! What it does not do: prune (weights are packed as they are), or pick a
//! schedule (the bcr passes do). This replaces a fixed stored-fraction
//! threshold: whether BCR pays depends on the shape, the block structure
//! and the target, not on the fill alone (GRIM, TPAMI 2022, §5: per-layer
//! format choice).
//!
//! Options: `block=RxC` (fix the block of every product the LR file
//! leaves open), `kernel=dense|bcr` (fix the kernel of every product the
//! LR file leaves open; the estimates are still recorded).
//!
//! Before: `grim.gemm(%x, %w, %b) {trans_b}`.
//! After:  `grim.gemm(%x, %w, %b) {block_cols = 16, block_rows = 8, estimates = {...}, kernel = "bcr", trans_b}`.

use super::layer::Layer;
use crate::{collect_ops, op_error, op_name, parse_block, Pass, PassError, PassOptions};
use grim_dialects::{grim, weights};
use grim_model::{
    cost::{self, Kernel, BLOCK_CANDIDATES},
    BlockSize,
};
use melior::{
    ir::{
        attribute::{FloatAttribute, IntegerAttribute, StringAttribute},
        operation::{OperationLike, OperationMutLike, OperationRef, OperationRefMut},
        r#type::IntegerType,
        Attribute, Identifier, Module, Type,
    },
    Context,
};

/// Pipeline flag.
pub const FLAG: &str = "graph-choose-kernel";
/// One-line summary.
pub const SUMMARY: &str = "choose each product's kernel (dense, or BCR with a block size) by the cost model's estimates, recording every candidate's";
/// Accepted options.
pub const OPTIONS: &[&str] = &[
    "block=RxC fix the block of products the LR file leaves open (the cost model chooses)",
    "kernel=dense|bcr fix the kernel of products the LR file leaves open (the cost model chooses)",
];

/// Why a grouped conv runs the direct kernel.
pub const GROUPED: &str = "a grouped (depthwise) conv runs the direct kernel: a group's matrix (M/group rows, C/group*kh*kw columns) is too small for BCR blocks";

/// Why a product with a non-constant weight runs the dense kernel.
pub const NOT_CONSTANT: &str =
    "the weight is not a constant: BCR packs a weight's values at compile time";

/// The recorded reason of a kernel the LR file (the product's `kernel`
/// attribute) fixed.
pub const FIXED_BY_LR: &str = "as the LR file says";
/// The recorded reason of a dense kernel on a weight nothing was pruned from
/// while a BCR candidate was estimated cheaper (the cost model never picks
/// a BCR candidate that stores every value).
pub const NOTHING_PRUNED: &str =
    "because nothing is pruned: BCR would store every value and add index reads";
/// The recorded reason of a kernel the `kernel` option fixed.
pub const FIXED_BY_OPTION: &str = "as the kernel option (--kernel) says";

/// Why a recurrent op with W or R given at run time runs the dense kernel.
pub const RECURRENT_NOT_CONSTANT: &str =
    "W or R is not a constant: BCR packs a weight's values at compile time";

/// The pass object.
pub struct GraphChooseKernel {
    block: Option<(i64, i64)>,
    kernel: Option<&'static str>,
}

/// Makes the pass from its options.
pub fn create(options: &PassOptions) -> Result<Box<dyn Pass>, PassError> {
    options.check_documented(FLAG, OPTIONS)?;
    let kernel = match options.string("kernel") {
        None => None,
        Some(grim::KERNEL_DENSE) => Some(grim::KERNEL_DENSE),
        Some(grim::KERNEL_BCR) => Some(grim::KERNEL_BCR),
        Some(other) => {
            return Err(PassError::Option {
                pass: FLAG.into(),
                message: format!("kernel must be dense or bcr, got '{other}'"),
            })
        }
    };
    let block = match options.string("block") {
        None => None,
        Some(text) => Some(parse_block(text).ok_or_else(|| PassError::Option {
            pass: FLAG.into(),
            message: format!("block must be RxC with 1..=64 each, got '{text}'"),
        })?),
    };
    Ok(Box::new(GraphChooseKernel { block, kernel }))
}

/// `{label = ns : f64, ...}`.
fn estimates_attribute<'c>(context: &'c Context, candidates: &[cost::Candidate]) -> Attribute<'c> {
    let f64_type = Type::float64(context);
    let entries: Vec<mlir_sys::MlirNamedAttribute> = candidates
        .iter()
        .map(|c| mlir_sys::MlirNamedAttribute {
            name: Identifier::new(context, &c.label).to_raw(),
            attribute: melior::ir::attribute::AttributeLike::to_raw(&FloatAttribute::new(
                context, f64_type, c.ns,
            )),
        })
        .collect();
    // SAFETY: the context is alive; the entries are copied during the call.
    unsafe {
        Attribute::from_raw(mlir_sys::mlirDictionaryAttrGet(
            context.to_raw(),
            entries.len() as isize,
            entries.as_ptr(),
        ))
    }
}

impl GraphChooseKernel {
    /// The blocks to estimate for `op`: the one its attributes (the LR
    /// file) or the `block` option fix, else every candidate.
    fn candidate_blocks(&self, op: &OperationRef) -> Result<Vec<BlockSize>, PassError> {
        let given = match (
            grim_dialects::attr::int(op, grim::BLOCK_ATTR),
            grim_dialects::attr::int(op, grim::BLOCK_COLS_ATTR),
        ) {
            (Some(rows), Some(cols)) => Some((rows, cols)),
            _ => self.block,
        };
        Ok(match given {
            Some((rows, cols)) => {
                vec![BlockSize::new(rows as usize, cols as usize).map_err(|e| op_error(op, e))?]
            }
            None => BLOCK_CANDIDATES.to_vec(),
        })
    }

    /// The kernel of a recurrent op's W and R (see the module doc).
    fn choose_recurrent<'c>(
        &self,
        context: &'c Context,
        target: &cost::Target,
        op: &mut OperationRefMut<'c, '_>,
    ) -> Result<(), PassError> {
        let view: OperationRef = unsafe { OperationRef::from_raw(op.to_raw()) };
        let string = |value: &str| -> Attribute<'c> { StringAttribute::new(context, value).into() };
        let i64_type: Type = IntegerType::new(context, 64).into();
        let (r, dims) = crate::lower::grim_to_bcr::recurrent_dims(&view)?;
        let operands = grim::recurrent_operands(&view)
            .ok_or_else(|| op_error(&view, "has malformed operands"))?;
        let constant = |value: melior::ir::Value| {
            grim::defining_constant(value)
                .and_then(|c| grim::constant_value(&c))
                .filter(|v| weights::is_weight(*v))
                .and_then(weights::read)
        };
        let from_lr = grim_dialects::attr::string(op, grim::KERNEL_ATTR);
        let (Some(w), Some(rr)) = (constant(operands.weight), constant(operands.recurrence)) else {
            if from_lr.as_deref() == Some(grim::KERNEL_BCR) {
                return Err(op_error(
                    &view,
                    format!("is asked for the BCR kernel, but {RECURRENT_NOT_CONSTANT}"),
                ));
            }
            op.set_attribute(grim::KERNEL_ATTR, string(grim::KERNEL_DENSE));
            op.set_attribute(grim::KERNEL_REASON_ATTR, string(RECURRENT_NOT_CONSTANT));
            return Ok(());
        };
        let blocks = self.candidate_blocks(&view)?;
        // The products the lowering runs with `block` (its units: stacked
        // gates, or one per gate when the block cuts across them), as
        // (values, product): W over all T x B columns once, R over B
        // columns T times.
        let (t, b) = (dims.seq, dims.batch);
        let gh = r.cell.gates() * dims.hidden;
        let products = |block: Option<BlockSize>| -> Vec<(&[f32], cost::Product)> {
            let gate_by_gate = block.is_some_and(|b| {
                crate::lower::grim_to_bcr::recurrent_per_gate(dims.hidden, b.rows)
            });
            let mut all = Vec::new();
            for d in 0..dims.directions {
                for unit in
                    crate::lower::grim_to_bcr::recurrent_units(&r, &dims, "", d, gate_by_gate)
                {
                    let [rows, cols] = unit.matrix;
                    let start = (d * gh + unit.first_row) * cols;
                    let (values, product): (&[f32], _) = match unit.source {
                        crate::lower::grim_to_bcr::RecurrentMatrix::W => (
                            &w[start..start + rows * cols],
                            cost::Product::kn(rows, cols, t * b),
                        ),
                        crate::lower::grim_to_bcr::RecurrentMatrix::R => (
                            &rr[start..start + rows * cols],
                            cost::Product {
                                images: t,
                                ..cost::Product::kn(rows, cols, b)
                            },
                        ),
                    };
                    all.push((values, product));
                }
            }
            all
        };
        let dense_ns: f64 = products(None)
            .iter()
            .map(|(_, p)| cost::product_ns(target, p, &cost::Kernel::Dense))
            .sum();
        let mut totals = vec![cost::Candidate {
            label: cost::Kernel::Dense.label(),
            kernel: cost::Kernel::Dense,
            ns: dense_ns,
        }];
        let mut prunes_something = vec![false];
        for &block in &blocks {
            let mut total: Option<cost::Candidate> = None;
            let mut prunes = false;
            for (values, product) in products(Some(block)) {
                let choice = cost::choose_kernel(target, &product, values, &[block])
                    .map_err(|e| op_error(&view, e))?;
                let Some(candidate) = choice.candidates.into_iter().nth(1) else {
                    return Err(op_error(&view, "the cost model gave no BCR estimate"));
                };
                if let cost::Kernel::Bcr(shape) = &candidate.kernel {
                    prunes |= shape.stored_values < product.m * product.k;
                }
                match &mut total {
                    Some(total) => total.ns += candidate.ns,
                    None => total = Some(candidate),
                }
            }
            if let Some(total) = total {
                totals.push(total);
                prunes_something.push(prunes);
            }
        }
        op.set_attribute(grim::ESTIMATES_ATTR, estimates_attribute(context, &totals));
        let best = totals
            .iter()
            .enumerate()
            .filter(|(index, _)| *index == 0 || prunes_something[*index])
            .fold(
                0,
                |best, (index, c)| if c.ns < totals[best].ns { index } else { best },
            );
        let (kernel, block, reason) =
            match (from_lr.as_deref().or(self.kernel), &totals[best].kernel) {
                (Some(fixed), _) => {
                    let by = if from_lr.is_some() {
                        FIXED_BY_LR
                    } else {
                        FIXED_BY_OPTION
                    };
                    // A fixed BCR kernel takes the cheapest block.
                    let cheapest = totals
                        .iter()
                        .skip(1)
                        .min_by(|a, b| a.ns.total_cmp(&b.ns))
                        .and_then(|c| match c.kernel {
                            cost::Kernel::Bcr(shape) => Some(shape.block),
                            cost::Kernel::Dense => None,
                        });
                    (fixed.to_string(), cheapest, Some(by))
                }
                (None, cost::Kernel::Bcr(shape)) => {
                    (grim::KERNEL_BCR.to_string(), Some(shape.block), None)
                }
                (None, cost::Kernel::Dense) => {
                    let reason = totals
                        .iter()
                        .any(|c| c.ns < totals[0].ns)
                        .then_some(NOTHING_PRUNED);
                    (grim::KERNEL_DENSE.to_string(), None, reason)
                }
            };
        op.set_attribute(grim::KERNEL_ATTR, string(&kernel));
        if let Some(reason) = reason {
            op.set_attribute(grim::KERNEL_REASON_ATTR, string(reason));
        }
        if let (Some(block), false) = (block, op.has_attribute(grim::BLOCK_ATTR)) {
            if kernel == grim::KERNEL_BCR {
                op.set_attribute(
                    grim::BLOCK_ATTR,
                    IntegerAttribute::new(i64_type, block.rows as i64).into(),
                );
                op.set_attribute(
                    grim::BLOCK_COLS_ATTR,
                    IntegerAttribute::new(i64_type, block.cols as i64).into(),
                );
            }
        }
        Ok(())
    }

    fn choose<'c>(
        &self,
        context: &'c Context,
        target: &cost::Target,
        op: &mut OperationRefMut<'c, '_>,
    ) -> Result<(), PassError> {
        let view: OperationRef = unsafe { OperationRef::from_raw(op.to_raw()) };
        let layer = Layer::of(&view)?;
        let string = |value: &str| -> Attribute<'c> { StringAttribute::new(context, value).into() };
        let from_lr = grim_dialects::attr::string(op, grim::KERNEL_ATTR);
        let fixed = from_lr.clone().or(self.kernel.map(String::from));
        if layer.group > 1 {
            if from_lr.as_deref() == Some(grim::KERNEL_BCR) {
                return Err(op_error(
                    &view,
                    format!("is asked for the BCR kernel, but {GROUPED}"),
                ));
            }
            op.set_attribute(grim::KERNEL_ATTR, string(grim::KERNEL_DENSE));
            op.set_attribute(grim::KERNEL_REASON_ATTR, string(GROUPED));
            return Ok(());
        }
        let Some(weight) = layer.weight else {
            // The kernel option applies where it can; an LR file asking for
            // BCR on a weight that is not a constant is an error.
            if from_lr.as_deref() == Some(grim::KERNEL_BCR) {
                return Err(op_error(
                    &view,
                    format!("is asked for the BCR kernel, but {NOT_CONSTANT}"),
                ));
            }
            op.set_attribute(grim::KERNEL_ATTR, string(grim::KERNEL_DENSE));
            op.set_attribute(grim::KERNEL_REASON_ATTR, string(NOT_CONSTANT));
            if let Some(route) = layer.im2col(false) {
                op.set_attribute(grim::IM2COL_ATTR, string(route.name()));
            }
            return Ok(());
        };
        let data =
            weights::read(weight).ok_or_else(|| op_error(&view, "has an unreadable weight"))?;
        let candidates = self.candidate_blocks(&view)?;
        let choice = cost::choose_kernel(target, &layer.product(), &data, &candidates)
            .map_err(|e| op_error(&view, e))?;
        op.set_attribute(
            grim::ESTIMATES_ATTR,
            estimates_attribute(context, &choice.candidates),
        );
        let bcr = match fixed.as_deref() {
            Some(kernel) => {
                op.set_attribute(grim::KERNEL_ATTR, string(kernel));
                let by = if from_lr.is_some() {
                    FIXED_BY_LR
                } else {
                    FIXED_BY_OPTION
                };
                op.set_attribute(grim::KERNEL_REASON_ATTR, string(by));
                kernel == grim::KERNEL_BCR
            }
            None => {
                let i64_type = IntegerType::new(context, 64).into();
                match &choice.kernel {
                    Kernel::Dense => {
                        op.set_attribute(grim::KERNEL_ATTR, string(grim::KERNEL_DENSE));
                        let dense_ns = choice.candidates.first().map_or(0.0, |c| c.ns);
                        if choice.candidates.iter().any(|c| c.ns < dense_ns) {
                            op.set_attribute(grim::KERNEL_REASON_ATTR, string(NOTHING_PRUNED));
                        }
                    }
                    Kernel::Bcr(shape) => {
                        op.set_attribute(grim::KERNEL_ATTR, string(grim::KERNEL_BCR));
                        op.set_attribute(
                            grim::BLOCK_ATTR,
                            IntegerAttribute::new(i64_type, shape.block.rows as i64).into(),
                        );
                        op.set_attribute(
                            grim::BLOCK_COLS_ATTR,
                            IntegerAttribute::new(i64_type, shape.block.cols as i64).into(),
                        );
                    }
                }
                matches!(choice.kernel, Kernel::Bcr(_))
            }
        };
        if bcr && !op.has_attribute(grim::BLOCK_ATTR) {
            // A BCR kernel forced by the LR file without a block: the best candidate's.
            let best = choice
                .candidates
                .iter()
                .filter_map(|c| match c.kernel {
                    Kernel::Bcr(shape) => Some((c.ns, shape.block)),
                    Kernel::Dense => None,
                })
                .min_by(|a, b| a.0.total_cmp(&b.0));
            if let Some((_, block)) = best {
                let i64_type = IntegerType::new(context, 64).into();
                op.set_attribute(
                    grim::BLOCK_ATTR,
                    IntegerAttribute::new(i64_type, block.rows as i64).into(),
                );
                op.set_attribute(
                    grim::BLOCK_COLS_ATTR,
                    IntegerAttribute::new(i64_type, block.cols as i64).into(),
                );
            }
        }
        if let Some(route) = layer.im2col(bcr) {
            op.set_attribute(grim::IM2COL_ATTR, string(route.name()));
        }
        Ok(())
    }
}

impl Pass for GraphChooseKernel {
    fn run<'c>(&self, context: &'c Context, module: &Module<'c>) -> Result<(), PassError> {
        let recurrent = collect_ops(module, |op| op_name(op) == grim::RECURRENT);
        if !recurrent.is_empty() {
            let target = super::target(module)?;
            for raw in recurrent {
                // SAFETY: collected above; only attributes change.
                let mut op = unsafe { OperationRefMut::from_raw(raw) };
                self.choose_recurrent(context, &target, &mut op)?;
            }
        }
        let products = collect_ops(module, |op| grim::PRODUCTS.contains(&op_name(op).as_str()));
        if products.is_empty() {
            return Ok(());
        }
        let target = super::target(module)?;
        for raw in products {
            // SAFETY: collected above; only attributes change.
            let mut op = unsafe { OperationRefMut::from_raw(raw) };
            self.choose(context, &target, &mut op)?;
        }
        Ok(())
    }
}
