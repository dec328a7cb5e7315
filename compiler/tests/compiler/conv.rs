//! Convolutions against the reference through the dense kernel (implicit
//! im2col) and the BCR kernels (explicit im2col, or the image read in
//! place), on the host and under qemu-aarch64.

use crate::common::*;
use grim_model::{bcrc::random_bcr_weight, run_reference, BlockSize};
use proptest::prelude::*;

/// One conv case: geometry, kernel choice and the BCR block of its weight.
#[derive(Debug, Clone)]
struct ConvCase {
    n: usize,
    c: usize,
    hw: (usize, usize),
    m: usize,
    kernel: [usize; 2],
    strides: [usize; 2],
    pads: [usize; 4],
    dilations: [usize; 2],
    /// `true`: a weight with no zeros (the dense kernel, implicit im2col);
    /// `false`: BCR-pruned at `block` (explicit im2col, BCR kernels).
    dense: bool,
    block: (usize, usize),
    seed: u64,
}

/// Random [`ConvCase`]s with up to `max_c` input channels and images up to
/// `max_hw` (or 50-59 columns wide), keeping only those whose kernel fits
/// the padded image.
fn conv_cases(max_c: usize, max_hw: usize) -> impl Strategy<Value = ConvCase> {
    let geometry = (
        1usize..3,
        1..max_c,
        // Some images wide enough (>= 48 output columns) for the BCR
        // kernels to read them in place.
        (3..max_hw, prop_oneof![3..max_hw, 50..60usize]),
        1usize..20,
        (1usize..4, 1usize..4),
        (1usize..3, 1usize..3),
        (0usize..2, 0usize..2, 0usize..2, 0usize..2),
        (1usize..3, 1usize..3),
    );
    (geometry, any::<bool>(), (1usize..9, 1usize..17), 0u64..1000).prop_filter_map(
        "kernel must fit",
        |((n, c, hw, m, k, s, p, d), dense, block, seed)| {
            let fits =
                |size: usize, before: usize, after: usize, kernel: usize, dilation: usize| {
                    size + before + after > dilation * (kernel - 1)
                };
            (fits(hw.0, p.0, p.2, k.0, d.0) && fits(hw.1, p.1, p.3, k.1, d.1)).then_some(ConvCase {
                n,
                c,
                hw,
                m,
                kernel: [k.0, k.1],
                strides: [s.0, s.1],
                pads: [p.0, p.1, p.2, p.3],
                dilations: [d.0, d.1],
                dense,
                block,
                seed,
            })
        },
    )
}

/// Compiles one conv case with its kernel forced (dense or BCR), checks
/// which im2col route the bcr level took, and compares with the reference.
fn check_conv(target: &str, case: &ConvCase, threads: usize) {
    let (rows, cols) = (case.m, case.c * case.kernel[0] * case.kernel[1]);
    let weight = if case.dense {
        lcg_input(vec![rows * cols], case.seed + 5).data
    } else {
        random_bcr_weight(
            rows,
            cols,
            BlockSize::new(case.block.0, case.block.1).unwrap(),
            0.5,
            0.5,
            case.seed,
        )
    };
    let graph = grim_model::conv_layer(
        case.n,
        case.c,
        case.hw.0,
        case.hw.1,
        case.m,
        case.kernel,
        case.strides,
        case.pads,
        case.dilations,
        case.seed.is_multiple_of(2),
        weight,
    )
    .unwrap();
    let x = lcg_input(vec![case.n, case.c, case.hw.0, case.hw.1], case.seed);
    let expected = run_reference(&graph, std::slice::from_ref(&x)).unwrap();
    let (actual, bcr) = compile_and_run_forced(
        &graph,
        target,
        (case.block.0 as i64, case.block.1 as i64),
        true,
        threads,
        &[x],
        &[("w", if case.dense { "dense" } else { "bcr" })],
    );
    let pointwise = case.kernel == [1, 1] && case.strides == [1, 1] && case.pads == [0; 4];
    if case.dense {
        assert!(bcr.contains("\"bcr.gemm\""), "{case:?}: {bcr}");
        assert_eq!(
            bcr.contains("im2col = array"),
            !pointwise,
            "{case:?}: implicit im2col unless pointwise: {bcr}"
        );
    } else if bcr.contains("bcr.packed") && !pointwise {
        // BCR: the image read in place when its columns are contiguous and
        // an output row is at least 48 wide (padded by a bcr.im2col of a 1x1
        // kernel if the conv pads), else an explicit patch matrix.
        let wo = (case.hw.1 + case.pads[1] + case.pads[3]
            - case.dilations[1] * (case.kernel[1] - 1)
            - 1)
            / case.strides[1]
            + 1;
        let implicit = case.strides[1] == 1 && wo >= 48;
        let padded = case.pads != [0; 4];
        let spmm_reads_image = bcr
            .lines()
            .any(|l| l.contains("\"bcr.spmm\"") && l.contains("im2col = array"));
        assert_eq!(spmm_reads_image, implicit, "{case:?}: {bcr}");
        assert_eq!(
            bcr.contains("\"bcr.im2col\""),
            !implicit || padded,
            "{case:?}: {bcr}"
        );
        if implicit && padded {
            assert!(
                bcr.contains("im2col = array<i64: 1, 1, 1, 1,"),
                "{case:?}: the padding copy is a 1x1 im2col: {bcr}"
            );
        }
    }
    assert_close(&actual, &expected);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, .. ProptestConfig::default() })]

    /// Convolutions (batch 1-2, kernels 1-3, strides 1-2, pads 0-1 per side,
    /// dilations 1-2, with and without bias) equal the reference on the
    /// host, through the dense kernel (implicit im2col) and through the BCR
    /// kernels (explicit im2col), 1-3 threads.
    #[test]
    fn conv_matches_reference_on_host(case in conv_cases(9, 12)) {
        check_conv("host", &case, 1 + (case.seed % 3) as usize);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5, failure_persistence: None, .. ProptestConfig::default() })]

    /// The same under qemu-aarch64.
    #[test]
    fn conv_matches_reference_on_aarch64(case in conv_cases(5, 9)) {
        check_conv("aarch64-linux-gnu", &case, 2);
    }
}

/// The conv shapes of real layers at a reduced size: a 3x3 pad-1 conv
/// (vgg/resnet), a stride-2 conv and a pointwise conv (mobilenet), both
/// kernels each, with N long enough to be tiled and split across threads.
#[test]
fn layer_like_convs_match_reference() {
    for (c, hw, m, kernel, strides, pads) in [
        (16, (20, 20), 24, [3, 3], [1, 1], [1, 1, 1, 1]),
        (8, (17, 17), 16, [3, 3], [2, 2], [1, 1, 1, 1]),
        (24, (14, 14), 40, [1, 1], [1, 1], [0, 0, 0, 0]),
        // Output rows of 56 and 50: the BCR kernels read the image in place
        // (padded first, then unpadded), with N tiles of whole rows.
        (8, (12, 56), 32, [3, 3], [1, 1], [1, 1, 1, 1]),
        (4, (6, 52), 16, [3, 3], [1, 1], [0, 0, 0, 0]),
    ] {
        for dense in [true, false] {
            let case = ConvCase {
                n: 1,
                c,
                hw,
                m,
                kernel,
                strides,
                pads,
                dilations: [1, 1],
                dense,
                block: (8, 16),
                seed: 3,
            };
            check_conv("host", &case, 2);
        }
    }
}

/// The demo CNN (a dense 3x3 conv through implicit im2col, a BCR strided
/// 3x3 conv through bcr.im2col, a BCR pointwise conv, flatten, a dense FC)
/// equals the reference on the host and on aarch64 under qemu.
#[test]
fn demo_cnn_matches_reference_on_host_and_qemu() {
    let graph = grim_model::demo_cnn(5);
    let x = lcg_input(vec![1, 3, 16, 16], 4);
    let expected = run_reference(&graph, std::slice::from_ref(&x)).unwrap();
    let kernels = [
        ("conv1", "dense"),
        ("conv2", "bcr"),
        ("conv3", "bcr"),
        ("fc", "dense"),
    ];
    let (host, bcr) = compile_and_run_forced(
        &graph,
        "host",
        (8, 16),
        true,
        2,
        std::slice::from_ref(&x),
        &kernels,
    );
    // Each conv takes the path the model was built to show.
    assert_eq!(bcr.matches("\"bcr.im2col\"").count(), 1, "{bcr}");
    assert_eq!(
        bcr.matches("im2col = array").count(),
        2,
        "one implicit (dense conv1) and one explicit: {bcr}"
    );
    assert_eq!(bcr.matches("\"bcr.spmm\"").count(), 2, "{bcr}");
    assert_eq!(
        bcr.matches("\"bcr.gemm\"").count(),
        2,
        "dense conv1 and fc: {bcr}"
    );
    let arm = compile_and_run(&graph, "aarch64-linux-gnu", (8, 16), true, 2, &[x]);
    assert_close(&host, &expected);
    assert_close(&arm, &expected);
}
