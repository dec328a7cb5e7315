//! The compile pipeline, one level at a time (docs/ARCHITECTURE.md).
//!
//! graph (grim on tensors) -> bcr (memrefs, BCRC slots) -> loops
//! (scf/vector/memref/arith) -> llvm dialect -> LLVM IR -> object/assembly.
//! Each level's pipeline text is a constant here, so `grim-opt` can replay any
//! step and the snapshot tests print every level.

use crate::{
    blob::{self, Blob},
    codegen::{self, Artifacts, Interface, TargetSpec},
    frontend, CompileError,
};
use grim_dialects::{create_context, grim};
use grim_model::{LrFile, Sparsity};
use grim_passes::pipeline;
use melior::{
    ir::{
        attribute::{IntegerAttribute, StringAttribute},
        operation::{OperationLike, OperationMutLike, OperationRefMut, WalkOrder, WalkResult},
        r#type::IntegerType,
        Module, ValueLike,
    },
    Context,
};
use std::path::{Path, PathBuf};

/// The compiler's levels, in order; `--compile-to` stops after one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Level {
    /// grim ops on tensors, as the frontend built them (block sizes applied).
    Graph,
    /// memref code with bcr.packed/spmm/spmv, weights as blob slots.
    Bcr,
    /// scf/vector/memref/arith loops.
    Loops,
    /// The llvm dialect.
    Llvm,
}

/// Pipeline from graph to bcr (the `{vector-width}` is the target's;
/// `profile`: time every layer through the runtime).
pub fn bcr_pipeline(vector_width: i64, block: (i64, i64), reorder: bool, profile: bool) -> String {
    format!(
        "builtin.module(lower-grim-to-bcr{{block={}x{}{}}}{},bcr-vectorize{{vector-width={vector_width}}},bcr-lre,bcr-tile)",
        block.0,
        block.1,
        if profile { " profile=1" } else { "" },
        if reorder { ",bcr-reorder" } else { "" }
    )
}

/// A gemm whose BCRC packing would store at least this fraction of W's
/// elements runs the dense kernel instead (unless the LR file says which):
/// the BCR kernel pays index decoding and per-block tile reloads that the
/// dense kernel does not, and at three quarters of the work it no longer
/// wins (docs/benchmarks/kernels.md, grim dense vs grim BCR).
pub const DENSE_STORED_FRACTION: f64 = 0.75;
/// Pipeline from bcr to loops.
pub const LOOPS_PIPELINE: &str =
    "builtin.module(lower-bcr-to-loops,bcr-parallelize,canonicalize,cse)";
/// Pipeline from loops to the llvm dialect (upstream conversions only).
pub const LLVM_PIPELINE: &str = "builtin.module(convert-vector-to-scf,convert-scf-to-cf,convert-vector-to-llvm,expand-strided-metadata,finalize-memref-to-llvm,convert-math-to-llvm,convert-arith-to-llvm,convert-index-to-llvm,convert-func-to-llvm,convert-cf-to-llvm,reconcile-unrealized-casts,canonicalize)";

/// What to compile and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// Model file (.onnx or .mlir).
    pub model: PathBuf,
    /// Target name: `host` or `aarch64-linux-gnu`.
    pub target: String,
    /// CPU override.
    pub cpu: Option<String>,
    /// Default BCR block size.
    pub block: (i64, i64),
    /// Per-layer choices.
    pub lr: Option<PathBuf>,
    /// Apply GRIM's reorder (default on).
    pub reorder: bool,
    /// C name of the model; default from the file name.
    pub name: Option<String>,
    /// Time every layer through the runtime (`grimc bench --per-layer`).
    pub profile: bool,
    /// Print weights in full in the MLIR stages (a whole, replayable model).
    pub print_weights: bool,
}

impl Options {
    /// Options with defaults for `model` on `target`.
    pub fn new(model: impl Into<PathBuf>, target: &str) -> Self {
        Self {
            model: model.into(),
            target: target.into(),
            cpu: None,
            block: (8, 16),
            lr: None,
            reorder: true,
            profile: false,
            print_weights: false,
            name: None,
        }
    }
}

/// A compiled model.
pub struct Compiled {
    /// The resolved target.
    pub target: TargetSpec,
    /// Entry points and buffer sizes.
    pub interface: Interface,
    /// The weight blob and what was packed.
    pub blob: Blob,
    /// Printed MLIR at every level, in order.
    pub stages: Vec<(Level, String)>,
    /// Generated code.
    pub artifacts: Artifacts,
}

/// A C identifier from a file stem.
pub fn c_name(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "model".into());
    let mut name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert_str(0, "m_");
    }
    name
}

/// Loads a model into a grim module (its weights part of it).
pub fn load<'c>(context: &'c Context, path: &Path) -> Result<Module<'c>, CompileError> {
    if !path.exists() {
        return Err(CompileError::Usage(format!(
            "{}: error: no such file",
            path.display()
        )));
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("mlir") => frontend::from_mlir(context, path),
        Some("onnx") => {
            // Loader errors name the node; say which file it is in.
            let graph = grim_model::load_onnx(path).map_err(|error| match error {
                error @ (grim_model::ModelError::Unsupported { .. }
                | grim_model::ModelError::Shape { .. }) => {
                    CompileError::Usage(format!("{}: error: {error}", path.display()))
                }
                error => CompileError::Model(error),
            })?;
            frontend::from_graph(context, graph, path)
        }
        _ => Err(CompileError::Usage(format!(
            "{}: error: unknown model format (expected .onnx or .mlir)",
            path.display()
        ))),
    }
}

/// The products (gemm, conv2d) of `module` for which `keep` holds.
fn products(
    module: &Module,
    mut keep: impl FnMut(&melior::ir::OperationRef) -> bool,
) -> Vec<mlir_sys::MlirOperation> {
    let mut found = Vec::new();
    module.as_operation().walk(WalkOrder::PreOrder, |op| {
        if op
            .name()
            .as_string_ref()
            .as_str()
            .is_ok_and(|n| grim::PRODUCTS.contains(&n))
            && keep(&op)
        {
            found.push(op.to_raw());
        }
        WalkResult::Advance
    });
    found
}

/// A schedule field of an LR layer: the attribute it becomes, its value,
/// whether a value is valid, and what valid means (for the error).
type ScheduleCheck<'a> = (&'a str, Option<usize>, fn(usize) -> bool, &'a str);

/// Puts the LR file's per-layer block size and order on each `grim.gemm`
/// (layers are matched by the gemm's ONNX node name or weight name).
fn apply_lr<'c>(
    context: &'c Context,
    module: &Module<'c>,
    lr: &LrFile,
    lr_path: &Path,
) -> Result<(), CompileError> {
    let gemms = products(module, |_| true);
    let mut matched = std::collections::BTreeSet::new();
    for raw in gemms {
        let mut op = unsafe { OperationRefMut::from_raw(raw) };
        let location = op.location();
        let node = if location.is_name() {
            location
                .name_value()
                .as_string_ref()
                .as_str()
                .unwrap_or("")
                .to_string()
        } else {
            String::new()
        };
        let weight = grim::product_weight_name(&op).unwrap_or_default();
        let Some(layer) = lr.layer(&node).or_else(|| lr.layer(&weight)) else {
            continue;
        };
        matched.insert(layer.name.clone());
        let i64_type = IntegerType::new(context, 64).into();
        match &layer.sparsity {
            Sparsity::Bcr {
                block_rows,
                block_cols,
                ..
            } => {
                op.set_attribute(
                    grim::KERNEL_ATTR,
                    StringAttribute::new(context, grim::KERNEL_BCR).into(),
                );
                op.set_attribute(
                    "block_rows",
                    IntegerAttribute::new(i64_type, *block_rows as i64).into(),
                );
                op.set_attribute(
                    "block_cols",
                    IntegerAttribute::new(i64_type, *block_cols as i64).into(),
                );
            }
            Sparsity::Dense => {
                op.set_attribute(
                    grim::KERNEL_ATTR,
                    StringAttribute::new(context, grim::KERNEL_DENSE).into(),
                );
            }
            Sparsity::Csr => {
                return Err(CompileError::Usage(format!("{}: error: layer '{}': csr is not a format grim generates code for; use bcr or dense", lr_path.display(), layer.name)));
            }
        }
        // The schedule: each value checked, then carried to the product by
        // lower-grim-to-bcr (the bcr passes keep what is already set).
        let schedule = layer.schedule.clone().unwrap_or_default();
        let checks: [ScheduleCheck; 4] = [
            (
                grim_dialects::bcr::REGISTER_TILE_ATTR,
                schedule.register_tile,
                |v| (1..=16).contains(&v),
                "in 1..=16",
            ),
            (
                grim_dialects::bcr::VECTOR_WIDTH_ATTR,
                schedule.vector_width,
                |v| [1, 2, 4, 8, 16].contains(&v),
                "1, 2, 4, 8 or 16",
            ),
            (
                grim_dialects::bcr::THREADS_ATTR,
                schedule.threads,
                |v| v >= 1,
                "at least 1",
            ),
            (
                grim_dialects::bcr::TILE_N_ATTR,
                schedule.tile_n,
                |_| true,
                "",
            ),
        ];
        for (name, value, valid, expected) in checks {
            let Some(value) = value else { continue };
            if !valid(value) {
                return Err(CompileError::Usage(format!(
                    "{}: error: layer '{}': {name} must be {expected}, got {value}",
                    lr_path.display(),
                    layer.name
                )));
            }
            op.set_attribute(name, IntegerAttribute::new(i64_type, value as i64).into());
        }
        if let Some(order) = &layer.order {
            op.set_attribute(
                "order",
                StringAttribute::new(context, &order.to_string()).into(),
            );
        }
    }
    if let Some(layer) = lr.layers.iter().find(|l| !matched.contains(&l.name)) {
        return Err(CompileError::Usage(format!(
            "{}: error: layer '{}' matches no gemm of the model (by node or weight name)",
            lr_path.display(),
            layer.name
        )));
    }
    Ok(())
}

/// Chooses the kernel of every gemm the LR file left open: dense when BCR
/// packing with its block would store [`DENSE_STORED_FRACTION`] of W or
/// more, BCR otherwise.
fn choose_kernels<'c>(
    context: &'c Context,
    module: &Module<'c>,
    block: (i64, i64),
) -> Result<(), CompileError> {
    let gemms = products(module, |op| !op.has_attribute(grim::KERNEL_ATTR));
    for raw in gemms {
        // SAFETY: collected above; only attributes change.
        let mut op = unsafe { OperationRefMut::from_raw(raw) };
        // A product of two activations has no weight; lowering reports it.
        let Some(value) = grim::product(&op)
            .and_then(|p| grim::defining_constant(p.weight))
            .and_then(|c| grim::constant_value(&c))
        else {
            continue;
        };
        let (Some(shape), Some(data)) = (
            grim_dialects::weights::shape(value),
            grim_dialects::weights::read(value),
        ) else {
            continue;
        };
        // A conv's [M, C, kh, kw] weight is the matrix [M, C*kh*kw].
        let Some((&rows, rest)) = shape.split_first() else {
            continue;
        };
        let (rows, cols) = (rows as usize, rest.iter().product::<i64>() as usize);
        let block_rows = grim_dialects::attr::int(&op, "block_rows").unwrap_or(block.0);
        let block_cols = grim_dialects::attr::int(&op, "block_cols").unwrap_or(block.1);
        let block = grim_model::BlockSize::new(block_rows as usize, block_cols as usize)?;
        // Counted without packing: the blob packs the weight once, later.
        let stored = grim_model::bcrc::stored_values(&data, rows, cols, block)?;
        let kernel = if stored as f64 >= DENSE_STORED_FRACTION * (rows * cols) as f64 {
            grim::KERNEL_DENSE
        } else {
            grim::KERNEL_BCR
        };
        op.set_attribute(
            grim::KERNEL_ATTR,
            StringAttribute::new(context, kernel).into(),
        );
    }
    Ok(())
}

/// Names the model's function `grim_<name>_graph`, so its symbols cannot
/// clash with an application's (or another model's) when linked together.
fn rename_model_function<'c>(
    context: &'c Context,
    module: &Module<'c>,
    name: &str,
) -> Result<(), CompileError> {
    let functions: Vec<_> = grim_passes::lower::grim_to_bcr::top_level_ops(module)
        .into_iter()
        .filter(|op| op.name().as_string_ref().as_str() == Ok("func.func"))
        .map(|op| op.to_raw())
        .collect();
    match functions.as_slice() {
        [raw] => {
            let mut op = unsafe { OperationRefMut::from_raw(*raw) };
            op.set_attribute(
                "sym_name",
                StringAttribute::new(context, &format!("grim_{name}_graph")).into(),
            );
            Ok(())
        }
        [] => Err(CompileError::Usage(
            "error: the model has no func.func".into(),
        )),
        _ => Err(CompileError::Usage(format!(
            "error: the model has {} functions; grimc compiles one model function per file",
            functions.len()
        ))),
    }
}

fn function_interface(module: &Module, name: &str) -> Result<Interface, CompileError> {
    let mut found = None;
    module.as_operation().walk(WalkOrder::PreOrder, |op| {
        if op.name().as_string_ref().as_str() == Ok("func.func")
            && op.has_attribute(grim_dialects::abi::SCRATCH_BYTES_ATTR)
        {
            found = Some(op.to_raw());
            return WalkResult::Interrupt;
        }
        WalkResult::Advance
    });
    let op = unsafe {
        melior::ir::OperationRef::from_raw(
            found.ok_or_else(|| CompileError::Internal("no lowered model function".into()))?,
        )
    };
    let int = |n: &str| {
        op.attribute(n)
            .ok()
            .and_then(|a| IntegerAttribute::try_from(a).ok())
            .map(|a| a.value())
            .unwrap_or(0)
    };
    let function = grim_dialects::attr::string(&op, "sym_name").unwrap_or_default();
    use grim_dialects::abi;
    let body = op
        .region(0)
        .ok()
        .and_then(|r| melior::ir::RegionLike::first_block(&r))
        .ok_or_else(|| CompileError::Internal("empty model function".into()))?;
    let (num_inputs, num_outputs) = (
        int(abi::NUM_INPUTS_ATTR) as usize,
        int(abi::NUM_OUTPUTS_ATTR) as usize,
    );
    let mut shapes = Vec::new();
    use melior::ir::block::BlockLike;
    for index in abi::FIRST_BUFFER_ARG..abi::FIRST_BUFFER_ARG + num_inputs + num_outputs {
        let argument = body
            .argument(index)
            .map_err(|e| CompileError::Internal(e.to_string()))?;
        let shape = grim_dialects::shape::static_shape(argument.r#type())
            .ok_or_else(|| CompileError::Internal("dynamic model buffer".into()))?;
        shapes.push(shape.iter().map(|d| *d as usize).collect::<Vec<_>>());
    }
    let outputs = shapes.split_off(num_inputs);
    Ok(Interface {
        name: name.to_string(),
        function,
        inputs: shapes,
        outputs,
        scratch_bytes: int(abi::SCRATCH_BYTES_ATTR) as u64,
        layers: grim_dialects::attr::strings(&op, abi::LAYERS_ATTR).unwrap_or_default(),
    })
}

fn run<'c>(context: &'c Context, module: &mut Module<'c>, text: &str) -> Result<(), CompileError> {
    let elements = pipeline::parse(text).map_err(|e| CompileError::Internal(e.to_string()))?;
    pipeline::run(context, module, &elements, true)
        .map_err(|e| CompileError::Diagnostics(e.to_string()))?;
    Ok(())
}

/// A model lowered as far as some level, without target code.
pub struct Lowered {
    /// The resolved target.
    pub target: TargetSpec,
    /// Entry points and buffer sizes.
    pub interface: Interface,
    /// The weight blob and what was packed.
    pub blob: Blob,
    /// Printed MLIR at every level reached, in order.
    pub stages: Vec<(Level, String)>,
}

/// Runs the levels up to `stop` in `context`; returns the module at that
/// level with what was learnt on the way (the blob is packed at `bcr`).
fn lower_in<'c>(
    context: &'c Context,
    options: &Options,
    stop: Level,
) -> Result<(Module<'c>, Lowered), CompileError> {
    let target = TargetSpec::new(&options.target, options.cpu.as_deref())?;
    let lr = match &options.lr {
        Some(path) => Some(LrFile::load(path)?),
        None => None,
    };
    let mut module = load(context, &options.model)?;
    if let (Some(lr), Some(path)) = (&lr, &options.lr) {
        apply_lr(context, &module, lr, path)?;
    }
    choose_kernels(context, &module, options.block)?;
    let name = options
        .name
        .clone()
        .unwrap_or_else(|| c_name(&options.model));
    rename_model_function(context, &module, &name)?;
    let print =
        |module: &Module| grim_dialects::weights::print_module(module, options.print_weights);
    let mut stages = vec![(Level::Graph, print(&module))];
    run(
        context,
        &mut module,
        &bcr_pipeline(
            target.vector_width,
            options.block,
            options.reorder,
            options.profile,
        ),
    )?;
    stages.push((Level::Bcr, print(&module)));
    let blob = blob::build(&module)?;
    let interface = function_interface(&module, &name)?;
    for (level, pipeline) in [(Level::Loops, LOOPS_PIPELINE), (Level::Llvm, LLVM_PIPELINE)] {
        if level > stop {
            break;
        }
        run(context, &mut module, pipeline)?;
        stages.push((level, print(&module)));
    }
    Ok((
        module,
        Lowered {
            target,
            interface,
            blob,
            stages,
        },
    ))
}

/// Lowers a model as far as `stop` (at least to `bcr`, where the weights
/// are packed) without generating target code: what `grimc inspect` and
/// `grimc lower` need.
pub fn lower(options: &Options, stop: Level) -> Result<Lowered, CompileError> {
    let context = create_context().map_err(|e| CompileError::Internal(e.to_string()))?;
    let (_, lowered) = lower_in(&context, options, stop)?;
    Ok(lowered)
}

/// Compiles a model to the packed blob, every MLIR level and target code.
/// `embed`: put the weights in the object; `generic_entry`: add the runner's entry points.
pub fn compile(
    options: &Options,
    embed: bool,
    generic_entry: bool,
) -> Result<Compiled, CompileError> {
    let context = create_context().map_err(|e| CompileError::Internal(e.to_string()))?;
    let (
        module,
        Lowered {
            target,
            interface,
            blob,
            stages,
        },
    ) = lower_in(&context, options, Level::Llvm)?;
    let artifacts = codegen::generate(
        &module,
        &target,
        &interface,
        embed.then_some(&blob.bytes[..]),
        generic_entry,
    )?;
    Ok(Compiled {
        target,
        interface,
        blob,
        stages,
        artifacts,
    })
}
