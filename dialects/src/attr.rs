//! Reading and making the few attribute kinds our ops carry. Every crate
//! reads string attributes through [`string`]: an empty MLIR string has a
//! null data pointer, which melior's `StringAttribute::value` turns into a
//! crash.

use melior::{
    ir::{
        attribute::{IntegerAttribute, StringAttribute},
        operation::OperationLike,
        r#type::IntegerType,
        Attribute, AttributeLike, Identifier,
    },
    Context,
};

/// An integer attribute's value, if the op has one of that name.
pub fn int<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>, name: &str) -> Option<i64> {
    let attribute = op.attribute(name).ok()?;
    IntegerAttribute::try_from(attribute)
        .ok()
        .map(|a| a.value())
}

/// A string attribute's value, if the op has one of that name.
pub fn string<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>, name: &str) -> Option<String> {
    let attribute = op.attribute(name).ok()?;
    let string = StringAttribute::try_from(attribute).ok()?;
    // SAFETY: read-only query; an empty MLIR string may have a null data
    // pointer, which must not become a slice.
    let raw = unsafe { mlir_sys::mlirStringAttrGetValue(string.to_raw()) };
    if raw.length == 0 {
        return Some(String::new());
    }
    Some(string.value().to_string())
}

/// The strings of an array-of-strings attribute (`None` if the op has no
/// such attribute or an element is not a string).
pub fn strings<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>, name: &str) -> Option<Vec<String>> {
    let attribute = op.attribute(name).ok()?;
    let raw = attribute.to_raw();
    // SAFETY: read-only queries on a live attribute, checked to be an array
    // of strings before its elements are read.
    unsafe {
        if !mlir_sys::mlirAttributeIsAArray(raw) {
            return None;
        }
        (0..mlir_sys::mlirArrayAttrGetNumElements(raw))
            .map(|index| {
                let element = mlir_sys::mlirArrayAttrGetElement(raw, index);
                if !mlir_sys::mlirAttributeIsAString(element) {
                    return None;
                }
                let value = mlir_sys::mlirStringAttrGetValue(element);
                if value.length == 0 {
                    return Some(String::new());
                }
                let bytes = std::slice::from_raw_parts(value.data as *const u8, value.length);
                Some(String::from_utf8_lossy(bytes).into_owned())
            })
            .collect()
    }
}

/// `name = value : i64`.
pub fn named_i64<'c>(
    context: &'c Context,
    name: &str,
    value: i64,
) -> (Identifier<'c>, Attribute<'c>) {
    (
        Identifier::new(context, name),
        IntegerAttribute::new(IntegerType::new(context, 64).into(), value).into(),
    )
}

/// `name = "value"`.
pub fn named_str<'c>(
    context: &'c Context,
    name: &str,
    value: &str,
) -> (Identifier<'c>, Attribute<'c>) {
    (
        Identifier::new(context, name),
        StringAttribute::new(context, value).into(),
    )
}

/// Whether an attribute is a dense elements attribute.
pub fn is_dense_elements(attribute: Attribute) -> bool {
    // SAFETY: read-only query.
    unsafe { mlir_sys::mlirAttributeIsADenseElements(attribute.to_raw()) }
}

/// A float attribute's value as f32, if the op has one of that name.
pub fn float<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>, name: &str) -> Option<f32> {
    let attribute = op.attribute(name).ok()?;
    let raw = attribute.to_raw();
    // SAFETY: read-only query, checked to be a float attribute first.
    unsafe {
        mlir_sys::mlirAttributeIsAFloat(raw)
            .then(|| mlir_sys::mlirFloatAttrGetValueDouble(raw) as f32)
    }
}

/// `name = value : f32`.
pub fn named_f32<'c>(
    context: &'c Context,
    name: &str,
    value: f32,
) -> (Identifier<'c>, Attribute<'c>) {
    (
        Identifier::new(context, name),
        melior::ir::attribute::FloatAttribute::new(
            context,
            melior::ir::Type::float32(context),
            value as f64,
        )
        .into(),
    )
}

/// `name` as a unit attribute (a flag).
pub fn named_unit<'c>(context: &'c Context, name: &str) -> (Identifier<'c>, Attribute<'c>) {
    (Identifier::new(context, name), Attribute::unit(context))
}

/// `name = array<i64: ...>`.
pub fn named_i64_array<'c>(
    context: &'c Context,
    name: &str,
    values: &[i64],
) -> (Identifier<'c>, Attribute<'c>) {
    (
        Identifier::new(context, name),
        melior::ir::attribute::DenseI64ArrayAttribute::new(context, values).into(),
    )
}

/// The values of an `array<i64: ...>` attribute of the op.
pub fn i64_array<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>, name: &str) -> Option<Vec<i64>> {
    let attribute = op.attribute(name).ok()?;
    let raw = attribute.to_raw();
    // SAFETY: read-only queries, checked to be a dense i64 array first.
    unsafe {
        if !mlir_sys::mlirAttributeIsADenseI64Array(raw) {
            return None;
        }
        Some(
            (0..mlir_sys::mlirDenseArrayGetNumElements(raw))
                .map(|i| mlir_sys::mlirDenseI64ArrayGetElement(raw, i))
                .collect(),
        )
    }
}
