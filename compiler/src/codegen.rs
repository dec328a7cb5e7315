//! LLVM code generation: MLIR's llvm dialect to an LLVM module (in memory,
//! no text round trip), the C entry points and the embedded weights, O3,
//! then object and assembly for aarch64 or the host.

use crate::CompileError;
use inkwell::{
    context::Context as LlvmContext,
    module::{Linkage, Module as LlvmModule},
    passes::PassBuilderOptions,
    targets::{
        CodeModel, FileType, InitializationConfig, RelocMode, Target, TargetMachine, TargetTriple,
    },
    values::{BasicMetadataValueEnum, FunctionValue},
    AddressSpace, OptimizationLevel,
};
use melior::ir::Module;

/// What code is generated for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target2 {
    /// The machine grimc runs on (its CPU name and features).
    Host,
    /// 64-bit Arm Linux (cross-compiled; run under qemu-aarch64 without a phone).
    Aarch64LinuxGnu,
}

/// A resolved target: triple, CPU, features, f32 lanes per vector.
#[derive(Debug, Clone)]
pub struct TargetSpec {
    /// Which target.
    pub kind: Target2,
    /// LLVM triple.
    pub triple: String,
    /// CPU name.
    pub cpu: String,
    /// Feature string.
    pub features: String,
    /// f32 lanes per vector register (NEON 4, AVX2 8, AVX-512 16).
    pub vector_width: i64,
    /// The instruction set to print beside figures.
    pub isa: String,
    /// The cost model's text form of this target (`grim.target`).
    pub cost_target: String,
}

impl TargetSpec {
    /// Resolves `host` or `aarch64-linux-gnu` (cpu overridable).
    pub fn new(name: &str, cpu: Option<&str>) -> Result<Self, CompileError> {
        Target::initialize_all(&InitializationConfig::default());
        match name {
            "host" => {
                let cpu_name = cpu
                    .map(String::from)
                    .unwrap_or_else(|| TargetMachine::get_host_cpu_name().to_string());
                let features = if cpu.is_some() {
                    String::new()
                } else {
                    TargetMachine::get_host_cpu_features().to_string()
                };
                let triple = TargetMachine::get_default_triple()
                    .as_str()
                    .to_string_lossy()
                    .to_string();
                let (vector_width, isa, cost_target) = if triple.starts_with("aarch64") {
                    (4, "NEON".to_string(), "neon")
                } else if features.contains("+avx512f") {
                    (16, "AVX-512F".to_string(), "avx512")
                } else if features.contains("+avx2") {
                    (
                        8,
                        if features.contains("+fma") {
                            "AVX2+FMA"
                        } else {
                            "AVX2"
                        }
                        .to_string(),
                        "avx2",
                    )
                } else {
                    (4, "SSE".to_string(), "avx2,lanes=4")
                };
                Ok(Self {
                    kind: Target2::Host,
                    triple,
                    cpu: cpu_name,
                    features,
                    vector_width,
                    isa,
                    cost_target: cost_target.into(),
                })
            }
            "aarch64-linux-gnu" | "aarch64-unknown-linux-gnu" => Ok(Self {
                kind: Target2::Aarch64LinuxGnu,
                triple: "aarch64-unknown-linux-gnu".into(),
                cpu: cpu.unwrap_or("cortex-a76").into(),
                features: "+neon".into(),
                vector_width: 4,
                isa: "NEON".into(),
                cost_target: "neon".into(),
            }),
            other => Err(CompileError::Usage(format!(
                "unknown target '{other}' (expected host or aarch64-linux-gnu)"
            ))),
        }
    }

    /// The Rust target triple whose runtime library links with this code.
    pub fn rust_triple(&self) -> String {
        match self.kind {
            Target2::Host => format!("{}-unknown-linux-gnu", std::env::consts::ARCH),
            Target2::Aarch64LinuxGnu => "aarch64-unknown-linux-gnu".into(),
        }
    }

    fn machine(&self) -> Result<TargetMachine, CompileError> {
        let triple = TargetTriple::create(&self.triple);
        let target = Target::from_triple(&triple)
            .map_err(|e| CompileError::Internal(format!("LLVM target {}: {e}", self.triple)))?;
        target
            .create_target_machine(
                &triple,
                &self.cpu,
                &self.features,
                OptimizationLevel::Aggressive,
                RelocMode::PIC,
                CodeModel::Default,
            )
            .ok_or_else(|| {
                CompileError::Internal(format!(
                    "cannot create a target machine for {} ({})",
                    self.triple, self.cpu
                ))
            })
    }
}

/// The model's interface, for the entry points and the header.
#[derive(Debug, Clone)]
pub struct Interface {
    /// C identifier of the model (`grim_<name>_run`).
    pub name: String,
    /// MLIR function name of the lowered model.
    pub function: String,
    /// Shapes of the inputs.
    pub inputs: Vec<Vec<usize>>,
    /// Shapes of the outputs.
    pub outputs: Vec<Vec<usize>>,
    /// Scratch bytes the model needs.
    pub scratch_bytes: u64,
    /// Names of the profiled layers by id (compiled with profiling; else empty).
    pub layers: Vec<String>,
}

/// Generated code in every form asked for.
pub struct Artifacts {
    /// Optimised LLVM IR text.
    pub llvm_ir: String,
    /// Unoptimised LLVM IR text (straight from the translation).
    pub llvm_ir_unoptimized: String,
    /// Object file bytes.
    pub object: Vec<u8>,
    /// Assembly text.
    pub assembly: String,
}

/// Translates `module` (llvm dialect) and builds the object.
/// `weights`: the blob to embed, or `None` when it ships as a file.
/// `generic_entry`: also define `grim_model_describe`/`grim_model_run` (for the runner).
pub fn generate(
    module: &Module,
    target: &TargetSpec,
    interface: &Interface,
    weights: Option<&[u8]>,
    generic_entry: bool,
) -> Result<Artifacts, CompileError> {
    let context = LlvmContext::create();
    // SAFETY: the MLIR module is in the llvm dialect; the returned LLVM module
    // is owned by us and lives in `context` (both crates link one libLLVM).
    let raw = unsafe {
        mlir_sys::mlirTranslateModuleToLLVMIR(
            module.as_operation().to_raw(),
            context.raw() as mlir_sys::LLVMContextRef,
        )
    };
    if raw.is_null() {
        return Err(CompileError::Internal(
            "translation to LLVM IR failed".into(),
        ));
    }
    let llvm = unsafe { LlvmModule::new(raw as inkwell::llvm_sys::prelude::LLVMModuleRef) };
    let machine = target.machine()?;
    llvm.set_triple(&machine.get_triple());
    llvm.set_data_layout(&machine.get_target_data().get_data_layout());
    add_entry_points(&context, &llvm, interface, weights, generic_entry)?;
    let llvm_ir_unoptimized = llvm.print_to_string().to_string();
    llvm.verify()
        .map_err(|e| CompileError::Internal(format!("invalid LLVM module: {e}")))?;
    llvm.run_passes("default<O3>", &machine, PassBuilderOptions::create())
        .map_err(|e| CompileError::Internal(format!("LLVM O3: {e}")))?;
    let object = machine
        .write_to_memory_buffer(&llvm, FileType::Object)
        .map_err(|e| CompileError::Internal(format!("object emission: {e}")))?;
    let assembly = machine
        .write_to_memory_buffer(&llvm, FileType::Assembly)
        .map_err(|e| CompileError::Internal(format!("assembly emission: {e}")))?;
    Ok(Artifacts {
        llvm_ir: llvm.print_to_string().to_string(),
        llvm_ir_unoptimized,
        object: object.as_slice().to_vec(),
        assembly: String::from_utf8_lossy(assembly.as_slice()).to_string(),
    })
}

/// Adds `grim_<name>_run_with_weights`, `grim_<name>_run` (embedded weights)
/// and optionally the generic runner entry points, all calling the
/// `_mlir_ciface_` wrapper with memref descriptors built on the stack.
fn add_entry_points<'ll>(
    context: &'ll LlvmContext,
    llvm: &LlvmModule<'ll>,
    interface: &Interface,
    weights: Option<&[u8]>,
    generic_entry: bool,
) -> Result<(), CompileError> {
    let ptr = context.ptr_type(AddressSpace::default());
    let i64t = context.i64_type();
    let i32t = context.i32_type();
    let builder = context.create_builder();
    let internal = |e: inkwell::builder::BuilderError| {
        CompileError::Internal(format!("building entry points: {e}"))
    };
    // An entry point that only calls another one and returns its status.
    let forward = |function: FunctionValue<'ll>,
                   callee: FunctionValue<'ll>,
                   arguments: &[inkwell::values::BasicMetadataValueEnum<'ll>]|
     -> Result<(), CompileError> {
        builder.position_at_end(context.append_basic_block(function, "entry"));
        let status = builder
            .build_call(callee, arguments, "status")
            .map_err(internal)?
            .try_as_basic_value()
            .basic()
            .ok_or_else(|| CompileError::Internal("run call has no value".into()))?;
        builder.build_return(Some(&status)).map_err(internal)?;
        Ok(())
    };

    let ciface_name = format!("_mlir_ciface_{}", interface.function);
    let ciface = llvm.get_function(&ciface_name).ok_or_else(|| {
        CompileError::Internal(format!("{ciface_name} missing after translation"))
    })?;
    let scratch_fn = llvm.add_function(
        grim_dialects::abi::CONTEXT_SCRATCH,
        ptr.fn_type(&[ptr.into(), i64t.into()], false),
        Some(Linkage::External),
    );

    let run_with = llvm.add_function(
        &format!("grim_{}_run_with_weights", interface.name),
        i32t.fn_type(&[ptr.into(), ptr.into(), ptr.into(), ptr.into()], false),
        Some(Linkage::External),
    );
    let entry = context.append_basic_block(run_with, "entry");
    let fail = context.append_basic_block(run_with, "no_scratch");
    let go = context.append_basic_block(run_with, "run");
    builder.position_at_end(entry);
    fn param(f: FunctionValue<'_>, i: u32) -> inkwell::values::BasicValueEnum<'_> {
        f.get_nth_param(i).expect("declared parameter")
    }
    let (ctx, weights_ptr, inputs, outputs) = (
        param(run_with, 0),
        param(run_with, 1),
        param(run_with, 2),
        param(run_with, 3),
    );
    let scratch = builder
        .build_call(
            scratch_fn,
            &[
                ctx.into(),
                i64t.const_int(interface.scratch_bytes, false).into(),
            ],
            "scratch",
        )
        .map_err(internal)?
        .try_as_basic_value()
        .basic()
        .ok_or_else(|| CompileError::Internal("scratch call has no value".into()))?
        .into_pointer_value();
    let is_null = builder
        .build_is_null(scratch, "no_scratch")
        .map_err(internal)?;
    builder
        .build_conditional_branch(is_null, fail, go)
        .map_err(internal)?;
    builder.position_at_end(fail);
    builder
        .build_return(Some(&i32t.const_int(1, false)))
        .map_err(internal)?;
    builder.position_at_end(go);

    // A rank-r descriptor: { ptr allocated, ptr aligned, i64 offset, [r x i64] sizes, [r x i64] strides }.
    let descriptor = |base: inkwell::values::PointerValue<'_>,
                      shape: &[usize],
                      label: &str|
     -> Result<inkwell::values::PointerValue<'_>, CompileError> {
        let rank = shape.len() as u32;
        let array = i64t.array_type(rank);
        let ty = context.struct_type(
            &[
                ptr.into(),
                ptr.into(),
                i64t.into(),
                array.into(),
                array.into(),
            ],
            false,
        );
        let slot = builder.build_alloca(ty, label).map_err(internal)?;
        let mut strides = vec![1u64; shape.len()];
        for i in (0..shape.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * shape[i + 1] as u64;
        }
        let sizes: Vec<_> = shape
            .iter()
            .map(|d| i64t.const_int(*d as u64, false))
            .collect();
        let strides: Vec<_> = strides.iter().map(|s| i64t.const_int(*s, false)).collect();
        let value = ty.const_named_struct(&[
            ptr.const_null().into(),
            ptr.const_null().into(),
            i64t.const_zero().into(),
            i64t.const_array(&sizes).into(),
            i64t.const_array(&strides).into(),
        ]);
        let value = builder
            .build_insert_value(value, base, 0, "allocated")
            .map_err(internal)?;
        let value = builder
            .build_insert_value(value, base, 1, "aligned")
            .map_err(internal)?;
        builder.build_store(slot, value).map_err(internal)?;
        Ok(slot)
    };
    let blob_bytes = weights.map(|w| w.len()).unwrap_or(i64::MAX as usize / 2);
    let mut arguments: Vec<BasicMetadataValueEnum> = vec![ctx.into()];
    arguments.push(descriptor(weights_ptr.into_pointer_value(), &[blob_bytes], "blob")?.into());
    arguments.push(descriptor(scratch, &[interface.scratch_bytes as usize], "scratch")?.into());
    for (list, shapes, label) in [
        (inputs, &interface.inputs, "input"),
        (outputs, &interface.outputs, "output"),
    ] {
        for (index, shape) in shapes.iter().enumerate() {
            let at = unsafe {
                builder.build_in_bounds_gep(
                    ptr,
                    list.into_pointer_value(),
                    &[i64t.const_int(index as u64, false)],
                    label,
                )
            }
            .map_err(internal)?;
            let base = builder
                .build_load(ptr, at, label)
                .map_err(internal)?
                .into_pointer_value();
            arguments.push(descriptor(base, shape, label)?.into());
        }
    }
    builder
        .build_call(ciface, &arguments, "")
        .map_err(internal)?;
    builder
        .build_return(Some(&i32t.const_zero()))
        .map_err(internal)?;

    let run_type = i32t.fn_type(&[ptr.into(), ptr.into(), ptr.into()], false);
    let mut run = None;
    if let Some(weights) = weights {
        let array = context.i8_type().array_type(weights.len() as u32);
        let global = llvm.add_global(array, None, &format!("grim_{}_weights", interface.name));
        global.set_initializer(&context.const_string(weights, false));
        global.set_constant(true);
        global.set_alignment(64);
        global.set_linkage(Linkage::Internal);
        let function = llvm.add_function(
            &format!("grim_{}_run", interface.name),
            run_type,
            Some(Linkage::External),
        );
        let arguments = [
            param(function, 0).into(),
            global.as_pointer_value().into(),
            param(function, 1).into(),
            param(function, 2).into(),
        ];
        forward(function, run_with, &arguments)?;
        run = Some(function);
    }
    if generic_entry {
        let run =
            run.ok_or_else(|| CompileError::Usage("the runner needs embedded weights".into()))?;
        let generic = llvm.add_function("grim_model_run", run_type, Some(Linkage::External));
        let arguments = [
            param(generic, 0).into(),
            param(generic, 1).into(),
            param(generic, 2).into(),
        ];
        forward(generic, run, &arguments)?;
        // grim_model_info { i32 num_inputs, i32 num_outputs, ptr input_sizes, ptr output_sizes, ptr name }
        let sizes = |shapes: &[Vec<usize>], label: &str| {
            let values: Vec<_> = shapes
                .iter()
                .map(|s| i64t.const_int(s.iter().product::<usize>() as u64, false))
                .collect();
            let global = llvm.add_global(i64t.array_type(values.len() as u32), None, label);
            global.set_initializer(&i64t.const_array(&values));
            global.set_constant(true);
            global.set_linkage(Linkage::Internal);
            global.as_pointer_value()
        };
        let input_sizes = sizes(&interface.inputs, "grim_model_input_sizes");
        let output_sizes = sizes(&interface.outputs, "grim_model_output_sizes");
        let name = context.const_string(interface.name.as_bytes(), true);
        let name_global = llvm.add_global(name.get_type(), None, "grim_model_name");
        name_global.set_initializer(&name);
        name_global.set_constant(true);
        name_global.set_linkage(Linkage::Internal);
        let info_type = context.struct_type(
            &[i32t.into(), i32t.into(), ptr.into(), ptr.into(), ptr.into()],
            false,
        );
        let info = llvm.add_global(info_type, None, "grim_model_info_data");
        info.set_initializer(&info_type.const_named_struct(&[
            i32t.const_int(interface.inputs.len() as u64, false).into(),
            i32t.const_int(interface.outputs.len() as u64, false).into(),
            input_sizes.into(),
            output_sizes.into(),
            name_global.as_pointer_value().into(),
        ]));
        info.set_constant(true);
        info.set_linkage(Linkage::Internal);
        let describe = llvm.add_function(
            "grim_model_describe",
            ptr.fn_type(&[], false),
            Some(Linkage::External),
        );
        builder.position_at_end(context.append_basic_block(describe, "entry"));
        builder
            .build_return(Some(&info.as_pointer_value()))
            .map_err(internal)?;
    }
    Ok(())
}

/// The C header for a compiled model.
pub fn header(
    interface: &Interface,
    weights_bytes: usize,
    embedded: bool,
    target: &TargetSpec,
) -> String {
    let upper = interface.name.to_uppercase();
    let mut out = format!(
        "/* Generated by grimc for target {} (cpu {}). Do not edit. */\n#ifndef GRIM_{upper}_H\n#define GRIM_{upper}_H\n\n#include <stdint.h>\n#include \"grim_runtime.h\"\n\n#ifdef __cplusplus\nextern \"C\" {{\n#endif\n\n",
        target.triple, target.cpu
    );
    out.push_str(&format!(
        "#define GRIM_{upper}_NUM_INPUTS {}\n#define GRIM_{upper}_NUM_OUTPUTS {}\n",
        interface.inputs.len(),
        interface.outputs.len()
    ));
    for (kind, shapes) in [("INPUT", &interface.inputs), ("OUTPUT", &interface.outputs)] {
        for (index, shape) in shapes.iter().enumerate() {
            out.push_str(&format!(
                "#define GRIM_{upper}_{kind}{index}_SIZE {} /* f32 elements, shape {:?}, row-major */\n",
                shape.iter().product::<usize>(),
                shape
            ));
        }
    }
    out.push_str(&format!("/* Scratch the model takes from grim_context_scratch() on each run. */\n#define GRIM_{upper}_SCRATCH_BYTES {}\n", interface.scratch_bytes));
    out.push_str(&format!("/* Size of the weight blob ({}). */\n#define GRIM_{upper}_WEIGHTS_BYTES {weights_bytes}\n\n", if embedded { "embedded in the object" } else { "the .weights file; keep it 64-byte aligned in memory" }));
    out.push_str(&format!(
        "/* Runs the model on caller-owned buffers: inputs[i] and outputs[i] point to\n   GRIM_{upper}_INPUTi_SIZE / OUTPUTi_SIZE floats. Returns 0 on success. */\nint32_t grim_{}_run_with_weights(grim_context* ctx, const void* weights, const float* const* inputs, float* const* outputs);\n",
        interface.name
    ));
    if embedded {
        out.push_str(&format!("int32_t grim_{}_run(grim_context* ctx, const float* const* inputs, float* const* outputs);\n", interface.name));
    }
    out.push_str(&format!(
        "\n#ifdef __cplusplus\n}}\n#endif\n\n#endif /* GRIM_{upper}_H */\n"
    ));
    out
}
