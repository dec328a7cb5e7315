//! Where each tensor value of the source function lives after lowering,
//! and memref views of it.

use super::{key, Lowering};
use crate::{
    builder::{Builder, V},
    op_error, PassError,
};
use grim_dialects::shape;
use melior::ir::{
    operation::{OperationLike, OperationRef},
    Attribute, Value, ValueLike,
};

/// Where a tensor value of the source function lives.
#[derive(Clone, Debug)]
pub(super) enum Tensor<'c> {
    /// In the scratch arena at `offset` bytes.
    Buffer { offset: i64, shape: Vec<i64> },
    /// A constant, not yet materialised: its values go into the blob.
    Weight {
        name: String,
        shape: Vec<i64>,
        value: Attribute<'c>,
    },
    /// A caller's buffer: the function argument `index` (an input, read
    /// only, or an output that its producer writes in place).
    Argument { index: usize, shape: Vec<i64> },
}

impl<'c> Tensor<'c> {
    pub(super) fn shape(&self) -> &[i64] {
        match self {
            Tensor::Buffer { shape, .. }
            | Tensor::Weight { shape, .. }
            | Tensor::Argument { shape, .. } => shape,
        }
    }

    /// The same bytes seen with another shape (reshape, identity, views).
    pub(super) fn reshaped(&self, shape: Vec<i64>) -> Tensor<'c> {
        match self {
            Tensor::Buffer { offset, .. } => Tensor::Buffer {
                offset: *offset,
                shape,
            },
            Tensor::Weight { name, value, .. } => Tensor::Weight {
                name: name.clone(),
                shape,
                value: *value,
            },
            Tensor::Argument { index, .. } => Tensor::Argument {
                index: *index,
                shape,
            },
        }
    }
}

/// The static shape of a ranked f32 tensor value, or an error at `op`.
pub(super) fn tensor_shape(op: &OperationRef, value: Value) -> Result<Vec<i64>, PassError> {
    let ty = value.r#type();
    if !shape::is_tensor(ty) || !shape::is_f32_shaped(ty) {
        return Err(op_error(
            op,
            format!("expects ranked f32 tensors, got {ty}"),
        ));
    }
    shape::static_shape(ty).ok_or_else(|| op_error(op, format!("expects static shapes, got {ty}")))
}

impl<'c> Lowering<'c, '_> {
    pub(super) fn operand(&self, op: &OperationRef, index: usize) -> Result<Tensor<'c>, PassError> {
        let value = op.operand(index).map_err(|e| op_error(op, e))?;
        self.value(op, value, index)
    }

    /// Where `value` (operand `index` of `op`, for errors) lives.
    pub(super) fn value(
        &self,
        op: &OperationRef,
        value: Value,
        index: usize,
    ) -> Result<Tensor<'c>, PassError> {
        self.values.get(&key(value)).cloned().ok_or_else(|| {
            op_error(
                op,
                format!("operand #{index} is not produced by a supported op"),
            )
        })
    }

    /// An operand that must be an activation (not a constant).
    pub(super) fn buffer(&self, op: &OperationRef, index: usize) -> Result<Tensor<'c>, PassError> {
        let value = op.operand(index).map_err(|e| op_error(op, e))?;
        self.buffer_value(op, value, index)
    }

    /// `value`, operand `index` of `op`, which must be an activation.
    pub(super) fn buffer_value(
        &self,
        op: &OperationRef,
        value: Value,
        index: usize,
    ) -> Result<Tensor<'c>, PassError> {
        match self.value(op, value, index)? {
            Tensor::Weight { name, .. } => Err(op_error(
                op,
                format!(
                    "operand #{index} is the constant '{name}'; only activations are supported here"
                ),
            )),
            tensor => Ok(tensor),
        }
    }

    pub(super) fn define(
        &mut self,
        op: &OperationRef,
        tensor: Tensor<'c>,
    ) -> Result<(), PassError> {
        let result = op.result(0).map_err(|e| op_error(op, e))?;
        self.values.insert(key(result.into()), tensor);
        Ok(())
    }

    /// Where `op`'s result goes: its output buffer when the function returns
    /// it, else the arena offset graph-plan-memory gave it.
    pub(super) fn result(
        &mut self,
        op: &OperationRef,
        shape: &[i64],
    ) -> Result<Tensor<'c>, PassError> {
        let returned = op
            .result(0)
            .ok()
            .and_then(|r| self.returned.get(&key(r.into())).copied());
        match returned {
            Some(index) => Ok(Tensor::Argument {
                index,
                shape: shape.to_vec(),
            }),
            None => {
                let offset =
                    grim_dialects::attr::int(op, super::scratch::OFFSET_ATTR).ok_or_else(|| {
                        op_error(
                            op,
                            format!(
                                "has no arena offset: run graph-plan-memory before {}",
                                super::FLAG
                            ),
                        )
                    })?;
                Ok(Tensor::Buffer {
                    offset,
                    shape: shape.to_vec(),
                })
            }
        }
    }

    /// Where result `index` of `op` goes ([`Lowering::result`] for result
    /// 0; the others by `grim.result_offsets`).
    pub(super) fn result_at(
        &mut self,
        op: &OperationRef,
        index: usize,
        shape: &[i64],
    ) -> Result<Tensor<'c>, PassError> {
        if index == 0 {
            return self.result(op, shape);
        }
        let value: Value = op.result(index).map_err(|e| op_error(op, e))?.into();
        if let Some(&argument) = self.returned.get(&key(value)) {
            return Ok(Tensor::Argument {
                index: argument,
                shape: shape.to_vec(),
            });
        }
        let offsets = grim_dialects::attr::i64_array(op, super::scratch::RESULT_OFFSETS_ATTR)
            .unwrap_or_default();
        match offsets.get(index - 1) {
            Some(&offset) if offset >= 0 => Ok(Tensor::Buffer {
                offset,
                shape: shape.to_vec(),
            }),
            _ => Err(op_error(
                op,
                format!(
                    "has no arena offset for its result #{index}: run graph-plan-memory before {}",
                    super::FLAG
                ),
            )),
        }
    }

    /// Records where result `index` of `op` lives.
    pub(super) fn define_at(
        &mut self,
        op: &OperationRef,
        index: usize,
        tensor: Tensor<'c>,
    ) -> Result<(), PassError> {
        let result = op.result(index).map_err(|e| op_error(op, e))?;
        self.values.insert(key(result.into()), tensor);
        Ok(())
    }

    /// A memref view of an activation.
    ///
    /// # Panics
    /// On a weight (callers read those with [`Lowering::read`]).
    pub(super) fn view(&self, b: &Builder<'c>, tensor: &Tensor<'c>) -> V<'c> {
        match tensor {
            Tensor::Buffer { offset, shape } => {
                let ty = b.memref_type(shape, b.f32_type());
                let offset = b.index(*offset);
                b.view(self.scratch(), offset, &[], ty)
            }
            Tensor::Argument { index, shape } => {
                let argument = self.arguments[*index];
                if shape::static_shape(argument.r#type()).as_deref() == Some(&shape[..]) {
                    argument
                } else {
                    reinterpret_at(b, argument, shape, 0)
                }
            }
            Tensor::Weight { .. } => unreachable!("weights are materialised with read()"),
        }
    }

    /// A one-dimensional view of an activation.
    pub(super) fn flat_view(&self, b: &Builder<'c>, tensor: &Tensor<'c>) -> V<'c> {
        self.view(b, &tensor.reshaped(vec![shape::numel(tensor.shape())]))
    }

    /// `floats` of the arena at byte `offset` as `memref<?xf32>` (what row
    /// panels are).
    pub(super) fn dynamic_view(&self, b: &Builder<'c>, offset: i64, floats: i64) -> V<'c> {
        let ty = b.memref_type(&[i64::MIN], b.f32_type());
        b.view(self.scratch(), b.index(offset), &[b.index(floats)], ty)
    }

    /// An operand (activation or constant) read flat, as `memref<Nxf32>`.
    pub(super) fn flat_read(&mut self, b: &Builder<'c>, tensor: &Tensor<'c>) -> V<'c> {
        let numel = shape::numel(tensor.shape());
        self.read(b, tensor, &[numel])
    }

    /// Reads an operand as a memref of `shape`: a view of an activation or
    /// a dense weight from the blob.
    pub(super) fn read(&mut self, b: &Builder<'c>, tensor: &Tensor<'c>, shape: &[i64]) -> V<'c> {
        match tensor {
            Tensor::Weight { name, value, .. } => {
                let blob = self.blob();
                self.weights.dense(b, blob, name, *value, shape)
            }
            activation => self.view(b, &activation.reshaped(shape.to_vec())),
        }
    }

    /// Image `image` of a batched activation, viewed as `shape`.
    pub(super) fn image_view(
        &self,
        b: &Builder<'c>,
        tensor: &Tensor<'c>,
        image: i64,
        shape: &[i64],
    ) -> V<'c> {
        self.view_at(b, tensor, shape::numel(shape) * image, shape)
    }

    /// The elements of an activation from `start` on, viewed as `shape`.
    pub(super) fn view_at(
        &self,
        b: &Builder<'c>,
        tensor: &Tensor<'c>,
        start: i64,
        shape: &[i64],
    ) -> V<'c> {
        match tensor {
            Tensor::Buffer { offset, .. } => self.view(
                b,
                &Tensor::Buffer {
                    offset: offset + 4 * start,
                    shape: shape.to_vec(),
                },
            ),
            Tensor::Argument { index, .. } => {
                reinterpret_at(b, self.arguments[*index], shape, start)
            }
            Tensor::Weight { .. } => unreachable!("views are of activations"),
        }
    }
}

/// `source` viewed as a row-major `shape` starting `offset` elements in (a
/// strided layout carries a non-zero offset).
pub(super) fn reinterpret_at<'c>(
    b: &Builder<'c>,
    source: V<'c>,
    shape: &[i64],
    offset: i64,
) -> V<'c> {
    let mut strides = vec![1i64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    let dense = |values: &[i64]| {
        melior::ir::attribute::DenseI64ArrayAttribute::new(b.context, values).into()
    };
    let result_type = if offset == 0 {
        b.memref_type(shape, b.f32_type())
    } else {
        grim_dialects::shape::strided_memref_type(b.context, shape, &strides, offset)
    };
    let segments =
        melior::ir::attribute::DenseI32ArrayAttribute::new(b.context, &[1, 0, 0, 0]).into();
    b.op(
        "memref.reinterpret_cast",
        &[source],
        &[result_type],
        &[
            ("static_offsets", dense(&[offset])),
            ("static_sizes", dense(shape)),
            ("static_strides", dense(&strides)),
            ("operandSegmentSizes", segments),
        ],
    )[0]
}
