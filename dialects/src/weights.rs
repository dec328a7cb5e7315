//! Weights in the IR: f32 tensors held by `dense_resource` blobs.
//!
//! A model's weights are part of its module, so graph passes read and
//! rewrite them (batch-norm folding changes a conv's weight and bias) and a
//! printed `.mlir` file is a whole model. Large values would be copied
//! through parse, print and translation as plain `dense<...>` attributes
//! (a VGG-16 has 138 M parameters), so weights are `dense_resource<key>`
//! attributes whose blob MLIR holds by reference: [`resource`] hands MLIR a
//! buffer it owns from then on (freed by a deleter when the context goes).
//! Small hand-written constants may stay `dense<...>`; [`read`] accepts both.
//!
//! The C API reads a resource only element by element (about 6 ns each,
//! measured: 0.8 s for a VGG-16), and cannot tell whether a parsed resource
//! has data: a file printed with elided weights parses, and its blobs read
//! as garbage. So [`missing_resources`] checks a parsed file's resource
//! section against the keys its ops refer to, and the parser reports the
//! first key without data.

use melior::{
    ir::{r#type::RankedTensorType, Attribute, AttributeLike, Location, Module, Type, TypeLike},
    Context,
};
use std::{collections::BTreeSet, ffi::c_void};

/// Resource blobs larger than this many bytes are elided when a module is
/// printed without `--print-weights` (MLIR's elided resource form): all of
/// them, since a partly elided file is no more a whole model than an
/// elided one, and weights in hex are noise in a dump or a snapshot.
pub const ELIDE_RESOURCES_LARGER_THAN: usize = 0;

/// A ranked f32 tensor type of a static shape.
pub fn tensor_type<'c>(context: &'c Context, shape: &[i64]) -> Type<'c> {
    let dims: Vec<u64> = shape.iter().map(|d| *d as u64).collect();
    RankedTensorType::new(&dims, Type::float32(context), None).into()
}

/// The resource key for a weight name: MLIR prints keys as bare words, so
/// characters outside `[A-Za-z0-9_.$-]` (ONNX names carry `/` and `:`)
/// become `_`; the op keeps the original name in its `name` attribute.
pub fn resource_key(name: &str) -> String {
    let key: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.$-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if key.is_empty() || key.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.') {
        format!("w_{key}")
    } else {
        key
    }
}

unsafe extern "C" fn free_f32_blob(
    _user: *mut c_void,
    data: *const c_void,
    size: usize,
    _align: usize,
) {
    // SAFETY: `resource` handed MLIR exactly this boxed slice of `size / 4` floats.
    drop(unsafe {
        Box::from_raw(std::ptr::slice_from_raw_parts_mut(
            data as *mut f32,
            size / std::mem::size_of::<f32>(),
        ))
    });
}

/// `dense_resource<key> : tensor<shape x f32>` holding `data`, which MLIR
/// owns from now on. MLIR makes the key unique in the context (a second
/// `conv1.weight` becomes `conv1.weight_1`).
///
/// # Panics
/// When `data` does not have `shape`'s element count (a compiler bug: every
/// caller builds the data for the shape it states).
pub fn resource<'c>(
    context: &'c Context,
    name: &str,
    shape: &[i64],
    data: Vec<f32>,
) -> Attribute<'c> {
    let count: i64 = shape.iter().product();
    assert_eq!(
        count as usize,
        data.len(),
        "weight '{name}': data does not fit {shape:?}"
    );
    let ty = tensor_type(context, shape);
    let key = resource_key(name);
    let bytes = data.len() * std::mem::size_of::<f32>();
    let pointer = Box::into_raw(data.into_boxed_slice()) as *mut f32 as *mut c_void;
    // SAFETY: the buffer is a leaked box that only the deleter frees; the key
    // is copied by MLIR during the call.
    unsafe {
        Attribute::from_raw(mlir_sys::mlirUnmanagedDenseResourceElementsAttrGet(
            ty.to_raw(),
            mlir_sys::MlirStringRef {
                data: key.as_ptr() as *const std::ffi::c_char,
                length: key.len(),
            },
            pointer,
            bytes,
            std::mem::align_of::<f32>(),
            false,
            Some(free_f32_blob),
            std::ptr::null_mut(),
        ))
    }
}

/// Prints `module`: with `weights`, every resource blob in full (the text
/// is a whole model that parses back); without, blobs over
/// [`ELIDE_RESOURCES_LARGER_THAN`] bytes elided (MLIR's elided resource
/// form). With `locations`, every op's location (the ONNX node names) too.
pub fn print_module(module: &Module, weights: bool, locations: bool) -> String {
    use melior::ir::operation::{OperationLike, OperationPrintingFlags};
    let flags = OperationPrintingFlags::new().enable_debug_info(locations, false);
    if !weights {
        // SAFETY: the flags are alive; this only sets a limit.
        unsafe {
            mlir_sys::mlirOpPrintingFlagsElideLargeResourceString(
                flags.to_raw(),
                ELIDE_RESOURCES_LARGER_THAN as isize,
            )
        };
    }
    let mut text = module
        .as_operation()
        .to_string_with_flags(flags)
        .unwrap_or_else(|_| module.as_operation().to_string());
    // An elided print leaves an empty `{-#\n\n#-}` section: drop it.
    if let Some(start) = text.rfind("\n{-#\n") {
        if text[start..].trim_end().trim_start_matches("\n{-#").trim() == "#-}" {
            text.truncate(start + 1);
        }
    }
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// Whether `attribute` is a dense resource of f32 elements.
pub fn is_resource(attribute: Attribute) -> bool {
    // SAFETY: read-only queries.
    unsafe {
        mlir_sys::mlirAttributeIsADenseResourceElements(attribute.to_raw())
            && crate::shape::is_f32_shaped(Type::from_raw(mlir_sys::mlirAttributeGetType(
                attribute.to_raw(),
            )))
    }
}

/// Whether `attribute` holds f32 weight values: a dense resource or a plain
/// dense elements attribute of f32, with a static shape.
pub fn is_weight(attribute: Attribute) -> bool {
    shape(attribute).is_some()
}

/// The static shape of a weight attribute (`None` if it is not one).
pub fn shape(attribute: Attribute) -> Option<Vec<i64>> {
    let raw = attribute.to_raw();
    // SAFETY: read-only queries, guarded by the attribute's kind.
    unsafe {
        if !(mlir_sys::mlirAttributeIsADenseElements(raw)
            || mlir_sys::mlirAttributeIsADenseResourceElements(raw))
        {
            return None;
        }
        let ty = Type::from_raw(mlir_sys::mlirAttributeGetType(raw));
        if !crate::shape::is_f32_shaped(ty) {
            return None;
        }
        crate::shape::static_shape(ty)
    }
}

/// The values of a weight attribute, row-major (`None` if it is not one).
/// A resource must have data: parsed files are checked when they are read
/// ([`missing_resources`]), modules built in memory always have it.
pub fn read(attribute: Attribute) -> Option<Vec<f32>> {
    let shape = shape(attribute)?;
    let count = crate::shape::numel(&shape) as usize;
    let raw = attribute.to_raw();
    // SAFETY: read-only queries on a live f32 attribute of `count` elements;
    // the raw data of a non-splat dense f32 attribute is `count` packed floats.
    unsafe {
        if mlir_sys::mlirAttributeIsADenseResourceElements(raw) {
            return Some(
                (0..count)
                    .map(|i| mlir_sys::mlirDenseFloatResourceElementsAttrGetValue(raw, i as isize))
                    .collect(),
            );
        }
        if mlir_sys::mlirDenseElementsAttrIsSplat(raw) {
            return Some(vec![
                mlir_sys::mlirDenseElementsAttrGetFloatSplatValue(raw);
                count
            ]);
        }
        let data = mlir_sys::mlirDenseElementsAttrGetRawData(raw) as *const f32;
        if data.is_null() {
            return Some(vec![0.0; count]);
        }
        Some(std::slice::from_raw_parts(data, count).to_vec())
    }
}

/// The key a resource attribute refers to, as printed (`dense_resource<key>`).
pub fn printed_key(attribute: Attribute) -> Option<String> {
    let text = attribute.to_string();
    let rest = text.strip_prefix("dense_resource<")?;
    let end = rest.find('>')?;
    Some(rest[..end].trim_matches('"').to_string())
}

/// The resource keys that have data in a module's text: the entries of the
/// `builtin` group of its `{-# dialect_resources: ... #-}` section.
pub fn keys_with_data(text: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let Some(start) = text.rfind("{-#") else {
        return keys;
    };
    for line in text[start..].lines() {
        let line = line.trim();
        // An entry is `key: "0x<hex>"`; an elided one prints nothing.
        if let Some((key, value)) = line.split_once(": \"0x") {
            if !value.is_empty() {
                keys.insert(key.trim().trim_matches('"').to_string());
            }
        }
    }
    keys
}

/// The first op attribute of `module` that is a resource without data in
/// `text` (the module's source): its location and key.
pub fn missing_resources<'c>(module: &Module<'c>, text: &str) -> Option<(Location<'c>, String)> {
    use melior::ir::operation::{OperationLike, WalkOrder, WalkResult};
    let present = keys_with_data(text);
    let mut missing = None;
    module.as_operation().walk(WalkOrder::PreOrder, |op| {
        for (_, attribute) in op.attributes() {
            // SAFETY: read-only query.
            if !unsafe { mlir_sys::mlirAttributeIsADenseResourceElements(attribute.to_raw()) } {
                continue;
            }
            if let Some(key) = printed_key(attribute) {
                if !present.contains(&key) {
                    // SAFETY: the location outlives the walk (it belongs to the context).
                    missing = Some((unsafe { Location::from_raw(op.location().to_raw()) }, key));
                    return WalkResult::Interrupt;
                }
            }
        }
        WalkResult::Advance
    });
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bare_words() {
        assert_eq!(resource_key("conv1.weight"), "conv1.weight");
        assert_eq!(
            resource_key("/layer1/conv/Conv_output_0"),
            "_layer1_conv_Conv_output_0"
        );
        assert_eq!(resource_key("onnx::Conv_12"), "onnx__Conv_12");
        assert_eq!(resource_key("12"), "w_12");
        assert_eq!(resource_key(""), "w_");
    }

    #[test]
    fn resource_reads_back_and_prints_in_full() {
        let context = crate::create_context().expect("context");
        let attribute = resource(&context, "fc1.weight", &[2, 2], vec![1.0, -0.0, 2.5, -3.0]);
        assert!(is_resource(attribute));
        assert_eq!(shape(attribute), Some(vec![2, 2]));
        let values = read(attribute).expect("values");
        assert_eq!(values[1].to_bits(), (-0.0f32).to_bits());
        assert_eq!(values, vec![1.0, -0.0, 2.5, -3.0]);
        assert_eq!(printed_key(attribute).as_deref(), Some("fc1.weight"));
        // A second weight of the same name gets its own key.
        let other = resource(&context, "fc1.weight", &[1], vec![7.0]);
        assert_ne!(printed_key(other), printed_key(attribute));
        assert_eq!(read(other), Some(vec![7.0]));
    }

    #[test]
    fn dense_elements_read_too() {
        let context = crate::create_context().expect("context");
        let attribute = Attribute::parse(
            &context,
            "dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>",
        )
        .expect("parses");
        assert_eq!(read(attribute), Some(vec![1.0, 2.0, 3.0, 4.0]));
        let splat = Attribute::parse(&context, "dense<0.5> : tensor<3xf32>").expect("parses");
        assert_eq!(read(splat), Some(vec![0.5; 3]));
        let ints = Attribute::parse(&context, "dense<1> : tensor<3xi32>").expect("parses");
        assert_eq!(read(ints), None);
    }

    #[test]
    fn finds_keys_with_data() {
        let text = "module {}\n{-#\n  dialect_resources: {\n    builtin: {\n      a.w: \"0x0400000000000000\",\n      \"b w\": \"0x04000000\"\n    }\n  }\n#-}\n";
        let keys = keys_with_data(text);
        assert!(keys.contains("a.w") && keys.contains("b w"), "{keys:?}");
        assert!(keys_with_data("module {}\n{-#\n\n#-}\n").is_empty());
    }
}
