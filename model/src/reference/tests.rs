//! Unit tests of the reference interpreter.

use super::*;
use crate::graph::{Node, ValueInfo};
use crate::tensor::fixed_seed_values;
use proptest::prelude::*;

fn t(shape: &[usize], data: &[f32]) -> Tensor {
    Tensor::new(shape.to_vec(), data.to_vec()).unwrap()
}

fn one_node(
    op: Op,
    ins: &[(&str, Vec<usize>)],
    inits: Vec<(&str, Tensor)>,
    out: Vec<usize>,
) -> Graph {
    let mut names: Vec<String> = ins.iter().map(|(n, _)| n.to_string()).collect();
    names.extend(inits.iter().map(|(n, _)| n.to_string()));
    Graph {
        name: "t".into(),
        inputs: ins
            .iter()
            .map(|(n, s)| ValueInfo {
                name: n.to_string(),
                shape: s.clone(),
            })
            .collect(),
        outputs: vec![ValueInfo {
            name: "y".into(),
            shape: out,
        }],
        nodes: vec![Node {
            name: "n".into(),
            op,
            inputs: names,
            outputs: vec!["y".into()],
        }],
        initializers: inits.into_iter().map(|(n, t)| (n.to_string(), t)).collect(),
    }
}

#[test]
fn gemm_trans_alpha_beta_by_hand() {
    // A stored transposed: A^T = [[1,2],[3,4],[5,6]] (3x2) so A = [[1,3,5],[2,4,6]].
    // B stored transposed: B^T = [[1,0,1],[0,1,1]] (2x3) so B = [[1,0],[0,1],[1,1]].
    // A*B = [[1+5, 3+5],[2+6, 4+6]] = [[6,8],[8,10]].
    // Y = 2*A*B + 0.5*C with C = [10, 20] broadcast over rows.
    let g = one_node(
        Op::Gemm {
            alpha: 2.0,
            beta: 0.5,
            trans_a: true,
            trans_b: true,
        },
        &[("a", vec![3, 2])],
        vec![
            ("b", t(&[2, 3], &[1., 0., 1., 0., 1., 1.])),
            ("c", t(&[2], &[10., 20.])),
        ],
        vec![2, 2],
    );
    let y = run_reference(&g, &[t(&[3, 2], &[1., 2., 3., 4., 5., 6.])]).unwrap();
    assert_eq!(y[0].shape, vec![2, 2]);
    assert_eq!(y[0].data, vec![17., 26., 21., 30.]);
}

#[test]
fn gemm_plain_and_matmul_agree() {
    let a = t(&[2, 3], &[1., -2., 3., 0.5, 0., -1.]);
    let b = t(&[3, 2], &[1., 2., 3., 4., 5., 6.]);
    let g = one_node(
        Op::MatMul,
        &[("a", vec![2, 3])],
        vec![("b", b.clone())],
        vec![2, 2],
    );
    let y = run_reference(&g, std::slice::from_ref(&a)).unwrap();
    // Row 0: 1-6+15=10, 2-8+18=12; row 1: 0.5-5=-4.5, 1-6=-5.
    assert_eq!(y[0].data, vec![10., 12., -4.5, -5.]);
    let g = one_node(
        Op::Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: false,
        },
        &[("a", vec![2, 3])],
        vec![("b", b)],
        vec![2, 2],
    );
    assert_eq!(run_reference(&g, &[a]).unwrap()[0].data, y[0].data);
}

/// numpy matmul: batch dims broadcast, and 1-D operands are promoted and
/// the added dim dropped; checked against explicit sums.
#[test]
fn matmul_of_any_rank_broadcasts_its_batch_dims() {
    let values = |n: usize, seed: f32| -> Vec<f32> {
        (0..n)
            .map(|i| ((i as f32 * 0.37 + seed).sin() * 4.0).round())
            .collect()
    };
    // a [2, 1, 3, 4] x b [5, 4, 2] -> [2, 5, 3, 2]
    let (a, b) = (
        t(&[2, 1, 3, 4], &values(24, 0.1)),
        t(&[5, 4, 2], &values(40, 0.7)),
    );
    let g = one_node(
        Op::MatMul,
        &[("a", vec![2, 1, 3, 4])],
        vec![("b", b.clone())],
        vec![2, 5, 3, 2],
    );
    let y = run_reference(&g, std::slice::from_ref(&a)).unwrap();
    assert_eq!(y[0].shape, [2, 5, 3, 2]);
    for (p, q, i, j) in (0..2).flat_map(|p| {
        (0..5).flat_map(move |q| (0..3).flat_map(move |i| (0..2).map(move |j| (p, q, i, j))))
    }) {
        let sum: f32 = (0..4)
            .map(|k| a.data[(p * 3 + i) * 4 + k] * b.data[(q * 4 + k) * 2 + j])
            .sum();
        assert_eq!(
            y[0].data[((p * 5 + q) * 3 + i) * 2 + j],
            sum,
            "{p} {q} {i} {j}"
        );
    }
    // [4] x [5, 4, 2] -> [5, 2]; [5, 4, 2] x [2] -> [5, 4]; [4] x [4] -> []
    let v = t(&[4], &[1., -1., 2., 0.5]);
    let g = one_node(
        Op::MatMul,
        &[("v", vec![4])],
        vec![("b", b.clone())],
        vec![5, 2],
    );
    let y = run_reference(&g, std::slice::from_ref(&v)).unwrap();
    for (q, j) in (0..5).flat_map(|q| (0..2).map(move |j| (q, j))) {
        let sum: f32 = (0..4)
            .map(|k| v.data[k] * b.data[(q * 4 + k) * 2 + j])
            .sum();
        assert_eq!(y[0].data[q * 2 + j], sum);
    }
    let w = t(&[2], &[3., -2.]);
    let g = one_node(
        Op::MatMul,
        &[("b", vec![5, 4, 2])],
        vec![("w", w)],
        vec![5, 4],
    );
    let y = run_reference(&g, std::slice::from_ref(&b)).unwrap();
    for (q, k) in (0..5).flat_map(|q| (0..4).map(move |k| (q, k))) {
        let row = (q * 4 + k) * 2;
        assert_eq!(
            y[0].data[q * 4 + k],
            3. * b.data[row] - 2. * b.data[row + 1]
        );
    }
    let g = one_node(
        Op::MatMul,
        &[("v", vec![4])],
        vec![("u", v.clone())],
        vec![],
    );
    assert_eq!(
        run_reference(&g, std::slice::from_ref(&v)).unwrap()[0].data,
        [6.25]
    );
}

#[test]
fn sub_mul_div_broadcast_in_operand_order() {
    let (a, b) = (t(&[2, 1], &[10., 20.]), t(&[3], &[1., 2., 4.]));
    for (op, want) in [
        (Op::Sub, [9., 8., 6., 19., 18., 16.]),
        (Op::Mul, [10., 20., 40., 20., 40., 80.]),
        (Op::Div, [10., 5., 2.5, 20., 10., 5.]),
    ] {
        let name = op.op_type();
        let g = one_node(op, &[("a", vec![2, 1]), ("b", vec![3])], vec![], vec![2, 3]);
        let y = run_reference(&g, &[a.clone(), b.clone()]).unwrap();
        assert_eq!(y[0].data, want, "{name}");
    }
    // IEEE division: x / 0 is infinite, 0 / 0 is NaN.
    let g = one_node(Op::Div, &[("a", vec![2]), ("b", vec![1])], vec![], vec![2]);
    let y = run_reference(&g, &[t(&[2], &[1., 0.]), t(&[1], &[0.])]).unwrap();
    assert!(y[0].data[0].is_infinite() && y[0].data[1].is_nan());
}

#[test]
fn add_broadcast_relu_flatten() {
    let g = one_node(
        Op::Add,
        &[("a", vec![2, 1]), ("b", vec![3])],
        vec![],
        vec![2, 3],
    );
    let y = run_reference(&g, &[t(&[2, 1], &[10., 20.]), t(&[3], &[1., 2., 3.])]).unwrap();
    assert_eq!(y[0].data, vec![11., 12., 13., 21., 22., 23.]);
    let g = one_node(Op::Relu, &[("a", vec![4])], vec![], vec![4]);
    let y = run_reference(&g, &[t(&[4], &[-1., 0., 2., -0.5])]).unwrap();
    assert_eq!(y[0].data, vec![0., 0., 2., 0.]);
    let g = one_node(
        Op::Flatten { axis: 1 },
        &[("a", vec![2, 2, 2])],
        vec![],
        vec![2, 4],
    );
    let y = run_reference(&g, &[t(&[2, 2, 2], &[1., 2., 3., 4., 5., 6., 7., 8.])]).unwrap();
    assert_eq!((y[0].shape.clone(), y[0].data[5]), (vec![2, 4], 6.));
}

/// Runs the one-node graph `g` on `x`.
fn run1(g: &Graph, x: Tensor) -> Tensor {
    run_reference(g, &[x]).unwrap().remove(0)
}

#[test]
fn conv_by_hand() {
    // x = [[1,2,3],[4,5,6],[7,8,9]], kernel [[1,2],[3,4]].
    let x = t(&[1, 1, 3, 3], &[1., 2., 3., 4., 5., 6., 7., 8., 9.]);
    let w = t(&[1, 1, 2, 2], &[1., 2., 3., 4.]);
    let layer = |strides, pads, dilations, bias: bool| {
        let mut inits = vec![("w", w.clone())];
        if bias {
            inits.push(("b", t(&[1], &[0.5])));
        }
        let op = Op::Conv {
            strides,
            pads,
            dilations,
            group: 1,
        };
        // run_reference does not check the declared output shape; the
        // assertions below do.
        one_node(op, &[("x", vec![1, 1, 3, 3])], inits, vec![])
    };
    // y00 = 1*1 + 2*2 + 4*3 + 5*4 = 37, y01 = 2 + 6 + 15 + 24 = 47,
    // y10 = 4 + 10 + 21 + 32 = 67, y11 = 5 + 12 + 24 + 36 = 77; + 0.5.
    let y = run1(&layer([1, 1], [0; 4], [1, 1], true), x.clone());
    assert_eq!(y.shape, vec![1, 1, 2, 2]);
    assert_eq!(y.data, vec![37.5, 47.5, 67.5, 77.5]);
    // Pad 1 all round, stride 2: windows start at padded (0,0), (0,2),
    // (2,0), (2,2), i.e. input rows/cols -1..=0 and 1..=2:
    // (0,0): x00*4 = 4; (0,1): x01*3 + x02*4 = 18;
    // (1,0): x10*2 + x20*4 = 36; (1,1): the full window 5+12+24+36 = 77.
    let y = run1(&layer([2, 2], [1, 1, 1, 1], [1, 1], false), x.clone());
    assert_eq!(y.shape, vec![1, 1, 2, 2]);
    assert_eq!(y.data, vec![4., 18., 36., 77.]);
    // Asymmetric padding: only bottom 1 and right 1, stride 1 -> 3x3 output whose
    // last row/column see zeros: (2,2) = x22*1 = 9, (0,2) = x02*1 + x12*3 = 21.
    let y = run1(&layer([1, 1], [0, 0, 1, 1], [1, 1], false), x.clone());
    assert_eq!(y.shape, vec![1, 1, 3, 3]);
    assert_eq!(y.data, vec![37., 47., 21., 67., 77., 33., 23., 26., 9.]);
    // Dilation 2: the kernel taps the corners, 1*1 + 3*2 + 7*3 + 9*4 = 64.
    let y = run1(&layer([1, 1], [0; 4], [2, 2], false), x);
    assert_eq!((y.shape, y.data), (vec![1, 1, 1, 1], vec![64.]));
}

#[test]
fn conv_channels_and_batch_by_hand() {
    // Two images, two input channels, two output channels, 1x2 kernel.
    // out0 = ch0 (left tap) + ch1 (right tap); out1 = -ch0 (right tap).
    let g = crate::mlp::conv_layer(
        2,
        2,
        1,
        3,
        2,
        [1, 2],
        [1, 1],
        [0; 4],
        [1, 1],
        false,
        vec![1., 0., 0., 1., 0., -1., 0., 0.],
    )
    .unwrap();
    let x = t(
        &[2, 2, 1, 3],
        &[1., 2., 3., 10., 20., 30., 4., 5., 6., 40., 50., 60.],
    );
    let y = run1(&g, x);
    assert_eq!(y.shape, vec![2, 2, 1, 2]);
    assert_eq!(y.data, vec![21., 32., -2., -3., 54., 65., -5., -6.]);
}

/// `|got - want| <= 1e-4 * max(|want|, 1)` everywhere.
fn assert_close(got: &[f32], want: &[f64]) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        prop_assert!(
            (g as f64 - w).abs() <= 1e-4 * w.abs().max(1.0),
            "element {}: got {}, want {}",
            i,
            g,
            w
        );
    }
    Ok(())
}

proptest! {
    /// A 1x1 convolution is `W[M, C] x X[C, H*W]` for each image.
    #[test]
    fn conv_1x1_is_a_matrix_product(
        n in 1usize..3,
        c in 1usize..6,
        m in 1usize..6,
        h in 1usize..5,
        w in 1usize..5,
        bias in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let weight = fixed_seed_values(seed, m * c);
        let g = crate::mlp::conv_layer(n, c, h, w, m, [1, 1], [1, 1], [0; 4], [1, 1], bias, weight.clone()).unwrap();
        let x = Tensor::fixed_seed(vec![n, c, h, w], seed ^ 1);
        let y = run1(&g, x.clone());
        prop_assert_eq!(&y.shape, &vec![n, m, h, w]);
        let p = h * w;
        let mut want = vec![0.0f64; n * m * p];
        for b in 0..n {
            // X_b is [C, P] row-major at offset b*C*P; Y_b is [M, P].
            for i in 0..m {
                for j in 0..p {
                    let mut acc = 0.0f64;
                    for k in 0..c {
                        acc += weight[i * c + k] as f64 * x.data[b * c * p + k * p + j] as f64;
                    }
                    if bias {
                        acc += g.initializers["b"].data[i] as f64;
                    }
                    want[b * m * p + i * p + j] = acc;
                }
            }
        }
        assert_close(&y.data, &want)?;
    }

    /// Any convolution is `W[M, C*kh*kw] x im2col(pad(X))` for each image,
    /// where the test pads X explicitly, so unlike the reference it never
    /// needs a bounds check.
    #[test]
    fn conv_is_an_im2col_product(
        n in 1usize..3,
        c in 1usize..4,
        m in 1usize..5,
        kernel in [1usize..4, 1usize..4],
        strides in [1usize..4, 1usize..4],
        pads in [0usize..3, 0usize..3, 0usize..3, 0usize..3],
        dilations in [1usize..4, 1usize..4],
        extra in [0usize..6, 0usize..6],
        bias in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let [kh, kw] = kernel;
        let [sh, sw] = strides;
        let [top, left, bottom, right] = pads;
        let [dh, dw] = dilations;
        let (span_h, span_w) = (dh * (kh - 1) + 1, dw * (kw - 1) + 1);
        // Smallest input the kernel fits in (at least 1), plus some.
        let h = span_h.saturating_sub(top + bottom).max(1) + extra[0];
        let w = span_w.saturating_sub(left + right).max(1) + extra[1];
        let (hp, wp) = (h + top + bottom, w + left + right);
        let (ho, wo) = ((hp - span_h) / sh + 1, (wp - span_w) / sw + 1);

        let weight = fixed_seed_values(seed, m * c * kh * kw);
        let g = crate::mlp::conv_layer(n, c, h, w, m, kernel, strides, pads, dilations, bias, weight.clone()).unwrap();
        let x = Tensor::fixed_seed(vec![n, c, h, w], seed ^ 1);
        let y = run1(&g, x.clone());
        prop_assert_eq!(&y.shape, &vec![n, m, ho, wo]);

        let rows = c * kh * kw;
        let cols = ho * wo;
        let mut want = vec![0.0f64; n * m * cols];
        for b in 0..n {
            let mut xp = vec![0.0f32; c * hp * wp];
            for ch in 0..c {
                for r in 0..h {
                    for q in 0..w {
                        xp[(ch * hp + r + top) * wp + q + left] = x.data[((b * c + ch) * h + r) * w + q];
                    }
                }
            }
            let mut im2col = vec![0.0f32; rows * cols];
            for ch in 0..c {
                for i in 0..kh {
                    for j in 0..kw {
                        let row = (ch * kh + i) * kw + j;
                        for oh in 0..ho {
                            for ow in 0..wo {
                                im2col[row * cols + oh * wo + ow] =
                                    xp[(ch * hp + oh * sh + i * dh) * wp + ow * sw + j * dw];
                            }
                        }
                    }
                }
            }
            // W is [M, C, kh, kw] row-major, i.e. already [M, C*kh*kw].
            for o in 0..m {
                for col in 0..cols {
                    let mut acc = 0.0f64;
                    for k in 0..rows {
                        acc += weight[o * rows + k] as f64 * im2col[k * cols + col] as f64;
                    }
                    if bias {
                        acc += g.initializers["b"].data[o] as f64;
                    }
                    want[(b * m + o) * cols + col] = acc;
                }
            }
        }
        assert_close(&y.data, &want)?;
    }
}

/// `|got - want| <= 1e-6 * max(|want|, 1)` everywhere.
fn assert_near(got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (&g, &w) in got.iter().zip(want) {
        assert!(
            (g as f64 - w).abs() <= 1e-6 * w.abs().max(1.0),
            "got {got:?}, want {want:?}"
        );
    }
}

/// Runs a one-node graph of the element-wise `op` on `x`.
fn unary(op: Op, x: &[f32]) -> Vec<f32> {
    let g = one_node(op, &[("x", vec![x.len()])], vec![], vec![x.len()]);
    run1(&g, t(&[x.len()], x)).data
}

#[test]
fn batch_norm_per_channel_by_hand() {
    // Channel 0 holds [1, 2], channel 1 [3, 4]. epsilon = 1 makes the
    // denominators sqrt(3 + 1) = 2 and sqrt(15 + 1) = 4.
    let params = vec![
        ("scale", t(&[2], &[2., 0.5])),
        ("bias", t(&[2], &[0.1, -1.])),
        ("mean", t(&[2], &[1., 4.])),
        ("var", t(&[2], &[3., 15.])),
    ];
    let op = Op::BatchNormalization { epsilon: 1.0 };
    let g = one_node(
        op.clone(),
        &[("x", vec![1, 2, 1, 2])],
        params.clone(),
        vec![],
    );
    let y = run1(&g, t(&[1, 2, 1, 2], &[1., 2., 3., 4.]));
    assert_eq!(y.shape, vec![1, 2, 1, 2]);
    // ch0: 2 * (1 - 1) / 2 + 0.1, 2 * (2 - 1) / 2 + 0.1;
    // ch1: 0.5 * (3 - 4) / 4 - 1, 0.5 * (4 - 4) / 4 - 1.
    assert_near(&y.data, &[0.1, 1.1, -1.125, -1.]);
    // Rank 2 with a batch of two: the channel is the column.
    let g = one_node(op, &[("x", vec![2, 2])], params, vec![]);
    let y = run1(&g, t(&[2, 2], &[1., 4., 3., 8.]));
    // Row 0 as above with x = [1, 4]; row 1: 2 * 2 / 2 + 0.1, 0.5 * 4 / 4 - 1.
    assert_near(&y.data, &[0.1, -1., 2.1, -0.5]);
}

#[test]
fn clip_with_absent_bounds() {
    let x = [-5., -0.5, 0.5, 2.];
    let clip = |min, max| unary(Op::Clip { min, max }, &x);
    assert_eq!(clip(None, Some(1.)), vec![-5., -0.5, 0.5, 1.]);
    assert_eq!(clip(Some(-1.), None), vec![-1., -0.5, 0.5, 2.]);
    assert_eq!(clip(Some(0.), Some(1.)), vec![0., 0., 0.5, 1.]);
    assert_eq!(clip(None, None), x.to_vec());
    // ONNX order (max with min, then min with max): min > max gives max.
    assert_eq!(clip(Some(2.), Some(1.)), vec![1.; 4]);
}

#[test]
fn activations_by_hand() {
    let ln3 = 3f64.ln() as f32;
    let y = unary(Op::Sigmoid, &[0., ln3, -ln3, -200., 200.]);
    assert_near(&y, &[0.5, 0.75, 0.25, 0., 1.]);
    let ln2 = 2f64.ln() as f32;
    // tanh(ln 2) = (4 - 1) / (4 + 1).
    assert_near(&unary(Op::Tanh, &[0., ln2, -ln2]), &[0., 0.6, -0.6]);
    // The two kinks of HardSwish at -3 and 3, and the quadratic between.
    let y = unary(Op::HardSwish, &[-4., -3., -1., 0., 1., 3., 4.]);
    assert_near(&y, &[0., 0., -1. / 3., 0., 2. / 3., 3., 4.]);
    let y = unary(Op::LeakyRelu { alpha: 0.1 }, &[-2., 0., 3.]);
    assert_near(&y, &[-0.2, 0., 3.]);
    let hs = Op::HardSigmoid {
        alpha: 0.2,
        beta: 0.5,
    };
    assert_near(
        &unary(hs, &[-3., -1., 0., 1., 3.]),
        &[0., 0.3, 0.5, 0.7, 1.],
    );
    let x = [-1.5, 0., 7.25];
    assert_eq!(unary(Op::Identity, &x), x.to_vec());
}

#[test]
fn input_errors_name_the_input() {
    let g = one_node(Op::Relu, &[("x", vec![4])], vec![], vec![4]);
    let e = run_reference(&g, &[t(&[5], &[0.; 5])])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'x'") && e.contains("[4]") && e.contains("[5]"),
        "{e}"
    );
    let e = run_reference(&g, &[]).unwrap_err().to_string();
    assert!(e.contains("1 inputs (x)"), "{e}");
}

/// A grouped conv is its groups' convs side by side: group 2 over 4 input
/// channels and 6 output channels equals two plain convs on the halves,
/// and depthwise (group = C) one 1-channel conv per channel.
#[test]
fn grouped_conv_is_its_groups_side_by_side() {
    let conv = |group: usize| Op::Conv {
        strides: [2, 1],
        pads: [1, 0, 1, 2],
        dilations: [1, 2],
        group,
    };
    let values = |n: usize, seed: f32| -> Vec<f32> {
        (0..n)
            .map(|i| ((i as f32 * 0.61 + seed).sin() * 3.0).round())
            .collect()
    };
    for (c, m, group) in [(4, 6, 2), (3, 3, 3), (3, 6, 3)] {
        let (h, w, k) = (6, 7, 3);
        let x = t(&[1, c, h, w], &values(c * h * w, 0.3));
        let wt = t(&[m, c / group, k, k], &values(m * c / group * k * k, 1.1));
        let b = t(&[m], &values(m, 2.0));
        let g = one_node(
            conv(group),
            &[("x", vec![1, c, h, w])],
            vec![("w", wt.clone()), ("b", b.clone())],
            vec![1, m, 3, 3],
        );
        let y = run_reference(&g, std::slice::from_ref(&x)).unwrap();
        let (cg, mg) = (c / group, m / group);
        for gi in 0..group {
            let slice = |data: &[f32], from: usize, len: usize| data[from..from + len].to_vec();
            let xg = t(&[1, cg, h, w], &slice(&x.data, gi * cg * h * w, cg * h * w));
            let wg = t(
                &[mg, cg, k, k],
                &slice(&wt.data, gi * mg * cg * k * k, mg * cg * k * k),
            );
            let bg = t(&[mg], &slice(&b.data, gi * mg, mg));
            let plain = one_node(
                conv(1),
                &[("x", vec![1, cg, h, w])],
                vec![("w", wg), ("b", bg)],
                vec![1, mg, 3, 3],
            );
            let yg = run_reference(&plain, &[xg]).unwrap();
            let plane = y[0].shape[2] * y[0].shape[3];
            assert_eq!(
                y[0].data[gi * mg * plane..][..mg * plane],
                yg[0].data[..],
                "{c} {m} {group}"
            );
        }
    }
}
