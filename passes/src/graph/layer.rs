//! A product (`grim.gemm` in canonical form, or with any attributes when
//! its weight is computed at run time; `grim.conv2d`) as the cost
//! model and the memory plan see it: its matrix sizes, its image geometry,
//! its constant weight.

use crate::{op_error, PassError};
use grim_dialects::{
    grim::{self, Im2col},
    shape, weights,
};
use grim_model::cost::{ConvGeometry, Product};
use melior::ir::{
    operation::{OperationLike, OperationRef},
    Attribute, ValueLike,
};

/// One product's sizes.
pub struct Layer<'c> {
    /// Rows of W.
    pub m: usize,
    /// Columns of W.
    pub k: usize,
    /// Columns of X per image (gemm rows, or Ho x Wo).
    pub n: usize,
    /// Images (a conv's batch; 1 for a gemm).
    pub images: usize,
    /// A conv's geometry.
    pub conv: Option<ConvGeometry>,
    /// The weight's values attribute, when the weight is a constant.
    pub weight: Option<Attribute<'c>>,
    /// A conv's groups (1 for a gemm and a plain conv).
    pub group: usize,
}

impl<'c> Layer<'c> {
    /// Reads a product op (gemm in canonical form, or conv).
    pub fn of(op: &OperationRef<'c, '_>) -> Result<Layer<'c>, PassError> {
        let operands = grim::product(op)
            .ok_or_else(|| op_error(op, "is not a product with valid operands"))?;
        let dims = |value: melior::ir::Value| -> Result<Vec<usize>, PassError> {
            shape::static_shape(value.r#type())
                .map(|s| s.iter().map(|d| *d as usize).collect())
                .ok_or_else(|| op_error(op, "needs static shapes"))
        };
        let (x, w) = (dims(operands.input)?, dims(operands.weight)?);
        let weight = grim::defining_constant(operands.weight)
            .and_then(|c| grim::constant_value(&c))
            .filter(|v| weights::is_weight(*v));
        let name = op.name().as_string_ref().as_str().unwrap_or("").to_string();
        if name == grim::GEMM {
            let attrs = grim::gemm_attrs(op);
            if weight.is_some() && !attrs.is_canonical() {
                // graph-simplify folds alpha, beta and the transposes into a constant weight.
                return Err(op_error(
                    op,
                    "is not in canonical form: run graph-simplify first",
                ));
            }
            // A runtime weight's gemm keeps its ONNX attributes: A is [K, N]
            // with trans_a, B is [K, M] without trans_b.
            let (&[x0, x1], &[w0, w1]) = (&x[..], &w[..]) else {
                return Err(op_error(op, "needs a 2-D input and weight"));
            };
            let (n, k) = if attrs.trans_a { (x1, x0) } else { (x0, x1) };
            let m = if attrs.trans_b { w0 } else { w1 };
            return Ok(Layer {
                m,
                k,
                n,
                images: 1,
                conv: None,
                weight,
                group: 1,
            });
        }
        let attrs = grim::conv_attrs(op).ok_or_else(|| op_error(op, "has malformed geometry"))?;
        let (&[images, channels, h, wi], &[m, per_group, kh, kw]) = (&x[..], &w[..]) else {
            return Err(op_error(op, "needs a 4-D input and weight"));
        };
        let (ho, wo) = attrs
            .output(h as i64, wi as i64, kh as i64, kw as i64)
            .ok_or_else(|| op_error(op, "has a kernel that does not fit its input"))?;
        let geometry = ConvGeometry {
            channels,
            input: [h, wi],
            kernel: [kh, kw],
            stride: attrs.strides.map(|v| v as usize),
            pads: attrs.pads.map(|v| v as usize),
            output: [ho as usize, wo as usize],
        };
        Ok(Layer {
            m,
            k: per_group * kh * kw,
            n: (ho * wo) as usize,
            images,
            conv: Some(geometry),
            weight,
            group: attrs.group as usize,
        })
    }

    /// The product as the cost model takes it.
    pub fn product(&self) -> Product {
        match self.conv {
            Some(geometry) => Product::conv(self.m, self.images, geometry),
            None => Product::gemm(self.m, self.k, self.n),
        }
    }

    /// How a conv's image reaches the product on the BCR kernels (`bcr`)
    /// or the dense kernel; `None` for a gemm and a grouped conv (the
    /// direct kernel reads the image itself).
    pub fn im2col(&self, bcr: bool) -> Option<Im2col> {
        let geometry = self.conv.filter(|_| self.group == 1)?;
        Some(if geometry.is_pointwise() {
            Im2col::Pointwise
        } else if !bcr || geometry.bcr_reads_in_place() {
            Im2col::Implicit
        } else {
            Im2col::Explicit
        })
    }
}
