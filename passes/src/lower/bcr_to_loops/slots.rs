//! `bcr.packed` and `bcr.dense` as `memref.view`s of the weight blob.
//!
//! The views are read through the blob's slot table at run time, not baked
//! in as constants, so the generated code depends on a weight's shape but
//! not on where its bytes are, and a blob can be swapped without
//! recompiling.

use crate::{
    builder::{Builder, V},
    op_error, PassError,
};
use grim_dialects::abi::blob::{HEADER_BYTES, SLOT_BYTES};
use melior::ir::{
    operation::{OperationLike, OperationRef},
    Type,
};

/// The `slot` attribute of a `bcr.dense`: its index in the blob's slot table.
pub(super) fn grim_slot(op: &OperationRef) -> Result<i64, PassError> {
    op.attribute("slot")
        .ok()
        .and_then(|a| melior::ir::attribute::IntegerAttribute::try_from(a).ok())
        .map(|a| a.value())
        .ok_or_else(|| op_error(op, "has no integer 'slot'"))
}

/// A view of blob slot `slot`: dynamic 1-D of its element count, or `shape` when static.
pub(super) fn slot_view<'c>(
    b: &Builder<'c>,
    blob: V<'c>,
    slot: i64,
    ty: Type<'c>,
    shape: Option<Vec<i64>>,
) -> V<'c> {
    let table_type = b.memref_type(&[2], b.int_type(64));
    let entry_offset = b.index(HEADER_BYTES + SLOT_BYTES * slot);
    let entry = b.view(blob, entry_offset, &[], table_type);
    let zero = b.index(0);
    let one = b.index(1);
    let offset = b.load(entry, &[zero]);
    let offset = b.to_index(offset);
    match shape {
        Some(_) => b.view(blob, offset, &[], ty),
        None => {
            let count = b.load(entry, &[one]);
            let count = b.to_index(count);
            b.view(blob, offset, &[count], ty)
        }
    }
}
