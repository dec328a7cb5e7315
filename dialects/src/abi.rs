//! The contracts between the lowered model function, the code generator,
//! the weight blob and the runtime, written once: argument positions,
//! function and module attribute names, the blob layout.
//!
//! `lower-grim-to-bcr` produces
//!
//! ```text
//! func.func @grim_<name>_graph(%ctx: !llvm.ptr, %blob: memref<?xi8>, %scratch: memref<?xi8>,
//!                              %in0: memref<..xf32>, ..., %out0: memref<..xf32>, ...)
//!     attributes {llvm.emit_c_interface, grim.scratch_bytes = S, grim.num_slots = T,
//!                 grim.num_inputs = I, grim.num_outputs = O}
//! ```
//!
//! and the code generator wraps it in the C entry points of the generated
//! header; `runtime/include/grim_runtime.h` declares what the generated code
//! calls.

/// Argument 0 of the lowered function: the runtime context (`!llvm.ptr`).
pub const CONTEXT_ARG: usize = 0;
/// Argument 1: the weight blob (`memref<?xi8>`).
pub const BLOB_ARG: usize = 1;
/// Argument 2: the scratch arena (`memref<?xi8>`, [`SCRATCH_BYTES_ATTR`] bytes).
pub const SCRATCH_ARG: usize = 2;
/// Argument 3 on: the caller's input buffers, then its output buffers.
pub const FIRST_BUFFER_ARG: usize = 3;

/// Function attribute: bytes of scratch the model asks the runtime for.
pub const SCRATCH_BYTES_ATTR: &str = "grim.scratch_bytes";
/// Function attribute: slots in the weight blob's table.
pub const NUM_SLOTS_ATTR: &str = "grim.num_slots";
/// Function attribute: caller input buffers.
pub const NUM_INPUTS_ATTR: &str = "grim.num_inputs";
/// Function attribute: caller output buffers.
pub const NUM_OUTPUTS_ATTR: &str = "grim.num_outputs";
/// Function attribute of a profiled model: the layers' names by profile id.
pub const LAYERS_ATTR: &str = "grim.layers";

/// Runtime function called before a profiled layer's code: `(ctx, id)`.
pub const PROFILE_BEGIN: &str = "grim_profile_begin";
/// Runtime function called after a profiled layer's code: `(ctx, id)`.
pub const PROFILE_END: &str = "grim_profile_end";
/// Runtime function the generated code hands parallel loops to.
pub const PARALLEL_FOR: &str = "grim_parallel_for";
/// Runtime function the generated entry point takes its scratch from:
/// `(ctx, bytes) -> void*`.
pub const CONTEXT_SCRATCH: &str = "grim_context_scratch";

/// Module attribute: the target the cost model and the vectoriser read,
/// as the cost model's text form (`"avx2"`, `"neon"`, `"avx512"`).
pub const TARGET_ATTR: &str = "grim.target";
/// Module attribute: the level a module is at (`input`, `graph`, `bcr`, ...),
/// stamped by each named pipeline.
pub const LEVEL_ATTR: &str = "grim.level";

/// Alignment, in bytes, of every scratch buffer and blob array.
pub const ALIGN_BYTES: i64 = 64;

/// The weight blob's layout (little-endian): 8 bytes of [`blob::MAGIC`], a
/// u64 slot count, one `(byte offset: u64, element count: u64)` pair per
/// slot, then the arrays, each [`ALIGN_BYTES`]-aligned. The generated code
/// reads the table at run time, so a blob can be swapped without
/// recompiling.
pub mod blob {
    /// Magic bytes at the start of every blob.
    pub const MAGIC: &[u8; 8] = b"GRIMBLB1";
    /// Bytes before the slot table (magic and slot count).
    pub const HEADER_BYTES: i64 = 16;
    /// Bytes of one slot table entry.
    pub const SLOT_BYTES: i64 = 16;
}
