//! Training on candle: dense training (for the examples), ADMM retraining
//! towards the BCR set, and masked fine-tuning.
//!
//! ADMM (Zhang et al., as GRIM uses it) alternates three steps per epoch:
//! the W-step, Adam on `loss + rho/2 sum_l ||W_l - Z_l + U_l||^2` over the
//! epoch's batches; the Z-step, `Z_l = proj(W_l + U_l)` (the BCR projection
//! of `grim_model::projection`, exact per block where it claims so); and the
//! U-step, `U_l += W_l - Z_l` (U is the scaled dual, rescaled when rho grows). `rho` grows geometrically each epoch, pulling
//! W onto the BCR set while the loss keeps it accurate; then W is projected
//! (hard pruning) and fine-tuned with the mask fixed.
//!
//! Determinism: batches are drawn from a `StdRng` seeded by `--seed`, and
//! candle's CPU kernels do not split reductions across threads, so the same
//! seed and thread count give the same weights.

pub(crate) mod forward;
mod recurrent;

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Device, Tensor, Var};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::data::{Dataset, Targets};
use crate::error::{During, PruneError};
use forward::{Net, Params};

/// The loss the model is trained with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Softmax cross-entropy of the output (logits `[batch, classes]`)
    /// against int64 labels.
    CrossEntropy,
    /// Mean squared error against float32 targets.
    Mse,
}

/// How long and how hard to train.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// Epochs of training (ADMM epochs for ADMM, of dense training for
    /// the examples, of masked fine-tuning after a one-shot projection).
    pub epochs: usize,
    /// Masked fine-tuning epochs after ADMM's hard pruning.
    pub finetune_epochs: usize,
    /// Samples per batch.
    pub batch: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// ADMM's first `rho`.
    pub rho: f64,
    /// `rho`'s growth per epoch.
    pub rho_growth: f64,
    /// Seeds batch order and the validation split.
    pub seed: u64,
    /// No progress bars.
    pub quiet: bool,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            epochs: 30,
            finetune_epochs: 20,
            batch: 32,
            lr: 1e-3,
            rho: 1e-2,
            rho_growth: 1.1,
            seed: 0,
            quiet: false,
        }
    }
}

/// One evaluation: the loss, and the accuracy for classification.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    /// Mean loss.
    pub loss: f64,
    /// Fraction of samples whose largest output is their label.
    pub accuracy: Option<f64>,
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.accuracy {
            Some(a) => write!(f, "val acc {:.2}%", 100.0 * a),
            None => write!(f, "val loss {:.5}", self.loss),
        }
    }
}

/// A model's graph (imported at the training batch) with its trainable
/// weights as candle variables.
pub struct Trainer<'g> {
    net: Net<'g>,
    pub(crate) params: Params,
    loss: Loss,
    batch: usize,
}

/// Per-step hook: the W-step's extra term, the fine-tuning mask.
type Extra<'a> = &'a dyn Fn(&Params) -> candle_core::Result<Option<Tensor>>;

impl<'g> Trainer<'g> {
    /// A trainer for `graph`, whose input has `batch` samples along its
    /// batch axis, training the initializers named in `trainable`.
    pub fn new(
        graph: &'g grim_model::Graph,
        path: &Path,
        trainable: &[String],
        loss: Loss,
        batch: usize,
    ) -> Result<Trainer<'g>, PruneError> {
        let set = trainable.iter().cloned().collect();
        let net = Net::new(graph, path, &set)?;
        let mut params = BTreeMap::new();
        for name in trainable {
            if let Some(t) = graph.initializers.get(name) {
                let v = Var::from_tensor(&forward::tensor(t).during("loading weights")?)
                    .during("loading weights")?;
                params.insert(name.clone(), v);
            }
        }
        Ok(Trainer {
            net,
            params,
            loss,
            batch,
        })
    }

    /// The weights now, by name.
    pub fn weights(&self) -> Result<BTreeMap<String, Vec<f32>>, PruneError> {
        self.params
            .iter()
            .map(|(n, v)| Ok((n.clone(), values(v.as_tensor())?)))
            .collect()
    }

    /// The graph's first output for `x` (the trainer's batch along the
    /// input's batch axis), as training computes it: what tests compare
    /// with the reference interpreter.
    pub fn output(&self, x: &grim_model::Tensor) -> Result<grim_model::Tensor, PruneError> {
        let x = forward::tensor(x).during("making the input")?;
        let y = self.net.forward(&self.params, &x)?;
        Ok(grim_model::Tensor {
            shape: y.dims().to_vec(),
            data: values(&y)?,
        })
    }

    /// Replaces the weight `name`.
    pub fn set(&mut self, name: &str, data: &[f32]) -> Result<(), PruneError> {
        if let Some(v) = self.params.get(name) {
            let t = Tensor::from_vec(data.to_vec(), v.as_tensor().dims(), &Device::Cpu)
                .during("setting weights")?;
            v.set(&t).during("setting weights")?;
        }
        Ok(())
    }

    fn batch_loss(
        &self,
        data: &Dataset,
        idx: &[usize],
    ) -> Result<(Tensor, Tensor, usize), PruneError> {
        let (shape, x) = data.batch_x(idx, self.batch);
        let x = Tensor::from_vec(x, shape, &Device::Cpu).during("making a batch")?;
        let out = self.net.forward(&self.params, &x)?;
        let logits = out
            .reshape((self.batch, ()))
            .during("reading the output as [batch, outputs]")?;
        let real = idx.len();
        let logits_real = logits.narrow(0, 0, real).during("batch")?;
        let loss = match (&data.targets, self.loss) {
            (Targets::Classes(y), Loss::CrossEntropy) => {
                let labels: Vec<u32> = idx.iter().map(|&i| y[i] as u32).collect();
                let labels = Tensor::from_vec(labels, real, &Device::Cpu).during("labels")?;
                candle_nn::loss::cross_entropy(&logits_real, &labels).during("the loss")?
            }
            (
                Targets::Values {
                    data: t,
                    per_sample,
                },
                _,
            ) => {
                let v: Vec<f32> = idx
                    .iter()
                    .flat_map(|&i| t[i * per_sample..][..*per_sample].iter().copied())
                    .collect();
                let v = Tensor::from_vec(v, (real, *per_sample), &Device::Cpu).during("targets")?;
                candle_nn::loss::mse(&logits_real, &v).during("the loss")?
            }
            (Targets::Classes(_), Loss::Mse) => {
                return Err(PruneError::Options(
                    "--loss mse needs float32 targets in 'y'".into(),
                ))
            }
        };
        Ok((loss, logits_real, real))
    }

    /// Loss and accuracy over all of `data`.
    pub fn evaluate(&self, data: &Dataset) -> Result<Metric, PruneError> {
        let n = data.len();
        let (mut loss, mut correct) = (0.0, 0usize);
        let all: Vec<usize> = (0..n).collect();
        for idx in all.chunks(self.batch) {
            let (l, logits, real) = self.batch_loss(data, idx)?;
            loss += l.to_scalar::<f32>().during("the loss")? as f64 * real as f64;
            if let Targets::Classes(y) = &data.targets {
                let pred = forward::argmax(&logits).during("accuracy")?;
                correct += idx
                    .iter()
                    .zip(pred)
                    .filter(|(&i, p)| y[i] == *p as i64)
                    .count();
            }
        }
        Ok(Metric {
            loss: loss / n as f64,
            accuracy: matches!(data.targets, Targets::Classes(_))
                .then(|| correct as f64 / n as f64),
        })
    }

    /// One epoch of Adam steps over `data` in a seeded order; `extra` adds
    /// a term to each step's loss, `after` runs after each step.
    pub(crate) fn epoch(
        &mut self,
        opt: &mut AdamW,
        data: &Dataset,
        rng: &mut StdRng,
        extra: Extra<'_>,
        after: &mut dyn FnMut(&Params) -> Result<(), PruneError>,
        bar: &ProgressBar,
    ) -> Result<f64, PruneError> {
        let mut order: Vec<usize> = (0..data.len()).collect();
        order.shuffle(rng);
        let batches = order.len() / self.batch;
        let mut total = 0.0;
        for idx in order.chunks_exact(self.batch) {
            let (loss, _, _) = self.batch_loss(data, idx)?;
            total += loss.to_scalar::<f32>().during("the loss")? as f64;
            let objective = match extra(&self.params).during("the ADMM term")? {
                Some(t) => loss.add(&t).during("the ADMM term")?,
                None => loss,
            };
            opt.backward_step(&objective).during("a training step")?;
            after(&self.params)?;
            bar.inc(1);
        }
        Ok(total / batches.max(1) as f64)
    }

    /// A fresh Adam over the trainable weights.
    pub(crate) fn adam(&self, lr: f64) -> Result<AdamW, PruneError> {
        let params = ParamsAdamW {
            lr,
            weight_decay: 0.0,
            ..ParamsAdamW::default()
        };
        AdamW::new(self.params.values().cloned().collect(), params).during("making Adam")
    }

    /// Steps per epoch over `data`.
    pub(crate) fn steps(&self, data: &Dataset) -> usize {
        data.len() / self.batch
    }
}

/// A tensor's values, flattened.
pub(crate) fn values(t: &Tensor) -> Result<Vec<f32>, PruneError> {
    t.flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .during("reading weights")
}

/// One epoch's progress bar (hidden when quiet) and its closing line.
pub(crate) struct Epoch {
    pub(crate) bar: ProgressBar,
    label: String,
}

impl Epoch {
    /// The bar of epoch `e` (from 0) of `of` of the phase `what`, over
    /// `steps` batches.
    pub(crate) fn start(quiet: bool, steps: usize, what: &str, e: usize, of: usize) -> Epoch {
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            let bar = ProgressBar::new(steps as u64);
            if let Ok(style) =
                ProgressStyle::with_template("{prefix:>14} [{bar:24}] {pos:>4}/{len} {msg}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(format!("{what} {}/{of}", e + 1));
            bar
        };
        Epoch {
            bar,
            label: format!("{what} epoch {}/{of}", e + 1),
        }
    }

    /// Ends the bar with `msg`; when the bar cannot draw (quiet, or stderr
    /// is not a terminal), `log` gets the line instead.
    pub(crate) fn finish(self, msg: String, log: &mut dyn FnMut(&str)) {
        if self.bar.is_hidden() {
            log(&format!("{}: {msg}", self.label));
        }
        self.bar.finish_with_message(msg);
    }
}

/// Seeded batch order for a run.
pub(crate) fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}
