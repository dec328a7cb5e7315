//! Per-layer wall-clock accounting for `grimc bench --per-layer`.
//!
//! The whole-run time printed by the runner says how fast a model is, not
//! where the time goes; to compare block sizes or kernels per layer, the
//! benchmark needs each layer's share. Timing inside the runtime (rather
//! than in generated code) keeps the emitted code to two calls per layer
//! and keeps the clock and the bookkeeping in one place that is tested.
//!
//! The compiler emits the calls only when asked to, and always from the
//! thread that called the model's run function, so one uncontended lock per
//! call is the whole synchronisation cost.

use std::time::Instant;

/// Number of layer slots a [`Profile`] keeps: indices `0..MAX_LAYERS` are
/// recorded, anything else is ignored. The cap bounds the memory a stray
/// index can make the table grow to (about 2 MiB at most).
pub const MAX_LAYERS: usize = 1 << 16;

#[derive(Clone, Copy, Default)]
struct Slot {
    open: Option<Instant>,
    ns: u64,
    calls: u64,
}

/// Time spent per layer index: the start of the currently open interval,
/// the accumulated nanoseconds of completed intervals and their count.
#[derive(Default)]
pub struct Profile {
    slots: Vec<Slot>,
}

impl Profile {
    /// An empty profile; nothing is allocated until the first `begin`.
    pub const fn new() -> Profile {
        Profile { slots: Vec::new() }
    }

    /// Maps a C layer index to a slot index, or None when out of range.
    fn index(layer: i64) -> Option<usize> {
        usize::try_from(layer).ok().filter(|&i| i < MAX_LAYERS)
    }

    fn slot(&self, layer: i64) -> Option<&Slot> {
        self.slots.get(Self::index(layer)?)
    }

    /// Opens an interval for `layer` starting at `at`. An interval already
    /// open for it is discarded: its end was never reported (the previous
    /// run bailed out mid-layer), so it has no duration worth keeping.
    pub fn begin(&mut self, layer: i64, at: Instant) {
        let Some(i) = Self::index(layer) else { return };
        if i >= self.slots.len() {
            self.slots.resize(i + 1, Slot::default());
        }
        self.slots[i].open = Some(at);
    }

    /// Closes the open interval of `layer` at `at` and adds its duration.
    /// Without an open interval (or for an out-of-range index) this does
    /// nothing, so a stray `end` can never count a bogus duration.
    pub fn end(&mut self, layer: i64, at: Instant) {
        let Some(slot) = Self::index(layer).and_then(|i| self.slots.get_mut(i)) else {
            return;
        };
        let Some(start) = slot.open.take() else {
            return;
        };
        let ns = at.saturating_duration_since(start).as_nanos();
        slot.ns = slot
            .ns
            .saturating_add(u64::try_from(ns).unwrap_or(u64::MAX));
        slot.calls = slot.calls.saturating_add(1);
    }

    /// Number of layer slots: the highest index passed to `begin` plus one,
    /// or 0 if none was.
    pub fn layers(&self) -> usize {
        self.slots.len()
    }

    /// Accumulated nanoseconds of the completed intervals of `layer`.
    pub fn ns(&self, layer: i64) -> u64 {
        self.slot(layer).map_or(0, |s| s.ns)
    }

    /// Number of completed begin/end pairs of `layer`.
    pub fn calls(&self, layer: i64) -> u64 {
        self.slot(layer).map_or(0, |s| s.calls)
    }

    /// Forgets everything, open intervals included.
    pub fn reset(&mut self) {
        // `clear` keeps the capacity, so the timed runs after a reset do
        // not pay for regrowing the table.
        self.slots.clear();
    }
}
