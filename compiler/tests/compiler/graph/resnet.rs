//! The 6-block ResNet stage: fused and folded at the graph level, its memory
//! plan checked on the IR, with and without reuse, on the host and under qemu.

use super::save;

use crate::common::*;
use grim_compiler::{
    driver::{self, Level, Options},
    frontend,
};
use grim_dialects::{abi, create_context};
use grim_model::{memplan, residual_stack, run_reference, Graph, Op, ResidualStack, Tensor};
use grim_passes::{graph::plan_memory, pipeline};
use melior::ir::{
    attribute::StringAttribute,
    block::BlockLike,
    operation::{OperationLike, OperationMutLike},
    BlockRef, RegionLike,
};
use std::{path::Path, sync::OnceLock};
/// The 6-block ResNet stage (`ResidualStack::resnet_stage(6)`: 64 channels
/// at 56x56, every conv but the stem pruned to an eighth), one input and
/// its reference output.
struct Stage {
    graph: Graph,
    input: Tensor,
    expected: Vec<Tensor>,
}

/// The stage, built once for the tests that use it: generating it
/// (calibration) and running the reference take about two seconds.
fn stage() -> &'static Stage {
    static STAGE: OnceLock<Stage> = OnceLock::new();
    STAGE.get_or_init(|| {
        let graph = residual_stack(&ResidualStack::resnet_stage(6));
        let input = lcg_input(vec![1, 3, 56, 56], 17);
        let expected = run_reference(&graph, std::slice::from_ref(&input)).unwrap();
        Stage {
            graph,
            input,
            expected,
        }
    })
}

/// The module at the graph level, as the driver printed it.
fn graph_stage(stages: &[(Level, String)]) -> &str {
    stages
        .iter()
        .find(|(level, _)| *level == Level::Graph)
        .map(|(_, text)| text.as_str())
        .expect("a graph stage")
}

/// The ResNet stage compiled for the host with the default options and run
/// on 2 threads: its scratch bytes and outputs, computed once for the two
/// tests that need them (a compile of the stage takes several seconds).
fn host_default_run() -> &'static (u64, Vec<Tensor>) {
    static RUN: OnceLock<(u64, Vec<Tensor>)> = OnceLock::new();
    RUN.get_or_init(|| {
        let stage = stage();
        let work = tempfile::tempdir().unwrap();
        let model = save(&stage.graph, work.path(), "stage");
        let options = Options::new(&model, "host");
        let (compiled, outputs) =
            compile_file_and_run(&options, work.path(), std::slice::from_ref(&stage.input), 2);
        (compiled.interface.scratch_bytes, outputs)
    })
}

/// The GEMM view `[M, C*kh*kw]` of every pruned conv of the stage (all but
/// the stem), by ONNX node name and weight name.
fn pruned_convs(graph: &Graph) -> Vec<(String, String, usize, usize)> {
    graph
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Conv { .. }) && !n.name.starts_with("/stem"))
        .map(|n| {
            let shape = &graph.initializers[&n.inputs[1]].shape;
            (
                n.name.clone(),
                n.inputs[1].clone(),
                shape[0],
                shape[1..].iter().product(),
            )
        })
        .collect()
}

/// The ResNet stage from ONNX: batch norms folded and every Relu and
/// residual Add fused into the convs at the graph level; the memory plan
/// packs 12 live-at-different-times activations into a few; the pruned
/// convs run the BCR kernels storing exactly the kept eighth; and the
/// result equals the reference on the host and under qemu-aarch64.
#[test]
fn resnet_stage_is_fused_planned_and_matches_reference_on_host_and_qemu() {
    let stage = stage();
    let work = tempfile::tempdir().unwrap();
    let model = save(&stage.graph, work.path(), "stage");
    let options = Options::new(&model, "host");

    let lowered = driver::lower(&options, Level::Bcr).unwrap();
    let graph = graph_stage(&lowered.stages);
    for op in ["\"grim.batch_norm\"", "\"grim.relu\"", "\"grim.add\""] {
        assert!(!graph.contains(op), "{op} left unfused:\n{graph}");
    }
    // The 13 convs are all still there (the check above is not vacuous).
    assert_eq!(graph.matches("\"grim.conv2d\"").count(), 13, "{graph}");

    // One 64x56x56 activation is 784 KiB; there are 12 intermediate ones
    // (the 13th conv writes the output buffer). A plan that reuses memory
    // needs a few of them plus the padded image copies, not all twelve.
    let memory = lowered.memory;
    assert_eq!(
        memory.largest_activation_bytes,
        4 * 64 * 56 * 56,
        "{memory:?}"
    );
    assert_eq!(
        memory.activations_bytes,
        12 * 4 * 64 * 56 * 56,
        "{memory:?}"
    );
    assert!(
        memory.arena_bytes <= 4 * memory.largest_activation_bytes,
        "{memory:?}"
    );
    assert!(
        memory.arena_bytes <= memory.activations_bytes / 3,
        "{memory:?}"
    );

    let pruned = pruned_convs(&stage.graph);
    assert_eq!(pruned.len(), 12);
    for (layer, weight, m, k) in &pruned {
        let product = lowered
            .products
            .iter()
            .find(|p| p.layer == *layer)
            .unwrap_or_else(|| panic!("no product {layer}"));
        assert_eq!(product.kernel, "bcr", "{layer}: {product:?}");
        // Batch-norm folding scales the weight's rows: the zeros (-0.0
        // where the pruned weight was negative) must stay zeros.
        let packed = lowered
            .blob
            .layers
            .iter()
            .find(|l| l.name == *weight && l.block.is_some())
            .unwrap_or_else(|| panic!("no BCR-packed {weight} in {:?}", lowered.blob.layers));
        assert_eq!(packed.shape, [*m, *k], "{weight}");
        assert_eq!(
            packed.stats.stored_values,
            m * k / 8,
            "{weight}: {packed:?}"
        );
    }

    assert_close(&host_default_run().1, &stage.expected);
    let options = Options::new(&model, "aarch64-linux-gnu");
    let (_, outputs) =
        compile_file_and_run(&options, work.path(), std::slice::from_ref(&stage.input), 2);
    assert_close(&outputs, &stage.expected);
}

/// The memory plan of the ResNet stage, as written on the IR by
/// graph-plan-memory, passes `memplan::check` (which shares no code with
/// the planner) on the problem re-derived from the IR; and the checker
/// rejects the same plan with its offsets collapsed, so it does look.
#[test]
fn resnet_stage_plan_on_the_ir_passes_the_independent_check() {
    let stage = stage();
    let context = create_context().unwrap();
    let path = Path::new("stage.onnx");
    let mut module = frontend::from_graph(&context, stage.graph.clone(), path).unwrap();
    // What the driver states for a host with AVX2 (driver::state_target),
    // fixed here so the plan does not depend on the machine.
    module.as_operation_mut().set_attribute(
        abi::TARGET_ATTR,
        StringAttribute::new(&context, "avx2").into(),
    );
    let elements = pipeline::parse("builtin.module(graph-pipeline)").unwrap();
    pipeline::run(&context, &mut module, &elements, true).unwrap();

    let mut function = module.body().first_operation();
    while let Some(op) = function.filter(|op| op.name().as_string_ref().as_str() != Ok("func.func"))
    {
        function = op.next_in_block();
    }
    let function = function.expect("a model function");
    let body = function.region(0).unwrap().first_block().unwrap();
    // SAFETY: the block lives as long as the module, which outlives every
    // use below (dataflow's signature ties it to the context's lifetime).
    let body: BlockRef = unsafe { BlockRef::from_raw(body.to_raw()) };
    let flow = plan_memory::dataflow(body).unwrap();
    let written = plan_memory::written_plan(&function, &flow).unwrap();

    memplan::check(&flow.problem, &written).unwrap_or_else(|e| panic!("{e}"));
    // The IR holds the planner's plan of this very problem (so the problem
    // re-derived after the pass is the one the pass planned).
    let options = memplan::Options {
        reuse: true,
        alignment_bytes: abi::ALIGN_BYTES as u64,
    };
    let planned = memplan::plan(&flow.problem, options).unwrap();
    assert_eq!(written.value_offset_bytes, planned.value_offset_bytes);
    assert_eq!(
        written.temporary_offset_bytes,
        planned.temporary_offset_bytes
    );
    assert_eq!(written.arena_bytes, planned.arena_bytes);
    // Not vacuous: twelve activations share an arena far smaller than
    // their sum, and the check finds an overlap once they all sit at 0.
    let arena_values = written.value_offset_bytes.iter().flatten().count();
    assert!(arena_values >= 12, "{arena_values} arena values");
    // Each block's second conv but the last (which writes the caller's
    // output) writes its result over the skip it adds, dead after it.
    assert_eq!(written.in_place.len(), 5, "{:?}", written.in_place);
    assert!(
        written.arena_bytes < written.sum_bytes / 3,
        "{}",
        written.arena_bytes
    );
    let mut collapsed = written.clone();
    collapsed
        .value_offset_bytes
        .iter_mut()
        .flatten()
        .for_each(|o| *o = 0);
    assert!(
        matches!(
            memplan::check(&flow.problem, &collapsed),
            Err(memplan::PlanError::Overlap { .. })
        ),
        "the checker accepted every activation at offset 0"
    );
}

/// Without memory reuse (`reuse = false`: every buffer its own bytes) the
/// ResNet stage computes bit for bit what it computes with reuse (the plan
/// moves buffers, not arithmetic), in a larger arena.
#[test]
fn resnet_stage_without_memory_reuse_is_bit_identical_in_a_larger_arena() {
    let stage = stage();
    let work = tempfile::tempdir().unwrap();
    let model = save(&stage.graph, work.path(), "stage");
    let mut options = Options::new(&model, "host");
    options.reuse = false;
    let (compiled, bump) =
        compile_file_and_run(&options, work.path(), std::slice::from_ref(&stage.input), 2);
    let bump_arena = compiled.interface.scratch_bytes;
    let (reused_arena, reused) = host_default_run();
    // Every one of the 12 intermediate activations has bytes of its own.
    assert!(bump_arena >= 12 * 4 * 64 * 56 * 56, "{bump_arena}");
    assert!(bump_arena > *reused_arena, "{bump_arena} <= {reused_arena}");
    assert_eq!(reused.len(), bump.len());
    for (a, b) in reused.iter().zip(&bump) {
        assert_eq!(a.shape, b.shape);
        let differ: Vec<usize> = (0..a.data.len())
            .filter(|&i| a.data[i].to_bits() != b.data[i].to_bits())
            .collect();
        assert!(
            differ.is_empty(),
            "{} elements differ, the first at {}: {} with reuse, {} without",
            differ.len(),
            differ[0],
            a.data[differ[0]],
            b.data[differ[0]]
        );
    }
    // And both are right, not merely equal.
    assert_close(reused, &stage.expected);
}
