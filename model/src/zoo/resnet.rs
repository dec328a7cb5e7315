//! ResNet-18 and ResNet-50 as torchvision defines them and
//! `torch.onnx.export` writes them with batch norms kept: a 7x7 stride-2
//! stem, a 3x3 stride-2 max pool, four stages of basic blocks (18: 2, 2, 2,
//! 2) or bottlenecks (50: 3, 4, 6, 3; the stride on the 3x3 conv, as in
//! torchvision's "v1.5"), a 1x1 strided conv + batch norm as the downsample
//! of each stage's first block, global average pool, flatten and the `fc`
//! Gemm. Every conv but the stem is pruned when the model is.

use crate::error::ModelError;
use crate::graph::{Graph, Op};
use crate::zoo::builder::{Builder, Conv};

/// The block type and blocks per stage.
#[derive(Clone, Copy)]
pub(crate) enum Depth {
    /// ResNet-18: basic blocks (two 3x3 convs), 2 per stage.
    Eighteen,
    /// ResNet-50: bottlenecks (1x1, 3x3, 1x1 with 4x expansion), 3, 4, 6, 3.
    Fifty,
}

/// The ResNet of `depth` for `[batch, 3, size, size]` images and `classes`
/// classes, built by `b`.
pub(crate) fn resnet(
    mut b: Builder,
    depth: Depth,
    batch: usize,
    size: usize,
    classes: usize,
) -> Result<Graph, ModelError> {
    let (blocks, expansion): ([usize; 4], usize) = match depth {
        Depth::Eighteen => ([2, 2, 2, 2], 1),
        Depth::Fifty => ([3, 4, 6, 3], 4),
    };
    let h = b.conv(Conv {
        module: "/conv1",
        params: "conv1",
        input: "input",
        channels: [3, 64],
        kernel: 7,
        stride: 2,
        group: 1,
        bias: false,
        pruned: false,
    })?;
    let h = b.batch_norm("/bn1", "bn1", &h, 64)?;
    let h = b.push("/relu/Relu", Op::Relu, &[&h])?;
    let mut cur = b.max_pool("/maxpool", &h, 3, 2, 1)?;
    let mut cin = 64;
    for (stage, &count) in blocks.iter().enumerate() {
        let width = 64 << stage;
        for i in 0..count {
            let stride = if stage > 0 && i == 0 { 2 } else { 1 };
            let module = format!("/layer{}/layer{}.{i}", stage + 1, stage + 1);
            let params = format!("layer{}.{i}", stage + 1);
            let block = Block {
                module: &module,
                params: &params,
                input: &cur,
                cin,
                width,
                stride,
            };
            cur = match depth {
                Depth::Eighteen => basic(&mut b, &block)?,
                Depth::Fifty => bottleneck(&mut b, &block)?,
            };
            cin = width * expansion;
        }
    }
    let h = b.push(
        "/avgpool/GlobalAveragePool",
        Op::GlobalPool(crate::pool::PoolKind::Average),
        &[&cur],
    )?;
    let h = b.push("/Flatten", Op::Flatten { axis: 1 }, &[&h])?;
    let out = b.linear("/fc", "fc", &h, [cin, classes], false)?;
    let name = match depth {
        Depth::Eighteen => "resnet18",
        Depth::Fifty => "resnet50",
    };
    b.finish(name, vec![batch, 3, size, size], &out, vec![batch, classes])
}

/// One residual block's place in the network.
struct Block<'a> {
    module: &'a str,
    params: &'a str,
    input: &'a str,
    cin: usize,
    width: usize,
    stride: usize,
}

impl Block<'_> {
    /// `{module}/{conv}` then `{module}/{bn}`, pruned; each one's
    /// parameters are named by the last segment of its module path
    /// (`downsample/downsample.0` gives `{params}.downsample.0`).
    fn conv_bn(
        &self,
        b: &mut Builder,
        names: [&str; 2],
        input: &str,
        channels: [usize; 2],
        kernel: usize,
        stride: usize,
    ) -> Result<String, ModelError> {
        let params = |name: &str| {
            format!(
                "{}.{}",
                self.params,
                name.rsplit('/').next().unwrap_or(name)
            )
        };
        let h = b.conv(Conv {
            module: &format!("{}/{}", self.module, names[0]),
            params: &params(names[0]),
            input,
            channels,
            kernel,
            stride,
            group: 1,
            bias: false,
            pruned: true,
        })?;
        b.batch_norm(
            &format!("{}/{}", self.module, names[1]),
            &params(names[1]),
            &h,
            channels[1],
        )
    }

    /// The skip path: the input, or a 1x1 strided conv + batch norm
    /// (`downsample.0`, `downsample.1`) when the shape changes.
    fn skip(&self, b: &mut Builder, cout: usize) -> Result<String, ModelError> {
        if self.stride == 1 && self.cin == cout {
            return Ok(self.input.to_string());
        }
        let names = ["downsample/downsample.0", "downsample/downsample.1"];
        self.conv_bn(b, names, self.input, [self.cin, cout], 1, self.stride)
    }

    /// `relu(h + skip)`, the Relu named `relu_{n}` as PyTorch numbers the
    /// reuses of one module.
    fn join(&self, b: &mut Builder, h: &str, skip: &str, relu: &str) -> Result<String, ModelError> {
        let h = b.push(&format!("{}/Add", self.module), Op::Add, &[h, skip])?;
        b.push(&format!("{}/{relu}/Relu", self.module), Op::Relu, &[&h])
    }
}

/// conv3x3 (stride) - bn - relu - conv3x3 - bn - add - relu.
fn basic(b: &mut Builder, k: &Block) -> Result<String, ModelError> {
    let w = k.width;
    let h = k.conv_bn(b, ["conv1", "bn1"], k.input, [k.cin, w], 3, k.stride)?;
    let h = b.push(&format!("{}/relu/Relu", k.module), Op::Relu, &[&h])?;
    let h = k.conv_bn(b, ["conv2", "bn2"], &h, [w, w], 3, 1)?;
    let skip = k.skip(b, w)?;
    k.join(b, &h, &skip, "relu_1")
}

/// conv1x1 - bn - relu - conv3x3 (stride) - bn - relu - conv1x1 (4x) - bn
/// - add - relu.
fn bottleneck(b: &mut Builder, k: &Block) -> Result<String, ModelError> {
    let w = k.width;
    let h = k.conv_bn(b, ["conv1", "bn1"], k.input, [k.cin, w], 1, 1)?;
    let h = b.push(&format!("{}/relu/Relu", k.module), Op::Relu, &[&h])?;
    let h = k.conv_bn(b, ["conv2", "bn2"], &h, [w, w], 3, k.stride)?;
    let h = b.push(&format!("{}/relu_1/Relu", k.module), Op::Relu, &[&h])?;
    let h = k.conv_bn(b, ["conv3", "bn3"], &h, [w, 4 * w], 1, 1)?;
    let skip = k.skip(b, 4 * w)?;
    k.join(b, &h, &skip, "relu_2")
}
