//! Round trips of generated models through ONNX and .npy, checked with the
//! reference interpreter.

use grim_model::{
    conv_layer, load_onnx, mlp, read_npy, run_reference, save_onnx, write_npy, BlockSize, Tensor,
};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn onnx_round_trip_preserves_graph_and_outputs(
        batch in 1usize..4,
        dims in proptest::collection::vec(1usize..40, 2..5),
        br in 1usize..=16,
        bc in 1usize..=16,
        row_keep in 0.1f64..=1.0,
        col_keep in 0.1f64..=1.0,
        seed in any::<u64>(),
    ) {
        let g = mlp(batch, &dims, BlockSize::new(br, bc).unwrap(), row_keep, col_keep, seed).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.onnx");
        save_onnx(&g, &p).unwrap();
        let back = load_onnx(&p).unwrap();
        prop_assert_eq!(&back, &g);
        let x = Tensor::new(vec![batch, dims[0]], (0..batch * dims[0]).map(|i| (i as f32 * 0.7).cos()).collect()).unwrap();
        let y1 = run_reference(&g, std::slice::from_ref(&x)).unwrap();
        let y2 = run_reference(&back, &[x]).unwrap();
        prop_assert_eq!(&y1, &y2);
        prop_assert_eq!(&y1[0].shape, &vec![batch, *dims.last().unwrap()]);
        prop_assert!(y1[0].data.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn conv_onnx_round_trip_preserves_graph_and_outputs(
        n in 1usize..3,
        c in 1usize..4,
        m in 1usize..4,
        kernel in [1usize..4, 1usize..4],
        strides in [1usize..3, 1usize..3],
        pads in [0usize..3, 0usize..3, 0usize..3, 0usize..3],
        dilations in [1usize..3, 1usize..3],
        bias in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let (h, w) = (dilations[0] * (kernel[0] - 1) + 1 + 2, dilations[1] * (kernel[1] - 1) + 1 + 1);
        let weight = Tensor::fixed_seed(vec![m * c * kernel[0] * kernel[1]], seed).data;
        let g = conv_layer(n, c, h, w, m, kernel, strides, pads, dilations, bias, weight).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("conv.onnx");
        save_onnx(&g, &p).unwrap();
        let back = load_onnx(&p).unwrap();
        prop_assert_eq!(&back, &g);
        let x = Tensor::fixed_seed(vec![n, c, h, w], seed ^ 7);
        let y1 = run_reference(&g, std::slice::from_ref(&x)).unwrap();
        let y2 = run_reference(&back, &[x]).unwrap();
        prop_assert_eq!(&y1, &y2);
        prop_assert_eq!(&y1[0].shape, &g.outputs[0].shape);
    }

    #[test]
    fn npy_round_trip(shape in proptest::collection::vec(0usize..5, 0..4), seed in any::<u32>()) {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|i| f32::from_bits(seed.wrapping_mul(2654435761).wrapping_add(i as u32) & 0x7f7f_ffff)).collect();
        let t = Tensor::new(shape, data).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.npy");
        write_npy(&p, &t).unwrap();
        prop_assert_eq!(read_npy(&p).unwrap(), t);
    }
}
