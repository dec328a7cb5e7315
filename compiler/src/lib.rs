//! The grim compiler driver: frontend, pipeline, weight blob, code generation, CLI.
#![deny(missing_docs)]

pub mod opt;
pub mod output;
