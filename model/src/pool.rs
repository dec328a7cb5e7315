//! 2-D pooling over NCHW (ONNX MaxPool, AveragePool and their global
//! forms): the geometry, the output shape and the naive reference.
//!
//! The window rules are ONNX's (its reference implementation,
//! `onnx/reference/ops/op_pool_common.py`): the output size is
//! `(in + pads - dilation*(k-1) - 1) / stride + 1`, floored, or ceiled with
//! `ceil_mode` as long as the last window still starts inside the input or
//! its leading padding. A window reads the positions of the input; padding
//! counts as a value only for `AveragePool` with `count_include_pad`, and
//! then only inside the padded extent (never the extra positions a ceiled
//! window reaches beyond it).

use crate::error::ModelError;

/// Which reduction a pool takes over its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    /// The largest value.
    Max,
    /// The mean.
    Average,
}

/// A 2-D pooling window and its walk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pool {
    /// Max or average.
    pub kind: PoolKind,
    /// `[kh, kw]`.
    pub kernel: [usize; 2],
    /// `[sh, sw]`.
    pub strides: [usize; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    /// `[dh, dw]`.
    pub dilations: [usize; 2],
    /// Ceil the output size instead of flooring it.
    pub ceil_mode: bool,
    /// Average over the padded window, padding counted as zeros.
    pub count_include_pad: bool,
}

impl Pool {
    /// The output size along one axis (0: height, 1: width) for an input
    /// of `input`; `None` when the window does not fit.
    pub fn output_size(&self, axis: usize, input: usize) -> Option<usize> {
        let (begin, end) = (self.pads[axis], self.pads[axis + 2]);
        let span = self.dilations[axis].checked_mul(self.kernel[axis].checked_sub(1)?)? + 1;
        let padded = input.checked_add(begin)?.checked_add(end)?;
        if span > padded || self.strides[axis] == 0 {
            return None;
        }
        let room = padded - span;
        let stride = self.strides[axis];
        let mut out = room / stride + 1;
        if self.ceil_mode && room % stride != 0 {
            out += 1;
            // The last window must start inside the input or its leading pad.
            if (out - 1) * stride >= input + begin {
                out -= 1;
            }
        }
        Some(out)
    }

    /// The output shape for an NCHW input.
    pub fn output_shape(&self, label: &str, x: &[usize]) -> Result<Vec<usize>, ModelError> {
        let shape_err = |message: String| ModelError::Shape {
            node: label.to_string(),
            message,
        };
        let &[n, c, h, w] = x else {
            return Err(shape_err(format!(
                "pooling needs a 4-D NCHW input (2-D pooling), got {x:?}"
            )));
        };
        if self.kernel.contains(&0) || self.strides.contains(&0) || self.dilations.contains(&0) {
            return Err(shape_err(format!(
                "pooling kernel {:?}, strides {:?} and dilations {:?} must be >= 1",
                self.kernel, self.strides, self.dilations
            )));
        }
        match (self.output_size(0, h), self.output_size(1, w)) {
            (Some(ho), Some(wo)) => Ok(vec![n, c, ho, wo]),
            _ => Err(shape_err(format!(
                "the {:?} pooling window (dilations {:?}) does not fit the input {x:?} with pads {:?}",
                self.kernel, self.dilations, self.pads
            ))),
        }
    }

    /// The reference result for `x` of shape `[n, c, h, w]`, in f64
    /// accumulation, straight from the definition.
    pub fn reference(&self, x: &[f32], shape: &[usize], out: &[usize]) -> Vec<f32> {
        let (n, c, h, w) = (shape[0], shape[1], shape[2] as i64, shape[3] as i64);
        let (ho, wo) = (out[2], out[3]);
        let (pt, pl) = (self.pads[0] as i64, self.pads[1] as i64);
        let padded_h = h + pt + self.pads[2] as i64;
        let padded_w = w + pl + self.pads[3] as i64;
        let mut y = Vec::with_capacity(n * c * ho * wo);
        for plane in x.chunks(shape[2] * shape[3]).take(n * c) {
            for oh in 0..ho as i64 {
                for ow in 0..wo as i64 {
                    let (mut best, mut sum, mut count) = (f32::NEG_INFINITY, 0f64, 0usize);
                    for i in 0..self.kernel[0] as i64 {
                        for j in 0..self.kernel[1] as i64 {
                            let r = oh * self.strides[0] as i64 + i * self.dilations[0] as i64;
                            let s = ow * self.strides[1] as i64 + j * self.dilations[1] as i64;
                            if r >= padded_h || s >= padded_w {
                                continue;
                            }
                            let (r, s) = (r - pt, s - pl);
                            let inside = (0..h).contains(&r) && (0..w).contains(&s);
                            if inside {
                                let v = plane[(r * w + s) as usize];
                                best = best.max(v);
                                sum += v as f64;
                            }
                            if inside || self.count_include_pad {
                                count += 1;
                            }
                        }
                    }
                    y.push(match self.kind {
                        PoolKind::Max => best,
                        PoolKind::Average => (sum / count.max(1) as f64) as f32,
                    });
                }
            }
        }
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(kind: PoolKind, k: usize, s: usize, pads: [usize; 4], ceil: bool) -> Pool {
        Pool {
            kind,
            kernel: [k, k],
            strides: [s, s],
            pads,
            dilations: [1, 1],
            ceil_mode: ceil,
            count_include_pad: false,
        }
    }

    #[test]
    fn output_sizes_follow_onnx_floor_and_ceil() {
        let p = pool(PoolKind::Max, 3, 2, [0; 4], false);
        assert_eq!(p.output_size(0, 4), Some(1));
        let p = pool(PoolKind::Max, 3, 2, [0; 4], true);
        assert_eq!(p.output_size(0, 4), Some(2));
        // ResNet's stem pool: 3x3, stride 2, pad 1 on 112 gives 56.
        let p = pool(PoolKind::Max, 3, 2, [1; 4], false);
        assert_eq!(p.output_size(0, 112), Some(56));
        // A ceiled window that would start in the trailing pad is dropped.
        let p = pool(PoolKind::Max, 2, 2, [0, 0, 1, 1], true);
        assert_eq!(p.output_size(0, 4), Some(2));
        assert_eq!(
            pool(PoolKind::Max, 5, 1, [0; 4], false).output_size(0, 4),
            None
        );
    }

    #[test]
    fn max_ignores_pads_and_average_counts_them_only_when_asked() {
        // 1x1x2x2 input, 2x2 window, stride 1, one pad on every side: 3x3 out.
        let x = [1.0, 2.0, 3.0, 4.0];
        let max = pool(PoolKind::Max, 2, 1, [1; 4], false);
        let shape = max.output_shape("p", &[1, 1, 2, 2]).unwrap();
        assert_eq!(shape, [1, 1, 3, 3]);
        assert_eq!(
            max.reference(&x, &[1, 1, 2, 2], &shape),
            [1., 2., 2., 3., 4., 4., 3., 4., 4.]
        );
        let mut avg = pool(PoolKind::Average, 2, 1, [1; 4], false);
        assert_eq!(avg.reference(&x, &[1, 1, 2, 2], &shape)[0], 1.0);
        avg.count_include_pad = true;
        assert_eq!(avg.reference(&x, &[1, 1, 2, 2], &shape)[0], 0.25);
        assert_eq!(avg.reference(&x, &[1, 1, 2, 2], &shape)[4], 2.5);
    }
}
