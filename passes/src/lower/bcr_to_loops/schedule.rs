//! The outer loops every kernel shares: the attributes that hand a loop to
//! `bcr-parallelize`, and the walk over `bcr-tile`'s N tiles.
//!
//! Both are decided before this pass (the layer's thread cap from the LR
//! file, `bcr-tile`'s `tile_n`); the kernels only have to emit them the
//! same way.

use crate::builder::{Builder, V};

/// The attributes of a product's parallel loop: `grim.parallel`, and the
/// layer's thread cap (`threads`, from the LR file) as `grim.threads`.
pub(super) fn parallel_attrs<'c>(
    b: &Builder<'c>,
    threads: i64,
) -> Vec<(&'static str, melior::ir::Attribute<'c>)> {
    grained_parallel_attrs(b, threads, 1)
}

/// [`parallel_attrs`] with at least `grain` iterations per work item.
pub(super) fn grained_parallel_attrs<'c>(
    b: &Builder<'c>,
    threads: i64,
    grain: i64,
) -> Vec<(&'static str, melior::ir::Attribute<'c>)> {
    let mut attributes = vec![(
        crate::bcr::parallelize::PARALLEL_ATTR,
        melior::ir::Attribute::unit(b.context),
    )];
    let int = |v: i64| melior::ir::attribute::IntegerAttribute::new(b.int_type(64), v).into();
    if threads > 0 {
        attributes.push((crate::bcr::parallelize::THREADS_ATTR, int(threads)));
    }
    if grain > 1 {
        attributes.push((crate::bcr::parallelize::GRAIN_ATTR, int(grain)));
    }
    attributes
}

/// Calls `walk(b, first column, columns)` for each tile of `tile_n` of the
/// `n` output columns (0 = one tile): full tiles in a loop, then the last,
/// shorter one, so every walk knows its width statically.
pub(super) fn n_tiles<'c>(
    b: &Builder<'c>,
    n: i64,
    tile_n: i64,
    walk: impl Fn(&Builder<'c>, V<'c>, i64),
) {
    if tile_n > 0 && tile_n < n {
        let full = n / tile_n * tile_n;
        let (start, end, step) = (b.index(0), b.index(full), b.index(tile_n));
        b.for_loop(start, end, step, &[], |b, n_base, _| {
            walk(b, n_base, tile_n);
            vec![]
        });
        if full < n {
            walk(b, b.index(full), n - full);
        }
    } else {
        walk(b, b.index(0), n);
    }
}
