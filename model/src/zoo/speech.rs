//! The recurrent zoo: the speech GRU GRIM evaluates (after RTMobile: two
//! unidirectional GRU layers of 1024 hidden units on 153 float features,
//! 61 classes) and a 2-layer LSTM of 650 hidden units on the same
//! features, as PyTorch exports them ([`crate::onnx::pytorch_rnn`]).
//!
//! Weights are PyTorch's initialisation, uniform in `±1/sqrt(hidden)`,
//! never exactly zero. The pruned variants multiply each gate's `W` and
//! `R` (its `[H, in]` and `[H, H]` rows) by a BCR mask of 8x16 blocks
//! drawn per block ([`super::bcr_keeps`]: 10x keeps 4 of 8 rows and 3 of
//! 16 columns, 10.7x), so pruned negatives are `-0.0`; the classifier stays
//! dense.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::bcrc::random_bcr_weight;
use crate::error::ModelError;
use crate::onnx::pytorch_rnn::{RecurrentStack, StackCell, StackLayer};
use crate::tensor::Tensor;

/// A recurrent zoo model.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeechModel {
    /// GRU (the speech model) or LSTM.
    pub cell: StackCell,
    /// Sequence length.
    pub seq: usize,
    /// Batch.
    pub batch: usize,
    /// The pruning rate of every recurrent weight (`None` or 1: dense).
    pub rate: Option<f64>,
    /// Input features.
    pub input: usize,
    /// Hidden units.
    pub hidden: usize,
    /// Layers.
    pub layers: usize,
    /// Classes.
    pub classes: usize,
    /// Seed of every weight.
    pub seed: u64,
}

impl SpeechModel {
    /// The speech GRU (`gru-speech`): 153 features, 2 x 1024, 61 classes,
    /// 100 steps, batch 1, pruned 10x.
    pub fn gru() -> Self {
        SpeechModel {
            cell: StackCell::Gru,
            seq: 100,
            batch: 1,
            rate: Some(10.0),
            input: 153,
            hidden: 1024,
            layers: 2,
            classes: 61,
            seed: 0,
        }
    }

    /// The LSTM (`lstm`): 153 features, 2 x 650, 61 classes, 100 steps,
    /// batch 1, pruned 10x.
    pub fn lstm() -> Self {
        SpeechModel {
            cell: StackCell::Lstm,
            hidden: 650,
            ..SpeechModel::gru()
        }
    }

    /// The model for `grimc example --model NAME`, if NAME is one.
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "gru-speech" => Some(SpeechModel::gru()),
            "lstm" => Some(SpeechModel::lstm()),
            _ => None,
        }
    }

    /// The names [`SpeechModel::named`] takes.
    pub const NAMES: [&'static str; 2] = ["gru-speech", "lstm"];

    /// The stack of weights (validated sizes).
    pub fn stack(&self) -> Result<RecurrentStack, ModelError> {
        if self.seq == 0 || self.batch == 0 || self.hidden == 0 || self.layers == 0 {
            return Err(ModelError::Shape {
                node: "input".into(),
                message: format!(
                    "a recurrent zoo model needs a sequence, batch, hidden size and layers >= 1, got seq {}, batch {}, hidden {}, {} layers",
                    self.seq, self.batch, self.hidden, self.layers
                ),
            });
        }
        let prune = match self.rate {
            Some(rate) => super::bcr_keeps(rate)?,
            None => None,
        };
        let gates = match self.cell {
            StackCell::Gru => 3,
            StackCell::Lstm => 4,
        };
        let h = self.hidden;
        let a = 1.0 / (h as f32).sqrt();
        let mut rng = StdRng::seed_from_u64(self.seed);
        let uniform = |n: usize, rng: &mut StdRng| -> Vec<f32> {
            (0..n)
                .map(|_| loop {
                    let v = rng.gen_range(-a..=a);
                    if v != 0.0 {
                        break v;
                    }
                })
                .collect()
        };
        // A [gates * h, k] matrix, each gate's rows masked on their own.
        let matrix = |k: usize, rng: &mut StdRng| -> Vec<f32> {
            let mut w = uniform(gates * h * k, rng);
            if let Some(p) = prune {
                for g in 0..gates {
                    let pattern =
                        random_bcr_weight(h, k, p.block, p.row_keep, p.col_keep, rng.gen());
                    for (v, kept) in w[g * h * k..(g + 1) * h * k].iter_mut().zip(pattern) {
                        *v *= if kept != 0.0 { 1.0 } else { 0.0 };
                    }
                }
            }
            w
        };
        let mut layers = Vec::new();
        for l in 0..self.layers {
            let k = if l == 0 { self.input } else { h };
            let w = matrix(k, &mut rng);
            let r = matrix(h, &mut rng);
            let b = uniform(2 * gates * h, &mut rng);
            layers.push(StackLayer {
                w: Tensor::new(vec![1, gates * h, k], w)?,
                r: Tensor::new(vec![1, gates * h, h], r)?,
                b: Tensor::new(vec![1, 2 * gates * h], b)?,
            });
        }
        let fc_weight = Tensor::new(vec![self.classes, h], uniform(self.classes * h, &mut rng))?;
        let fc_bias = Tensor::new(vec![self.classes], uniform(self.classes, &mut rng))?;
        Ok(RecurrentStack {
            name: match self.cell {
                StackCell::Gru => "gru_speech".into(),
                StackCell::Lstm => "lstm".into(),
            },
            cell: self.cell,
            seq: self.seq,
            batch: self.batch,
            input: self.input,
            hidden: h,
            layers,
            fc_weight,
            fc_bias,
        })
    }

    /// Writes the model as ONNX to `path` (atomically).
    pub fn save(&self, path: &std::path::Path) -> Result<(), ModelError> {
        use prost::Message;
        crate::write_atomic(path, &self.stack()?.to_proto().encode_to_vec())
    }
}
