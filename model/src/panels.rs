//! Row panels: the storage of a weight matrix that stays dense.
//!
//! The dense kernels (`bcr.gemm`) hold a register tile of `panel_rows`
//! output rows and, per column `k` of W, broadcast those rows' weights.
//! Storing W as panels of `panel_rows` rows, each panel column-major
//! (`panel_rows` consecutive values per `k`), makes that a walk over
//! consecutive memory: panel `p`, column `k`, row `r` is at
//! `(p * cols + k) * panel_rows + r`. The last panel is zero-padded to
//! `panel_rows` rows, so every panel has the same stride; the kernels never
//! store the padded rows. With `panel_rows = 1` this is plain row-major.

use crate::ModelError;

/// Packs row-major `data` (`rows x cols`) into row panels of `panel_rows`.
pub fn row_panels(
    data: &[f32],
    rows: usize,
    cols: usize,
    panel_rows: usize,
) -> Result<Vec<f32>, ModelError> {
    if panel_rows == 0 || rows == 0 || cols == 0 {
        return Err(ModelError::Bcr { message: format!("row panels need rows, columns and panel rows > 0, got {rows}x{cols} in panels of {panel_rows}") });
    }
    if data.len() != rows * cols {
        return Err(ModelError::Bcr {
            message: format!("matrix has {} values, expected {rows}x{cols}", data.len()),
        });
    }
    let panels = rows.div_ceil(panel_rows);
    let mut out = vec![0.0; panels * panel_rows * cols];
    for (row, values) in data.chunks_exact(cols).enumerate() {
        let (panel, r) = (row / panel_rows, row % panel_rows);
        for (k, value) in values.iter().enumerate() {
            out[(panel * cols + k) * panel_rows + r] = *value;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout_of_a_small_matrix() {
        // 3x2 in panels of 2: panel 0 = rows 0,1 column-major, panel 1 = row 2 padded.
        let w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(
            row_panels(&w, 3, 2, 2).unwrap(),
            vec![1.0, 3.0, 2.0, 4.0, 5.0, 0.0, 6.0, 0.0]
        );
        assert_eq!(row_panels(&w, 3, 2, 1).unwrap(), w.to_vec());
        assert!(row_panels(&w, 2, 2, 2).is_err());
        assert!(row_panels(&w, 3, 2, 0).is_err());
    }

    proptest! {
        #[test]
        fn every_value_lands_at_its_panel_address(rows in 1usize..20, cols in 1usize..20, panel_rows in 1usize..9) {
            let data: Vec<f32> = (0..rows * cols).map(|i| i as f32 + 1.0).collect();
            let packed = row_panels(&data, rows, cols, panel_rows).unwrap();
            prop_assert_eq!(packed.len(), rows.div_ceil(panel_rows) * panel_rows * cols);
            for row in 0..rows {
                for k in 0..cols {
                    prop_assert_eq!(packed[(row / panel_rows * cols + k) * panel_rows + row % panel_rows], data[row * cols + k]);
                }
            }
            // Padding is zero and nothing else is.
            prop_assert_eq!(packed.iter().filter(|v| **v == 0.0).count(), packed.len() - rows * cols);
        }
    }
}
