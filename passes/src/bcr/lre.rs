//! bcr-lre: choose the register tile of every sparse product (GRIM's register-level load-redundancy elimination).
//!
//! In a BCR block every kept row uses the same kept columns, so one
//! activation vector `X[k, n..n+lanes]` serves all of them. This pass sets
//! `register_tile` (kept rows computed together, sharing each activation
//! load) and, on `bcr.spmm`, `vectors` (vectors along N per row held in
//! registers, sharing each weight broadcast); `lower-bcr-to-loops` emits the
//! tile. Per FMA the kernel then loads `1 / register_tile` activation
//! vectors and `1 / vectors` weights instead of one of each (GRIM, TPAMI
//! 2022, §4.4).
//!
//! The default choice fits the target's vector registers: with `R`
//! registers (16 for 4- and 8-lane vectors on x86 AVX2, 32 for NEON's 4
//! lanes and for AVX-512's 16), the tile keeps `register_tile * vectors`
//! accumulators, `vectors` activation vectors and one broadcast live, so
//! `vectors = (R - 1) / (register_tile + 1)` rounded down to a power of two,
//! capped by N. `register_tile` is `min(block_rows, 4)`; a block that keeps
//! fewer rows runs its rows one at a time. A product that already carries
//! `register_tile` (from the LR file's schedule) keeps it, and gets the
//! `vectors` that fit around it.
//!
//! `bcr.gemm` (a layer that stays dense) gets the same kind of tile: a
//! matrix product holds `register_tile` rows x `vectors` vectors of C in
//! registers for a whole block of K, with 4 rows (3 vectors) on 16
//! registers and 8 rows (3 vectors) on 32, so each broadcast weight feeds 3
//! FMAs and each activation vector 4 or 8; a matrix-vector product keeps 4
//! vectors of rows. The pass also sets `panel_rows` on the product's
//! `bcr.dense` weight to the tile's rows, which fixes how the weight is
//! stored (row panels, docs/lr-and-bcrc.md); a weight shared by two
//! products keeps the panel height the first one chose. A weight packed at
//! run time (`bcr.pack_panels`) gets the same, capped at
//! `PACK_PANELS_MAX_ROWS`, the padding its scratch holds.
//!
//! The register count is the product's `registers` (the target's, set by
//! bcr-vectorize), else guessed from the lanes (16 for 8 lanes, else 32).
//!
//! Options: `register-tile=N` and `vectors=N` force the choice; `registers=N`
//! overrides the register count.
//!
//! Before: `"bcr.spmm"(...) {block_rows = 8, block_cols = 16, vector_width = 8}`
//! After:  `"bcr.spmm"(...) {block_rows = 8, block_cols = 16, register_tile = 4, vector_width = 8, vectors = 2}`

use crate::{Pass, PassError, PassOptions};
use grim_dialects::{bcr, shape};
use melior::{
    ir::{
        operation::{OperationLike, OperationRefMut},
        Module, ValueLike,
    },
    Context,
};

/// Pipeline flag.
pub const FLAG: &str = "bcr-lre";
/// One-line summary.
pub const SUMMARY: &str = "choose the register tile of every sparse product (GRIM's register-level load-redundancy elimination)";
/// Accepted options.
pub const OPTIONS: &[&str] = &[
    "register-tile=N rows per tile (min(block_rows, 4))",
    "vectors=N vectors along N (from registers)",
    "registers=N vector registers (16 or 32 by vector width)",
];

/// The pass object.
#[derive(Clone, Copy)]
pub struct BcrLre {
    register_tile: Option<i64>,
    vectors: Option<i64>,
    registers: Option<i64>,
}

/// Makes the pass from its options.
pub fn create(options: &PassOptions) -> Result<Box<dyn Pass>, PassError> {
    options.check_documented(FLAG, OPTIONS)?;
    let get = |key: &str, range: std::ops::RangeInclusive<i64>| -> Result<Option<i64>, PassError> {
        match options.string(key) {
            None => Ok(None),
            Some(_) => {
                let value = options.int(FLAG, key, 0)?;
                if !range.contains(&value) {
                    return Err(PassError::Option {
                        pass: FLAG.into(),
                        message: format!(
                            "{key} must be in {}..={}, got {value}",
                            range.start(),
                            range.end()
                        ),
                    });
                }
                Ok(Some(value))
            }
        }
    };
    Ok(Box::new(BcrLre {
        register_tile: get("register-tile", 1..=16)?,
        vectors: get("vectors", 1..=8)?,
        registers: get("registers", 4..=64)?,
    }))
}

impl BcrLre {
    /// The schedule for one product: `(register_tile, vectors)`.
    pub fn choose(&self, block_rows: i64, lanes: i64, n: i64, spmm: bool) -> (i64, i64) {
        let register_tile = self.register_tile.unwrap_or(block_rows.min(4)).max(1);
        if !spmm {
            return (register_tile, 1);
        }
        let registers = self.registers(lanes);
        let fit = ((registers - 1) / (register_tile + 1)).max(1);
        let mut vectors = 1;
        while vectors * 2 <= fit && vectors * 2 <= 8 {
            vectors *= 2;
        }
        let useful = (n / lanes.max(1)).max(1);
        while vectors > 1 && vectors > useful {
            vectors /= 2;
        }
        (register_tile, self.vectors.unwrap_or(vectors))
    }
}

impl BcrLre {
    /// The register file: 16 vector registers for 8 lanes (AVX2), else 32.
    fn registers(&self, lanes: i64) -> i64 {
        self.registers.unwrap_or(if lanes == 8 { 16 } else { 32 })
    }

    /// The tile of a dense product: `(register_tile, vectors)`; `n` is N for
    /// a matrix product, `None` for a matrix-vector one.
    pub fn choose_dense(&self, lanes: i64, n: Option<i64>, m: i64) -> (i64, i64) {
        let lanes = lanes.max(1);
        let registers = self.registers(lanes);
        match n {
            Some(n) => {
                let register_tile =
                    self.register_tile
                        .unwrap_or(if registers >= 32 { 8 } else { 4 });
                let fit = ((registers - 1) / (register_tile + 1)).clamp(1, 8);
                let useful = (n / lanes).max(1);
                (register_tile, self.vectors.unwrap_or(fit.min(useful)))
            }
            None => {
                // No more vectors than M fills: a 10-row classifier in panels of
                // 32 would store (and multiply) 22 rows of zeros.
                let vectors = self
                    .vectors
                    .unwrap_or(4)
                    .min(64 / lanes)
                    .min((m + lanes - 1) / lanes)
                    .max(1);
                (
                    self.register_tile.unwrap_or(lanes * vectors).min(64),
                    vectors,
                )
            }
        }
    }

    fn dense_product<'c>(&self, context: &'c Context, op: &mut OperationRefMut<'c, '_>) {
        let Some(product) = bcr::dense_product(op) else {
            return;
        };
        let n = shape::static_shape(product.c.r#type()).and_then(|s| s.get(1).copied());
        let weights = bcr::defining_panels(product.w);
        // A weight shared with a product handled before keeps its panels.
        let panels = weights
            .filter(|w| w.has_attribute(bcr::PANEL_ROWS_ATTR))
            .map(|w| bcr::panel_rows(&w));
        let given = panels.or(op
            .has_attribute(bcr::REGISTER_TILE_ATTR)
            .then_some(product.register_tile));
        let chooser = BcrLre {
            register_tile: given.or(self.register_tile),
            registers: self
                .registers
                .or(grim_dialects::attr::int(op, bcr::REGISTERS_ATTR)),
            ..*self
        };
        let m = shape::static_shape(product.c.r#type()).map_or(1, |s| s[0]);
        let (mut register_tile, vectors) = chooser.choose_dense(product.vector_width, n, m);
        // A weight packed at run time has scratch for panels this tall at most.
        if weights.is_some_and(|w| crate::op_name(&w) == bcr::PACK_PANELS) {
            register_tile = register_tile.min(bcr::PACK_PANELS_MAX_ROWS);
        }
        bcr::set_int(op, context, bcr::REGISTER_TILE_ATTR, register_tile);
        if !op.has_attribute(bcr::VECTORS_ATTR) {
            bcr::set_int(op, context, bcr::VECTORS_ATTR, vectors);
        }
        if let Some(weights) = weights {
            // SAFETY: the weight op is alive; only its attribute changes.
            let mut weights = unsafe { OperationRefMut::from_raw(weights.to_raw()) };
            bcr::set_int(&mut weights, context, bcr::PANEL_ROWS_ATTR, register_tile);
        }
    }
}

impl Pass for BcrLre {
    fn run<'c>(&self, context: &'c Context, module: &Module<'c>) -> Result<(), PassError> {
        let products = crate::collect_ops(module, |op| {
            let name = crate::op_name(op);
            let spmm = name == bcr::SPMM;
            let complete = op.has_attribute(bcr::REGISTER_TILE_ATTR)
                && (!spmm || op.has_attribute(bcr::VECTORS_ATTR));
            (spmm || name == bcr::SPMV || name == bcr::GEMM) && !complete
        });
        for raw in products {
            // SAFETY: collected above and still alive.
            let mut op = unsafe { OperationRefMut::from_raw(raw) };
            if op.name().as_string_ref().as_str() == Ok(bcr::GEMM) {
                self.dense_product(context, &mut op);
                continue;
            }
            let spmm = op.name().as_string_ref().as_str() == Ok(bcr::SPMM);
            let Some(product) = bcr::sparse_product(&op) else {
                continue;
            };
            let n = if spmm {
                shape::static_shape(product.c.r#type())
                    .and_then(|s| s.get(1).copied())
                    .unwrap_or(1)
            } else {
                1
            };
            // A register tile given per layer stays; the vectors are fitted around it.
            let given = op
                .has_attribute(bcr::REGISTER_TILE_ATTR)
                .then_some(product.register_tile);
            let chooser = BcrLre {
                register_tile: given.or(self.register_tile),
                registers: self
                    .registers
                    .or(grim_dialects::attr::int(&op, bcr::REGISTERS_ATTR)),
                ..*self
            };
            let (register_tile, vectors) =
                chooser.choose(product.block_rows, product.vector_width, n, spmm);
            bcr::set_int(&mut op, context, bcr::REGISTER_TILE_ATTR, register_tile);
            if spmm && !op.has_attribute(bcr::VECTORS_ATTR) {
                bcr::set_int(&mut op, context, bcr::VECTORS_ATTR, vectors);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tile_fits_the_register_file() {
        let pass = BcrLre {
            register_tile: None,
            vectors: None,
            registers: None,
        };
        // AVX2: 16 registers, 4 rows -> 3 vectors fit -> 2.
        assert_eq!(pass.choose(8, 8, 64, true), (4, 2));
        // NEON: 32 registers, 4 rows -> 6 fit -> 4.
        assert_eq!(pass.choose(8, 4, 64, true), (4, 4));
        // Few columns: no more vectors than N has.
        assert_eq!(pass.choose(8, 4, 5, true), (4, 1));
        // Small blocks cap the tile; spmv has one "vector".
        assert_eq!(pass.choose(2, 8, 64, true).0, 2);
        assert_eq!(pass.choose(16, 1, 1, false), (4, 1));
        for rows in 1..=16 {
            for lanes in [4, 8, 16] {
                let (tile, vectors) = pass.choose(rows, lanes, 1000, true);
                let registers = if lanes == 8 { 16 } else { 32 };
                assert!(
                    tile * vectors + vectors < registers,
                    "rows {rows} lanes {lanes}: {tile}x{vectors}"
                );
            }
        }
    }

    #[test]
    fn dense_tiles_fill_the_register_file() {
        let pass = BcrLre {
            register_tile: None,
            vectors: None,
            registers: None,
        };
        // AVX2: 4 rows x 3 vectors = 12 accumulators + 3 activations + 1 broadcast = 16.
        assert_eq!(pass.choose_dense(8, Some(3136), 256), (4, 3));
        // NEON: 8 x 3 = 24 + 3 + 1 = 28 of 32.
        assert_eq!(pass.choose_dense(4, Some(3136), 256), (8, 3));
        // Narrow N: no more vectors than N holds.
        assert_eq!(pass.choose_dense(8, Some(16), 256), (4, 2));
        // Matrix-vector: panels of 4 vectors of rows.
        assert_eq!(pass.choose_dense(8, None, 3072), (32, 4));
        assert_eq!(pass.choose_dense(16, None, 3072), (64, 4));
        // A 10-row classifier: two vectors of 8 rows, not four.
        assert_eq!(pass.choose_dense(8, None, 10), (16, 2));
        for lanes in [1, 2, 4, 8, 16] {
            let (tile, vectors) = pass.choose_dense(lanes, Some(1000), 256);
            assert!(
                tile * vectors + vectors < pass.registers(lanes),
                "lanes {lanes}: {tile}x{vectors}"
            );
        }
    }
}
