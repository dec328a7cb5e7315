//! grim-opt: parse, verify, transform and print MLIR with grim's dialects and passes.
//!
//! Like mlir-opt: `grim-opt IN.mlir --pass-pipeline='builtin.module(...)' [-o OUT]`.
//! Our passes and upstream passes mix freely in one pipeline. Errors print as
//! `file:line:col: error: ...` and exit with status 1.

use clap::Parser;
use grim_compiler::opt;
use std::process::ExitCode;

fn main() -> ExitCode {
    // `grim-opt ... | head` ends quietly instead of panicking on EPIPE.
    // SAFETY: restoring a signal's default disposition at startup, before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let args = opt::Args::parse();
    match opt::main(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(1)
        }
    }
}
