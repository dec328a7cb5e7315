//! Training data: numpy `.npz` archives with `x` (float32 samples) and `y`
//! (int64 class labels, or float32 targets for `--loss mse`).
//!
//! The samples lie along the model input's batch axis: the axis with a
//! symbolic dimension, else axis 1 for a layout-0 recurrent model (`[seq,
//! batch, features]`), else axis 0; `--batch-axis` overrides. Every other
//! dimension of `x` must equal the model input's.

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::error::PruneError;

/// What the model is trained to output.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// Class labels for cross-entropy, each in `0..classes`.
    Classes(Vec<i64>),
    /// Regression targets for mean squared error, `per_sample` each.
    Values {
        /// All targets, sample after sample.
        data: Vec<f32>,
        /// Values per sample.
        per_sample: usize,
    },
}

/// Samples and their targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Where they came from (for errors).
    pub path: PathBuf,
    /// `x` as stored.
    pub x: Vec<f32>,
    /// `x`'s shape (the batch axis holding the samples).
    pub shape: Vec<usize>,
    /// The axis of `shape` holding the samples.
    pub batch_axis: usize,
    /// The targets.
    pub targets: Targets,
}

fn data_err(path: &Path, message: String) -> PruneError {
    PruneError::Data {
        path: path.to_path_buf(),
        message,
    }
}

/// Reads `path`, checking `x` against the model's `input` shape (its batch
/// dimension free) and `y` against the loss.
pub fn load(
    path: &Path,
    input: &[usize],
    batch_axis: usize,
    classification: bool,
) -> Result<Dataset, PruneError> {
    let io = |e: std::io::Error| data_err(path, format!("cannot read the archive: {e}"));
    let mut npz = npyz::npz::NpzArchive::open(path).map_err(io)?;
    let x_file = npz
        .by_name("x")
        .map_err(io)?
        .ok_or_else(|| data_err(path, "has no array 'x' (the samples)".into()))?;
    let shape: Vec<usize> = x_file.shape().iter().map(|&d| d as usize).collect();
    let dtype = x_file.dtype().descr();
    let x: Vec<f32> = x_file
        .into_vec()
        .map_err(|_| data_err(path, format!("'x' must be float32, it is {dtype}")))?;
    let fits = shape.len() == input.len()
        && batch_axis < shape.len()
        && (0..shape.len()).all(|d| d == batch_axis || shape[d] == input[d]);
    if !fits {
        return Err(data_err(
            path,
            format!(
                "'x' has shape {shape:?} but the model's input is {input:?} with the samples along axis {batch_axis}"
            ),
        ));
    }
    let n = shape[batch_axis];
    if n == 0 {
        return Err(data_err(path, "'x' holds no samples".into()));
    }
    let y_file = npz
        .by_name("y")
        .map_err(io)?
        .ok_or_else(|| data_err(path, "has no array 'y' (the targets)".into()))?;
    let y_shape: Vec<usize> = y_file.shape().iter().map(|&d| d as usize).collect();
    let y_dtype = y_file.dtype().descr();
    if y_shape.first() != Some(&n) {
        return Err(data_err(
            path,
            format!("'y' has shape {y_shape:?} but 'x' holds {n} samples"),
        ));
    }
    let targets = if classification {
        if y_shape.len() != 1 {
            return Err(data_err(
                path,
                format!("'y' must be 1-D class labels for --loss ce, it has shape {y_shape:?}"),
            ));
        }
        let y: Vec<i64> = y_file.into_vec().map_err(|_| {
            data_err(
                path,
                format!("'y' must be int64 class labels for --loss ce, it is {y_dtype}"),
            )
        })?;
        Targets::Classes(y)
    } else {
        let data: Vec<f32> = y_file.into_vec().map_err(|_| {
            data_err(
                path,
                format!("'y' must be float32 targets for --loss mse, it is {y_dtype}"),
            )
        })?;
        Targets::Values {
            per_sample: data.len() / n,
            data,
        }
    };
    Ok(Dataset {
        path: path.to_path_buf(),
        x,
        shape,
        batch_axis,
        targets,
    })
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.shape[self.batch_axis]
    }

    /// No samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Labels checked against the model's `classes` (a label outside is an
    /// error naming it).
    pub fn check_classes(&self, classes: usize) -> Result<(), PruneError> {
        if let Targets::Classes(y) = &self.targets {
            if let Some((i, v)) = y
                .iter()
                .enumerate()
                .find(|(_, &v)| v < 0 || v as usize >= classes)
            {
                return Err(data_err(
                    &self.path,
                    format!(
                        "label y[{i}] = {v} is out of range: the model outputs {classes} classes"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Regression targets checked against the model's `outputs` per sample.
    pub fn check_targets(&self, outputs: usize) -> Result<(), PruneError> {
        if let Targets::Values { per_sample, .. } = &self.targets {
            if *per_sample != outputs {
                return Err(data_err(
                    &self.path,
                    format!(
                        "'y' has {per_sample} targets per sample but the model outputs {outputs}"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The samples `idx` as one batch (the model input's shape with
    /// `idx.len()` along the batch axis), rows of `pad_to - idx.len()`
    /// zero samples appended.
    pub fn batch_x(&self, idx: &[usize], pad_to: usize) -> (Vec<usize>, Vec<f32>) {
        let a = self.batch_axis;
        let n = self.len();
        let pre: usize = self.shape[..a].iter().product();
        let post: usize = self.shape[a + 1..].iter().product();
        let mut out = Vec::with_capacity(pre * pad_to * post);
        for p in 0..pre {
            for &i in idx {
                out.extend_from_slice(&self.x[(p * n + i) * post..][..post]);
            }
            out.resize(out.len() + (pad_to - idx.len()) * post, 0.0);
        }
        let mut shape = self.shape.clone();
        shape[a] = pad_to;
        (shape, out)
    }

    /// Splits off a seeded `fraction` of the samples (at least one) as
    /// validation data; at least two samples are needed.
    pub fn split(&self, fraction: f64, seed: u64) -> Result<(Dataset, Dataset), PruneError> {
        let n = self.len();
        if n < 2 {
            return Err(data_err(
                &self.path,
                format!("'x' holds {n} sample; holding out validation data needs at least 2 (or give --val-data)"),
            ));
        }
        let mut idx: Vec<usize> = (0..n).collect();
        idx.shuffle(&mut StdRng::seed_from_u64(seed ^ 0x005e_ed0f_da7a));
        let held = ((n as f64 * fraction).round() as usize).clamp(1, n.saturating_sub(1).max(1));
        let (val, train) = idx.split_at(held);
        Ok((self.subset(train), self.subset(val)))
    }

    fn subset(&self, idx: &[usize]) -> Dataset {
        let (shape, x) = self.batch_x(idx, idx.len());
        let targets = match &self.targets {
            Targets::Classes(y) => Targets::Classes(idx.iter().map(|&i| y[i]).collect()),
            Targets::Values { data, per_sample } => Targets::Values {
                data: idx
                    .iter()
                    .flat_map(|&i| data[i * per_sample..][..*per_sample].iter().copied())
                    .collect(),
                per_sample: *per_sample,
            },
        };
        Dataset {
            path: self.path.clone(),
            x,
            shape,
            batch_axis: self.batch_axis,
            targets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows_dataset() -> Dataset {
        // [seq 2, samples 3, features 2]: value = 100 * step + 10 * sample + feature.
        let mut x = Vec::new();
        for t in 0..2 {
            for s in 0..3 {
                for f in 0..2 {
                    x.push((100 * t + 10 * s + f) as f32);
                }
            }
        }
        Dataset {
            path: PathBuf::from("d.npz"),
            x,
            shape: vec![2, 3, 2],
            batch_axis: 1,
            targets: Targets::Classes(vec![0, 1, 2]),
        }
    }

    #[test]
    fn batches_gather_along_the_batch_axis_and_pad_with_zeros() {
        let d = rows_dataset();
        let (shape, x) = d.batch_x(&[2, 0], 3);
        assert_eq!(shape, vec![2, 3, 2]);
        assert_eq!(
            x,
            vec![20., 21., 0., 1., 0., 0., 120., 121., 100., 101., 0., 0.]
        );
    }

    #[test]
    fn split_is_seeded_disjoint_and_keeps_targets_with_their_samples() {
        let d = rows_dataset();
        let (a, b) = d.split(0.34, 7).unwrap();
        assert_eq!((a.len(), b.len()), (2, 1));
        assert_eq!(d.split(0.34, 7).unwrap(), (a.clone(), b.clone()));
        let (Targets::Classes(ya), Targets::Classes(yb)) = (&a.targets, &b.targets) else {
            panic!("classes")
        };
        let mut all: Vec<i64> = ya.iter().chain(yb).copied().collect();
        all.sort();
        assert_eq!(all, vec![0, 1, 2]);
        // Sample s of the split holds the features of the original sample
        // whose label it carries.
        for (set, y) in [(&a, ya), (&b, yb)] {
            for (i, &label) in y.iter().enumerate() {
                let (_, x) = set.batch_x(&[i], 1);
                assert_eq!(x[0], (10 * label) as f32);
                assert_eq!(x[2], (100 + 10 * label) as f32);
            }
        }
    }

    #[test]
    fn labels_out_of_range_name_the_index() {
        let d = rows_dataset();
        let e = d.check_classes(2).unwrap_err().to_string();
        assert!(
            e.contains("label y[2] = 2 is out of range: the model outputs 2 classes"),
            "{e}"
        );
    }
}
