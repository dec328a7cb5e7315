//! Diagnostics: MLIR's messages as `file:line:col: error: message`.
//!
//! melior reports a failed parse as `None` and a failed pass run as `RunPass`,
//! with the reason only in MLIR's diagnostics. [`Capture`] collects them while
//! it lives, and [`format_location`] turns any MLIR location into the form
//! editors and FileCheck tests expect.

use melior::{
    diagnostic::DiagnosticSeverity,
    ir::{Location, Module},
    Context,
};
use std::{
    ffi::CString,
    path::Path,
    sync::{Arc, Mutex},
};

/// Collects the diagnostics that MLIR emits in a context while it is alive.
pub struct Capture<'c> {
    context: &'c Context,
    id: Option<melior::diagnostic::DiagnosticHandlerId>,
    messages: Arc<Mutex<Vec<String>>>,
}

impl<'c> Capture<'c> {
    /// Starts collecting; the handler is detached when the capture is dropped.
    pub fn new(context: &'c Context) -> Self {
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        let id = context.attach_diagnostic_handler(move |diagnostic| {
            let severity = match diagnostic.severity() {
                DiagnosticSeverity::Error => "error",
                DiagnosticSeverity::Warning => "warning",
                DiagnosticSeverity::Note => "note",
                DiagnosticSeverity::Remark => "remark",
            };
            let mut text = format!(
                "{}: {}: {}",
                format_location(diagnostic.location()),
                severity,
                diagnostic
            );
            for index in 0..diagnostic.note_count() {
                if let Ok(note) = diagnostic.note(index) {
                    text.push_str(&format!(
                        "\n{}: note: {}",
                        format_location(note.location()),
                        note
                    ));
                }
            }
            if let Ok(mut messages) = sink.lock() {
                messages.push(text);
            }
            true
        });
        Self {
            context,
            id: Some(id),
            messages,
        }
    }

    /// Returns and clears the messages collected so far.
    pub fn take(&self) -> Vec<String> {
        self.messages
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default()
    }
}

impl Drop for Capture<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.context.detach_diagnostic_handler(id);
        }
    }
}

/// Formats a location as `file:line:col`, `file: node 'name'` for the names
/// the ONNX frontend gives ops, or `<unknown>`.
pub fn format_location(location: Location) -> String {
    if location.is_file_line_col_range() {
        format!(
            "{}:{}:{}",
            location
                .file_line_col_range_filename()
                .as_string_ref()
                .as_str()
                .unwrap_or("?"),
            location.file_line_col_range_start_line(),
            location.file_line_col_range_start_column()
        )
    } else if location.is_name() {
        let name = location
            .name_value()
            .as_string_ref()
            .as_str()
            .unwrap_or("?")
            .to_string();
        let child = location.name_child_location();
        if child.is_file_line_col_range() || child.is_name() {
            format!(
                "{}: node '{}'",
                format_location(child).trim_end_matches(":0:0"),
                name
            )
        } else {
            format!("node '{name}'")
        }
    } else if location.is_fused() && location.fused_num_locations() > 0 {
        format_location(location.fused_location(0))
    } else if location.is_call_site() {
        format_location(location.call_site_caller())
    } else {
        "<unknown>".to_string()
    }
}

/// Emits an error diagnostic at `location` (it reaches every [`Capture`]).
pub fn emit_error(location: Location, message: &str) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    // SAFETY: the location is alive for the call and the message is a valid C string.
    unsafe { mlir_sys::mlirEmitError(location.to_raw(), text.as_ptr()) }
}

/// Parses an MLIR file so that its ops carry `file:line:col` locations.
/// Errors are the parser's diagnostics, already formatted.
pub fn parse_file<'c>(context: &'c Context, path: &Path) -> Result<Module<'c>, String> {
    let capture = Capture::new(context);
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(error) => {
            return Err(format!(
                "{}: error: cannot read file: {error}",
                path.display()
            ))
        }
    };
    let name = path.to_string_lossy().to_string();
    let raw_name = melior::StringRef::new(&name);
    // SAFETY: the context and string are alive for the call; a null module means failure.
    let module = unsafe {
        Module::from_option_raw(mlir_sys::mlirModuleCreateParseFromFile(
            context.to_raw(),
            raw_name.to_raw(),
        ))
    };
    match module {
        Some(module) => match crate::weights::missing_resources(&module, &text) {
            None => Ok(module),
            Some((location, key)) => Err(format!(
                "{}: error: the weight 'dense_resource<{key}>' has no data in this file (it was printed with elided weights; print it with --print-weights to get a whole model)",
                format_location(location)
            )),
        },
        None => {
            let messages = capture.take();
            if messages.is_empty() {
                Err(format!("{}: error: failed to parse", path.display()))
            } else {
                Err(messages.join("\n"))
            }
        }
    }
}

/// Parses MLIR text (locations name `-`).
pub fn parse_source<'c>(context: &'c Context, source: &str) -> Result<Module<'c>, String> {
    let capture = Capture::new(context);
    let module = Module::parse(context, source).ok_or_else(|| capture.take().join("\n"))?;
    match crate::weights::missing_resources(&module, source) {
        None => Ok(module),
        Some((location, key)) => Err(format!(
            "{}: error: the weight 'dense_resource<{key}>' has no data (printed with elided weights)",
            format_location(location)
        )),
    }
}
