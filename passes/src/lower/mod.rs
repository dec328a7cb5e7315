//! Lowerings between levels: grim (tensors) to bcr (memrefs), bcr to loops.

pub mod bcr_to_loops;
pub mod grim_to_bcr;
pub mod im2col;
