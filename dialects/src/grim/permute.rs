//! `grim.permute`: ONNX Transpose of any rank (output dim `i` is input dim
//! `perm[i]`), its typed builder, accessor and shape check. The 2-D swap
//! stays `grim.transpose`, the op the gemm lowering absorbs and
//! graph-simplify cancels; a permutation of more dims is opaque to
//! graph-simplify (no rule claims two of them cancel).

use super::build;
use crate::attr;
use melior::{
    ir::{
        operation::{OperationBuilder, OperationLike},
        Location, Operation, Type, Value,
    },
    Context,
};

/// `grim.permute` — the dims of a tensor permuted (`perm`).
pub const PERMUTE: &str = "grim.permute";
/// Attribute of `grim.permute`: `array<i64: ...>`, a permutation of the dims.
pub const PERM_ATTR: &str = "perm";

/// Builds `grim.permute(input) {perm}`.
pub fn permute<'c>(
    context: &'c Context,
    input: Value<'c, '_>,
    perm: &[i64],
    result: Type<'c>,
    location: Location<'c>,
) -> Operation<'c> {
    build(
        OperationBuilder::new(PERMUTE, location)
            .add_operands(&[input])
            .add_attributes(&[attr::named_i64_array(context, PERM_ATTR, perm)])
            .add_results(&[result]),
    )
}

/// The `perm` of a `grim.permute`.
pub fn permutation<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Option<Vec<i64>> {
    attr::i64_array(op, PERM_ATTR)
}

/// Checks that `perm` permutes the dims of `x` into `y`.
pub(super) fn check(perm: &[i64], x: &[i64], y: &[i64]) -> Result<(), String> {
    let mut seen = vec![false; x.len()];
    let valid = perm.len() == x.len()
        && perm.iter().all(|&p| {
            usize::try_from(p)
                .ok()
                .filter(|&p| p < x.len())
                .is_some_and(|p| !std::mem::replace(&mut seen[p], true))
        });
    if !valid {
        return Err(format!(
            "perm {perm:?} is not a permutation of the {} dims of {x:?}",
            x.len()
        ));
    }
    let expected: Vec<i64> = perm.iter().map(|&p| x[p as usize]).collect();
    if expected != y {
        return Err(format!("result must be {expected:?}, got {y:?}"));
    }
    Ok(())
}
