//! The retraining half of a run: ADMM and masked fine-tuning.

use super::*;
use crate::error::During;

/// The retraining half of a run.
pub(super) struct Retrain<'a> {
    pub(super) layers: &'a [Layer],
    pub(super) plan: &'a [(BlockSize, Keep)],
    pub(super) schedule: &'a Schedule,
}

impl Retrain<'_> {
    pub(super) fn project(
        &self,
        w: &mut BTreeMap<String, Vec<f32>>,
    ) -> Result<Vec<LayerReport>, PruneError> {
        project_all(self.layers, self.plan, w)
    }

    pub(super) fn load(
        &self,
        trainer: &mut Trainer,
        w: &BTreeMap<String, Vec<f32>>,
    ) -> Result<(), PruneError> {
        for (n, v) in w {
            trainer.set(n, v)?;
        }
        Ok(())
    }

    /// ADMM epochs, hard pruning, masked fine-tuning.
    pub(super) fn admm(
        &self,
        trainer: &mut Trainer,
        train_set: &Dataset,
        val: &Dataset,
        log: &mut dyn FnMut(&str),
    ) -> Result<Vec<LayerReport>, PruneError> {
        let s = self.schedule;
        let pruned: Vec<String> = self.layers.iter().map(|l| l.weight.clone()).collect();
        let mut w = trainer.weights()?;
        let mut z = w.clone();
        self.project(&mut z)?;
        let mut u: BTreeMap<String, Vec<f32>> = pruned
            .iter()
            .map(|n| (n.clone(), vec![0.0; w[n].len()]))
            .collect();
        let mut opt = trainer.adam(s.lr)?;
        let mut rng = train::rng(s.seed);
        let mut rho = s.rho;
        for e in 0..s.epochs {
            // The W-step's target Z - U, fixed for the epoch.
            let targets: Vec<(String, candle_core::Tensor)> = pruned
                .iter()
                .map(|n| {
                    let t: Vec<f32> = z[n].iter().zip(&u[n]).map(|(a, b)| a - b).collect();
                    let dims = trainer.params[n].as_tensor().dims().to_vec();
                    let t = candle_core::Tensor::from_vec(t, dims, &candle_core::Device::Cpu);
                    t.map(|t| (n.clone(), t))
                })
                .collect::<candle_core::Result<_>>()
                .during("the ADMM targets")?;
            let half_rho = rho / 2.0;
            let extra = |p: &crate::train::forward::Params| -> candle_core::Result<Option<candle_core::Tensor>> {
                let mut sum: Option<candle_core::Tensor> = None;
                for (n, t) in &targets {
                    let d = p[n].as_tensor().sub(t)?.sqr()?.sum_all()?;
                    sum = Some(match sum {
                        Some(s) => s.add(&d)?,
                        None => d,
                    });
                }
                sum.map(|s| s.affine(half_rho, 0.0)).transpose()
            };
            let epoch = train::Epoch::start(s.quiet, trainer.steps(train_set), "admm", e, s.epochs);
            let loss = trainer.epoch(
                &mut opt,
                train_set,
                &mut rng,
                &extra,
                &mut |_| Ok(()),
                &epoch.bar,
            )?;
            w = trainer.weights()?;
            // Z-step and U-step.
            let mut wu = w.clone();
            for n in &pruned {
                for (a, b) in wu.get_mut(n).into_iter().flatten().zip(&u[n]) {
                    *a += b;
                }
            }
            self.project(&mut wu)?;
            for n in &pruned {
                let (wn, zn) = (&w[n], &wu[n]);
                for ((uv, a), b) in u.get_mut(n).into_iter().flatten().zip(wn).zip(zn) {
                    *uv += a - b;
                }
            }
            z = wu;
            let metric = trainer.evaluate(val)?;
            let dist = distance(self.layers, self.plan, &w)?;
            epoch.finish(
                format!("loss {loss:.4}, {metric}, distance to BCR {dist:.4}, rho {rho:.2e}"),
                log,
            );
            // U is the scaled dual (lambda / rho): when rho grows, U
            // shrinks by the same factor, or the old duals would pull W
            // harder than the multipliers they stand for.
            rho *= s.rho_growth;
            for v in u.values_mut().flatten() {
                *v /= s.rho_growth as f32;
            }
        }
        self.masked_finetune(trainer, train_set, val, s.finetune_epochs, "finetune", log)
    }

    /// Projects, then trains `epochs` with the pruned values held at zero.
    pub(super) fn masked_finetune(
        &self,
        trainer: &mut Trainer,
        train_set: &Dataset,
        val: &Dataset,
        epochs: usize,
        what: &str,
        log: &mut dyn FnMut(&str),
    ) -> Result<Vec<LayerReport>, PruneError> {
        let s = self.schedule;
        let mut w = trainer.weights()?;
        let reports = self.project(&mut w)?;
        self.load(trainer, &w)?;
        let masks: Vec<(String, candle_core::Tensor)> = self
            .layers
            .iter()
            .map(|l| {
                let m: Vec<f32> = w[&l.weight]
                    .iter()
                    .map(|v| (*v != 0.0) as u8 as f32)
                    .collect();
                let dims = trainer.params[&l.weight].as_tensor().dims().to_vec();
                candle_core::Tensor::from_vec(m, dims, &candle_core::Device::Cpu)
                    .map(|t| (l.weight.clone(), t))
            })
            .collect::<candle_core::Result<_>>()
            .during("the pruning masks")?;
        let mut opt = trainer.adam(s.lr)?;
        let mut rng = train::rng(s.seed.wrapping_add(1));
        let mut reapply = |p: &crate::train::forward::Params| -> Result<(), PruneError> {
            for (n, m) in &masks {
                let v = &p[n];
                let t = v.as_tensor().mul(m).during("masking")?;
                v.set(&t).during("masking")?;
            }
            Ok(())
        };
        for e in 0..epochs {
            let epoch = train::Epoch::start(s.quiet, trainer.steps(train_set), what, e, epochs);
            let loss = trainer.epoch(
                &mut opt,
                train_set,
                &mut rng,
                &|_| Ok(None),
                &mut reapply,
                &epoch.bar,
            )?;
            let metric = trainer.evaluate(val)?;
            epoch.finish(format!("loss {loss:.4}, {metric}"), log);
        }
        Ok(reports)
    }
}
