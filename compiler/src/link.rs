//! Linking a compiled model with the runtime and running it (natively, or
//! under qemu-aarch64 for the aarch64 target), through the generic runner.

use crate::{
    codegen::{Target2, TargetSpec},
    CompileError,
};
use grim_model::Tensor;
use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// The generic runner's C source (reads raw f32 inputs, runs, writes outputs).
pub const RUNNER_C: &str = include_str!("../../runtime/runner.c");
/// The runtime's C header.
pub const RUNTIME_H: &str = include_str!("../../runtime/include/grim_runtime.h");

/// Directory of the prebuilt runtime for `rust_triple`: `$GRIM_RUNTIME_DIR/<triple>`,
/// else `grim-runtime/<triple>` beside this executable or in its parent.
pub fn runtime_dir(rust_triple: &str) -> Result<PathBuf, CompileError> {
    let mut candidates = Vec::new();
    if let Ok(dir) = std::env::var("GRIM_RUNTIME_DIR") {
        candidates.push(PathBuf::from(dir).join(rust_triple));
    }
    if let Ok(exe) = std::env::current_exe() {
        for ancestor in exe.ancestors().skip(1).take(3) {
            candidates.push(ancestor.join("grim-runtime").join(rust_triple));
        }
    }
    candidates
        .iter()
        .find(|dir| dir.join("libgrim_runtime.a").is_file())
        .cloned()
        .ok_or_else(|| {
            CompileError::Tool(format!(
                "error: the grim runtime for {rust_triple} was not found (looked in: {}); build it with `cargo xtask runtime` or set GRIM_RUNTIME_DIR",
                candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", ")
            ))
        })
}

fn tool_output(command: &mut Command, what: &str) -> Result<std::process::Output, CompileError> {
    command.output().map_err(|e| {
        CompileError::Tool(format!(
            "error: cannot run {what} ({:?}): {e}",
            command.get_program()
        ))
    })
}

/// Links `object` with the runner and runtime into an executable at `exe`.
pub fn link_runner(
    target: &TargetSpec,
    object: &Path,
    work: &Path,
    exe: &Path,
) -> Result<(), CompileError> {
    let runtime = runtime_dir(&target.rust_triple())?;
    let runner_c = work.join("runner.c");
    let header = work.join("grim_runtime.h");
    std::fs::write(&runner_c, RUNNER_C)
        .map_err(|e| CompileError::Tool(format!("{}: error: {e}", runner_c.display())))?;
    std::fs::write(&header, RUNTIME_H)
        .map_err(|e| CompileError::Tool(format!("{}: error: {e}", header.display())))?;
    let compiler = match target.kind {
        Target2::Host => "cc",
        Target2::Aarch64LinuxGnu => "aarch64-linux-gnu-gcc",
    };
    let output = tool_output(
        Command::new(compiler)
            .arg("-O2")
            .arg("-I")
            .arg(work)
            .arg(&runner_c)
            .arg(object)
            .arg(runtime.join("libgrim_runtime.a"))
            .args(["-lpthread", "-ldl", "-lm", "-o"])
            .arg(exe),
        compiler,
    )?;
    if !output.status.success() {
        return Err(CompileError::Tool(format!(
            "error: linking with {compiler} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(())
}

/// The aarch64 sysroot qemu needs (`-L`).
pub const AARCH64_SYSROOT: &str = "/usr/aarch64-linux-gnu";

/// The raw little-endian file of input `index` in a runner's directory.
pub fn input_file(index: usize) -> String {
    format!("in{index}.raw")
}

/// The raw file the runner writes output `index` to.
pub fn output_file(index: usize) -> String {
    format!("out{index}.raw")
}

/// Runs a linked runner on `inputs`; returns the outputs (sizes from `output_shapes`)
/// and what it printed on stdout.
pub fn run_runner(
    target: &TargetSpec,
    exe: &Path,
    work: &Path,
    inputs: &[Tensor],
    output_shapes: &[Vec<usize>],
    threads: usize,
    repeat: usize,
) -> Result<(Vec<Tensor>, String), CompileError> {
    let mut command = match target.kind {
        Target2::Host => Command::new(exe),
        Target2::Aarch64LinuxGnu => {
            let mut command = Command::new("qemu-aarch64");
            command.arg("-L").arg(AARCH64_SYSROOT).arg(exe);
            command
        }
    };
    command
        .arg("--threads")
        .arg(threads.to_string())
        .arg("--repeat")
        .arg(repeat.max(1).to_string());
    for (index, tensor) in inputs.iter().enumerate() {
        let path = work.join(input_file(index));
        let bytes: Vec<u8> = tensor.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&path, bytes)
            .map_err(|e| CompileError::Tool(format!("{}: error: {e}", path.display())))?;
        command.arg(path);
    }
    command.arg("--");
    let outputs: Vec<PathBuf> = (0..output_shapes.len())
        .map(|i| work.join(output_file(i)))
        .collect();
    command.args(&outputs);
    let output = tool_output(&mut command, "the model runner")?;
    if !output.status.success() {
        return Err(CompileError::Tool(format!(
            "error: the compiled model failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let mut tensors = Vec::new();
    for (path, shape) in outputs.iter().zip(output_shapes) {
        let bytes = std::fs::read(path)
            .map_err(|e| CompileError::Tool(format!("{}: error: {e}", path.display())))?;
        let data: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensors.push(Tensor::new(shape.clone(), data)?);
    }
    Ok((tensors, String::from_utf8_lossy(&output.stdout).to_string()))
}
