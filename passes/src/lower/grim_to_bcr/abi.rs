//! The lowered function: its signature on caller buffers, where inputs and
//! returned values live, the walk over the source ops, and the function
//! attributes of the ABI (`grim_dialects::abi`).

use super::{key, profile, values::tensor_shape, Lowering, Tensor};
use crate::{
    builder::{erase, erase_op, Builder, V},
    op_error, PassError,
};
use grim_dialects::abi as contract;
use melior::ir::{
    attribute::{ArrayAttribute, IntegerAttribute, StringAttribute, TypeAttribute},
    block::BlockLike,
    operation::{OperationLike, OperationRef},
    r#type::{FunctionType, IntegerType, MemRefType},
    Attribute, Block, BlockRef, Identifier, Module, Region, RegionLike, Type, Value, ValueLike,
};
use std::collections::HashMap;

impl<'c> Lowering<'c, '_> {
    /// Rewrites `function` into its lowered form, inserted before it; the
    /// source function is erased.
    pub(super) fn function(
        &mut self,
        module: &Module<'c>,
        function: OperationRef<'c, '_>,
    ) -> Result<(), PassError> {
        let context = self.context;
        let name = grim_dialects::attr::string(&function, "sym_name")
            .ok_or_else(|| op_error(&function, "has no symbol name"))?;
        let body = function
            .region(0)
            .ok()
            .and_then(|r| r.first_block())
            .ok_or_else(|| op_error(&function, "has no body"))?;
        let location = function.location();

        // Inputs are the entry block's arguments; outputs are what func.return returns.
        let mut input_shapes = Vec::new();
        for index in 0..body.argument_count() {
            let argument: Value = body
                .argument(index)
                .map_err(|e| op_error(&function, e))?
                .into();
            input_shapes.push(tensor_shape(&function, argument)?);
        }
        let terminator = body
            .terminator()
            .ok_or_else(|| op_error(&function, "body has no terminator"))?;
        let mut output_shapes = Vec::new();
        for operand in terminator.operands() {
            output_shapes.push(tensor_shape(&terminator, operand)?);
        }

        let f32_type = Type::float32(context);
        let pointer = melior::dialect::llvm::r#type::pointer(context, 0);
        let bytes: Type =
            MemRefType::new(IntegerType::new(context, 8).into(), &[i64::MIN], None, None).into();
        let mut arguments = vec![pointer, bytes, bytes];
        for shape in input_shapes.iter().chain(&output_shapes) {
            arguments.push(MemRefType::new(f32_type, shape, None, None).into());
        }
        let block = Block::new(&arguments.iter().map(|t| (*t, location)).collect::<Vec<_>>());
        self.arguments = (0..arguments.len())
            .map(|i| -> Result<V<'c>, PassError> {
                Ok(erase(
                    block
                        .argument(i)
                        .map_err(|e| op_error(&function, e))?
                        .into(),
                ))
            })
            .collect::<Result<_, _>>()?;
        let b = Builder::at_end(
            context,
            // SAFETY: the block is alive until it is moved into the new region below.
            &unsafe { BlockRef::from_raw(block.to_raw()) },
            location,
        );

        // Inputs are read where the caller put them (no op writes its operands).
        for (index, shape) in input_shapes.iter().enumerate() {
            let tensor = Tensor::Argument {
                index: contract::FIRST_BUFFER_ARG + index,
                shape: shape.clone(),
            };
            self.values.insert(
                key(body
                    .argument(index)
                    .map_err(|e| op_error(&function, e))?
                    .into()),
                tensor,
            );
        }
        self.plan_returns(&terminator, input_shapes.len());
        let returned: std::collections::HashSet<usize> = terminator.operands().map(key).collect();
        self.cancelled = super::cancel::cancelled(&body, &returned);
        self.scratch_bytes = grim_dialects::attr::int(&function, super::scratch::ARENA_BYTES_ATTR)
            .ok_or_else(|| {
                op_error(
                    &function,
                    format!(
                        "has no memory plan: run graph-plan-memory before {}",
                        super::FLAG
                    ),
                )
            })?;

        let mut next = body.first_operation();
        let marked = grim_dialects::attr::strings(&function, contract::LAYERS_ATTR);
        let mut layers = profile::Layers::new(marked, self.arguments[contract::CONTEXT_ARG]);
        self.profiled |= layers.enabled();
        while let Some(op) = next {
            next = op.next_in_block();
            let b = b.with_location(op.location());
            let op_name = op.name().as_string_ref().as_str().unwrap_or("").to_string();
            layers.close(&b);
            if op_name == "func.return" {
                self.return_values(&b, op, input_shapes.len())?;
                continue;
            }
            layers.open(&b, &op, &op_name);
            self.op(&b, op, &name)?;
        }
        let layer_names = layers.finish(&b);
        b.insert(melior::dialect::func::r#return(&[], location));

        let region = Region::new();
        region.append_block(block);
        let function_type = FunctionType::new(context, &arguments, &[]);
        let i64_type: Type = IntegerType::new(context, 64).into();
        let int = |v: i64| -> Attribute<'c> { IntegerAttribute::new(i64_type, v).into() };
        let mut attributes = vec![
            (
                Identifier::new(context, "llvm.emit_c_interface"),
                Attribute::unit(context),
            ),
            (
                Identifier::new(context, contract::SCRATCH_BYTES_ATTR),
                int(self.scratch_bytes.max(contract::ALIGN_BYTES)),
            ),
            (
                Identifier::new(context, contract::NUM_SLOTS_ATTR),
                int(self.weights.next_slot),
            ),
            (
                Identifier::new(context, contract::NUM_INPUTS_ATTR),
                int(input_shapes.len() as i64),
            ),
            (
                Identifier::new(context, contract::NUM_OUTPUTS_ATTR),
                int(output_shapes.len() as i64),
            ),
        ];
        if let Some(names) = layer_names {
            let names: Vec<Attribute<'c>> = names
                .iter()
                .map(|l| StringAttribute::new(context, l).into())
                .collect();
            attributes.push((
                Identifier::new(context, contract::LAYERS_ATTR),
                ArrayAttribute::new(context, &names).into(),
            ));
        }
        let new_function = melior::dialect::func::func(
            context,
            StringAttribute::new(context, &name),
            TypeAttribute::new(function_type.into()),
            region,
            &attributes,
            location,
        );
        module
            .body()
            .insert_operation_before(function, new_function);
        erase_op(function);
        Ok(())
    }

    /// A value returned once by the function and produced by a computing op
    /// is computed straight into its output buffer.
    fn plan_returns(&mut self, terminator: &OperationRef<'c, '_>, inputs: usize) {
        let mut counts: HashMap<usize, usize> = HashMap::new();
        for operand in terminator.operands() {
            *counts.entry(key(operand)).or_default() += 1;
        }
        for (index, operand) in terminator.operands().enumerate() {
            let produced_here = operand.is_operation_result()
                && grim_dialects::grim::computes(
                    // SAFETY: the value is an op result, so it has a live owner.
                    unsafe {
                        OperationRef::from_raw(mlir_sys::mlirOpResultGetOwner(operand.to_raw()))
                    }
                    .name()
                    .as_string_ref()
                    .as_str()
                    .unwrap_or(""),
                );
            if produced_here && counts[&key(operand)] == 1 {
                self.returned
                    .insert(key(operand), contract::FIRST_BUFFER_ARG + inputs + index);
            }
        }
    }

    /// Copies what `func.return` returns into the output buffers, unless its
    /// producer already wrote it there.
    fn return_values(
        &mut self,
        b: &Builder<'c>,
        op: OperationRef<'c, '_>,
        inputs: usize,
    ) -> Result<(), PassError> {
        for (index, operand) in op.operands().enumerate() {
            let tensor = self
                .values
                .get(&key(operand))
                .cloned()
                .ok_or_else(|| op_error(&op, "returns an unknown value"))?;
            let target = contract::FIRST_BUFFER_ARG + inputs + index;
            match &tensor {
                // A constant output (ONNX Constant straight to a graph
                // output): its blob slot copied out.
                Tensor::Weight { .. } => {
                    let shape = tensor.shape().to_vec();
                    let source = self.read(b, &tensor, &shape);
                    b.copy(source, self.arguments[target]);
                }
                Tensor::Argument { index, .. } if *index == target => {}
                _ => {
                    let view = self.view(b, &tensor);
                    b.copy(view, self.arguments[target]);
                }
            }
        }
        Ok(())
    }
}
