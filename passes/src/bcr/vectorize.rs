//! bcr-vectorize: give every product its SIMD width (NEON 4 x f32, AVX2 8 x f32, AVX-512 16 x f32), narrowed to what its shape can fill.
//!
//! `lower-grim-to-bcr` emits products without `vector_width`, which
//! `lower-bcr-to-loops` turns into scalar loops (one `math.fma` per
//! multiply-add). This pass sets `vector_width`: the loops then load and
//! store `vector<lanes x f32>` along the vectorised dimension and multiply
//! with `vector.fma`, which LLVM emits as `fmla` on aarch64 and
//! `vfmadd231ps` on x86-64 with FMA (GRIM, TPAMI 2022, §4.4
//! "vectorization"). The vectorised dimension is N for matrix products
//! (`bcr.spmm`, matrix `bcr.gemm`: a kept row's weight is broadcast and
//! multiplied with `lanes` consecutive activations) and the rows of a panel
//! for matrix-vector products (`bcr.spmv` over column panels, vector
//! `bcr.gemm`: one activation is broadcast and multiplied with `lanes`
//! consecutive rows' weights).
//!
//! The width is the target's (`vector-width`, which the driver sets from
//! the target: 4 on aarch64, 8 on x86-64 with AVX2, 16 with AVX-512),
//! narrowed for matrix products with a small N to the largest power of two
//! that is at most N, so that N = 4 runs on full 4-lane vectors instead of
//! one half-masked 8-lane vector. A product that already carries
//! `vector_width` (from the LR file's schedule) keeps it. Run it before
//! bcr-lre, whose register tile depends on the lanes.
//!
//! It also records the target's vector registers (`registers`: 16 for
//! AVX2, 32 for NEON and AVX-512), which bcr-lre fills with its register
//! tile: a product narrowed to 4 lanes on AVX2 still has only 16 registers.
//!
//! Options: `vector-width=N` (1, 2, 4, 8 or 16). Without it, the lanes and
//! registers are the module's `grim.target`'s (what grimc compiles for),
//! else 8 lanes and 16 registers (AVX2).
//!
//! Before: `"bcr.spmm"(...) {block_cols = 16 : i64, block_rows = 8 : i64} : (..., memref<64x32xf32>, memref<16x32xf32>)`
//! After:  the same op with `registers = 16 : i64, vector_width = 8 : i64`.

use crate::{collect_ops, op_name, Pass, PassError, PassOptions};
use grim_dialects::{bcr, shape};
use melior::{
    ir::{
        operation::{OperationLike, OperationRefMut},
        Module, ValueLike,
    },
    Context,
};

/// Pipeline flag.
pub const FLAG: &str = "bcr-vectorize";
/// One-line summary.
pub const SUMMARY: &str = "give every product its SIMD width (NEON 4 x f32, AVX2 8 x f32, AVX-512 16 x f32), narrowed to what its shape can fill";
/// Accepted options.
pub const OPTIONS: &[&str] = &["vector-width=N the target's f32 lanes: 1, 2, 4, 8 or 16 (8)"];

/// The pass object.
pub struct BcrVectorize {
    vector_width: i64,
    /// Vector registers, when the module's target states them.
    target_registers: Option<i64>,
    /// Whether the width came from the option (it then wins over the target).
    given: bool,
}

/// Makes the pass from its options.
pub fn create(options: &PassOptions) -> Result<Box<dyn Pass>, PassError> {
    options.check_documented(FLAG, OPTIONS)?;
    let given = options.string("vector-width").is_some();
    let vector_width = options.int(FLAG, "vector-width", 8)?;
    if ![1, 2, 4, 8, 16].contains(&vector_width) {
        return Err(PassError::Option {
            pass: FLAG.into(),
            message: format!("vector-width must be 1, 2, 4, 8 or 16, got {vector_width}"),
        });
    }
    Ok(Box::new(BcrVectorize {
        vector_width,
        target_registers: None,
        given,
    }))
}

impl BcrVectorize {
    /// Lanes for a product whose vectorised dimension is `n` long along N
    /// (`None`: a matrix-vector product, vectorised along panel rows).
    pub fn choose(&self, n: Option<i64>) -> i64 {
        match n {
            Some(n) if n < self.vector_width => {
                let mut lanes = 1;
                while lanes * 2 <= n {
                    lanes *= 2;
                }
                lanes
            }
            _ => self.vector_width,
        }
    }
}

impl BcrVectorize {
    /// Vector registers of the target whose width this is.
    pub fn registers(&self) -> i64 {
        if let Some(registers) = self.target_registers {
            return registers;
        }
        if self.vector_width == 4 || self.vector_width == 16 {
            32
        } else {
            16
        }
    }
}

impl Pass for BcrVectorize {
    fn run<'c>(&self, context: &'c Context, module: &Module<'c>) -> Result<(), PassError> {
        // The module's target, unless the option fixed the width.
        let has_target =
            grim_dialects::attr::string(&module.as_operation(), grim_dialects::abi::TARGET_ATTR)
                .is_some();
        let target = if !self.given && has_target {
            let target = crate::graph::target(module)?;
            Some(BcrVectorize {
                vector_width: target.lanes as i64,
                target_registers: Some(target.vector_registers as i64),
                given: false,
            })
        } else {
            None
        };
        let this = target.as_ref().unwrap_or(self);
        // A product whose width the LR file fixed still gets the target's
        // register count, which bcr-lre sizes its tile by.
        let products = collect_ops(module, |op| {
            [bcr::SPMM, bcr::SPMV, bcr::GEMM].contains(&op_name(op).as_str())
                && !(op.has_attribute(bcr::VECTOR_WIDTH_ATTR)
                    && op.has_attribute(bcr::REGISTERS_ATTR))
        });
        for raw in products {
            // SAFETY: collected above and still alive.
            let mut op = unsafe { OperationRefMut::from_raw(raw) };
            // The output's second dimension is N for matrix products; a
            // vector output means a matrix-vector product.
            let n = op
                .operand(op.operand_count().saturating_sub(1))
                .ok()
                .and_then(|c| shape::static_shape(c.r#type()))
                .and_then(|s| s.get(1).copied());
            if !op.has_attribute(bcr::VECTOR_WIDTH_ATTR) {
                bcr::set_int(&mut op, context, bcr::VECTOR_WIDTH_ATTR, this.choose(n));
            }
            // The register file is the target's, whatever width this product
            // was narrowed or fixed to: 16 on AVX2, 32 on NEON and AVX-512.
            if !op.has_attribute(bcr::REGISTERS_ATTR) {
                bcr::set_int(&mut op, context, bcr::REGISTERS_ATTR, this.registers());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrows_to_small_n_only() {
        let avx2 = BcrVectorize {
            vector_width: 8,
            target_registers: None,
            given: true,
        };
        assert_eq!(avx2.choose(Some(3136)), 8);
        assert_eq!(avx2.choose(Some(8)), 8);
        assert_eq!(avx2.choose(Some(6)), 4);
        assert_eq!(avx2.choose(Some(4)), 4);
        assert_eq!(avx2.choose(Some(3)), 2);
        assert_eq!(avx2.choose(Some(1)), 1);
        assert_eq!(avx2.choose(None), 8);
        let neon = BcrVectorize {
            vector_width: 4,
            target_registers: None,
            given: true,
        };
        assert_eq!(neon.choose(Some(16)), 4);
        assert_eq!(neon.choose(None), 4);
    }
}
