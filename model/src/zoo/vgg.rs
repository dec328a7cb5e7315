//! VGG-16 (torchvision's `vgg16`, no batch norm) as `torch.onnx.export`
//! writes it: thirteen 3x3 convs with bias and Relu in five stages, each
//! ending in a 2x2 stride-2 max pool (`features.0` .. `features.30`), then
//! Flatten and the classifier's three Gemms with Relu between them (its
//! Dropouts vanish in an eval-mode export).
//!
//! torchvision puts an `AdaptiveAvgPool2d((7, 7))` before the classifier,
//! the identity at 224x224; ONNX has no adaptive pool, so here the
//! classifier's first layer takes the features at the size they have:
//! `512 * (size / 32)^2` inputs, torchvision's 25088 at 224. Every conv but
//! the first (27 weights per output: too few to prune) and all three fully
//! connected layers are pruned when the model is.

use crate::error::ModelError;
use crate::graph::{Graph, Op};
use crate::zoo::builder::{Builder, Conv};

/// Output channels of the convs, `None` for a max pool (torchvision's
/// configuration "D").
const FEATURES: [Option<usize>; 18] = [
    Some(64),
    Some(64),
    None,
    Some(128),
    Some(128),
    None,
    Some(256),
    Some(256),
    Some(256),
    None,
    Some(512),
    Some(512),
    Some(512),
    None,
    Some(512),
    Some(512),
    Some(512),
    None,
];

/// VGG-16 for `[batch, 3, size, size]` images and `classes` classes, built
/// by `b`.
pub(crate) fn vgg16(
    mut b: Builder,
    batch: usize,
    size: usize,
    classes: usize,
) -> Result<Graph, ModelError> {
    // torchvision's module indices: conv i, its relu i + 1, a pool.
    let (mut index, mut cur, mut cin, mut side) = (0, "input".to_string(), 3, size);
    for layer in FEATURES {
        match layer {
            Some(cout) => {
                let h = b.conv(Conv {
                    module: &format!("/features/features.{index}"),
                    params: &format!("features.{index}"),
                    input: &cur,
                    channels: [cin, cout],
                    kernel: 3,
                    stride: 1,
                    group: 1,
                    bias: true,
                    pruned: index > 0,
                })?;
                let relu = format!("/features/features.{}/Relu", index + 1);
                cur = b.push(&relu, Op::Relu, &[&h])?;
                (cin, index) = (cout, index + 2);
            }
            None => {
                cur = b.max_pool(&format!("/features/features.{index}"), &cur, 2, 2, 0)?;
                (side, index) = (side / 2, index + 1);
            }
        }
    }
    let h = b.push("/Flatten", Op::Flatten { axis: 1 }, &[&cur])?;
    let mut features = cin * side * side;
    let mut cur = h;
    for (i, out) in [(0, 4096), (3, 4096), (6, classes)] {
        let module = format!("/classifier/classifier.{i}");
        cur = b.linear(
            &module,
            &format!("classifier.{i}"),
            &cur,
            [features, out],
            true,
        )?;
        if i < 6 {
            let relu = format!("/classifier/classifier.{}/Relu", i + 1);
            cur = b.push(&relu, Op::Relu, &[&cur])?;
        }
        features = out;
    }
    b.finish(
        "vgg16",
        vec![batch, 3, size, size],
        &cur,
        vec![batch, classes],
    )
}
