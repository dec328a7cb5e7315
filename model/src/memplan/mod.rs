//! Arena memory planning for a compiled function.
//!
//! The compiled model receives one scratch arena from the runtime; every
//! intermediate tensor and every kernel temporary (im2col patches, padded image
//! copies, transposed gemm operands) lives at a byte offset in it. Summing all
//! of them (a bump allocator) wastes most of that memory, because a typical CNN
//! needs only a handful of tensors at any one time. This module computes
//! liveness over the op order, lets an op write its output over a dead input
//! where the op declared that legal, and packs the remaining buffers into as
//! few bytes as a greedy-by-size heuristic finds (the scheme of TFLite's arena
//! planner).
//!
//! It knows nothing about MLIR: the compiler describes a function as a
//! [`Problem`] (values with sizes, steps in execution order), calls [`plan`],
//! and writes the offsets of the resulting [`Plan`] onto its ops. [`check`] is
//! an independent verifier of a plan, written separately from the planner so
//! that a bug in the planner's liveness or packing is not mirrored by the
//! checker.

mod check;
mod plan;
#[cfg(test)]
mod tests;

pub use check::check;
pub use plan::{dataflow_graph, plan};

use std::fmt;
use std::ops::Range;

/// Index of a value in [`Problem::values`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ValueId(pub usize);

/// Index of a step in [`Problem::steps`], which is also its position in the
/// execution order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StepId(pub usize);

/// Where a value's bytes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// An intermediate tensor the planner places in the arena.
    Arena,
    /// A caller-provided buffer (model input or output) or a weight: never
    /// planned and never reused, since the arena does not own it.
    External,
    /// A view (e.g. a reshape) sharing the bytes of another value. Its uses
    /// extend the life of the aliased buffer; chains of aliases are followed
    /// to their root.
    AliasOf(ValueId),
    /// A part of another value's buffer, `offset_bytes` into it, that a
    /// step writes before the value itself is defined: an operand of a
    /// concat computed straight into the concat's result, which then has
    /// nothing to copy. The result's buffer lives from the first write of
    /// any of its slices; chains (a concat of concats) are followed to
    /// their root, adding the offsets.
    SliceOf {
        /// The value whose buffer holds this one.
        of: ValueId,
        /// Where in that buffer.
        offset_bytes: u64,
    },
}

impl Placement {
    /// The value this one is a view or slice of, and the byte offset in it.
    pub fn view(self) -> Option<(ValueId, u64)> {
        match self {
            Placement::AliasOf(target) => Some((target, 0)),
            Placement::SliceOf { of, offset_bytes } => Some((of, offset_bytes)),
            Placement::Arena | Placement::External => None,
        }
    }
}

/// A tensor (or view) the function computes or receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    /// Name used in error messages.
    pub name: String,
    /// Size of the value's storage.
    pub bytes: u64,
    /// Where the value lives.
    pub placement: Placement,
}

/// A declaration by the op kind that `output` may be written into `input`'s
/// buffer. Whether it actually happens is the planner's decision: only when
/// `input`'s buffer is dead after the step and `output` fits into `input`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InPlace {
    /// A value the step writes.
    pub output: ValueId,
    /// A value the step reads.
    pub input: ValueId,
}

/// One op of the function, in execution order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    /// Op or node name used in error messages.
    pub name: String,
    /// Values the op reads (duplicates are harmless).
    pub reads: Vec<ValueId>,
    /// Values the op defines; each value is written by at most one step.
    pub writes: Vec<ValueId>,
    /// Sizes of scratch buffers the op needs only while it runs.
    pub temporary_bytes: Vec<u64>,
    /// In-place candidates the op kind allows.
    pub in_place: Vec<InPlace>,
}

/// The input of the planner: a function's values and its steps in a valid
/// execution order.
///
/// Values written by no step (model inputs, weights) must be
/// [`Placement::External`], or aliases; an alias written by no step exists as
/// soon as the value it views does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problem {
    /// All values, indexed by [`ValueId`].
    pub values: Vec<Value>,
    /// All steps in execution order, indexed by [`StepId`].
    pub steps: Vec<Step>,
}

impl Problem {
    /// An empty problem.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a value and returns its id.
    pub fn add_value(
        &mut self,
        name: impl Into<String>,
        bytes: u64,
        placement: Placement,
    ) -> ValueId {
        self.values.push(Value {
            name: name.into(),
            bytes,
            placement,
        });
        ValueId(self.values.len() - 1)
    }

    /// Appends a step (executed after all steps added before it) and returns
    /// its id.
    pub fn add_step(&mut self, step: Step) -> StepId {
        self.steps.push(step);
        StepId(self.steps.len() - 1)
    }

    /// The name of a value for messages; unnamed values get `#index` so the
    /// message still points somewhere.
    fn value_label(&self, value: ValueId) -> String {
        match self.values.get(value.0) {
            Some(v) if !v.name.is_empty() => v.name.clone(),
            _ => format!("#{}", value.0),
        }
    }

    /// The name of a step for messages, `#index` when unnamed.
    fn step_label(&self, step: usize) -> String {
        match self.steps.get(step) {
            Some(s) if !s.name.is_empty() => s.name.clone(),
            _ => format!("#{step}"),
        }
    }
}

/// How to plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Reuse memory (in-place merges and interval packing). Without it, every
    /// buffer and temporary gets its own region, which is the reference the
    /// packed plan is tested against.
    pub reuse: bool,
    /// Every offset is a multiple of this; must be positive.
    pub alignment_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        // 64 bytes: a cache line, and enough for the widest vector loads.
        Self {
            reuse: true,
            alignment_bytes: 64,
        }
    }
}

/// An inclusive range of steps during which a buffer must keep its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    /// The step that defines the buffer.
    pub first_step: StepId,
    /// The last step that reads the buffer or one of its aliases (the
    /// defining step if nothing reads it later).
    pub last_step: StepId,
}

/// An in-place merge the planner performed: `output` is written into the
/// buffer of `input` by `step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InPlaceMerge {
    /// The step that writes `output` over `input`.
    pub step: StepId,
    /// The value written.
    pub output: ValueId,
    /// The value whose (dead after `step`) buffer is reused.
    pub input: ValueId,
}

/// The result of [`plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The alignment every offset honours (from [`Options`]).
    pub alignment_bytes: u64,
    /// Arena offset per value: `Some` for arena values and aliases of them
    /// (an alias gets its root's offset), `None` for external values and
    /// aliases of them.
    pub value_offset_bytes: Vec<Option<u64>>,
    /// Arena offsets of each step's temporaries, parallel to
    /// [`Step::temporary_bytes`].
    pub temporary_offset_bytes: Vec<Vec<u64>>,
    /// Bytes the arena must have: the end of the highest region, rounded up
    /// to the alignment so that packing never loses to bump allocation by
    /// padding.
    pub arena_bytes: u64,
    /// The in-place merges performed, in step order.
    pub in_place: Vec<InPlaceMerge>,
    /// Liveness per value of its buffer before in-place merges (aliases
    /// folded into their root, which they report too); `None` for external
    /// values.
    pub intervals: Vec<Option<Interval>>,
    /// Sum of the sizes of all arena values (aliases and temporaries not
    /// counted): what a bump allocator without temporaries would need.
    pub sum_bytes: u64,
    /// Size of the largest arena value.
    pub largest_bytes: u64,
}

impl Plan {
    /// Arena offset of a value, `None` for external values (and ids out of
    /// range).
    pub fn offset_bytes(&self, value: ValueId) -> Option<u64> {
        self.value_offset_bytes.get(value.0).copied().flatten()
    }
}

/// Something that occupies arena bytes, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// A value (by name).
    Value(String),
    /// The `index`-th temporary of a step (by name).
    Temporary {
        /// The step owning the temporary.
        step: String,
        /// Position in [`Step::temporary_bytes`].
        index: usize,
    },
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Slot::Value(name) => write!(f, "value '{name}'"),
            Slot::Temporary { step, index } => write!(f, "temporary #{index} of step '{step}'"),
        }
    }
}

/// Everything that can be wrong with a [`Problem`] or a [`Plan`].
///
/// The first group of variants describes malformed problems (reported by both
/// [`plan`] and [`check`]); the rest are violations found by [`check`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A step refers to a value id outside [`Problem::values`].
    #[error("step '{step}' refers to value #{index}, but there are only {count} values")]
    UnknownValue {
        /// The step.
        step: String,
        /// The bad id.
        index: usize,
        /// Number of values.
        count: usize,
    },
    /// An alias points at a value id outside [`Problem::values`].
    #[error("value '{value}' aliases value #{index}, but there are only {count} values")]
    UnknownAliasTarget {
        /// The alias.
        value: String,
        /// The bad id.
        index: usize,
        /// Number of values.
        count: usize,
    },
    /// Following `AliasOf` from this value never reaches a non-alias.
    #[error("value '{value}' is part of an alias cycle")]
    AliasCycle {
        /// A value on the cycle.
        value: String,
    },
    /// A view claims more bytes than the buffer it views (a slice: its
    /// offset plus its size).
    #[error(
        "alias '{value}' (ending at byte {bytes}) is larger than its root '{root}' ({root_bytes} bytes)"
    )]
    AliasLargerThanRoot {
        /// The alias.
        value: String,
        /// Its size plus its offset in the root.
        bytes: u64,
        /// The buffer it ultimately views.
        root: String,
        /// The root's size.
        root_bytes: u64,
    },
    /// Two writes of one value (possibly by the same step).
    #[error("value '{value}' is written by step '{first_step}' and again by step '{second_step}'")]
    DefinedTwice {
        /// The value.
        value: String,
        /// The first writer.
        first_step: String,
        /// The second writer.
        second_step: String,
    },
    /// A step reads a value that is only defined by itself or a later step:
    /// the given order is not a topological order.
    #[error("step '{step}' reads '{value}', which is only defined later, by step '{defined_by}'")]
    ReadBeforeDefinition {
        /// The reading step.
        step: String,
        /// The value read.
        value: String,
        /// The step defining it.
        defined_by: String,
    },
    /// A step reads an arena value that no step defines.
    #[error("step '{step}' reads '{value}', which no step defines and which is not external")]
    NeverDefined {
        /// The reading step.
        step: String,
        /// The value read.
        value: String,
    },
    /// An arena value that no step writes (values defined by no step must be
    /// external).
    #[error("arena value '{value}' is written by no step")]
    ArenaValueUndefined {
        /// The value.
        value: String,
    },
    /// A slice is written by the step that defines the value it is part
    /// of, or after it: that value was complete without it.
    #[error("step '{step}' writes slice '{value}' after '{target}' is defined by step '{target_defined_by}'")]
    SliceAfterTarget {
        /// The step writing the slice.
        step: String,
        /// The slice.
        value: String,
        /// The value it is part of.
        target: String,
        /// The step defining that value.
        target_defined_by: String,
    },
    /// A step writes a view before the value it views exists.
    #[error("step '{step}' writes alias '{value}' before '{target}' is defined by step '{target_defined_by}'")]
    AliasBeforeTarget {
        /// The step writing the alias.
        step: String,
        /// The alias.
        value: String,
        /// The value it views.
        target: String,
        /// The step defining `target` (or the view it is itself made from).
        target_defined_by: String,
    },
    /// An in-place declaration that does not fit its step.
    #[error("step '{step}' declares '{output}' in place of '{input}', but {reason}")]
    InvalidInPlace {
        /// The step.
        step: String,
        /// The declared output.
        output: String,
        /// The declared input.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// [`Options::alignment_bytes`] (or [`Plan::alignment_bytes`]) is zero.
    #[error("alignment must be a positive number of bytes")]
    ZeroAlignment,
    /// Offsets or sizes exceed `u64`.
    #[error("the arena size overflows 64 bits at {slot}")]
    ArenaOverflow {
        /// The region being placed.
        slot: Slot,
    },
    /// A plan's tables do not match the problem's shape.
    #[error("the plan has {found} {what}, the problem {expected}")]
    PlanShape {
        /// Which table.
        what: String,
        /// Length the problem implies.
        expected: usize,
        /// Length found in the plan.
        found: usize,
    },
    /// An arena value (or alias of one) has no offset.
    #[error("{slot} has no arena offset")]
    MissingOffset {
        /// The value.
        slot: Slot,
    },
    /// An external value (or alias of one) was given an arena offset.
    #[error("external {slot} was given arena offset {offset_bytes}")]
    ExternalPlaced {
        /// The value.
        slot: Slot,
        /// The offset it got.
        offset_bytes: u64,
    },
    /// An alias is not at its root's offset.
    #[error(
        "alias '{value}' is at offset {offset_bytes}, where its root '{root}' puts it at {root_offset_bytes}"
    )]
    AliasOffsetMismatch {
        /// The alias.
        value: String,
        /// The alias's offset.
        offset_bytes: u64,
        /// The root.
        root: String,
        /// Where the root puts the alias: the root's offset (plus the
        /// slice's offset in it).
        root_offset_bytes: u64,
    },
    /// An offset is not a multiple of the plan's alignment.
    #[error("{slot} at offset {offset_bytes} is not aligned to {alignment_bytes} bytes")]
    Misaligned {
        /// The misplaced region.
        slot: Slot,
        /// Its offset.
        offset_bytes: u64,
        /// The required alignment.
        alignment_bytes: u64,
    },
    /// A region extends past the arena.
    #[error("{slot} occupies bytes {range:?}, outside the {arena_bytes}-byte arena")]
    OutsideArena {
        /// The region.
        slot: Slot,
        /// Its bytes (end may be clamped at `u64::MAX`).
        range: Range<u64>,
        /// The arena size.
        arena_bytes: u64,
    },
    /// Two regions live at the same step share bytes.
    #[error("at step '{step}', {first} (bytes {first_range:?}) overlaps {second} (bytes {second_range:?})")]
    Overlap {
        /// A step at which both are live.
        step: String,
        /// One region.
        first: Slot,
        /// Its bytes.
        first_range: Range<u64>,
        /// The other region.
        second: Slot,
        /// Its bytes.
        second_range: Range<u64>,
    },
    /// A merge listed in [`Plan::in_place`] that is not legal.
    #[error("the plan writes '{output}' in place of '{input}' at step '{step}', but {reason}")]
    BadInPlace {
        /// The step.
        step: String,
        /// The output.
        output: String,
        /// The input.
        input: String,
        /// Why the merge is illegal.
        reason: String,
    },
}

/// Rounds `bytes` up to a multiple of `alignment_bytes` (positive); `None` on
/// overflow.
fn align_up(bytes: u64, alignment_bytes: u64) -> Option<u64> {
    let rem = bytes % alignment_bytes;
    if rem == 0 {
        Some(bytes)
    } else {
        bytes.checked_add(alignment_bytes - rem)
    }
}
