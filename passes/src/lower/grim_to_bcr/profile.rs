//! Per-layer profiling: the code of each op graph-profile-layers marked
//! (`grim.profile_id`) bracketed by `grim_profile_begin(ctx, id)` /
//! `grim_profile_end(ctx, id)` (runtime functions that accumulate wall time
//! per id), and the layer names by id. Ids are given here, in order, to the
//! marked ops that emit code, so the runtime's table has no gaps.

use crate::builder::{erase_op, Builder, V};
use grim_dialects::abi as contract;
use melior::ir::{
    operation::{OperationLike, OperationRef},
    ValueLike,
};

/// A layer's name for profiles: the op's name location (the ONNX node
/// name), else `<op>#<index>`.
pub fn layer_name(op: &OperationRef, op_name: &str, index: usize) -> String {
    let location = op.location();
    if location.is_name() {
        if let Ok(name) = location.name_value().as_string_ref().as_str() {
            if !name.is_empty() {
                return name.to_string();
            }
        }
    }
    format!("{}#{index}", op_name.trim_start_matches("grim."))
}

/// The layers of one function, while it is lowered.
pub(super) struct Layers<'c> {
    /// The graph level's layer names, by `grim.profile_id` (`None`: the
    /// function is not profiled).
    marked: Option<Vec<String>>,
    context: V<'c>,
    names: Vec<String>,
    /// The begin call of the layer being lowered, and its id.
    open: Option<(OperationRef<'c, 'c>, i64)>,
}

impl<'c> Layers<'c> {
    pub(super) fn new(marked: Option<Vec<String>>, context: V<'c>) -> Self {
        Layers {
            marked,
            context,
            names: Vec::new(),
            open: None,
        }
    }

    /// Whether any layer is profiled.
    pub(super) fn enabled(&self) -> bool {
        self.marked.is_some()
    }

    /// Starts timing `op`'s code if graph-profile-layers marked it.
    pub(super) fn open(&mut self, b: &Builder<'c>, op: &OperationRef, op_name: &str) {
        let Some(marked) = &self.marked else {
            return;
        };
        let Some(graph_id) =
            grim_dialects::attr::int(op, crate::graph::profile_layers::PROFILE_ID_ATTR)
        else {
            return;
        };
        let name = marked
            .get(graph_id as usize)
            .cloned()
            .unwrap_or_else(|| layer_name(op, op_name, graph_id as usize));
        let id = self.names.len() as i64;
        self.names.push(name);
        self.open = Some((call(b, contract::PROFILE_BEGIN, self.context, id), id));
    }

    /// Ends the open layer: an end call after its code, or, when it emitted
    /// no code (a cancelled transpose), no layer at all.
    pub(super) fn close(&mut self, b: &Builder<'c>) {
        let Some((begin, id)) = self.open.take() else {
            return;
        };
        if begin.next_in_block().is_none() {
            // The id constant before the call goes too: nothing else uses it.
            let constant = begin
                .operand(1)
                .ok()
                .filter(|v| v.is_operation_result())
                // SAFETY: the value is an op result, so it has a live owner.
                .map(|v| unsafe {
                    OperationRef::from_raw(mlir_sys::mlirOpResultGetOwner(v.to_raw()))
                });
            erase_op(begin);
            if let Some(constant) = constant {
                erase_op(constant);
            }
            self.names.pop();
            return;
        }
        call(b, contract::PROFILE_END, self.context, id);
    }

    /// Closes the last layer; the names by id when profiling.
    pub(super) fn finish(mut self, b: &Builder<'c>) -> Option<Vec<String>> {
        self.close(b);
        self.marked.is_some().then_some(self.names)
    }
}

/// `func.call @<callee>(%ctx, %id)`; returns the call.
fn call<'c>(b: &Builder<'c>, callee: &str, ctx: V<'c>, id: i64) -> OperationRef<'c, 'c> {
    let id = b.int(id, 64);
    let callee = melior::ir::attribute::FlatSymbolRefAttribute::new(b.context, callee);
    b.insert(melior::dialect::func::call(
        b.context,
        callee,
        &[ctx, id],
        &[],
        b.location,
    ))
}
