use super::*;
use crate::bcrc::stored_values;
use crate::reference::run_reference;
use crate::tensor::Tensor;

/// A small instance: 32x32, 10 classes, pruned at the default rate.
fn small(architecture: Architecture) -> (ZooModel, Graph) {
    let spec = ZooModel {
        size: 32,
        classes: 10,
        ..ZooModel::new(architecture)
    };
    let graph = zoo_model(&spec).unwrap();
    (spec, graph)
}

fn count(g: &Graph, op: &str) -> usize {
    g.nodes.iter().filter(|n| n.op.op_type() == op).count()
}

/// Learnable parameters as torchvision counts them (running statistics are
/// buffers, not parameters).
fn parameters(g: &Graph) -> usize {
    g.initializers
        .iter()
        .filter(|(name, _)| !name.ends_with("running_mean") && !name.ends_with("running_var"))
        .map(|(_, t)| t.data.len())
        .sum()
}

/// The weight of every product (conv or gemm) in graph order, with whether
/// it is pruned: more than half of it zero.
fn products(g: &Graph) -> Vec<(String, bool)> {
    g.nodes
        .iter()
        .filter(|n| matches!(n.op.op_type(), "Conv" | "Gemm"))
        .map(|n| {
            let w = &g.initializers[&n.inputs[1]];
            let zeros = w.data.iter().filter(|&&v| v == 0.0).count();
            (n.inputs[1].clone(), zeros * 2 > w.data.len())
        })
        .collect()
}

/// Finite logits with an O(1) spread that differ between two inputs.
fn assert_healthy(spec: &ZooModel, g: &Graph) {
    let shape = vec![1, 3, spec.size, spec.size];
    let a = run_reference(g, &[Tensor::fixed_seed(shape.clone(), 101)]).unwrap();
    let b = run_reference(g, &[Tensor::fixed_seed(shape, 202)]).unwrap();
    let y = &a[0];
    assert_eq!(y.shape, [1, spec.classes]);
    assert!(y.data.iter().all(|v| v.is_finite()), "{y:?}");
    let n = y.data.len() as f64;
    let mean = y.data.iter().map(|&v| v as f64).sum::<f64>() / n;
    let std = (y
        .data
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    assert!(
        (0.01..100.0).contains(&std),
        "{}: logits std {std}",
        spec.architecture
    );
    let diff = y
        .data
        .iter()
        .zip(&b[0].data)
        .map(|(p, q)| (p - q).abs() as f64)
        .fold(0.0, f64::max);
    assert!(
        diff > 1e-3 * std,
        "{}: the logits ignore the input",
        spec.architecture
    );
}

#[test]
fn keeps_follow_the_rate() {
    let keeps = |rate| {
        bcr_keeps(rate)
            .unwrap()
            .map(|p| (p.row_keep * 8.0, p.col_keep * 16.0))
    };
    assert_eq!(keeps(1.0), None);
    assert_eq!(keeps(6.0), Some((4.0, 5.0)));
    assert_eq!(keeps(8.0), Some((4.0, 4.0)));
    assert_eq!(keeps(4.0), Some((4.0, 8.0)));
    assert_eq!(keeps(10.0), Some((4.0, 3.0)));
    assert_eq!(keeps(1.6), Some((8.0, 10.0)));
    assert_eq!(keeps(100.0), Some((4.0, 1.0)));
    for bad in [0.5, f64::NAN, f64::INFINITY] {
        let e = bcr_keeps(bad).unwrap_err().to_string();
        assert!(e.contains("a pruning rate must be a number >= 1"), "{e}");
    }
}

#[test]
fn resnet18_is_torchvisions() {
    let (spec, g) = small(Architecture::ResNet18);
    // 1 stem + 16 in blocks + 3 downsamples; a batch norm after each.
    assert_eq!(count(&g, "Conv"), 20);
    assert_eq!(count(&g, "BatchNormalization"), 20);
    assert_eq!(count(&g, "Relu"), 17);
    assert_eq!(count(&g, "Add"), 8);
    assert_eq!(count(&g, "MaxPool"), 1);
    assert_eq!(count(&g, "GlobalAveragePool"), 1);
    // torchvision's 11,689,512 with a 1000-class fc of 513,000.
    assert_eq!(parameters(&g), 11_689_512 - 513_000 + 512 * 10 + 10);
    let names: Vec<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
    for want in [
        "/conv1/Conv",
        "/maxpool/MaxPool",
        "/layer2/layer2.0/downsample/downsample.0/Conv",
        "/layer4/layer4.1/relu_1/Relu",
        "/fc/Gemm",
    ] {
        assert!(names.contains(&want), "{want}");
    }
    assert_eq!(g.nodes.last().unwrap().outputs, ["output"]);
    // Every conv but the first is pruned; the fc is not.
    let pruned = products(&g);
    assert_eq!(pruned[0], ("conv1.weight".into(), false));
    assert!(pruned[1..20].iter().all(|(_, p)| *p), "{pruned:?}");
    assert_eq!(pruned[20], ("fc.weight".into(), false));
    // 4 of 8 rows x 5 of 16 columns: 20 of 128 kept in each full block.
    let w = &g.initializers["layer3.1.conv2.weight"];
    let (m, k) = (256, 256 * 9);
    let block = BlockSize { rows: 8, cols: 16 };
    assert_eq!(
        stored_values(&w.data, m, k, block).unwrap(),
        m * k * 20 / 128
    );
    assert_healthy(&spec, &g);
}

#[test]
fn resnet50_is_torchvisions() {
    let (spec, g) = small(Architecture::ResNet50);
    assert_eq!(count(&g, "Conv"), 53);
    assert_eq!(count(&g, "BatchNormalization"), 53);
    assert_eq!(count(&g, "Relu"), 49);
    assert_eq!(count(&g, "Add"), 16);
    assert_eq!(parameters(&g), 25_557_032 - 2_049_000 + 2048 * 10 + 10);
    assert_eq!(
        g.initializers["layer4.2.conv3.weight"].shape,
        [2048, 512, 1, 1]
    );
    assert_eq!(
        g.initializers["layer2.0.conv2.weight"].shape,
        [128, 128, 3, 3]
    );
    let stride_two: Vec<&str> = g
        .nodes
        .iter()
        .filter(|n| {
            matches!(
                &n.op,
                crate::graph::Op::Conv {
                    strides: [2, 2],
                    ..
                }
            )
        })
        .map(|n| n.name.as_str())
        .collect();
    // v1.5: the stride is on the 3x3 conv (and the downsample).
    assert!(
        stride_two.contains(&"/layer3/layer3.0/conv2/Conv"),
        "{stride_two:?}"
    );
    assert!(!stride_two.contains(&"/layer3/layer3.0/conv1/Conv"));
    assert_eq!(stride_two.len(), 1 + 3 * 2);
    assert_healthy(&spec, &g);
}

#[test]
fn vgg16_is_torchvisions() {
    let (spec, g) = small(Architecture::Vgg16);
    assert_eq!(count(&g, "Conv"), 13);
    assert_eq!(count(&g, "Relu"), 15);
    assert_eq!(count(&g, "MaxPool"), 5);
    assert_eq!(count(&g, "Gemm"), 3);
    // torchvision's 138,357,544 with 25088 classifier inputs (512 at 32x32)
    // and 1000 classes.
    let full = 138_357_544 - (25_088 - 512) * 4096 - 4096 * 1000 - 1000;
    assert_eq!(parameters(&g), full + 4096 * 10 + 10);
    assert_eq!(g.initializers["classifier.0.weight"].shape, [4096, 512]);
    let pruned = products(&g);
    assert_eq!(pruned[0], ("features.0.weight".into(), false));
    assert!(pruned[1..].iter().all(|(_, p)| *p), "{pruned:?}");
    // 8x: 4 of 8 rows x 4 of 16 columns; biases are never pruned.
    let w = &g.initializers["classifier.3.weight"];
    let kept = w.data.iter().filter(|&&v| v != 0.0).count();
    assert_eq!(kept, 4096 * 4096 / 8);
    assert!(g.initializers["features.28.bias"]
        .data
        .iter()
        .all(|&v| v != 0.0));
    assert_healthy(&spec, &g);
}

#[test]
fn mobilenet_v2_is_torchvisions() {
    let (spec, g) = small(Architecture::MobileNetV2);
    assert_eq!(count(&g, "Conv"), 52);
    assert_eq!(count(&g, "BatchNormalization"), 52);
    assert_eq!(count(&g, "Clip"), 35);
    assert_eq!(count(&g, "Add"), 10);
    assert_eq!(parameters(&g), 3_504_872 - 1_281_000 + 1280 * 10 + 10);
    let depthwise = g
        .nodes
        .iter()
        .filter(|n| matches!(&n.op, crate::graph::Op::Conv { group, .. } if *group > 1))
        .count();
    assert_eq!(depthwise, 17);
    // Only the 1x1 convs are pruned.
    for n in g.nodes.iter().filter(|n| n.op.op_type() == "Conv") {
        let w = &g.initializers[&n.inputs[1]];
        let zeros = w.data.iter().filter(|&&v| v == 0.0).count();
        let one_by_one = w.shape[2] == 1;
        assert_eq!(zeros > 0, one_by_one, "{}", n.name);
    }
    let names: Vec<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
    for want in [
        "/features/features.0/features.0.2/Clip",
        "/features/features.1/conv/conv.0/conv.0.0/Conv",
        "/features/features.1/conv/conv.1/Conv",
        "/features/features.2/conv/conv.3/BatchNormalization",
        "/features/features.3/Add",
        "/classifier/classifier.1/Gemm",
    ] {
        assert!(names.contains(&want), "{want}");
    }
    assert_healthy(&spec, &g);
}

#[test]
fn dense_models_have_no_zero_weight_and_seeds_matter() {
    let spec = ZooModel {
        size: 32,
        classes: 10,
        rate: None,
        ..ZooModel::new(Architecture::ResNet18)
    };
    let g = zoo_model(&spec).unwrap();
    for (name, _) in products(&g) {
        let w = &g.initializers[&name];
        assert!(w.data.iter().all(|&v| v != 0.0), "{name}");
    }
    assert_eq!(
        zoo_model(&ZooModel {
            rate: Some(1.0),
            ..spec.clone()
        })
        .unwrap(),
        g
    );
    assert_ne!(
        zoo_model(&ZooModel {
            seed: 1,
            ..spec.clone()
        })
        .unwrap(),
        g
    );
}

#[test]
fn pruned_negatives_are_negative_zero_through_onnx() {
    let (_, g) = small(Architecture::MobileNetV2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    crate::onnx::save_onnx(&g, &path).unwrap();
    let back = crate::onnx::load_onnx(&path).unwrap();
    let w = &back.initializers["features.18.0.weight"];
    let negative = w
        .data
        .iter()
        .filter(|v| v.to_bits() == (-0.0f32).to_bits())
        .count();
    let zeros = w.data.iter().filter(|&&v| v == 0.0).count();
    assert!(
        negative * 3 > zeros && negative * 3 < zeros * 2,
        "{negative} of {zeros}"
    );
}

#[test]
fn invalid_specs_are_errors() {
    let spec = ZooModel::new(Architecture::Vgg16);
    let e = zoo_model(&ZooModel {
        size: 16,
        ..spec.clone()
    })
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("vgg16 needs a size of at least 32") && e.contains("size 16"),
        "{e}"
    );
    let e = zoo_model(&ZooModel {
        rate: Some(0.0),
        ..spec
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("got 0"), "{e}");
    assert_eq!(
        Architecture::from_name("resnet50"),
        Some(Architecture::ResNet50)
    );
    assert_eq!(Architecture::from_name("resnet"), None);
}
