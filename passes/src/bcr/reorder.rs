//! bcr-reorder: choose the BCR work order (GRIM's BCR-based matrix reorder) for every packed weight.
//!
//! The unit of sparse work is one block's dense sub-matrix. This pass sets
//! the `order` of each `bcr.packed` to `grouped`, which the weight packer
//! (`grim_model::bcrc::Bcrc::pack`) realises when it lays out the blob:
//! within a block row, blocks that keep the same rows become adjacent (the
//! output rows they update stay hot in registers and cache across them),
//! and block rows are sorted by descending work, so a dynamic thread split
//! hands out the big strips first and the shares even out (GRIM, TPAMI 2022,
//! §4.2 "BCR-based matrix reorder").
//!
//! What it does not do: it does not move values itself. The products read
//! weights through blob slots, and the packer realises the order from the
//! `value` each `bcr.packed` carries, so the permutation is data the packer
//! computes; the kernels read the order
//! from the blob (`strips` and `block_col`), so outputs are unchanged by
//! construction. With `order=natural` it restores the natural order (for
//! differential testing). A `bcr.packed` marked `pinned` (its order came
//! from the LR file, per layer) keeps its order.
//!
//! Before: `%s:4 = "bcr.packed"(%blob) {order = "natural", ...}`
//! After:  `%s:4 = "bcr.packed"(%blob) {order = "grouped", ...}`

use crate::{collect_ops, op_name, Pass, PassError, PassOptions};
use grim_dialects::bcr;
use melior::{
    ir::{
        operation::{OperationLike, OperationRefMut},
        Module,
    },
    Context,
};

/// Pipeline flag.
pub const FLAG: &str = "bcr-reorder";
/// One-line summary.
pub const SUMMARY: &str =
    "choose the BCR work order (GRIM's BCR-based matrix reorder) for every packed weight";
/// Accepted options.
pub const OPTIONS: &[&str] = &["order=grouped|natural (grouped)"];

/// The pass object.
pub struct BcrReorder {
    order: &'static str,
}

/// Makes the pass from its options.
pub fn create(options: &PassOptions) -> Result<Box<dyn Pass>, PassError> {
    options.check_documented(FLAG, OPTIONS)?;
    let order = match options.string("order").unwrap_or(bcr::ORDER_GROUPED) {
        o if o == bcr::ORDER_GROUPED => bcr::ORDER_GROUPED,
        o if o == bcr::ORDER_NATURAL => bcr::ORDER_NATURAL,
        other => {
            return Err(PassError::Option {
                pass: FLAG.into(),
                message: format!("order must be grouped or natural, got '{other}'"),
            })
        }
    };
    Ok(Box::new(BcrReorder { order }))
}

impl Pass for BcrReorder {
    fn run<'c>(&self, context: &'c Context, module: &Module<'c>) -> Result<(), PassError> {
        let packed = collect_ops(module, |op| {
            op_name(op) == bcr::PACKED && !op.has_attribute(bcr::PINNED_ATTR)
        });
        for raw in packed {
            // SAFETY: the op was found in the module above and is still alive.
            let mut op = unsafe { OperationRefMut::from_raw(raw) };
            bcr::set_order(&mut op, context, self.order);
        }
        Ok(())
    }
}
