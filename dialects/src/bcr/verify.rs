//! The semantic verifier of the `bcr` dialect: what IRDL cannot say
//! (shapes that agree between operands, schedule attributes in range, a
//! product's block size and layout against its packed matrix).

use super::*;

fn element_is(value: Value, bits: u32, float: bool) -> bool {
    let Some(element) = shape::element_type(value.r#type()) else {
        return false;
    };
    let raw = element.to_raw();
    // SAFETY: read-only queries on a live type.
    unsafe {
        if float {
            mlir_sys::mlirTypeIsAF32(raw)
        } else {
            mlir_sys::mlirTypeIsAInteger(raw) && mlir_sys::mlirIntegerTypeGetWidth(raw) == bits
        }
    }
}

/// Checks the semantics of one `bcr` op; `Ok` for ops of other dialects.
pub fn verify<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Result<(), String> {
    let name = op.name().as_string_ref().as_str().unwrap_or("").to_string();
    match name.as_str() {
        PACKED => {
            let info = packed_info(op).ok_or("'bcr.packed' needs name, slot, rows, cols, block_rows, block_cols (integers) and order (string)")?;
            if info.rows <= 0 || info.cols <= 0 {
                return Err(format!(
                    "matrix must be non-empty, got {}x{}",
                    info.rows, info.cols
                ));
            }
            check_block(info.block_rows, info.block_cols)?;
            if info.layout != LAYOUT_ROW_MAJOR && !is_panel_layout(&info.layout) {
                return Err(format!(
                    "layout must be \"row_major\", \"col_panels\" or \"compact_panels\", got \"{}\"",
                    info.layout
                ));
            }
            if info.layout == LAYOUT_COMPACT_PANELS && ![8, 16].contains(&info.block_rows) {
                return Err(format!(
                    "compact_panels needs blocks of 8 or 16 rows (one mask vector), got {}",
                    info.block_rows
                ));
            }
            if info.order != ORDER_NATURAL && info.order != ORDER_GROUPED {
                return Err(format!(
                    "order must be \"natural\" or \"grouped\", got \"{}\"",
                    info.order
                ));
            }
            if info.slot < 0 {
                return Err("slot must be >= 0".into());
            }
            let (kept_rows, kept_cols) =
                (attr::int(op, KEPT_ROWS_ATTR), attr::int(op, KEPT_COLS_ATTR));
            match (kept_rows, kept_cols) {
                (None, None) => {}
                (Some(rows), Some(cols))
                    if (1..=info.block_rows).contains(&rows)
                        && (1..=info.block_cols).contains(&cols) => {}
                _ => {
                    return Err(format!(
                        "kept_rows and kept_cols come together, in 1..={} and 1..={}, got {kept_rows:?} and {kept_cols:?}",
                        info.block_rows, info.block_cols
                    ))
                }
            }
            let value_shape = weight_value(op)
                .and_then(crate::weights::shape)
                .ok_or("'value' must be the weight: f32 dense elements or a dense_resource")?;
            if shape::numel(&value_shape) != info.rows * info.cols {
                return Err(format!(
                    "'value' has shape {value_shape:?}, not the {}x{} matrix",
                    info.rows, info.cols
                ));
            }
            let expected = [
                "memref<?xi32>",
                "memref<?xi16>",
                "memref<?xi8>",
                "memref<?xf32>",
            ];
            for (index, want) in expected.iter().enumerate() {
                let got = op
                    .result(index)
                    .map(|r| r.r#type().to_string())
                    .unwrap_or_default();
                if got != *want {
                    return Err(format!("result #{index} must be {want}, got {got}"));
                }
            }
        }
        DENSE => {
            let result = op.result(0).map_err(|_| "missing result")?;
            let value_shape = weight_value(op)
                .and_then(crate::weights::shape)
                .ok_or("'value' must be the weight: f32 dense elements or a dense_resource")?;
            match attr::string(op, LAYOUT_ATTR).as_deref() {
                None => {
                    let shape = shape::static_shape(result.r#type())
                        .filter(|_| shape::is_f32_shaped(result.r#type()))
                        .ok_or_else(|| {
                            format!(
                                "result must be a static f32 memref, got {}",
                                result.r#type()
                            )
                        })?;
                    if shape::numel(&shape) != shape::numel(&value_shape) {
                        return Err(format!(
                            "'value' has shape {value_shape:?}, the result {shape:?}"
                        ));
                    }
                }
                Some(LAYOUT_ROW_PANELS) => {
                    if value_shape.len() < 2 {
                        return Err(format!(
                            "a row_panels weight must be a matrix (or a conv weight), got {value_shape:?}"
                        ));
                    }
                    if result.r#type().to_string() != "memref<?xf32>" {
                        return Err(format!(
                            "a row_panels weight must be memref<?xf32>, got {}",
                            result.r#type()
                        ));
                    }
                    if !(1..=64).contains(&panel_rows(op)) {
                        return Err(format!(
                            "panel_rows must be in 1..=64, got {}",
                            panel_rows(op)
                        ));
                    }
                }
                Some(other) => {
                    return Err(format!(
                        "layout must be \"row_panels\" when given, got \"{other}\""
                    ))
                }
            }
            if attr::int(op, "slot").is_none_or(|s| s < 0) {
                return Err("slot must be an integer >= 0".into());
            }
        }
        IM2COL => {
            let geometry = im2col_of(op)
                .ok_or("needs im2col = array<i64: kh, kw, sh, sw, pt, pl, pb, pr, dh, dw>")?;
            let shape_of = |index: usize| {
                op.operand(index)
                    .ok()
                    .filter(|v| shape::is_f32_shaped(v.r#type()))
                    .and_then(|v| shape::static_shape(v.r#type()))
            };
            let (Some(x), Some(out)) = (shape_of(0), shape_of(1)) else {
                return Err("input and output must be static f32 memrefs".into());
            };
            if x.len() != 3 || out.len() != 2 {
                return Err(format!("bcr.im2col needs an image [C, H, W] and an output [K, Ho*Wo], got {x:?} and {out:?}"));
            }
            check_im2col(&geometry, &x, out[0], out[1])?;
        }
        PACK_PANELS => pack::verify(op)?,
        GEMM => {
            let product =
                dense_product(op).ok_or("needs three operands (weights, input, output)")?;
            if product.w.r#type().to_string() != "memref<?xf32>" {
                return Err(format!(
                    "weights must be memref<?xf32> (row panels), got {}",
                    product.w.r#type()
                ));
            }
            let x = shape::static_shape(product.x.r#type())
                .filter(|_| shape::is_f32_shaped(product.x.r#type()));
            let c = shape::static_shape(product.c.r#type())
                .filter(|_| shape::is_f32_shaped(product.c.r#type()));
            let (Some(x), Some(c)) = (x, c) else {
                return Err("input and output must be static f32 memrefs".into());
            };
            if let Some(geometry) = im2col_of(op) {
                if x.len() != 3 || c.len() != 2 {
                    return Err(format!("bcr.gemm with im2col needs an image input [C, H, W] and output [M, Ho*Wo], got {x:?} and {c:?}"));
                }
                let k = geometry.output(&x).map_or(0, |(k, _, _)| k);
                check_im2col(&geometry, &x, k, c[1])?;
            } else if op.has_attribute(IM2COL_ATTR) {
                return Err(
                    "im2col must be array<i64: kh, kw, sh, sw, pt, pl, pb, pr, dh, dw>".into(),
                );
            } else {
                let matrix = x.len() == 2 && c.len() == 2 && x[1] == c[1];
                let vector = x.len() == 1 && c.len() == 1;
                if !matrix && !vector {
                    return Err(format!("bcr.gemm needs input [K, N] and output [M, N], or [K] and [M], got {x:?} and {c:?}"));
                }
            }
            check_vector_width(product.vector_width)?;
            if !(1..=64).contains(&product.register_tile) || !(1..=8).contains(&product.vectors) {
                return Err(format!(
                    "register_tile must be in 1..=64 and vectors in 1..=8, got {} and {}",
                    product.register_tile, product.vectors
                ));
            }
            if product.tile_m < 0 || product.tile_n < 0 || product.tile_k < 0 || product.threads < 0
            {
                return Err("tile_m, tile_n, tile_k and threads must be >= 0".into());
            }
            if product.tile_m > 0 && product.tile_m % product.register_tile != 0 {
                return Err(format!(
                    "tile_m {} is not a multiple of register_tile {}",
                    product.tile_m, product.register_tile
                ));
            }
            if let Some(weights) = defining_panels(product.w) {
                if weights.name().as_string_ref().as_str() == Ok(DENSE)
                    && attr::string(&weights, LAYOUT_ATTR).as_deref() != Some(LAYOUT_ROW_PANELS)
                {
                    return Err("weights must be a bcr.dense with layout \"row_panels\"".into());
                }
                if panel_rows(&weights) != product.register_tile {
                    return Err(format!(
                        "register_tile {} differs from the weights' panel_rows {}",
                        product.register_tile,
                        panel_rows(&weights)
                    ));
                }
            }
        }
        SPMM | SPMV => {
            let product = sparse_product(op)
                .ok_or("needs six operands and integer block_rows, block_cols")?;
            check_block(product.block_rows, product.block_cols)?;
            let p = &product.packed;
            if !(element_is(p.strips, 32, false)
                && element_is(p.block_col, 16, false)
                && element_is(p.masks, 8, false)
                && element_is(p.values, 0, true))
            {
                return Err("BCRC operands must be memrefs of i32, i16, i8 and f32".into());
            }
            let x = shape::static_shape(product.x.r#type())
                .filter(|_| shape::is_f32_shaped(product.x.r#type()));
            let c = shape::static_shape(product.c.r#type())
                .filter(|_| shape::is_f32_shaped(product.c.r#type()));
            let (Some(x), Some(c)) = (x, c) else {
                return Err("input and output must be static f32 memrefs".into());
            };
            // The K of the product: rows of X, or patch rows of an image.
            let mut k = x.first().copied().unwrap_or(0);
            if let Some(geometry) = im2col_of(op) {
                // Implicit im2col: the image is read in place, which needs
                // contiguous columns (stride 1 along W) and no padding (the
                // lowering pads the image first).
                if name != SPMM || x.len() != 3 || c.len() != 2 {
                    return Err(format!("only bcr.spmm reads an image [C, H, W] (output [M, Ho*Wo]), got {x:?} and {c:?}"));
                }
                if geometry.conv.strides[1] != 1 || geometry.conv.pads != [0; 4] {
                    return Err(format!(
                        "bcr.spmm reads an image with column stride 1 and no padding, got {:?}",
                        geometry.to_array()
                    ));
                }
                k = geometry.output(&x).map_or(0, |(k, _, _)| k);
                check_im2col(&geometry, &x, k, c[1])?;
            } else if op.has_attribute(IM2COL_ATTR) {
                return Err(
                    "im2col must be array<i64: kh, kw, sh, sw, pt, pl, pb, pr, dh, dw>".into(),
                );
            } else if name == SPMM {
                if x.len() != 2 || c.len() != 2 || x[1] != c[1] {
                    return Err(format!(
                        "bcr.spmm needs input [K, N] and output [M, N], got {x:?} and {c:?}"
                    ));
                }
            } else if x.len() != 1 || c.len() != 1 {
                return Err(format!(
                    "bcr.spmv needs input [K] and output [M], got {x:?} and {c:?}"
                ));
            }
            check_vector_width(product.vector_width)?;
            if product.threads < 0 {
                return Err(format!("threads must be >= 0, got {}", product.threads));
            }
            if product.tile_n < 0 {
                return Err(format!("tile_n must be >= 0, got {}", product.tile_n));
            }
            if !(1..=16).contains(&product.register_tile) || !(1..=8).contains(&product.vectors) {
                return Err(format!(
                    "register_tile must be in 1..=16 and vectors in 1..=8, got {} and {}",
                    product.register_tile, product.vectors
                ));
            }
            if let Some(packed) = p
                .strips
                .is_operation_result()
                .then(|| defining_packed(p.strips))
                .flatten()
            {
                if packed.rows != c[0] || packed.cols != k {
                    return Err(format!(
                        "packed matrix '{}' is {}x{} but the product needs {}x{}",
                        packed.name, packed.rows, packed.cols, c[0], k
                    ));
                }
                if packed.layout == LAYOUT_COL_PANELS && name == SPMM {
                    return Err(format!(
                        "packed matrix '{}' has {} values, which only bcr.spmv reads",
                        packed.name, packed.layout
                    ));
                }
                if packed.block_rows != product.block_rows
                    || packed.block_cols != product.block_cols
                {
                    return Err(format!(
                        "block size {}x{} differs from the packed matrix's {}x{}",
                        product.block_rows,
                        product.block_cols,
                        packed.block_rows,
                        packed.block_cols
                    ));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Checks an im2col geometry against the image it reads and the `[K, N]`
/// matrix it stands for.
fn check_im2col(geometry: &Im2col, image: &[i64], k: i64, n: i64) -> Result<(), String> {
    let c = &geometry.conv;
    if geometry.kh < 1
        || geometry.kw < 1
        || c.strides.iter().chain(&c.dilations).any(|v| *v < 1)
        || c.pads.iter().any(|p| *p < 0)
    {
        return Err(format!(
            "im2col geometry must have kernel, strides and dilations >= 1 and pads >= 0, got {:?}",
            geometry.to_array()
        ));
    }
    let (kk, ho, wo) = geometry.output(image).ok_or_else(|| {
        format!(
            "im2col needs an image [C, H, W] the {}x{} kernel fits, got {image:?}",
            geometry.kh, geometry.kw
        )
    })?;
    if (kk, ho * wo) != (k, n) {
        return Err(format!(
            "the im2col of {image:?} is [{kk}, {}], not [{k}, {n}]",
            ho * wo
        ));
    }
    Ok(())
}

fn check_vector_width(lanes: i64) -> Result<(), String> {
    if ![1, 2, 4, 8, 16].contains(&lanes) {
        return Err(format!(
            "vector_width must be 1, 2, 4, 8 or 16, got {lanes}"
        ));
    }
    Ok(())
}

fn check_block(rows: i64, cols: i64) -> Result<(), String> {
    if !(1..=64).contains(&rows) || !(1..=64).contains(&cols) {
        return Err(format!(
            "block size {rows}x{cols} out of range (1..=64 each)"
        ));
    }
    Ok(())
}
