//! ONNX Pad: its modes, its output shape and the source index of each
//! output element, shared by the reference interpreter and (through the
//! grim dialect's attributes) the compiler.

use std::fmt;

/// How Pad fills the border (ONNX `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PadMode {
    /// The constant value.
    Constant,
    /// The input mirrored about its first and last element (not repeated).
    Reflect,
    /// The input's first or last element repeated.
    Edge,
    /// The input repeated periodically (opset 19).
    Wrap,
}

impl PadMode {
    /// Every mode, in ONNX's order.
    pub const ALL: [PadMode; 4] = [
        PadMode::Constant,
        PadMode::Reflect,
        PadMode::Edge,
        PadMode::Wrap,
    ];

    /// ONNX's name of the mode.
    pub fn name(self) -> &'static str {
        match self {
            PadMode::Constant => "constant",
            PadMode::Reflect => "reflect",
            PadMode::Edge => "edge",
            PadMode::Wrap => "wrap",
        }
    }

    /// The mode ONNX calls `name`.
    pub fn from_name(name: &str) -> Option<PadMode> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl fmt::Display for PadMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The output shape of padding `input` by `pads` (`[begin_0, ..,
/// begin_{r-1}, end_0, .., end_{r-1}]`, ONNX's order) in `mode`, or why
/// not: a pads list of the wrong length; reflect needs each pad below its
/// dim, edge and wrap a non-empty dim to repeat.
pub fn output_shape(input: &[usize], pads: &[usize], mode: PadMode) -> Result<Vec<usize>, String> {
    let rank = input.len();
    if pads.len() != 2 * rank {
        return Err(format!(
            "pads {pads:?} must have 2 x rank = {} entries for an input of shape {input:?}",
            2 * rank
        ));
    }
    for (d, &n) in input.iter().enumerate() {
        let (begin, end) = (pads[d], pads[rank + d]);
        let bad = match mode {
            PadMode::Constant => false,
            PadMode::Reflect => begin.max(end) >= n,
            PadMode::Edge | PadMode::Wrap => n == 0 && begin + end > 0,
        };
        if bad {
            return Err(format!(
                "{mode} padding of dim {d} (size {n}) by {begin} and {end} is not defined{}",
                if mode == PadMode::Reflect {
                    ": reflect needs pads below the dim"
                } else {
                    ""
                }
            ));
        }
    }
    Ok(input
        .iter()
        .enumerate()
        .map(|(d, &n)| n + pads[d] + pads[rank + d])
        .collect())
}

/// The input index along one dim of size `n` that output index `o` reads
/// when the dim is padded by `begin` in front, or `None` for the constant.
pub fn source(o: usize, n: usize, begin: usize, mode: PadMode) -> Option<usize> {
    let p = o as i64 - begin as i64;
    let n = n as i64;
    let i = match mode {
        PadMode::Constant => return (0..n).contains(&p).then_some(p as usize),
        PadMode::Edge => p.clamp(0, n - 1),
        PadMode::Reflect => {
            if p < 0 {
                -p
            } else if p >= n {
                2 * (n - 1) - p
            } else {
                p
            }
        }
        PadMode::Wrap => p.rem_euclid(n),
    };
    Some(i as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_follow_numpy_pad() {
        // numpy.pad([0, 1, 2], 2, mode) index by index.
        let row = |mode| (0..7).map(|o| source(o, 3, 2, mode)).collect::<Vec<_>>();
        let s = |v: &[usize]| v.iter().map(|&i| Some(i)).collect::<Vec<_>>();
        assert_eq!(row(PadMode::Edge), s(&[0, 0, 0, 1, 2, 2, 2]));
        assert_eq!(row(PadMode::Reflect), s(&[2, 1, 0, 1, 2, 1, 0]));
        assert_eq!(row(PadMode::Wrap), s(&[1, 2, 0, 1, 2, 0, 1]));
        assert_eq!(
            row(PadMode::Constant),
            [None, None, Some(0), Some(1), Some(2), None, None]
        );
    }

    #[test]
    fn shapes_and_their_errors() {
        assert_eq!(
            output_shape(&[1, 3, 4], &[0, 1, 2, 0, 0, 1], PadMode::Constant).unwrap(),
            [1, 4, 7]
        );
        let e = output_shape(&[2, 3], &[1, 1], PadMode::Constant).unwrap_err();
        assert!(e.contains("must have 2 x rank = 4 entries"), "{e}");
        let e = output_shape(&[2, 3], &[0, 3, 0, 0], PadMode::Reflect).unwrap_err();
        assert!(
            e.contains("reflect padding of dim 1 (size 3) by 3 and 0"),
            "{e}"
        );
        assert!(output_shape(&[2, 3], &[0, 2, 0, 2], PadMode::Reflect).is_ok());
        assert!(output_shape(&[2, 3], &[0, 5, 0, 7], PadMode::Wrap).is_ok());
        assert_eq!(PadMode::from_name("edge"), Some(PadMode::Edge));
        assert_eq!(PadMode::from_name("symmetric"), None);
    }
}
