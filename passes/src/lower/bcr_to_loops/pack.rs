//! `bcr.pack_panels` to loops: a runtime weight written into the row
//! panels `bcr.gemm` reads (docs/lr-and-bcrc.md: panel `p`, column `k`,
//! row `r` at `(p * K + k) * panel_rows + r`), then the padding rows of the
//! last panel zeroed, since the kernel reads whole panels. Rows are
//! independent, so the row loop is marked parallel for bcr-parallelize.

use crate::builder::{erase, Builder};
use grim_dialects::bcr::{PackPanels, PACK_PANELS_MAX_ROWS};
use melior::ir::Attribute;

/// Emits the packing of `pack` at `b`; returns the panels (its buffer).
pub(super) fn pack_panels<'c>(
    b: &Builder<'c>,
    pack: &PackPanels<'c, '_>,
) -> Result<crate::builder::V<'c>, String> {
    let (m, k, rows) = (pack.m, pack.k, pack.panel_rows);
    if !(1..=PACK_PANELS_MAX_ROWS).contains(&rows) {
        return Err(format!(
            "has panel_rows {rows}, but its scratch holds the padding of at most {PACK_PANELS_MAX_ROWS}"
        ));
    }
    let (source, panels) = (erase(pack.source), erase(pack.buffer));
    let parallel = [(
        crate::bcr::parallelize::PARALLEL_ATTR,
        Attribute::unit(b.context),
    )];
    let at = |b: &Builder<'c>, row, kk| {
        // (row / rows * K + kk) * rows + row % rows
        let panel = b.divui(row, b.index(rows));
        let first = b.muli(b.addi(b.muli(panel, b.index(k)), kk), b.index(rows));
        b.addi(first, b.remui(row, b.index(rows)))
    };
    let scale = (pack.scale != 1.0).then(|| b.f32(pack.scale as f64));
    let (c0, c1) = (b.index(0), b.index(1));
    b.for_loop_with(c0, b.index(m), c1, &[], &parallel, |b, row, _| {
        b.for_range(0, k, 1, &[], |b, kk, _| {
            let indices = if pack.transposed {
                [kk, row]
            } else {
                [row, kk]
            };
            let mut value = b.load(source, &indices);
            if let Some(scale) = scale {
                value = b.mulf(value, scale);
            }
            b.store(value, panels, &[at(b, row, kk)]);
            vec![]
        });
        vec![]
    });
    let padded = (m + rows - 1) / rows * rows;
    if padded > m {
        let zero = b.f32(0.0);
        b.for_range(m, padded, 1, &[], |b, row, _| {
            b.for_range(0, k, 1, &[], |b, kk, _| {
                b.store(zero, panels, &[at(b, row, kk)]);
                vec![]
            });
            vec![]
        });
    }
    Ok(panels)
}
