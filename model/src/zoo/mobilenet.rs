//! MobileNet-V2 (torchvision's `mobilenet_v2`, width 1.0) as
//! `torch.onnx.export` writes it with batch norms kept: a 3x3 stride-2 stem
//! (`features.0`), seventeen inverted residuals (`features.1` ..
//! `features.17`: a 1x1 expansion but in the first, a 3x3 depthwise conv,
//! a 1x1 linear projection, the residual Add where stride is 1 and the
//! channels match), a 1x1 conv to 1280 (`features.18`), global average
//! pool, flatten and `classifier.1` (the Dropout `classifier.0` vanishes in
//! an eval-mode export). ReLU6 is `Clip(0, 6)` with its bounds as inputs,
//! as from opset 11. The 1x1 convs (expansions, projections and the last)
//! are the ones pruned when the model is; the stem, the depthwise convs and
//! the classifier stay dense.

use crate::error::ModelError;
use crate::graph::{Graph, Op};
use crate::zoo::builder::{Builder, Conv};

/// torchvision's inverted residual setting: expansion t, channels c,
/// repeats n, first stride s.
const SETTING: [[usize; 4]; 7] = [
    [1, 16, 1, 1],
    [6, 24, 2, 2],
    [6, 32, 3, 2],
    [6, 64, 4, 2],
    [6, 96, 3, 1],
    [6, 160, 3, 2],
    [6, 320, 1, 1],
];

/// ReLU6.
const RELU6: Op = Op::Clip {
    min: Some(0.0),
    max: Some(6.0),
};

/// A `Conv2dNormActivation` (`{prefix}.0` conv, `.1` batch norm, `.2` ReLU6)
/// named under `{module}`/`{params}`.
#[allow(clippy::too_many_arguments)]
fn conv_bn_relu6(
    b: &mut Builder,
    module: &str,
    params: &str,
    input: &str,
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    group: usize,
) -> Result<String, ModelError> {
    let leaf = module.rsplit('/').next().unwrap_or(module).to_string();
    let h = b.conv(Conv {
        module: &format!("{module}/{leaf}.0"),
        params: &format!("{params}.0"),
        input,
        channels,
        kernel,
        stride,
        group,
        bias: false,
        pruned: kernel == 1,
    })?;
    let h = b.batch_norm(
        &format!("{module}/{leaf}.1"),
        &format!("{params}.1"),
        &h,
        channels[1],
    )?;
    b.push(&format!("{module}/{leaf}.2/Clip"), RELU6, &[&h])
}

/// MobileNet-V2 for `[batch, 3, size, size]` images and `classes` classes,
/// built by `b`.
pub(crate) fn mobilenet_v2(
    mut b: Builder,
    batch: usize,
    size: usize,
    classes: usize,
) -> Result<Graph, ModelError> {
    let mut cur = conv_bn_relu6(
        &mut b,
        "/features/features.0",
        "features.0",
        "input",
        [3, 32],
        3,
        2,
        1,
    )?;
    let (mut cin, mut index) = (32, 1);
    for [t, c, n, s] in SETTING {
        for i in 0..n {
            let stride = if i == 0 { s } else { 1 };
            let module = format!("/features/features.{index}/conv");
            let params = format!("features.{index}.conv");
            let hidden = cin * t;
            // Sub-modules of `conv` are numbered from 0; the expansion is
            // absent when t = 1.
            let mut sub = 0;
            let mut h = cur.clone();
            if t != 1 {
                h = conv_bn_relu6(
                    &mut b,
                    &format!("{module}/conv.0"),
                    &format!("{params}.0"),
                    &h,
                    [cin, hidden],
                    1,
                    1,
                    1,
                )?;
                sub = 1;
            }
            h = conv_bn_relu6(
                &mut b,
                &format!("{module}/conv.{sub}"),
                &format!("{params}.{sub}"),
                &h,
                [hidden, hidden],
                3,
                stride,
                hidden,
            )?;
            h = b.conv(Conv {
                module: &format!("{module}/conv.{}", sub + 1),
                params: &format!("{params}.{}", sub + 1),
                input: &h,
                channels: [hidden, c],
                kernel: 1,
                stride: 1,
                group: 1,
                bias: false,
                pruned: true,
            })?;
            h = b.batch_norm(
                &format!("{module}/conv.{}", sub + 2),
                &format!("{params}.{}", sub + 2),
                &h,
                c,
            )?;
            if stride == 1 && cin == c {
                let add = format!("/features/features.{index}/Add");
                h = b.push(&add, Op::Add, &[&cur, &h])?;
            }
            (cur, cin, index) = (h, c, index + 1);
        }
    }
    let h = conv_bn_relu6(
        &mut b,
        "/features/features.18",
        "features.18",
        &cur,
        [cin, 1280],
        1,
        1,
        1,
    )?;
    let h = b.push(
        "/GlobalAveragePool",
        Op::GlobalPool(crate::pool::PoolKind::Average),
        &[&h],
    )?;
    let h = b.push("/Flatten", Op::Flatten { axis: 1 }, &[&h])?;
    let out = b.linear(
        "/classifier/classifier.1",
        "classifier.1",
        &h,
        [1280, classes],
        false,
    )?;
    b.finish(
        "mobilenet_v2",
        vec![batch, 3, size, size],
        &out,
        vec![batch, classes],
    )
}
