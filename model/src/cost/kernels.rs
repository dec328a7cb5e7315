//! The per-kernel models behind [`super::estimate_product`] and the pass
//! estimates. Each mirrors the loop nest `lower-bcr-to-loops` emits and the
//! schedule `bcr-lre` / `bcr-tile` give it; the constants copied from those
//! passes say where they come from, so a change there is easy to follow.

use super::{BcrShape, Estimate, Kernel, Product, Target};

/// `bcr-tile`'s default working-set budget per strip and N tile (and per
/// dense activation block): `cache-bytes=262144`.
const TILE_CACHE_BYTES: usize = 262_144;
/// `bcr-tile`'s `DENSE_TILE_K`: reduction depth of a dense K block.
const DENSE_TILE_K: usize = 256;
/// `bcr-tile`'s `DENSE_MIN_N_ITEMS`: N tiles from which dense work items
/// are N tiles over all rows instead of groups of rows.
const DENSE_MIN_N_ITEMS: usize = 4;
/// `bcr-tile`'s `DENSE_MAX_TILE_M`: most rows of a dense work item.
const DENSE_MAX_TILE_M: usize = 128;
/// Exponent of the soft minimum between the FMA pipes' rate and the
/// latency bound: right at the bound a tile runs slower than either alone
/// (the dense 4x2 tile of an N = 16 gemm, 8 accumulators for 2 pipes of
/// 4 cycles, measured well below peak).
const RATE_SOFTNESS: i32 = 4;

/// Work and traffic accumulated over a kernel's loops.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    cycles: f64,
    memory_ns: f64,
    bytes: f64,
    flops: f64,
}

impl Tally {
    /// Charges `bytes` moved to or from the level that holds
    /// `footprint_bytes` (nothing when that is L1).
    fn stream(&mut self, target: &Target, bytes: f64, footprint_bytes: f64) {
        let ns = target.beyond_l1_ns(bytes, footprint_bytes);
        if ns > 0.0 {
            self.memory_ns += ns;
            self.bytes += bytes;
        }
    }

    /// Instructions and traffic that do not overlap: a copy pass's loads
    /// and stores are all of its work.
    fn serial(self, target: &Target) -> Estimate {
        let compute_ns = self.cycles / target.ghz;
        Estimate {
            ns: compute_ns + self.memory_ns,
            compute_ns,
            memory_ns: self.memory_ns,
            flops: self.flops,
            bytes: self.bytes,
        }
    }

    /// Compute and memory partly overlapped, as in the matrix-matrix
    /// kernels: streams hide under the arithmetic only in part (the BCR
    /// kernel's output tile loads are on its critical path), so the longer
    /// of the two plus the calibrated exposed fraction of the shorter.
    fn partly_overlapped(self, target: &Target) -> Estimate {
        let compute_ns = self.cycles / target.ghz;
        let (long, short) = if compute_ns >= self.memory_ns {
            (compute_ns, self.memory_ns)
        } else {
            (self.memory_ns, compute_ns)
        };
        Estimate {
            ns: long + target.calibration.exposed_overlap * short,
            ..self.serial(target)
        }
    }

    /// Streams the hardware prefetches while the core computes: the
    /// matrix-vector kernels' weight panels, elementwise passes.
    fn overlapped(self, target: &Target) -> Estimate {
        let compute_ns = self.cycles / target.ghz;
        Estimate {
            ns: compute_ns.max(self.memory_ns),
            ..self.serial(target)
        }
    }
}

/// FMAs per cycle of a register tile with `accumulators` independent
/// accumulator vectors, `chains` such tiles overlapping: the pipes' rate or
/// the latency bound (each accumulator takes one FMA per latency), softly.
fn fma_rate(target: &Target, accumulators: f64, chains: f64) -> f64 {
    let latency_bound = accumulators * chains / target.fma_latency_cycles;
    (target.fma_per_cycle.powi(-RATE_SOFTNESS) + latency_bound.powi(-RATE_SOFTNESS))
        .powf(-1.0 / RATE_SOFTNESS as f64)
}

/// The output columns one walk covers: `count` segments of `len`
/// contiguous columns each, cut into register chunks independently.
#[derive(Debug, Clone, PartialEq)]
struct Walk {
    /// N tiles: how often a strip walks its blocks (and decodes them).
    tiles: usize,
    /// Columns of the widest tile (its working set).
    widest: usize,
    /// `(len, count)` pairs.
    segments: Vec<(usize, usize)>,
}

impl Walk {
    /// `n` columns in tiles of `tile_n` (0 or >= n: one tile); `row` is the
    /// output-row width of a conv read in place, walked row by row.
    fn new(n: usize, tile_n: usize, row: Option<usize>) -> Walk {
        let tile = if tile_n == 0 || tile_n >= n {
            n
        } else {
            tile_n
        };
        let tiles = n.div_ceil(tile.max(1));
        let segments = match row {
            Some(wo) if wo > 0 => vec![(wo, n / wo), (n % wo, 1)],
            _ => vec![(tile, n / tile.max(1)), (n % tile.max(1), 1)],
        };
        let segments = segments
            .into_iter()
            .filter(|&(len, count)| len > 0 && count > 0);
        Walk {
            tiles,
            widest: tile,
            segments: segments.collect(),
        }
    }

    /// `(full chunks, one-vector tails)` of a segment of `len` columns in
    /// chunks of `vectors x lanes`: the remainder runs as single vectors,
    /// the last one masked.
    fn chunks(len: usize, vectors: usize, lanes: usize) -> (usize, usize) {
        let lanes = lanes.max(1);
        let chunk = vectors.max(1) * lanes;
        let rest = len % chunk;
        (len / chunk, rest / lanes + usize::from(rest % lanes > 0))
    }

    /// Vectors per row over the walk (masked ones count whole).
    fn vectors(&self, vectors: usize, lanes: usize) -> f64 {
        self.segments
            .iter()
            .map(|&(len, count)| {
                let (full, tails) = Walk::chunks(len, vectors, lanes);
                (count * (full * vectors + tails)) as f64
            })
            .sum()
    }

    /// Cycles of FMAs per (row, reduction index) over the walk for a tile
    /// of `rows` rows: full chunks have `rows x vectors` accumulators,
    /// tails `rows`.
    fn fma_cycles(&self, target: &Target, rows: usize, vectors: usize, chains: f64) -> f64 {
        let full_rate = fma_rate(target, (rows * vectors) as f64, chains);
        let tail_rate = fma_rate(target, rows as f64, chains);
        self.segments
            .iter()
            .map(|&(len, count)| {
                let (full, tails) = Walk::chunks(len, vectors, target.lanes);
                count as f64 * ((full * vectors) as f64 / full_rate + tails as f64 / tail_rate)
            })
            .sum()
    }
}

/// `bcr-lre`'s vectors along N for a BCR tile: what fits the registers
/// around `min(block_rows, 4)` rows, a power of two, no more than N fills.
fn spmm_vectors(target: &Target, block_rows: usize, n: usize) -> usize {
    let tile = block_rows.clamp(1, super::SPMM_TILE_ROWS);
    let fit = (target.vector_registers.saturating_sub(1) / (tile + 1)).max(1);
    let mut vectors = 1;
    while vectors * 2 <= fit && vectors * 2 <= 8 {
        vectors *= 2;
    }
    let useful = (n / target.lanes.max(1)).max(1);
    while vectors > 1 && vectors > useful {
        vectors /= 2;
    }
    vectors
}

/// Lanes of a column-panel vector: the widest of the target's, 8, 4, 2, 1
/// that divides the panel height (`panel_lanes` in bcr_to_loops.rs).
fn panel_lanes(lanes: usize, rows: usize) -> usize {
    [lanes, 8, 4, 2, 1]
        .into_iter()
        .find(|&l| l > 0 && l <= lanes.max(1) && rows % l == 0)
        .unwrap_or(1)
}

/// Where a product's activations come from, per image.
#[derive(Debug, Clone, Copy)]
struct Activations {
    /// Bytes of the tensor the kernel reads them from (X, the patch
    /// matrix, the image or its padded copy): which cache level serves them.
    footprint_bytes: f64,
    /// The kernel reads an image in place, output row by output row of
    /// this width (BCR kernels only).
    row: Option<usize>,
    /// The dense kernel gathers patches while packing (implicit im2col:
    /// each value is copied twice, into a line buffer and into the block).
    im2col: bool,
}

/// `bcr.spmm`: strips, blocks in packed order, register tiles of kept rows.
fn spmm(target: &Target, m: usize, n: usize, shape: &BcrShape, x: Activations) -> Tally {
    let cal = &target.calibration;
    let (br, bc) = (shape.block.rows, shape.block.cols);
    let tile_rows = br.clamp(1, super::SPMM_TILE_ROWS);
    let vectors = spmm_vectors(target, br, n);
    let chunk = vectors * target.lanes.max(1);
    let tile_n = TILE_CACHE_BYTES / (4 * (br + bc)).max(1) / chunk * chunk;
    let tile_n = match x.row {
        Some(wo) if tile_n > 0 && wo > 1 => (tile_n / wo).max(1) * wo,
        _ => tile_n,
    };
    let walk = Walk::new(n, tile_n, x.row);
    let tiles = walk.tiles as f64;
    let mut t = Tally {
        flops: 2.0 * (shape.stored_values * n) as f64,
        ..Tally::default()
    };
    let tiled_values = shape.stored_values.saturating_sub(shape.leftover_row_cols) as f64;
    let chains = cal.tiles_in_flight;
    t.cycles += tiled_values * walk.fma_cycles(target, tile_rows, vectors, chains)
        + shape.leftover_row_cols as f64 * walk.fma_cycles(target, 1, vectors, chains);
    t.cycles += tiles
        * ((shape.row_visits + shape.col_visits) as f64 * cal.decode_cycles_per_index
            + shape.blocks as f64 * cal.block_cycles);
    // Each block loads and stores its kept output rows once per chunk; they
    // stay in L1 only while the strip's tile and a block's activations fit.
    let working_set = ((br + bc) * walk.widest * 4) as f64;
    if working_set <= target.l1_bytes as f64 {
        t.cycles += 2.0
            * shape.row_visits as f64
            * walk.vectors(vectors, target.lanes)
            * cal.l1_cycles_per_vector;
    } else {
        t.stream(target, 2.0 * (shape.row_visits * n * 4) as f64, working_set);
    }
    // Blocks of a strip are in different block columns: no reuse of their
    // activation rows inside a strip, they come from wherever X lives.
    t.stream(target, (shape.col_visits * n * 4) as f64, x.footprint_bytes);
    let weight_bytes = (shape.stored_values * 4 + shape.index_bytes()) as f64;
    t.stream(target, weight_bytes, weight_bytes);
    let output_bytes = (m * n * 4) as f64;
    t.stream(target, 2.0 * output_bytes, output_bytes);
    t
}

/// `bcr.spmv` over column panels: a strip's sums stay in registers, one
/// broadcast and `block_rows / lanes` panel FMAs per kept column.
fn spmv(target: &Target, m: usize, k: usize, shape: &BcrShape) -> Tally {
    let br = shape.block.rows;
    let compact = super::compact_panels(target.isa, shape);
    let vectors = (br / panel_lanes(target.lanes, br)).max(1) as f64;
    // Every kept column adds into the same accumulators: one chain per
    // vector; the compact walk keeps four blocks in flight (four chains).
    let chains = if compact { 4.0 } else { 1.0 };
    let per_column = vectors / fma_rate(target, vectors, chains);
    let mut t = Tally {
        cycles: shape.col_visits as f64 * per_column
            + shape.blocks as f64 * target.calibration.spmv_block_cycles,
        flops: 2.0 * shape.stored_values as f64,
        ..Tally::default()
    };
    // Column panels store the block's full height, zeros for pruned rows;
    // compact panels only the kept rows.
    let values = if compact {
        shape.stored_values
    } else {
        shape.col_visits * br
    };
    let panel_bytes = (values * 4 + shape.index_bytes()) as f64;
    t.stream(target, panel_bytes, panel_bytes);
    t.stream(target, (k * 4) as f64, (k * 4) as f64);
    t.stream(target, (2 * m * 4) as f64, (m * 4) as f64);
    t
}

/// `bcr.gemm` with a `[K, N]` input: GotoBLAS-style blocks, row-panel
/// weights, `register_tile x vectors` tiles over K blocks.
fn dense_gemm(target: &Target, m: usize, k: usize, n: usize, x: Activations) -> Tally {
    let cal = &target.calibration;
    let lanes = target.lanes.max(1);
    let rows = if target.vector_registers >= 32 { 8 } else { 4 };
    let fit = (target.vector_registers.saturating_sub(1) / (rows + 1)).clamp(1, 8);
    let vectors = fit.min((n / lanes).max(1));
    let chunk = vectors * lanes;
    let tile_k = k.clamp(1, DENSE_TILE_K);
    let k_blocks = k.div_ceil(tile_k);
    let mut tile_n = (TILE_CACHE_BYTES / (4 * tile_k)).max(chunk) / chunk * chunk;
    if tile_n >= n {
        tile_n = n;
    }
    let mut n_tiles = n.div_ceil(tile_n.max(1));
    if n_tiles >= DENSE_MIN_N_ITEMS {
        // bcr-tile evens the tiles out so the last is not a sliver.
        tile_n = n.div_ceil(n_tiles).div_ceil(chunk) * chunk;
        n_tiles = n.div_ceil(tile_n);
    }
    let tile_m = if n_tiles >= DENSE_MIN_N_ITEMS {
        m.div_ceil(rows) * rows
    } else {
        ((m / 4).div_ceil(rows) * rows).clamp(rows, (DENSE_MAX_TILE_M / rows * rows).max(rows))
    };
    let m_items = m.div_ceil(tile_m);
    let walk = Walk::new(n, tile_n, None);
    let mut t = Tally {
        flops: 2.0 * (m * k * n) as f64,
        ..Tally::default()
    };
    t.cycles += (m * k) as f64 * walk.fma_cycles(target, rows, vectors, 1.0);
    // Each work item packs the activation blocks it multiplies; narrow N is
    // read in place.
    if n > 2 * chunk || x.im2col {
        let packed_values = (k * n * m_items) as f64;
        let copies = if x.im2col { 2.0 } else { 1.0 };
        t.cycles += packed_values * copies * cal.copy_cycles_per_value;
        t.stream(target, packed_values * 4.0, x.footprint_bytes);
    } else {
        t.stream(target, (k * n * 4) as f64, x.footprint_bytes);
    }
    // The C tile is loaded and stored once per K block.
    let c_tile_bytes = (tile_m.min(m) * walk.widest * 4) as f64;
    let c_traffic = (2 * m * n * 4 * k_blocks) as f64;
    if c_tile_bytes <= target.l1_bytes as f64 {
        t.cycles += c_traffic / (4 * lanes) as f64 * cal.l1_cycles_per_vector;
    } else {
        t.stream(target, c_traffic, c_tile_bytes);
    }
    // W streams once per work item that covers all rows (N-tile items).
    let weight_bytes = (m * k * 4) as f64;
    let weight_passes = if m_items == 1 { n_tiles } else { 1 };
    t.stream(target, weight_bytes * weight_passes as f64, weight_bytes);
    let output_bytes = (m * n * 4) as f64;
    t.stream(target, 2.0 * output_bytes, output_bytes);
    t
}

/// The dense matrix-vector product: panels of `lanes x vectors` rows, their
/// sums in registers over all of K.
fn dense_gemv(target: &Target, m: usize, k: usize) -> Tally {
    let lanes = target.lanes.max(1);
    let vectors = 4.min(64 / lanes).min(m.div_ceil(lanes)).max(1);
    let panel_rows = (lanes * vectors).min(64);
    let panels = m.div_ceil(panel_rows);
    let v = vectors as f64;
    let mut t = Tally {
        cycles: (panels * k) as f64 * v / fma_rate(target, v, 1.0),
        flops: 2.0 * (m * k) as f64,
        ..Tally::default()
    };
    // A short last panel is stored (and multiplied) zero-padded.
    let weight_bytes = (panels * panel_rows * k * 4) as f64;
    t.stream(target, weight_bytes, weight_bytes);
    t.stream(target, (k * 4) as f64, (k * 4) as f64);
    t.stream(target, (2 * m * 4) as f64, (m * 4) as f64);
    t
}

/// A copy pass (`bcr.im2col`, a padded copy, a transpose): one copy per
/// value written, plus its reads and writes at their levels.
fn copy_pass(target: &Target, values_written: usize, values_read: usize) -> Estimate {
    let (written, read) = ((values_written * 4) as f64, (values_read * 4) as f64);
    let mut t = Tally {
        cycles: values_written as f64 * target.calibration.copy_cycles_per_value,
        ..Tally::default()
    };
    t.stream(target, written, written);
    t.stream(target, read, read);
    t.serial(target)
}

pub(super) fn transpose(target: &Target, rows: usize, cols: usize) -> Estimate {
    copy_pass(target, rows * cols, rows * cols)
}

pub(super) fn elementwise(
    target: &Target,
    elements: usize,
    inputs_read: usize,
    outputs_written: usize,
    per_element_flops: f64,
) -> Estimate {
    let bytes = (elements * 4 * (inputs_read + outputs_written)) as f64;
    let vector_ops = elements as f64 * per_element_flops.max(0.0) / target.lanes.max(1) as f64;
    let t = Tally {
        cycles: vector_ops / target.fma_per_cycle,
        // A standalone pass pays for its bytes even from L1.
        memory_ns: bytes / target.gbs_for(bytes),
        bytes,
        flops: elements as f64 * per_element_flops.max(0.0),
    };
    t.overlapped(target)
}

pub(super) fn epilogue(
    target: &Target,
    elements: usize,
    extra_inputs_read: usize,
    per_element_flops: f64,
) -> Estimate {
    let bytes = (elements * 4 * extra_inputs_read) as f64;
    let vector_ops = elements as f64 * per_element_flops.max(0.0) / target.lanes.max(1) as f64;
    let t = Tally {
        cycles: vector_ops / target.fma_per_cycle,
        memory_ns: if bytes > 0.0 {
            bytes / target.gbs_for(bytes)
        } else {
            0.0
        },
        bytes,
        flops: elements as f64 * per_element_flops.max(0.0),
    };
    t.serial(target)
}

/// One image's product on `kernel`, without the bias fill.
fn one_product(target: &Target, product: &Product, kernel: &Kernel) -> Estimate {
    let Product { m, k, n, .. } = *product;
    let matrix = Activations {
        footprint_bytes: (k * n * 4) as f64,
        row: None,
        im2col: false,
    };
    match (kernel, product.conv) {
        (Kernel::Dense, _) if n == 1 => dense_gemv(target, m, k).overlapped(target),
        (Kernel::Bcr(shape), _) if n == 1 => spmv(target, m, k, shape).overlapped(target),
        (Kernel::Dense, None) => dense_gemm(target, m, k, n, matrix).partly_overlapped(target),
        (Kernel::Bcr(shape), None) => spmm(target, m, n, shape, matrix).partly_overlapped(target),
        (Kernel::Dense, Some(g)) if g.is_pointwise() => {
            dense_gemm(target, m, k, n, matrix).partly_overlapped(target)
        }
        (Kernel::Dense, Some(g)) => {
            let image = Activations {
                footprint_bytes: (g.image_values() * 4) as f64,
                row: None,
                im2col: true,
            };
            dense_gemm(target, m, k, n, image).partly_overlapped(target)
        }
        (Kernel::Bcr(shape), Some(g)) if g.is_pointwise() => {
            spmm(target, m, n, shape, matrix).partly_overlapped(target)
        }
        (Kernel::Bcr(shape), Some(g)) if g.bcr_reads_in_place() => {
            let padded = g.pads != [0; 4];
            let source = if padded {
                g.padded_values()
            } else {
                g.image_values()
            };
            let image = Activations {
                footprint_bytes: (source * 4) as f64,
                row: Some(g.output[1]),
                im2col: false,
            };
            let pad = if padded {
                copy_pass(target, g.padded_values(), g.image_values())
            } else {
                Estimate::default()
            };
            pad.then(spmm(target, m, n, shape, image).partly_overlapped(target))
        }
        (Kernel::Bcr(shape), Some(g)) => copy_pass(target, k * n, g.image_values())
            .then(spmm(target, m, n, shape, matrix).partly_overlapped(target)),
    }
}

pub(super) fn product(target: &Target, product: &Product, kernel: &Kernel) -> Estimate {
    let Product {
        m, k, n, images, ..
    } = *product;
    if m == 0 || k == 0 || n == 0 || images == 0 {
        return Estimate::default();
    }
    // The output is filled with the bias (or zeros) before the product adds into it.
    let fill = elementwise(target, m * n, 0, 1, 0.0);
    let per_image = fill.then(one_product(target, product, kernel));
    let mut total = per_image.times(images as f64);
    if product.conv.is_none() && n > 1 {
        if product.transpose_input {
            total = total.then(transpose(target, n, k));
        }
        if product.transpose_output {
            total = total.then(transpose(target, m, n));
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::{Isa, BLOCK_CANDIDATES};

    #[test]
    fn walks_cut_chunks_like_the_lowering() {
        // N = 196 in chunks of 16 (2 x 8 lanes): 12 chunks, then a masked 4.
        assert_eq!(Walk::chunks(196, 2, 8), (12, 1));
        // 56-wide output rows: 3 chunks of 16, one vector, nothing masked.
        assert_eq!(Walk::chunks(56, 2, 8), (3, 1));
        assert_eq!(Walk::chunks(20, 2, 8), (1, 1));
        let w = Walk::new(3136, 1024, None);
        assert_eq!((w.tiles, w.widest), (4, 1024));
        assert_eq!(w.segments, vec![(1024, 3), (64, 1)]);
        assert_eq!(w.vectors(2, 8), 392.0);
        // In place: whole output rows, 18 per tile.
        let w = Walk::new(3136, 1008, Some(56));
        assert_eq!((w.tiles, w.segments.clone()), (4, vec![(56, 56)]));
        assert_eq!(Walk::new(16, 0, None).segments, vec![(16, 1)]);
    }

    #[test]
    fn schedules_follow_bcr_lre() {
        let avx2 = Target::for_isa(Isa::Avx2);
        let neon = Target::for_isa(Isa::Neon);
        // bcr-lre: 4 rows x 2 vectors on 16 registers, x 4 on 32.
        assert_eq!(spmm_vectors(&avx2, 8, 3136), 2);
        assert_eq!(spmm_vectors(&neon, 8, 3136), 4);
        assert_eq!(spmm_vectors(&avx2, 8, 8), 1);
        assert_eq!(panel_lanes(8, 4), 4);
        assert_eq!(panel_lanes(8, 32), 8);
        assert_eq!(panel_lanes(4, 6), 2);
        for block in BLOCK_CANDIDATES {
            assert!(spmm_vectors(&avx2, block.rows, 64) >= 1);
        }
    }

    #[test]
    fn fma_rate_is_bounded_by_pipes_and_latency() {
        let t = Target::for_isa(Isa::Avx2);
        // One accumulator: one FMA per latency.
        assert!((fma_rate(&t, 1.0, 1.0) - 0.25).abs() < 0.01);
        // Many: the two pipes.
        assert!((fma_rate(&t, 64.0, 1.0) - 2.0).abs() < 0.01);
        // Right at the bound: below both.
        let at = fma_rate(&t, 8.0, 1.0);
        assert!(at < 1.8 && at > 1.5, "{at}");
    }
}
