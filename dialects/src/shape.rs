//! Shapes of ranked tensor and memref types, read through the C API.

use melior::ir::{r#type::TypeLike, Type};

/// The static shape of a ranked tensor or memref type; `None` when the type
/// is not shaped, unranked, or has a dynamic dimension.
pub fn static_shape(ty: Type) -> Option<Vec<i64>> {
    let raw = ty.to_raw();
    // SAFETY: read-only queries on a live type.
    unsafe {
        if !mlir_sys::mlirTypeIsAShaped(raw) || !mlir_sys::mlirShapedTypeHasRank(raw) {
            return None;
        }
        let rank = mlir_sys::mlirShapedTypeGetRank(raw);
        let mut dims = Vec::with_capacity(rank as usize);
        for index in 0..rank {
            let dim = mlir_sys::mlirShapedTypeGetDimSize(raw, index as isize);
            if mlir_sys::mlirShapedTypeIsDynamicSize(dim) {
                return None;
            }
            dims.push(dim);
        }
        Some(dims)
    }
}

/// The static offset, in elements, of a memref type's layout: 0 for the
/// identity layout, `None` when the type is not a memref or the offset is
/// dynamic. (A view of one image of a batch carries its offset here.)
pub fn static_offset(ty: Type) -> Option<i64> {
    let raw = ty.to_raw();
    // SAFETY: read-only queries on a live type and its layout attribute.
    unsafe {
        if !mlir_sys::mlirTypeIsAMemRef(raw) {
            return None;
        }
        let layout = mlir_sys::mlirMemRefTypeGetLayout(raw);
        if !mlir_sys::mlirAttributeIsAStridedLayout(layout) {
            return Some(0);
        }
        let offset = mlir_sys::mlirStridedLayoutAttrGetOffset(layout);
        (offset != mlir_sys::mlirShapedTypeGetDynamicStrideOrOffset()).then_some(offset)
    }
}

/// The rank of a ranked shaped type (dynamic dimensions allowed).
pub fn rank(ty: Type) -> Option<usize> {
    let raw = ty.to_raw();
    // SAFETY: read-only queries on a live type.
    unsafe {
        if mlir_sys::mlirTypeIsAShaped(raw) && mlir_sys::mlirShapedTypeHasRank(raw) {
            Some(mlir_sys::mlirShapedTypeGetRank(raw) as usize)
        } else {
            None
        }
    }
}

/// Whether `ty` is a shaped type whose element type is f32.
pub fn is_f32_shaped(ty: Type) -> bool {
    let raw = ty.to_raw();
    // SAFETY: read-only queries on a live type.
    unsafe {
        mlir_sys::mlirTypeIsAShaped(raw)
            && mlir_sys::mlirTypeIsAF32(mlir_sys::mlirShapedTypeGetElementType(raw))
    }
}

/// The element type of a shaped type.
pub fn element_type<'c>(ty: Type<'c>) -> Option<Type<'c>> {
    let raw = ty.to_raw();
    // SAFETY: read-only queries on a live type; the element type lives in the same context.
    unsafe {
        if mlir_sys::mlirTypeIsAShaped(raw) {
            Some(Type::from_raw(mlir_sys::mlirShapedTypeGetElementType(raw)))
        } else {
            None
        }
    }
}

/// Whether `ty` is a memref type.
pub fn is_memref(ty: Type) -> bool {
    // SAFETY: read-only query.
    unsafe { mlir_sys::mlirTypeIsAMemRef(ty.to_raw()) }
}

/// Whether `ty` is a ranked tensor type.
pub fn is_tensor(ty: Type) -> bool {
    // SAFETY: read-only query.
    unsafe { mlir_sys::mlirTypeIsARankedTensor(ty.to_raw()) }
}

/// Element count of a static shape.
pub fn numel(shape: &[i64]) -> i64 {
    shape.iter().product()
}

/// `memref<shape x f32, strided<strides, offset: offset>>`, built with the C
/// API's strided layout (no type text is parsed).
pub fn strided_memref_type<'c>(
    context: &'c melior::Context,
    shape: &[i64],
    strides: &[i64],
    offset: i64,
) -> Type<'c> {
    // SAFETY: the context is alive; the arrays are copied during the calls.
    unsafe {
        let layout = mlir_sys::mlirStridedLayoutAttrGet(
            context.to_raw(),
            offset,
            strides.len() as isize,
            strides.as_ptr(),
        );
        Type::from_raw(mlir_sys::mlirMemRefTypeGet(
            mlir_sys::mlirF32TypeGet(context.to_raw()),
            shape.len() as isize,
            shape.as_ptr(),
            layout,
            mlir_sys::mlirAttributeGetNull(),
        ))
    }
}
