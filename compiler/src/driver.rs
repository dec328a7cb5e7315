//! The compile pipeline, one level at a time (docs/ARCHITECTURE.md).
//!
//! input (grim as translated) -> graph (after the graph passes) -> bcr
//! (memrefs, BCRC slots) -> loops -> llvm dialect -> LLVM IR -> assembly and
//! object. Each MLIR step is a named pipeline of `grim_passes::levels`, run
//! by name, so `grim-opt --pass-pipeline=<name>` replays any step and the
//! snapshot tests print every level. A `.mlir` input resumes at the level
//! it says it is at (`grim.level`).

use crate::{
    blob::{self, Blob},
    codegen::{self, Artifacts, Interface, TargetSpec},
    frontend, CompileError,
};
use grim_dialects::{abi, create_context};
pub use grim_passes::levels::Level;
use grim_passes::pipeline;
use melior::{
    ir::{
        attribute::{IntegerAttribute, StringAttribute},
        operation::{OperationLike, OperationMutLike, OperationRefMut, WalkOrder, WalkResult},
        Module, ValueLike,
    },
    Context,
};
use std::path::{Path, PathBuf};

/// What to compile and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// Model file (.onnx or .mlir).
    pub model: PathBuf,
    /// Target name: `host` or `aarch64-linux-gnu`.
    pub target: String,
    /// CPU override.
    pub cpu: Option<String>,
    /// The BCR block of every layer the LR file leaves open (`None`: the
    /// cost model chooses per layer).
    pub block: Option<(i64, i64)>,
    /// The kernel (`dense` or `bcr`) of every layer the LR file leaves
    /// open (`None`: the cost model chooses per layer).
    pub kernel: Option<String>,
    /// Per-layer choices.
    pub lr: Option<PathBuf>,
    /// Apply GRIM's reorder (default on).
    pub reorder: bool,
    /// Give weights whose blocks all keep the same counts the walk with
    /// constant trip counts (`bcr-uniform-blocks`, default on; off only to
    /// compare the two walks).
    pub uniform_blocks: bool,
    /// Reuse arena memory across dead values (default on).
    pub reuse: bool,
    /// C name of the model; default from the file name.
    pub name: Option<String>,
    /// Time every layer through the runtime (`grimc bench --per-layer`).
    pub profile: bool,
    /// Print weights in full in the MLIR stages (a whole, replayable model).
    pub print_weights: bool,
    /// Shapes of graph inputs by name, fixing their free dimensions
    /// (`--input-shape NAME=1x3x224x224`; ONNX models only).
    pub input_shapes: std::collections::BTreeMap<String, Vec<usize>>,
}

impl Options {
    /// Options with defaults for `model` on `target`.
    pub fn new(model: impl Into<PathBuf>, target: &str) -> Self {
        Self {
            model: model.into(),
            target: target.into(),
            cpu: None,
            block: None,
            kernel: None,
            lr: None,
            input_shapes: Default::default(),
            reorder: true,
            uniform_blocks: true,
            reuse: true,
            profile: false,
            print_weights: false,
            name: None,
        }
    }

    /// The named pipeline's text that takes a module to `level`.
    fn pipeline_to(&self, level: Level) -> Result<String, CompileError> {
        let pipeline = grim_passes::levels::to(level)
            .ok_or_else(|| CompileError::Internal(format!("no pipeline leads to '{level}'")))?;
        let mut options = Vec::new();
        match level {
            Level::Graph => {
                if let Some(lr) = &self.lr {
                    let text = lr.display().to_string();
                    if text.contains(char::is_whitespace) || text.contains(['{', '}', '=', ',']) {
                        return Err(CompileError::Usage(format!(
                            "{text}: error: an LR file path may not contain spaces, braces, '=' or ','"
                        )));
                    }
                    options.push(format!("lr={text}"));
                }
                if let Some((rows, cols)) = self.block {
                    options.push(format!("block={rows}x{cols}"));
                }
                if let Some(kernel) = &self.kernel {
                    options.push(format!("kernel={kernel}"));
                }
                options.push(format!("reuse={}", self.reuse as u8));
                options.push(format!("profile={}", self.profile as u8));
            }
            Level::Bcr => {
                options.push(format!("reorder={}", self.reorder as u8));
                options.push(format!("uniform={}", self.uniform_blocks as u8));
            }
            _ => {}
        }
        Ok(if options.is_empty() {
            format!("builtin.module({})", pipeline.name)
        } else {
            format!("builtin.module({}{{{}}})", pipeline.name, options.join(" "))
        })
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
    /// Printed MLIR at every level reached, in order.
    pub stages: Vec<(Level, String)>,
    /// Generated code.
    pub artifacts: Artifacts,
    /// The loader's notes for the user (`<file>: note: ...`).
    pub notes: Vec<String>,
}

/// A C identifier from a file stem. A level file's suffix is not part of
/// the name (`m.graph.mlir`, written by `--emit graph`, is model `m`), so
/// compiling a dump gives the same symbols as compiling its model.
pub fn c_name(path: &Path) -> String {
    let mut stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "model".into());
    let is_mlir = path.extension().is_some_and(|e| e == "mlir");
    if let Some((base, level)) = stem.rsplit_once('.') {
        let level_file = Level::ALL
            .iter()
            .any(|l| l.is_mlir() && l.file_suffix() == format!("{level}.mlir"));
        if is_mlir && level_file && !base.is_empty() {
            stem = base.to_string();
        }
    }
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

/// Loads a model into a grim module (its weights part of it), with the
/// loader's notes for the user (a free batch dimension taken as 1).
pub fn load<'c>(
    context: &'c Context,
    path: &Path,
    input_shapes: &std::collections::BTreeMap<String, Vec<usize>>,
) -> Result<(Module<'c>, Vec<String>), CompileError> {
    if !path.exists() {
        return Err(CompileError::Usage(format!(
            "{}: error: no such file",
            path.display()
        )));
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("mlir") if !input_shapes.is_empty() => Err(CompileError::Usage(format!(
            "{}: error: --input-shape applies to ONNX models; a .mlir module has static shapes",
            path.display()
        ))),
        Some("mlir") => Ok((frontend::from_mlir(context, path)?, Vec::new())),
        Some("onnx") => {
            // Loader errors name the node; say which file it is in.
            let options = grim_model::LoadOptions {
                input_shapes: input_shapes.clone(),
            };
            let loaded =
                grim_model::load_onnx_with(path, &options).map_err(|error| match error {
                    error @ (grim_model::ModelError::Unsupported { .. }
                    | grim_model::ModelError::Shape { .. }) => {
                        CompileError::Usage(format!("{}: error: {error}", path.display()))
                    }
                    error => CompileError::Model(error),
                })?;
            let notes = loaded
                .notes
                .into_iter()
                .map(|note| format!("{}: note: {note}", path.display()))
                .collect();
            Ok((frontend::from_graph(context, loaded.graph, path)?, notes))
        }
        _ => Err(CompileError::Usage(format!(
            "{}: error: unknown model format (expected .onnx or .mlir)",
            path.display()
        ))),
    }
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
    pipeline::run(context, module, &elements, true).map_err(|e| match e {
        grim_passes::PassError::Model(error) => CompileError::Model(error),
        other => CompileError::Diagnostics(other.to_string()),
    })?;
    Ok(())
}

/// The module's memory figures, from graph-plan-memory's attributes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Memory {
    /// Scratch the compiled model asks for (`GRIM_<NAME>_SCRATCH_BYTES`:
    /// tensors, im2col and padding buffers).
    pub arena_bytes: u64,
    /// The intermediate tensors after graph-simplify, summed (model inputs
    /// and outputs live in caller buffers and are not counted).
    pub activations_bytes: u64,
    /// The largest intermediate tensor.
    pub largest_activation_bytes: u64,
}

fn memory(module: &Module) -> Memory {
    let mut memory = Memory::default();
    module.as_operation().walk(WalkOrder::PreOrder, |op| {
        if op.name().as_string_ref().as_str() == Ok("func.func") {
            let int = |name: &str| grim_dialects::attr::int(&op, name).unwrap_or(0).max(0) as u64;
            use grim_passes::lower::grim_to_bcr::scratch;
            memory.arena_bytes += int(scratch::ARENA_BYTES_ATTR);
            memory.activations_bytes += int(scratch::ACTIVATIONS_BYTES_ATTR);
            memory.largest_activation_bytes = memory
                .largest_activation_bytes
                .max(int(scratch::LARGEST_ACTIVATION_BYTES_ATTR));
        }
        WalkResult::Advance
    });
    memory
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
    /// The memory plan's figures.
    pub memory: Memory,
    /// The products at the graph level, for `grimc inspect`.
    pub products: Vec<crate::inspect::Product>,
    /// The loader's notes for the user (`<file>: note: ...`).
    pub notes: Vec<String>,
}

/// States the target on the module (`grim.target`, the cost model's text
/// form) unless a `.mlir` input already does.
fn state_target(context: &Context, module: &mut Module, target: &TargetSpec) {
    if grim_dialects::attr::string(&module.as_operation(), abi::TARGET_ATTR).is_some() {
        return;
    }
    module.as_operation_mut().set_attribute(
        abi::TARGET_ATTR,
        StringAttribute::new(context, &target.cost_target).into(),
    );
}

/// Runs the levels up to `stop` (at least `bcr`, where the blob is packed)
/// in `context`; returns the module at that level with what was learnt.
fn lower_in<'c>(
    context: &'c Context,
    options: &Options,
    stop: Level,
) -> Result<(Module<'c>, Lowered), CompileError> {
    let target = TargetSpec::new(&options.target, options.cpu.as_deref())?;
    let (mut module, notes) = load(context, &options.model, &options.input_shapes)?;
    let start =
        pipeline::level_of(&module).map_err(|e| CompileError::Diagnostics(e.to_string()))?;
    if start > Level::Graph {
        return Err(CompileError::Usage(format!(
            "{}: error: the module is at the '{start}' level; grimc compiles models at the input or graph level",
            options.model.display()
        )));
    }
    state_target(context, &mut module, &target);
    let name = options
        .name
        .clone()
        .unwrap_or_else(|| c_name(&options.model));
    rename_model_function(context, &module, &name)?;
    let print = |module: &Module| {
        grim_dialects::weights::print_module(module, options.print_weights, false)
    };
    let mut stages = vec![(start, print(&module))];
    let (mut products, mut memory_figures) = if start == Level::Graph {
        (crate::inspect::products(&module), memory(&module))
    } else {
        (Vec::new(), Memory::default())
    };
    let mut blob = None;
    let mut interface = None;
    for level in [Level::Graph, Level::Bcr, Level::Loops, Level::Llvm] {
        if level <= start {
            continue;
        }
        if level > stop.max(Level::Bcr) {
            break;
        }
        run(context, &mut module, &options.pipeline_to(level)?)?;
        stages.push((level, print(&module)));
        match level {
            Level::Graph => {
                products = crate::inspect::products(&module);
                memory_figures = memory(&module);
            }
            Level::Bcr => {
                blob = Some(blob::build(&module)?);
                interface = Some(function_interface(&module, &name)?);
            }
            _ => {}
        }
    }
    let (Some(blob), Some(interface)) = (blob, interface) else {
        return Err(CompileError::Internal(
            "the bcr level was not reached".into(),
        ));
    };
    if memory_figures == Memory::default() {
        memory_figures.arena_bytes = interface.scratch_bytes;
    }
    Ok((
        module,
        Lowered {
            target,
            interface,
            blob,
            stages,
            memory: memory_figures,
            products,
            notes,
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
            notes,
            ..
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
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::c_name;
    use std::path::Path;

    #[test]
    fn c_names_drop_level_suffixes_of_mlir_dumps_only() {
        for (file, name) in [
            ("dir/ResNet-18.onnx", "resnet_18"),
            ("m.graph.mlir", "m"),
            ("m.input.mlir", "m"),
            ("m.bcr.mlir", "m"),
            ("m.mlir", "m"),
            ("m.graph.onnx", "m_graph"),
            ("m.tiny.mlir", "m_tiny"),
            (".graph.mlir", "_graph"),
            ("7up.onnx", "m_7up"),
        ] {
            assert_eq!(c_name(Path::new(file)), name, "{file}");
        }
    }
}
