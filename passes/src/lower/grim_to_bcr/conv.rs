//! `grim.conv2d` in its GEMM view, image by image:
//! `Y_n[M, Ho*Wo] = W[M, C*kh*kw] x patches(X_n)`, with `Y_n` the n-th image
//! of the NCHW output (already laid out as `[M, Ho*Wo]`) and W the
//! `[M, C, kh, kw]` weight read as a matrix (no data moves).
//!
//! * A pointwise conv (1x1, stride 1, no padding) multiplies the image as
//!   the `[C, H*W]` matrix it is: no patches at all.
//! * The dense kernel reads the image through its patch matrix (implicit
//!   im2col: `bcr.gemm {im2col}` copies patches straight into its packed
//!   activation blocks).
//! * The BCR kernels read the image in place when its output rows are wide
//!   (stride 1, at least `grim_model::cost::BCR_IMPLICIT_MIN_WO` columns;
//!   zero-padded first by a 1x1 `bcr.im2col` when the conv pads), else they
//!   multiply an explicit patch matrix that `bcr.im2col` writes to scratch.
//!   graph-choose-kernel records the route (`im2col`); this follows it.
//!
//! A weight computed at run time is packed into row panels first
//! (`bcr.pack_panels`) and runs the dense kernel; its bias may be computed
//! at run time too.
//!
//! The epilogue: each output image starts as bias plus its residual image,
//! the product accumulates into it, then the activation is applied over it.

use super::weights::Reads;
use super::{
    gemm::{apply_activation, init_rows, Bias, Epilogue},
    values::Tensor,
    weights::Weights,
    Lowering,
};
use crate::{builder::Builder, op_error, PassError};
use grim_dialects::{
    bcr,
    grim::{self, Activation, Im2col},
};
use melior::ir::operation::{OperationMutLike, OperationRef, OperationRefMut};

/// How a conv's image reaches its product.
enum ConvInput<'c> {
    /// A 1x1 stride-1 unpadded conv: the image is the `[C, H*W]` matrix.
    Pointwise,
    /// The product reads the image through its patches (`im2col` on the
    /// product), from a zero-padded copy in this buffer when given.
    Implicit(Option<Tensor<'c>>),
    /// An explicit patch matrix in this buffer (`bcr.im2col`).
    Patches(Tensor<'c>),
}

impl<'c> Lowering<'c, '_> {
    pub(super) fn conv2d(
        &mut self,
        b: &Builder<'c>,
        op: OperationRef<'c, '_>,
    ) -> Result<(), PassError> {
        let attrs = grim::conv_attrs(&op)
            .ok_or_else(|| op_error(&op, "has malformed strides, pads or dilations"))?;
        if attrs.group > 1 {
            return self.grouped_conv(b, op, &attrs);
        }
        let operands = grim::product(&op)
            .ok_or_else(|| op_error(&op, "needs (input, weight, bias?, residual?)"))?;
        let input = self.buffer(&op, 0)?;
        let weight = self.value(&op, operands.weight, 1)?;
        let weight_shape = weight.shape().to_vec();
        let bias = match operands.bias {
            Some(bias) => Some(self.value(&op, bias, 2)?),
            None => None,
        };
        // The residual is operand #2 without a bias, #3 with one.
        let residual = match operands.residual {
            Some(residual) => {
                let index = 2 + usize::from(operands.bias.is_some());
                Some(self.buffer_value(&op, residual, index)?)
            }
            None => None,
        };
        let activation = Activation::of_epilogue(&op).map_err(|e| op_error(&op, e))?;
        let (&[images, channels, h, w], &[m, _, kh, kw]) = (input.shape(), &weight_shape[..])
        else {
            return Err(op_error(&op, "needs a 4-D input and weight"));
        };
        let (ho, wo) = attrs
            .output(h, w, kh, kw)
            .ok_or_else(|| op_error(&op, "has a kernel that does not fit its input"))?;
        let (k, n) = (channels * kh * kw, ho * wo);
        // A weight computed at run time is packed into the first temporary.
        let (weights, first_temporary) = match weight {
            Tensor::Weight { name, value, .. } => {
                (self.weights(b, &op, &name, value, m, k, Reads::Image)?, 0)
            }
            runtime => (self.runtime_panels(b, &op, &runtime, false, 1.0)?, 1),
        };
        let bias_view = bias.map(|bias| self.read(b, &bias, &[m]));
        let output = self.result(&op, &[images, m, ho, wo])?;
        let pointwise = attrs.is_pointwise(kh, kw);
        let patch = bcr::Im2col {
            kh,
            kw,
            conv: attrs,
        };
        // How each image reaches the product (buffers shared by all images),
        // as graph-choose-kernel chose it.
        let padded = [
            h + attrs.pads[0] + attrs.pads[2],
            w + attrs.pads[1] + attrs.pads[3],
        ];
        let layer = crate::graph::layer::Layer::of(&op)?;
        let route = match super::scratch::conv_route(&op, &layer) {
            Some(Im2col::Pointwise) if pointwise => ConvInput::Pointwise,
            Some(Im2col::Implicit) | None if !pointwise => match (&weights, attrs.pads == [0; 4]) {
                (Weights::Dense(_), _) | (Weights::Bcr(_), true) => ConvInput::Implicit(None),
                (Weights::Bcr(_), false) => ConvInput::Implicit(Some(self.temporary(
                    &op,
                    first_temporary,
                    &[channels, padded[0], padded[1]],
                )?)),
            },
            Some(Im2col::Explicit) => {
                ConvInput::Patches(self.temporary(&op, first_temporary, &[k, n])?)
            }
            other => {
                return Err(op_error(
                    &op,
                    format!("cannot take the im2col route {other:?} for its geometry"),
                ))
            }
        };
        for image in 0..images {
            let y = self.image_view(b, &output, image, &[m, n]);
            let residual_view = residual
                .as_ref()
                .map(|r| (self.image_view(b, r, image, &[m, n]), false));
            let epilogue = Epilogue {
                bias: bias_view.map(Bias::Row),
                residual: residual_view,
                activation,
            };
            init_rows(b, y, &epilogue, m, n);
            let (x, implicit) = match &route {
                ConvInput::Pointwise => {
                    (self.image_view(b, &input, image, &[channels, h * w]), None)
                }
                ConvInput::Patches(patches) => {
                    let x = self.image_view(b, &input, image, &[channels, h, w]);
                    let columns = self.view(b, patches);
                    b.insert(bcr::im2col(self.context, x, columns, &patch, b.location));
                    (columns, None)
                }
                ConvInput::Implicit(None) => (
                    self.image_view(b, &input, image, &[channels, h, w]),
                    Some(patch),
                ),
                ConvInput::Implicit(Some(buffer)) => {
                    // The zero-padded image is the patch matrix of a 1x1 kernel with the conv's pads.
                    let x = self.image_view(b, &input, image, &[channels, h, w]);
                    let rows =
                        self.view(b, &buffer.reshaped(vec![channels, padded[0] * padded[1]]));
                    let pad = bcr::Im2col {
                        kh: 1,
                        kw: 1,
                        conv: grim::ConvAttrs {
                            strides: [1, 1],
                            pads: attrs.pads,
                            dilations: [1, 1],
                            group: 1,
                        },
                    };
                    b.insert(bcr::im2col(self.context, x, rows, &pad, b.location));
                    let unpadded = grim::ConvAttrs {
                        pads: [0; 4],
                        ..attrs
                    };
                    (
                        self.view(b, buffer),
                        Some(bcr::Im2col {
                            conv: unpadded,
                            ..patch
                        }),
                    )
                }
            };
            let product = b.insert(weights.product(self.context, x, y, true, b.location));
            if let Some(geometry) = implicit {
                let (_, value) = bcr::im2col_attr(self.context, &geometry);
                // SAFETY: the product was just inserted; only an attribute is added.
                unsafe { OperationRefMut::from_raw(product.to_raw()) }
                    .set_attribute(bcr::IM2COL_ATTR, value);
            }
            self.copy_schedule(&op, product);
            apply_activation(
                b,
                || self.image_view(b, &output, image, &[m * n]),
                m * n,
                epilogue.activation,
            );
        }
        self.define(&op, output)
    }
}
