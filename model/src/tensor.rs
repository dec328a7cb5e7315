//! A plain dense f32 tensor: the currency between ONNX, .npy and the
//! reference interpreter.

use crate::error::ModelError;

/// A dense, row-major (C-order) f32 tensor with a static shape.
///
/// A rank-0 tensor (empty shape) holds exactly one value.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Values in row-major order; `data.len() == shape.iter().product()`.
    pub data: Vec<f32>,
}

/// Number of elements of `shape`, or `None` if it overflows `usize`
/// (a corrupt file can claim any shape, so this must not panic).
pub(crate) fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

impl Tensor {
    /// Creates a tensor, checking that `data` has exactly as many values as
    /// `shape` describes.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self, ModelError> {
        match checked_numel(&shape) {
            Some(n) if n == data.len() => Ok(Tensor { shape, data }),
            Some(n) => Err(ModelError::Tensor {
                name: String::new(),
                message: format!(
                    "shape {:?} needs {} values but {} were given",
                    shape,
                    n,
                    data.len()
                ),
            }),
            None => Err(ModelError::Tensor {
                name: String::new(),
                message: format!("shape {shape:?} has too many elements"),
            }),
        }
    }

    /// A tensor of the given shape filled with zeros.
    ///
    /// Panics only if the element count overflows `usize`, which no shape
    /// that fits in memory can do.
    pub fn zeros(shape: Vec<usize>) -> Self {
        let n = shape.iter().product();
        Tensor {
            shape,
            data: vec![0.0; n],
        }
    }

    /// Number of stored values (same as [`Tensor::numel`]).
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the tensor has no values (some dimension is 0).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Number of elements the shape describes.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Rank (number of dimensions).
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
}

/// `count` deterministic values in [-1, 1) from a 64-bit LCG (Knuth's MMIX
/// constants), for reproducible inputs and benchmark weights without a
/// random-number dependency: the same seed gives the same values everywhere.
pub fn fixed_seed_values(seed: u64, count: usize) -> Vec<f32> {
    let mut state = seed;
    (0..count)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // 24 bits: exact in f32, in [0, 1).
            let unit = (state >> 40) as f32 / (1u64 << 24) as f32;
            2.0 * unit - 1.0
        })
        .collect()
}

impl Tensor {
    /// A tensor of `shape` filled with [`fixed_seed_values`].
    pub fn fixed_seed(shape: Vec<usize>, seed: u64) -> Self {
        let data = fixed_seed_values(seed, shape.iter().product());
        Tensor { shape, data }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_checks_product() {
        assert!(Tensor::new(vec![2, 3], vec![0.0; 6]).is_ok());
        let e = Tensor::new(vec![2, 3], vec![0.0; 5]).unwrap_err();
        assert!(e.to_string().contains("needs 6 values but 5"), "{e}");
        assert!(Tensor::new(vec![usize::MAX, 3], vec![]).is_err());
        let s = Tensor::new(vec![], vec![1.5]).unwrap();
        assert_eq!(s.numel(), 1);
    }

    #[test]
    fn zeros_len() {
        let t = Tensor::zeros(vec![4, 0, 2]);
        assert_eq!(t.len(), 0);
        assert!(t.is_empty());
        let t = Tensor::zeros(vec![4, 5]);
        assert_eq!((t.len(), t.numel(), t.rank()), (20, 20, 2));
        assert!(t.data.iter().all(|&v| v == 0.0));
    }
}
