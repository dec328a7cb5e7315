//! The grim-opt driver (also used by tests, so it returns errors instead of exiting).

use crate::output::write_atomically;
use grim_dialects::{create_context, diag, verify_module};
use grim_passes::{pipeline, registry};
use melior::ir::Module;
use std::path::PathBuf;

/// Command-line arguments of grim-opt.
#[derive(clap::Parser, Debug)]
#[command(
    name = "grim-opt",
    about = "Parse, verify, transform and print MLIR with grim's dialects and passes"
)]
pub struct Args {
    /// Input .mlir file (`-` for standard input).
    pub input: Option<PathBuf>,
    /// Pass pipeline, e.g. `builtin.module(lower-grim-to-bcr,canonicalize)`.
    #[arg(long = "pass-pipeline")]
    pub pass_pipeline: Option<String>,
    /// Output file (default: standard output). Written only on success.
    #[arg(short = 'o')]
    pub output: Option<PathBuf>,
    /// List every pass with a one-line description and exit.
    #[arg(long = "list-passes")]
    pub list_passes: bool,
    /// Verify the module after every pass (on by default; `--verify-each=false` to skip).
    #[arg(long = "verify-each", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub verify_each: bool,
    /// Treat `// -----` lines as separators: each chunk is processed on its own.
    #[arg(long = "split-input-file")]
    pub split_input_file: bool,
    /// Print per-pass wall time to standard error.
    #[arg(long = "timing")]
    pub timing: bool,
    /// Print weights (resource blobs) in full, so the output is a whole
    /// model; by default they are elided.
    #[arg(long = "print-weights")]
    pub print_weights: bool,
    /// Print every op's location (`loc(...)`: the ONNX node names).
    #[arg(long = "print-debuginfo")]
    pub print_debuginfo: bool,
}

/// Lists our passes, then a note on upstream ones.
pub fn list_passes() -> String {
    let mut out = String::from("grim passes:\n");
    for pass in registry::PASSES {
        out.push_str(&format!("  {:<22} {}\n", pass.flag, pass.summary));
        for option in pass.options {
            out.push_str(&format!("  {:<22}   option: {option}\n", ""));
        }
    }
    out.push_str(
        "\ngrim pipelines (from one level to the next; `grim.level` says where a module is):\n",
    );
    for pipeline in grim_passes::levels::PIPELINES {
        out.push_str(&format!(
            "  {:<22} {} -> {}\n",
            pipeline.name, pipeline.from, pipeline.to
        ));
        for option in pipeline.options {
            out.push_str(&format!("  {:<22}   option: {option}\n", ""));
        }
    }
    out.push_str("\nEvery upstream MLIR pass (canonicalize, cse, convert-scf-to-cf, finalize-memref-to-llvm, ...) is accepted by name in the same pipeline.\n");
    out
}

/// Runs grim-opt; returns the text to print on failure.
pub fn main(args: &Args) -> Result<(), String> {
    if args.list_passes {
        print!("{}", list_passes());
        return Ok(());
    }
    let input = args.input.clone().unwrap_or_else(|| PathBuf::from("-"));
    let elements = match &args.pass_pipeline {
        Some(text) => pipeline::parse(text).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let context = create_context().map_err(|e| format!("error: {e}"))?;
    let text = if input.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| format!("<stdin>: error: {e}"))?;
        Some(text)
    } else {
        None
    };
    let mut outputs = Vec::new();
    let mut failed = Vec::new();
    if args.split_input_file || text.is_some() {
        let source = match text {
            Some(text) => text,
            None => std::fs::read_to_string(&input)
                .map_err(|e| format!("{}: error: cannot read file: {e}", input.display()))?,
        };
        let chunks: Vec<String> = if args.split_input_file {
            split_chunks(&source)
        } else {
            vec![source]
        };
        for chunk in chunks {
            // Parsed from a temporary copy named like the input, padded so line numbers match.
            let result = process_text(&context, &input, &chunk, &elements, args);
            match result {
                Ok(printed) => outputs.push(printed),
                Err(message) => failed.push(message),
            }
        }
    } else {
        let mut module = diag::parse_file(&context, &input)?;
        outputs.push(
            process(&context, &mut module, &elements, args)
                .map_err(|e| name_the_file(&input, e))?,
        );
    }
    if !failed.is_empty() {
        // With split input every chunk is reported, as mlir-opt does.
        print!("{}", outputs.join("// -----\n"));
        return Err(failed.join("\n"));
    }
    let printed = outputs.join("// -----\n");
    match &args.output {
        Some(path) => write_atomically(path, printed.as_bytes()).map_err(|e| format!("error: {e}")),
        None => {
            print!("{printed}");
            Ok(())
        }
    }
}

fn split_chunks(source: &str) -> Vec<String> {
    // Each chunk starts with as many blank lines as precede it in the file,
    // so diagnostics keep the file's line numbers.
    let mut chunks = Vec::new();
    let mut current = String::new();
    for (index, line) in source.lines().enumerate() {
        if line.trim_start().starts_with("// -----") {
            chunks.push(std::mem::take(&mut current));
            current = "\n".repeat(index + 1);
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    chunks.push(current);
    chunks
}

/// Messages without a location (a pipeline for another level, a bad
/// option) still name the file they are about.
fn name_the_file(input: &std::path::Path, text: String) -> String {
    match text.strip_prefix("error: ") {
        Some(rest) if input == std::path::Path::new("-") => format!("<stdin>: error: {rest}"),
        Some(rest) => format!("{}: error: {rest}", input.display()),
        None => text,
    }
}

fn process_text(
    context: &melior::Context,
    input: &std::path::Path,
    text: &str,
    elements: &[pipeline::Element],
    args: &Args,
) -> Result<String, String> {
    let directory = tempfile::tempdir().map_err(|e| format!("error: {e}"))?;
    let name = input
        .file_name()
        .map(|n| n.to_owned())
        .unwrap_or_else(|| "stdin.mlir".into());
    let copy = directory.path().join(name);
    std::fs::write(&copy, text).map_err(|e| format!("error: {e}"))?;
    let mut module = diag::parse_file(context, &copy)
        .map_err(|m| m.replace(&copy.display().to_string(), &input.display().to_string()))?;
    let rename = |text: String| {
        name_the_file(
            input,
            text.replace(&copy.display().to_string(), &input.display().to_string()),
        )
    };
    process(context, &mut module, elements, args)
        .map(rename)
        .map_err(rename)
}

fn process<'c>(
    context: &'c melior::Context,
    module: &mut Module<'c>,
    elements: &[pipeline::Element],
    args: &Args,
) -> Result<String, String> {
    verify_module(context, module).map_err(|e| e.to_string())?;
    let timings =
        pipeline::run(context, module, elements, args.verify_each).map_err(|e| e.to_string())?;
    if args.timing {
        for timing in timings {
            eprintln!(
                "{:>10.3} ms  {}",
                timing.duration.as_secs_f64() * 1e3,
                timing.name
            );
        }
    }
    Ok(grim_dialects::weights::print_module(
        module,
        args.print_weights,
        args.print_debuginfo,
    ))
}
