//! `bcr.pack_panels`: a weight computed at run time (a graph input, as in
//! the ONNX node tests and in models that feed weights) packed into the
//! row panels `bcr.gemm` reads, so such a product runs the same generated
//! dense kernel as a constant weight that stays dense. BCR needs the
//! weight's values at compile time; packing at run time costs one pass
//! over W per call, next to the `M * K * N` of the product.
//!
//! `%panels = bcr.pack_panels(%source, %buffer) {transposed?, scale?, panel_rows?}`
//! writes `W` into `buffer` (a scratch temporary of at least
//! `(M + PACK_PANELS_MAX_ROWS - 1) * K` floats) and returns it: `W` is
//! `source` (`[M, K]`), or its transpose with `transposed` (`source` is
//! `[K, M]`, ONNX Gemm's `B` without `transB`), times `scale` (Gemm's
//! `alpha`; default 1). `panel_rows` is set by `bcr-lre`, as on a
//! `bcr.dense` in row panels, and may not exceed [`PACK_PANELS_MAX_ROWS`],
//! the padding the scratch was sized for.

use crate::{attr, shape};
use melior::{
    ir::{
        operation::{OperationBuilder, OperationLike},
        Location, Operation, Type, Value, ValueLike,
    },
    Context,
};

/// `bcr.pack_panels` — a runtime weight packed into row panels.
pub const PACK_PANELS: &str = "bcr.pack_panels";
/// Unit attribute of `bcr.pack_panels`: the source is `[K, M]`.
pub const TRANSPOSED_ATTR: &str = "transposed";
/// f32 attribute of `bcr.pack_panels`: every value is multiplied by it.
pub const SCALE_ATTR: &str = "scale";
/// The most rows per panel a packed runtime weight may have: its scratch
/// holds `(M + PACK_PANELS_MAX_ROWS - 1) * K` floats, enough for the last
/// panel's padding at any height up to this.
pub const PACK_PANELS_MAX_ROWS: i64 = 16;

/// Floats of scratch a runtime weight of `m x k` needs in row panels.
pub fn pack_panels_floats(m: i64, k: i64) -> i64 {
    (m + PACK_PANELS_MAX_ROWS - 1) * k
}

/// Builds `bcr.pack_panels(source, buffer)`; its result is `memref<?xf32>`.
pub fn pack_panels<'c>(
    context: &'c Context,
    source: Value<'c, '_>,
    buffer: Value<'c, '_>,
    transposed: bool,
    scale: f32,
    location: Location<'c>,
) -> Operation<'c> {
    let mut attributes = Vec::new();
    if transposed {
        attributes.push(attr::named_unit(context, TRANSPOSED_ATTR));
    }
    if scale != 1.0 {
        attributes.push(attr::named_f32(context, SCALE_ATTR, scale));
    }
    OperationBuilder::new(PACK_PANELS, location)
        .add_operands(&[source, buffer])
        .add_attributes(&attributes)
        .add_results(&[super::dynamic_memref(Type::float32(context))])
        .build()
        .expect("bcr.pack_panels matches its IRDL declaration")
}

/// A `bcr.pack_panels` as its lowering reads it.
pub struct PackPanels<'c, 'a> {
    /// `[M, K]`, or `[K, M]` when `transposed`.
    pub source: Value<'c, 'a>,
    /// The scratch the panels are written to.
    pub buffer: Value<'c, 'a>,
    /// Whether `source` is `[K, M]`.
    pub transposed: bool,
    /// Factor on every value.
    pub scale: f32,
    /// Rows per panel (1 until bcr-lre sets it).
    pub panel_rows: i64,
    /// Rows of W.
    pub m: i64,
    /// Columns of W.
    pub k: i64,
}

/// Reads a `bcr.pack_panels`.
pub fn pack_panels_of<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Option<PackPanels<'c, 'a>> {
    let source = op.operand(0).ok()?;
    let dims = shape::static_shape(source.r#type())?;
    let &[rows, cols] = &dims[..] else {
        return None;
    };
    let transposed = op.has_attribute(TRANSPOSED_ATTR);
    let (m, k) = if transposed {
        (cols, rows)
    } else {
        (rows, cols)
    };
    Some(PackPanels {
        source,
        buffer: op.operand(1).ok()?,
        transposed,
        scale: attr::float(op, SCALE_ATTR).unwrap_or(1.0),
        panel_rows: super::panel_rows(op),
        m,
        k,
    })
}

/// The semantic checks of `bcr.pack_panels`.
pub(super) fn verify<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Result<(), String> {
    let source = op.operand(0).map_err(|e| e.to_string())?;
    if !shape::is_f32_shaped(source.r#type())
        || shape::static_shape(source.r#type()).is_none_or(|s| s.len() != 2)
    {
        return Err(format!(
            "source must be a static 2-D f32 memref, got {}",
            source.r#type()
        ));
    }
    let pack = pack_panels_of(op).ok_or("needs (source, buffer)")?;
    for (what, value) in [
        ("buffer", pack.buffer),
        ("result", op.result(0).map_err(|e| e.to_string())?.into()),
    ] {
        if value.r#type().to_string() != "memref<?xf32>" {
            return Err(format!(
                "{what} must be memref<?xf32>, got {}",
                value.r#type()
            ));
        }
    }
    if !(1..=PACK_PANELS_MAX_ROWS).contains(&pack.panel_rows) {
        return Err(format!(
            "panel_rows must be 1..={PACK_PANELS_MAX_ROWS} (the padding its scratch holds), got {}",
            pack.panel_rows
        ));
    }
    Ok(())
}
