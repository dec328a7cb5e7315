//! Which `grim.transpose`s a gemm absorbs. A gemm with `N > 1` rows works on
//! `[K, N]` activations and an `[M, N]` accumulator (the kernels vectorise
//! along N), so a transpose feeding only gemm inputs is read in place as
//! the `[K, N]` operand, and a transpose that is a gemm's only user takes
//! the accumulator as its result. The lowering and graph-plan-memory both
//! ask here, so the memory plan has a buffer for exactly what the lowering
//! writes.

use super::key;
use grim_dialects::{grim, shape};
use melior::ir::{
    block::BlockLike,
    operation::{OperationLike, OperationRef},
    Value, ValueLike,
};
use std::collections::{HashMap, HashSet};

/// The transposes a function's gemms absorb, by value key.
#[derive(Debug, Default)]
pub struct Cancelled {
    /// Transpose results read only as gemm inputs, with the transposed
    /// value: the gemms read that value as their `[K, N]` operand, and the
    /// transpose computes nothing.
    pub inputs: HashMap<usize, usize>,
    /// Gemm results read only by one transpose, with that transpose's
    /// result: the gemm's accumulator is the transpose's result, and
    /// neither the gemm's own result nor the transpose is computed.
    pub results: HashMap<usize, usize>,
}

/// The users of `value`, with the operand number each uses it as.
pub fn uses<'c, 'a>(value: Value<'c, 'a>) -> Vec<(OperationRef<'c, 'a>, usize)> {
    let mut found = Vec::new();
    // SAFETY: walking the use list of a live value.
    unsafe {
        let mut operand = mlir_sys::mlirValueGetFirstUse(value.to_raw());
        while !mlir_sys::mlirOpOperandIsNull(operand) {
            let owner = OperationRef::from_raw(mlir_sys::mlirOpOperandGetOwner(operand));
            found.push((
                owner,
                mlir_sys::mlirOpOperandGetOperandNumber(operand) as usize,
            ));
            operand = mlir_sys::mlirOpOperandGetNextUse(operand);
        }
    }
    found
}

fn is_canonical_gemm(op: &OperationRef) -> bool {
    op.name().as_string_ref().as_str() == Ok(grim::GEMM) && grim::gemm_attrs(op).is_canonical()
}

/// The transposes of `body` its gemms absorb; `returned` are the keys of
/// the values the function returns (a returned transpose is computed).
pub fn cancelled<'c, 'a>(body: &impl BlockLike<'c, 'a>, returned: &HashSet<usize>) -> Cancelled
where
    'c: 'a,
{
    let mut cancelled = Cancelled::default();
    let mut next = body.first_operation();
    while let Some(op) = next {
        next = op.next_in_block();
        let name = op.name().as_string_ref().as_str().unwrap_or("").to_string();
        let Ok(result) = op.result(0) else {
            continue;
        };
        let result: Value = result.into();
        let rows = shape::static_shape(result.r#type())
            .and_then(|s| s.first().copied())
            .unwrap_or(1);
        if name == grim::TRANSPOSE {
            let Ok(source) = op.operand(0) else {
                continue;
            };
            let users = uses(result);
            let only_gemm_inputs = !users.is_empty()
                && users
                    .iter()
                    .all(|(user, number)| *number == 0 && is_canonical_gemm(user));
            if only_gemm_inputs && rows > 1 && !returned.contains(&key(result)) {
                cancelled.inputs.insert(key(result), key(source));
            }
        } else if is_canonical_gemm(&op) {
            let residual = grim::product(&op).is_some_and(|p| p.residual.is_some());
            if let [(user, 0)] = uses(result).as_slice() {
                if rows > 1
                    && !residual
                    && user.name().as_string_ref().as_str() == Ok(grim::TRANSPOSE)
                {
                    if let Ok(transposed) = user.result(0) {
                        cancelled
                            .results
                            .insert(key(result), key(transposed.into()));
                    }
                }
            }
        }
    }
    // A transpose read in place by the gemms after it is not also the
    // accumulator of the gemm before it: that gemm's own result is what
    // they read.
    let inputs = &cancelled.inputs;
    cancelled
        .results
        .retain(|_, transposed| !inputs.contains_key(transposed));
    cancelled
}
