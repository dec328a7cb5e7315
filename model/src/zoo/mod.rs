//! The model zoo grim makes itself (no downloads): ResNet-18, ResNet-50,
//! VGG-16 and MobileNet-V2 as PyTorch exports torchvision's definitions,
//! with He-scaled random weights, batch-norm statistics calibrated on a
//! random batch (see [`builder`]), and BCR-pruned variants made by mask
//! multiplication.
//!
//! Pruning uses 8x16 blocks. A rate `R` becomes per-block keeps by
//! [`bcr_keeps`]: from `R = 2` on, 4 of 8 rows and `round(32 / R)` of 16
//! columns (6x keeps 4 x 5 of 8 x 16, 6.4x; 8x keeps 4 x 4; 4x keeps 4 x 8;
//! 10x keeps 4 x 3, 10.7x); below 2, all rows and `round(16 / R)` columns.
//! The layers pruned are the ones the GRIM paper prunes: every conv but the
//! first in the ResNets, every conv but the first and the three fully
//! connected layers in VGG-16, the 1x1 convs in MobileNet-V2 (its depthwise
//! convs have 9 weights per output).

pub(crate) mod builder;
mod mobilenet;
mod resnet;
pub mod speech;
mod vgg;

use std::fmt;

pub use builder::BcrPrune;

use crate::bcrc::BlockSize;
use crate::error::ModelError;
use crate::graph::Graph;
use builder::Builder;

/// A zoo architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// torchvision's `resnet18`.
    ResNet18,
    /// torchvision's `resnet50`.
    ResNet50,
    /// torchvision's `vgg16` (no batch norm).
    Vgg16,
    /// torchvision's `mobilenet_v2`.
    MobileNetV2,
}

impl Architecture {
    /// Every architecture, in the order the docs list them.
    pub const ALL: [Architecture; 4] = [
        Architecture::ResNet18,
        Architecture::ResNet50,
        Architecture::Vgg16,
        Architecture::MobileNetV2,
    ];

    /// The name `grimc example --model` takes.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::ResNet18 => "resnet18",
            Architecture::ResNet50 => "resnet50",
            Architecture::Vgg16 => "vgg16",
            Architecture::MobileNetV2 => "mobilenetv2",
        }
    }

    /// The architecture called `name`, if any.
    pub fn from_name(name: &str) -> Option<Architecture> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The pruning rate of its BCR-pruned variant when none is given: 6x
    /// for the ResNets, 8x for VGG-16, 4x for MobileNet-V2's 1x1 convs.
    pub fn default_rate(self) -> f64 {
        match self {
            Architecture::ResNet18 | Architecture::ResNet50 => 6.0,
            Architecture::Vgg16 => 8.0,
            Architecture::MobileNetV2 => 4.0,
        }
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What [`zoo_model`] generates.
#[derive(Debug, Clone, PartialEq)]
pub struct ZooModel {
    /// The architecture.
    pub architecture: Architecture,
    /// Image height and width (at least 32; 224 is the models' own).
    pub size: usize,
    /// Images per batch.
    pub batch: usize,
    /// The pruning rate of the pruned layers (`None` or 1: dense).
    pub rate: Option<f64>,
    /// Output classes.
    pub classes: usize,
    /// Seed of all weights and of the calibration input.
    pub seed: u64,
}

impl ZooModel {
    /// `architecture` at 224x224, batch 1, 1000 classes, pruned at its
    /// default rate, seed 0.
    pub fn new(architecture: Architecture) -> Self {
        ZooModel {
            architecture,
            size: 224,
            batch: 1,
            rate: Some(architecture.default_rate()),
            classes: 1000,
            seed: 0,
        }
    }
}

/// The per-block keeps of 8x16 blocks for pruning `rate` (see the module
/// docs), `None` for 1 (dense); an error for a rate below 1 or not finite.
pub fn bcr_keeps(rate: f64) -> Result<Option<BcrPrune>, ModelError> {
    if !(rate.is_finite() && rate >= 1.0) {
        return Err(ModelError::Bcr {
            message: format!("a pruning rate must be a number >= 1, got {rate}"),
        });
    }
    if rate == 1.0 {
        return Ok(None);
    }
    let (rows, cols) = if rate >= 2.0 {
        (4.0, (32.0 / rate).round().clamp(1.0, 16.0))
    } else {
        (8.0, (16.0 / rate).round().clamp(1.0, 16.0))
    };
    Ok(Some(BcrPrune {
        block: BlockSize { rows: 8, cols: 16 },
        row_keep: rows / 8.0,
        col_keep: cols / 16.0,
    }))
}

/// The model `spec` describes, or an error for a size below 32, a zero
/// batch or class count, or an invalid rate.
pub fn zoo_model(spec: &ZooModel) -> Result<Graph, ModelError> {
    if spec.size < 32 || spec.batch == 0 || spec.classes == 0 {
        return Err(ModelError::Shape {
            node: "input".into(),
            message: format!(
                "{} needs a size of at least 32, a batch and classes >= 1, got size {}, batch {} and {} classes",
                spec.architecture, spec.size, spec.batch, spec.classes
            ),
        });
    }
    let prune = match spec.rate {
        Some(rate) => bcr_keeps(rate)?,
        None => None,
    };
    let calibrate = Some(Builder::calibration_shape(spec.size));
    let (n, s, k) = (spec.batch, spec.size, spec.classes);
    match spec.architecture {
        Architecture::ResNet18 | Architecture::ResNet50 => {
            let depth = if spec.architecture == Architecture::ResNet18 {
                resnet::Depth::Eighteen
            } else {
                resnet::Depth::Fifty
            };
            resnet::resnet(Builder::new(spec.seed, prune, calibrate), depth, n, s, k)
        }
        // No batch norm to calibrate (and the classifier follows the size).
        Architecture::Vgg16 => vgg::vgg16(Builder::new(spec.seed, prune, None), n, s, k),
        Architecture::MobileNetV2 => {
            mobilenet::mobilenet_v2(Builder::new(spec.seed, prune, calibrate), n, s, k)
        }
    }
}

#[cfg(test)]
mod tests;
