//! Constant expressions evaluated when a function is rebuilt: batch-norm
//! folding (`bn-weight`, `bn-bias`), scaling, transposes, reshapes and
//! broadcasts of constants, and sums of constants, in f64 and rounded once.
//! A `-0.0` weight stays a zero under every one of them (pruned weights
//! stay pruned).

/// A constant tensor: row-major f32 values of a static shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Constant {
    /// The shape.
    pub shape: Vec<i64>,
    /// The values, row-major.
    pub data: Vec<f32>,
}

/// `s[m] / sqrt(v[m] + epsilon)`: the scale a batch norm applies per channel.
fn factors(epsilon: f32, scale: &Constant, var: &Constant) -> Vec<f64> {
    scale
        .data
        .iter()
        .zip(&var.data)
        .map(|(s, v)| *s as f64 / (*v as f64 + epsilon as f64).sqrt())
        .collect()
}

/// `w[m, ...] * s[m] / sqrt(v[m] + eps)`: a product's weight with a batch
/// norm folded in (rows are output channels).
pub fn bn_weight(epsilon: f32, weight: &Constant, scale: &Constant, var: &Constant) -> Constant {
    let factors = factors(epsilon, scale, var);
    let per_row = weight.data.len() / factors.len().max(1);
    let data = weight
        .data
        .iter()
        .enumerate()
        .map(|(i, w)| (*w as f64 * factors[i / per_row.max(1)]) as f32)
        .collect();
    Constant {
        shape: weight.shape.clone(),
        data,
    }
}

/// `(b[m] - mean[m]) * s[m] / sqrt(v[m] + eps) + shift[m]`, `b` zero when
/// the product has no bias.
pub fn bn_bias(
    epsilon: f32,
    shift: &Constant,
    bias: Option<&Constant>,
    scale: &Constant,
    mean: &Constant,
    var: &Constant,
) -> Constant {
    let factors = factors(epsilon, scale, var);
    let data = factors
        .iter()
        .enumerate()
        .map(|(m, factor)| {
            let b = bias.map_or(0.0, |b| b.data[m] as f64);
            ((b - mean.data[m] as f64) * factor + shift.data[m] as f64) as f32
        })
        .collect();
    Constant {
        shape: scale.shape.clone(),
        data,
    }
}

/// `factor * c`.
pub fn scale(factor: f32, c: &Constant) -> Constant {
    Constant {
        shape: c.shape.clone(),
        data: c
            .data
            .iter()
            .map(|v| (*v as f64 * factor as f64) as f32)
            .collect(),
    }
}

/// The transpose of a 2-D constant (`None` for another rank).
pub fn transpose(c: &Constant) -> Option<Constant> {
    let [rows, cols] = c.shape[..] else {
        return None;
    };
    let (rows, cols) = (rows as usize, cols as usize);
    let mut data = vec![0.0; c.data.len()];
    for r in 0..rows {
        for k in 0..cols {
            data[k * rows + r] = c.data[r * cols + k];
        }
    }
    Some(Constant {
        shape: vec![cols as i64, rows as i64],
        data,
    })
}

/// `c` as `shape`: the same values when the element counts agree (a
/// reshape), else `c` broadcast to `shape` (numpy rules; `None` when it
/// does not broadcast).
pub fn as_shape(shape: &[i64], c: &Constant) -> Option<Constant> {
    let count: i64 = shape.iter().product();
    if count as usize == c.data.len() {
        return Some(Constant {
            shape: shape.to_vec(),
            data: c.data.clone(),
        });
    }
    if grim_dialects::grim::broadcast(&c.shape, shape).as_deref() != Some(shape) {
        return None;
    }
    let data = (0..count as usize)
        .map(|flat| c.data[broadcast_index(flat, shape, &c.shape)])
        .collect();
    Some(Constant {
        shape: shape.to_vec(),
        data,
    })
}

/// The element of a tensor of shape `from` that broadcasting reads for
/// element `flat` of a tensor of shape `to`.
fn broadcast_index(flat: usize, to: &[i64], from: &[i64]) -> usize {
    let offset = to.len() - from.len();
    let mut rest = flat;
    let mut index = 0;
    let mut stride = 1;
    for axis in (0..to.len()).rev() {
        let position = rest % to[axis] as usize;
        rest /= to[axis] as usize;
        if axis >= offset {
            let extent = from[axis - offset] as usize;
            if extent != 1 {
                index += position * stride;
            }
            stride *= extent;
        }
    }
    index
}

/// `a + b` with broadcasting (`None` when they do not broadcast).
pub fn add(a: &Constant, b: &Constant) -> Option<Constant> {
    let shape = grim_dialects::grim::broadcast(&a.shape, &b.shape)?;
    let count: i64 = shape.iter().product();
    let data = (0..count as usize)
        .map(|flat| {
            a.data[broadcast_index(flat, &shape, &a.shape)]
                + b.data[broadcast_index(flat, &shape, &b.shape)]
        })
        .collect();
    Some(Constant { shape, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(shape: &[i64], data: &[f32]) -> Constant {
        Constant {
            shape: shape.to_vec(),
            data: data.to_vec(),
        }
    }

    #[test]
    fn batch_norm_folds_per_output_channel() {
        // Two output channels of two weights each; with eps 1, scale 2 and 1
        // and var 15 and 0 give the factors 2 / 4 = 0.5 and 1 / 1 = 1.
        let (w, s, v) = (
            c(&[2, 2], &[1.0, -0.0, 2.0, 4.0]),
            c(&[2], &[2.0, 1.0]),
            c(&[2], &[15.0, 0.0]),
        );
        let folded = bn_weight(1.0, &w, &s, &v);
        assert_eq!(folded.data, vec![0.5, -0.0, 2.0, 4.0]);
        assert_eq!(folded.data[1].to_bits(), (-0.0f32).to_bits());
        let (t, m, b) = (
            c(&[2], &[1.0, -1.0]),
            c(&[2], &[3.0, 0.5]),
            c(&[2], &[5.0, 0.0]),
        );
        // (5 - 3) * 0.5 + 1 = 2; (0 - 0.5) * 1 - 1 = -1.5.
        assert_eq!(bn_bias(1.0, &t, Some(&b), &s, &m, &v).data, vec![2.0, -1.5]);
        // Without a bias: (0 - 3) * 0.5 + 1 = -0.5.
        assert_eq!(bn_bias(1.0, &t, None, &s, &m, &v).data, vec![-0.5, -1.5]);
    }

    #[test]
    fn shapes_broadcast_and_transpose() {
        let row = c(&[1, 3], &[1.0, 2.0, 3.0]);
        assert_eq!(
            as_shape(&[3], &row).map(|r| r.data),
            Some(vec![1.0, 2.0, 3.0])
        );
        let scalar = c(&[], &[7.0]);
        assert_eq!(as_shape(&[3], &scalar).map(|r| r.data), Some(vec![7.0; 3]));
        let column = c(&[2, 1], &[1.0, 2.0]);
        assert_eq!(
            as_shape(&[2, 3], &column).map(|r| r.data),
            Some(vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0])
        );
        assert_eq!(as_shape(&[4], &row), None);
        let m = c(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(
            transpose(&m).map(|t| t.data),
            Some(vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0])
        );
        assert_eq!(
            add(&m, &row).map(|s| s.data),
            Some(vec![2.0, 4.0, 6.0, 5.0, 7.0, 9.0])
        );
        assert_eq!(scale(2.0, &row).data, vec![2.0, 4.0, 6.0]);
    }
}
