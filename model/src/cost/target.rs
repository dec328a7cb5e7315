//! The machine a cost estimate is for: [`Isa`], [`Target`] and the fitted
//! [`Calibration`], with the compact text form the compiler puts on a module.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The vector instruction set the compiled code uses; it fixes the f32
/// lanes and the register file `bcr-lre` plans register tiles for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isa {
    /// AArch64 Advanced SIMD: 4 f32 lanes, 32 vector registers.
    Neon,
    /// x86-64 AVX2 with FMA: 8 f32 lanes, 16 vector registers.
    Avx2,
    /// x86-64 AVX-512F: 16 f32 lanes, 32 vector registers.
    Avx512,
}

impl Isa {
    /// Every ISA, in the order the text form lists them.
    pub const ALL: [Isa; 3] = [Isa::Neon, Isa::Avx2, Isa::Avx512];

    /// The name used in the text form (`neon`, `avx2`, `avx512`).
    pub fn name(self) -> &'static str {
        match self {
            Isa::Neon => "neon",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Isa {
    type Err = TargetError;

    /// Parses `neon`, `avx2` or `avx512` (any case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        Isa::ALL
            .into_iter()
            .find(|isa| isa.name() == wanted)
            .ok_or_else(|| TargetError {
                text: s.to_string(),
                message: "unknown ISA: expected neon, avx2 or avx512".to_string(),
            })
    }
}

/// A malformed target text such as `avx3` or `avx2,ghz=fast`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid cost-model target '{text}': {message}")]
pub struct TargetError {
    /// The text that failed to parse.
    pub text: String,
    /// What is wrong with it.
    pub message: String,
}

/// The coefficients of the cost model that are not properties of the data
/// sheet: what the generated loops cost beyond their multiply-adds, fitted
/// to the single-thread measurements in `docs/benchmarks/kernels.json`
/// (docs/cost-model.md lists the fit and how to redo it).
///
/// They are in cycles, so they carry over to other targets to the extent
/// that the loops compile to similar instruction mixes there; only the
/// AVX2 (Zen 3) figures are measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Register tiles of the BCR kernel whose multiply-add chains the core
    /// overlaps (out-of-order execution across output chunks and rows).
    /// With `a` accumulators a tile alone sustains `a / fma_latency` FMAs
    /// per cycle; with this many tiles in flight, `tiles_in_flight` times that.
    pub tiles_in_flight: f64,
    /// Cycles per kept row or column to decode a block's masks into index
    /// lists (`cttz` loop), paid once per block and N tile.
    pub decode_cycles_per_index: f64,
    /// Cycles per stored block and N tile of the BCR matrix-matrix kernel
    /// beyond decoding: loop setup, reading the block column and offsets.
    pub block_cycles: f64,
    /// Cycles per stored block of the BCR matrix-vector kernel (column
    /// panels) that its FMA latency chain does not hide.
    pub spmv_block_cycles: f64,
    /// Cycles per output vector loaded or stored by the BCR kernel when the
    /// strip's output tile stays in L1 (N small enough).
    pub l1_cycles_per_vector: f64,
    /// Cycles per f32 copied by packing, im2col and transposes.
    pub copy_cycles_per_value: f64,
    /// Of the shorter of a matrix-matrix kernel's compute and memory times,
    /// the fraction that does not overlap the longer one (0: the core
    /// streams entirely behind its arithmetic, 1: they take turns).
    pub exposed_overlap: f64,
}

impl Calibration {
    /// The fitted coefficients: Nelder-Mead on the squared log error of
    /// every single-thread `grim-bcr`, `grim-dense`, `grim-conv-bcr` and
    /// `grim-conv-dense` row of docs/benchmarks/kernels.json (run of
    /// 2026-11-26, tree 2769cf0, AMD EPYC Zen 3, AVX2+FMA) and the seven
    /// fill-1 BCR rows of the run at 36570c7 (model/tests/cost_model.rs,
    /// `FILL_ONE_8X16_MS`), by
    /// `cargo test -p grim-model --test cost_model -- --ignored refit`.
    pub const FITTED: Calibration = Calibration {
        tiles_in_flight: 1.869,
        decode_cycles_per_index: 1.786,
        block_cycles: 6.985,
        spmv_block_cycles: 2.418,
        l1_cycles_per_vector: 0.521,
        copy_cycles_per_value: 1.048,
        exposed_overlap: 0.656,
    };

    /// The coefficients as a vector, in field order (for fitting).
    pub fn to_vec(&self) -> Vec<f64> {
        vec![
            self.tiles_in_flight,
            self.decode_cycles_per_index,
            self.block_cycles,
            self.spmv_block_cycles,
            self.l1_cycles_per_vector,
            self.copy_cycles_per_value,
            self.exposed_overlap,
        ]
    }

    /// The inverse of [`Calibration::to_vec`]; `None` unless `values` has
    /// one entry per field.
    pub fn from_slice(values: &[f64]) -> Option<Calibration> {
        let &[tiles_in_flight, decode_cycles_per_index, block_cycles, spmv_block_cycles, l1_cycles_per_vector, copy_cycles_per_value, exposed_overlap] =
            values
        else {
            return None;
        };
        Some(Calibration {
            tiles_in_flight,
            decode_cycles_per_index,
            block_cycles,
            spmv_block_cycles,
            l1_cycles_per_vector,

            copy_cycles_per_value,
            exposed_overlap,
        })
    }

    /// Field names in [`Calibration::to_vec`] order.
    pub const NAMES: [&'static str; 7] = [
        "tiles_in_flight",
        "decode_cycles_per_index",
        "block_cycles",
        "spmv_block_cycles",
        "l1_cycles_per_vector",
        "copy_cycles_per_value",
        "exposed_overlap",
    ];
}

impl Default for Calibration {
    fn default() -> Self {
        Calibration::FITTED
    }
}

/// One core of the machine the compiled code runs on, as the cost model
/// sees it. Estimates are for one core: the model does not divide work
/// over threads.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// Vector instruction set.
    pub isa: Isa,
    /// f32 lanes per vector register.
    pub lanes: usize,
    /// Architectural vector registers (what `bcr-lre` plans tiles for).
    pub vector_registers: usize,
    /// Vector FMAs the core can issue per cycle.
    pub fma_per_cycle: f64,
    /// Cycles from an FMA's issue to its result being usable by the next
    /// FMA on the same accumulator.
    pub fma_latency_cycles: f64,
    /// Clock in GHz used to turn cycles into nanoseconds: the clock the
    /// core sustains under vector load, not necessarily the nominal one.
    pub ghz: f64,
    /// L1 data cache bytes.
    pub l1_bytes: usize,
    /// L2 cache bytes (private to the core).
    pub l2_bytes: usize,
    /// Last-level cache bytes one core can use.
    pub l3_bytes: usize,
    /// Sustained L2 -> core bandwidth, GB/s (= bytes per ns).
    pub l2_gbs: f64,
    /// Sustained last-level cache -> core bandwidth, GB/s.
    pub l3_gbs: f64,
    /// Sustained DRAM -> core bandwidth of one core, GB/s.
    pub dram_gbs: f64,
    /// The fitted loop coefficients; not part of the text form.
    #[serde(default)]
    pub calibration: Calibration,
}

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

impl Target {
    /// A typical core for `isa` (docs/cost-model.md, "Targets"):
    ///
    /// * `Avx2`: the AMD EPYC Zen 3 core the benchmarks ran on. 2 FMA pipes
    ///   of 4 cycles latency (AMD's Zen 3 optimisation guide); 3.2 GHz is
    ///   the clock the measured FMA peak implies (102.3 GFLOP/s on one
    ///   thread = 2 x 8 lanes x 2 flops x 3.2 GHz), the nominal 2.45 GHz of
    ///   `/proc/cpuinfo` understates it. Caches 32 KiB / 512 KiB / 32 MiB
    ///   (`lscpu`). L2: 32 bytes per cycle. Last-level cache: 56 GB/s,
    ///   measured (grim's dense matrix-vector product streams its 12.6 MB
    ///   weight in 0.225 ms). DRAM: 20 GB/s, a typical single-core Zen 3
    ///   stream figure, not measured here.
    /// * `Neon`: an Arm Cortex-A76 at 2.4 GHz (Raspberry Pi 5 class): two
    ///   128-bit FMA pipes of 4 cycles latency (Arm's A76 optimisation
    ///   guide), 64 KiB L1, 512 KiB L2, 2 MiB shared L3; 16 bytes per cycle
    ///   from L2, 25 GB/s from L3, 10 GB/s from DRAM (typical, not measured).
    /// * `Avx512`: a Skylake-X / Cascade Lake server core with two 512-bit
    ///   FMA units at a 2.8 GHz AVX-512 clock, 4 cycles latency (Intel's
    ///   optimisation manual), 32 KiB L1, 1 MiB L2, 22 MiB of L3 (16 cores
    ///   x 1.375 MiB); 64 bytes per cycle from L2, 25 GB/s from L3 and
    ///   12 GB/s from DRAM for one core (typical mesh figures, not measured).
    pub fn for_isa(isa: Isa) -> Target {
        match isa {
            Isa::Avx2 => Target {
                isa,
                lanes: 8,
                vector_registers: 16,
                fma_per_cycle: 2.0,
                fma_latency_cycles: 4.0,
                ghz: 3.2,
                l1_bytes: 32 * KIB,
                l2_bytes: 512 * KIB,
                l3_bytes: 32 * MIB,
                l2_gbs: 32.0 * 3.2,
                l3_gbs: 56.0,
                dram_gbs: 20.0,
                calibration: Calibration::FITTED,
            },
            Isa::Neon => Target {
                isa,
                lanes: 4,
                vector_registers: 32,
                fma_per_cycle: 2.0,
                fma_latency_cycles: 4.0,
                ghz: 2.4,
                l1_bytes: 64 * KIB,
                l2_bytes: 512 * KIB,
                l3_bytes: 2 * MIB,
                l2_gbs: 16.0 * 2.4,
                l3_gbs: 25.0,
                dram_gbs: 10.0,
                calibration: Calibration::FITTED,
            },
            Isa::Avx512 => Target {
                isa,
                lanes: 16,
                vector_registers: 32,
                fma_per_cycle: 2.0,
                fma_latency_cycles: 4.0,
                ghz: 2.8,
                l1_bytes: 32 * KIB,
                l2_bytes: MIB,
                l3_bytes: 22 * MIB,
                l2_gbs: 64.0 * 2.8,
                l3_gbs: 25.0,
                dram_gbs: 12.0,
                calibration: Calibration::FITTED,
            },
        }
    }

    /// Parses the text form: an ISA name, optionally followed by
    /// `,key=value` overrides of the fields of [`Target::for_isa`], e.g.
    /// `avx2` or `avx2,ghz=2.45,l3_bytes=16777216`. Keys are the field
    /// names (`lanes`, `vector_registers`, `fma_per_cycle`,
    /// `fma_latency_cycles`, `ghz`, `l1_bytes`, `l2_bytes`, `l3_bytes`,
    /// `l2_gbs`, `l3_gbs`, `dram_gbs`); the calibration is always the
    /// fitted one.
    pub fn parse(text: &str) -> Result<Target, TargetError> {
        let err = |message: String| TargetError {
            text: text.to_string(),
            message,
        };
        let mut parts = text.split(',');
        let isa: Isa = parts
            .next()
            .unwrap_or_default()
            .parse()
            .map_err(|e: TargetError| err(e.message))?;
        let mut target = Target::for_isa(isa);
        for part in parts {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| err(format!("expected key=value, got '{part}'")))?;
            let (key, value) = (key.trim(), value.trim());
            let whole = || -> Result<usize, TargetError> {
                match value.parse::<usize>() {
                    Ok(v) if v > 0 => Ok(v),
                    _ => Err(err(format!(
                        "{key} must be a positive integer, got '{value}'"
                    ))),
                }
            };
            let real = || -> Result<f64, TargetError> {
                match value.parse::<f64>() {
                    Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
                    _ => Err(err(format!(
                        "{key} must be a positive number, got '{value}'"
                    ))),
                }
            };
            match key {
                "lanes" => target.lanes = whole()?,
                "vector_registers" => target.vector_registers = whole()?,
                "fma_per_cycle" => target.fma_per_cycle = real()?,
                "fma_latency_cycles" => target.fma_latency_cycles = real()?,
                "ghz" => target.ghz = real()?,
                "l1_bytes" => target.l1_bytes = whole()?,
                "l2_bytes" => target.l2_bytes = whole()?,
                "l3_bytes" => target.l3_bytes = whole()?,
                "l2_gbs" => target.l2_gbs = real()?,
                "l3_gbs" => target.l3_gbs = real()?,
                "dram_gbs" => target.dram_gbs = real()?,
                _ => return Err(err(format!("unknown key '{key}'"))),
            }
        }
        Ok(target)
    }

    /// Peak f32 FLOP/s of one core in GFLOP/s (2 flops per lane per FMA).
    pub fn peak_gflops(&self) -> f64 {
        2.0 * self.lanes as f64 * self.fma_per_cycle * self.ghz
    }

    /// Bytes per ns the core reads or writes from L1: two vector loads and
    /// one vector store per cycle, true of Zen 3, Cortex-A76 and Skylake-X.
    pub(crate) fn l1_gbs(&self) -> f64 {
        3.0 * (self.lanes * 4) as f64 * self.ghz
    }

    /// Bandwidth (bytes per ns) of the smallest cache level that holds a
    /// working set of `footprint_bytes`.
    pub(crate) fn gbs_for(&self, footprint_bytes: f64) -> f64 {
        if footprint_bytes <= self.l1_bytes as f64 {
            self.l1_gbs()
        } else if footprint_bytes <= self.l2_bytes as f64 {
            self.l2_gbs
        } else if footprint_bytes <= self.l3_bytes as f64 {
            self.l3_gbs
        } else {
            self.dram_gbs
        }
    }

    /// ns to move `bytes` between the core and the level holding
    /// `footprint_bytes`, or 0 when that is L1: there the loads and stores
    /// are part of the instruction stream the compute term already counts.
    pub(crate) fn beyond_l1_ns(&self, bytes: f64, footprint_bytes: f64) -> f64 {
        if footprint_bytes <= self.l1_bytes as f64 {
            0.0
        } else {
            bytes / self.gbs_for(footprint_bytes)
        }
    }
}

impl fmt::Display for Target {
    /// The ISA name, then `,key=value` for every field that differs from
    /// [`Target::for_isa`]; [`Target::parse`] reads it back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let base = Target::for_isa(self.isa);
        f.write_str(self.isa.name())?;
        let whole = [
            ("lanes", self.lanes, base.lanes),
            (
                "vector_registers",
                self.vector_registers,
                base.vector_registers,
            ),
        ];
        for (key, value, default) in whole {
            if value != default {
                write!(f, ",{key}={value}")?;
            }
        }
        let real = [
            ("fma_per_cycle", self.fma_per_cycle, base.fma_per_cycle),
            (
                "fma_latency_cycles",
                self.fma_latency_cycles,
                base.fma_latency_cycles,
            ),
            ("ghz", self.ghz, base.ghz),
        ];
        for (key, value, default) in real {
            if value != default {
                write!(f, ",{key}={value}")?;
            }
        }
        let bytes = [
            ("l1_bytes", self.l1_bytes, base.l1_bytes),
            ("l2_bytes", self.l2_bytes, base.l2_bytes),
            ("l3_bytes", self.l3_bytes, base.l3_bytes),
        ];
        for (key, value, default) in bytes {
            if value != default {
                write!(f, ",{key}={value}")?;
            }
        }
        let rates = [
            ("l2_gbs", self.l2_gbs, base.l2_gbs),
            ("l3_gbs", self.l3_gbs, base.l3_gbs),
            ("dram_gbs", self.dram_gbs, base.dram_gbs),
        ];
        for (key, value, default) in rates {
            if value != default {
                write!(f, ",{key}={value}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Target::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips() {
        for isa in Isa::ALL {
            let t = Target::for_isa(isa);
            assert_eq!(t.to_string(), isa.name());
            assert_eq!(Target::parse(isa.name()).unwrap(), t);
        }
        let t = Target::parse(" AVX2 ,ghz=2.45, l3_bytes=16777216").unwrap();
        assert_eq!((t.ghz, t.l3_bytes, t.lanes), (2.45, 16 * MIB, 8));
        assert_eq!(t.to_string(), "avx2,ghz=2.45,l3_bytes=16777216");
        assert_eq!(Target::parse(&t.to_string()).unwrap(), t);
    }

    #[test]
    fn text_form_errors_say_what_is_wrong() {
        for (text, wanted) in [
            ("avx3", "unknown ISA"),
            ("", "unknown ISA"),
            ("avx2,ghz", "key=value"),
            ("avx2,ghz=fast", "positive number"),
            ("avx2,ghz=-1", "positive number"),
            ("avx2,lanes=0", "positive integer"),
            ("neon,turbo=1", "unknown key 'turbo'"),
        ] {
            let e = Target::parse(text).unwrap_err().to_string();
            assert!(e.contains(wanted) && e.contains(text), "{text}: {e}");
        }
    }

    #[test]
    fn serde_keeps_everything_and_defaults_the_calibration() {
        let t = Target::for_isa(Isa::Neon);
        let json = serde_json::to_string(&t).unwrap();
        assert!(json.contains("\"isa\":\"neon\""), "{json}");
        assert_eq!(serde_json::from_str::<Target>(&json).unwrap(), t);
        let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
        value.as_object_mut().unwrap().remove("calibration");
        let back: Target = serde_json::from_value(value).unwrap();
        assert_eq!(back.calibration, Calibration::FITTED);
    }

    #[test]
    fn zen3_peak_matches_the_measured_one() {
        // kernels.json fma_peak: 102.34 GFLOP/s on one thread.
        let peak = Target::for_isa(Isa::Avx2).peak_gflops();
        assert!((peak - 102.34).abs() < 0.5, "{peak}");
    }

    #[test]
    fn calibration_vector_round_trips() {
        let c = Calibration::FITTED;
        assert_eq!(Calibration::from_slice(&c.to_vec()), Some(c));
        assert_eq!(c.to_vec().len(), Calibration::NAMES.len());
        assert_eq!(Calibration::from_slice(&[1.0]), None);
    }
}
