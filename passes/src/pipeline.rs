//! Pipeline text: ours and upstream passes in one `builtin.module(...)`.
//!
//! MLIR's C API can create a pass from Rust but cannot register it under a
//! name for pipeline text, and `mlirParsePassPipeline` replaces whatever a
//! pass manager already holds. So the pipeline is parsed here: it is split
//! into its top-level elements; each run of consecutive upstream elements
//! becomes one MLIR pass manager (`builtin.module(a,b{opt},func.func(c))`,
//! parsed by MLIR itself, so every upstream pass and option works), and each
//! of our flags runs our pass object between them. With `verify_each`, the
//! module is verified (structure and our semantics) after every element.

use crate::{levels, registry, PassError, PassOptions};
use grim_dialects::diag::Capture;
use melior::{ir::Module, pass::PassManager, Context};
use std::time::{Duration, Instant};

/// One element of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Element {
    /// One of our passes, with its options.
    Ours {
        /// Flag from the registry.
        flag: String,
        /// Parsed options.
        options: PassOptions,
    },
    /// An upstream pass or nested pipeline, as MLIR pipeline text.
    Upstream(String),
    /// A named pipeline (`crate::levels`), with its options.
    Named {
        /// Its name.
        name: String,
        /// Parsed options.
        options: PassOptions,
    },
}

/// Splits `builtin.module(a, b{x=1}, func.func(c))` (or a bare `a,b`) into elements.
pub fn parse(text: &str) -> Result<Vec<Element>, PassError> {
    let text = text.trim();
    let inner = match text.strip_prefix("builtin.module(") {
        Some(rest) => rest
            .strip_suffix(')')
            .ok_or_else(|| PassError::Pipeline(format!("unbalanced parentheses in '{text}'")))?,
        None => text,
    };
    let mut elements = Vec::new();
    for piece in split_top_level(inner)? {
        let piece = piece.trim();
        if piece.is_empty() {
            continue;
        }
        let (name, options) = match piece.find('{') {
            Some(open) if piece.ends_with('}') => {
                (&piece[..open], &piece[open + 1..piece.len() - 1])
            }
            Some(_) => {
                return Err(PassError::Pipeline(format!(
                    "malformed options in '{piece}'"
                )))
            }
            None => (piece, ""),
        };
        if registry::find(name).is_some() {
            elements.push(Element::Ours {
                flag: name.to_string(),
                options: PassOptions::parse(name, options)?,
            });
        } else if levels::find(name).is_some() {
            elements.push(Element::Named {
                name: name.to_string(),
                options: PassOptions::parse(name, options)?,
            });
        } else {
            elements.push(Element::Upstream(piece.to_string()));
        }
    }
    Ok(elements)
}

fn split_top_level(text: &str) -> Result<Vec<String>, PassError> {
    let mut pieces = Vec::new();
    let mut depth = 0i32;
    let mut current = String::new();
    for ch in text.chars() {
        match ch {
            '(' | '{' => depth += 1,
            ')' | '}' => {
                depth -= 1;
                if depth < 0 {
                    return Err(PassError::Pipeline(format!(
                        "unbalanced brackets in '{text}'"
                    )));
                }
            }
            ',' if depth == 0 => {
                pieces.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(ch);
    }
    if depth != 0 {
        return Err(PassError::Pipeline(format!(
            "unbalanced brackets in '{text}'"
        )));
    }
    pieces.push(current);
    Ok(pieces)
}

/// How long one element took.
#[derive(Debug, Clone)]
pub struct Timing {
    /// The pass flag or upstream pipeline text.
    pub name: String,
    /// Wall time.
    pub duration: Duration,
}

/// Runs a parsed pipeline on `module`.
pub fn run<'c>(
    context: &'c Context,
    module: &mut Module<'c>,
    elements: &[Element],
    verify_each: bool,
) -> Result<Vec<Timing>, PassError> {
    let mut timings = Vec::new();
    let mut index = 0;
    while index < elements.len() {
        let start = Instant::now();
        let name = match &elements[index] {
            Element::Named { name, options } => {
                timings.extend(run_named(context, module, name, options, verify_each)?);
                index += 1;
                continue;
            }
            Element::Ours { flag, options } => {
                let info = registry::find(flag)
                    .ok_or_else(|| PassError::Pipeline(format!("unknown pass '{flag}'")))?;
                let pass = (info.create)(options)?;
                pass.run(context, module)?;
                index += 1;
                flag.clone()
            }
            Element::Upstream(_) => {
                let mut group = Vec::new();
                while let Some(Element::Upstream(text)) = elements.get(index) {
                    group.push(text.clone());
                    index += 1;
                }
                let text = format!("builtin.module({})", group.join(","));
                run_upstream(context, module, &text)?;
                group.join(",")
            }
        };
        if verify_each {
            grim_dialects::verify_module(context, module)
                .map_err(|e| PassError::Failed(format!("after '{name}': {e}")))?;
        }
        timings.push(Timing {
            name,
            duration: start.elapsed(),
        });
    }
    Ok(timings)
}

/// The level a module is at (`grim.level`; absent means `input`).
pub fn level_of(module: &Module) -> Result<levels::Level, PassError> {
    match grim_dialects::attr::string(&module.as_operation(), grim_dialects::abi::LEVEL_ATTR) {
        None => Ok(levels::Level::Input),
        Some(text) => text.parse().map_err(|e| {
            PassError::Pipeline(format!(
                "module attribute '{}': {e}",
                grim_dialects::abi::LEVEL_ATTR
            ))
        }),
    }
}

/// Stamps the module's level (`grim.level`).
pub fn set_level(context: &Context, module: &Module, level: levels::Level) {
    let name = melior::StringRef::new(grim_dialects::abi::LEVEL_ATTR);
    let value = melior::ir::attribute::StringAttribute::new(context, level.name());
    // SAFETY: the module op is alive; only an attribute is set.
    unsafe {
        mlir_sys::mlirOperationSetAttributeByName(
            mlir_sys::mlirModuleGetOperation(module.to_raw()),
            name.to_raw(),
            melior::ir::attribute::AttributeLike::to_raw(&value),
        )
    }
}

/// Runs a named pipeline: checks the module is at its input level, runs
/// its elements, stamps its output level.
fn run_named<'c>(
    context: &'c Context,
    module: &mut Module<'c>,
    name: &str,
    options: &PassOptions,
    verify_each: bool,
) -> Result<Vec<Timing>, PassError> {
    let pipeline = levels::find(name)
        .ok_or_else(|| PassError::Pipeline(format!("unknown pipeline '{name}'")))?;
    let at = level_of(module)?;
    if at != pipeline.from {
        return Err(PassError::Level {
            pipeline: name.to_string(),
            expected: pipeline.from,
            found: at,
        });
    }
    let text = (pipeline.elements)(options)?;
    let timings = run(context, module, &parse(&text)?, verify_each)?;
    set_level(context, module, pipeline.to);
    Ok(timings)
}

/// Runs upstream pipeline text (`builtin.module(...)`) with MLIR's pass manager.
pub fn run_upstream<'c>(
    context: &'c Context,
    module: &mut Module<'c>,
    text: &str,
) -> Result<(), PassError> {
    let capture = Capture::new(context);
    let manager = PassManager::new(context);
    melior::utility::parse_pass_pipeline(manager.as_operation_pass_manager(), text)
        .map_err(|e| PassError::Pipeline(format!("{text}: {e}")))?;
    manager.run(module).map_err(|_| {
        let messages = capture.take();
        PassError::Failed(if messages.is_empty() {
            format!("upstream pipeline '{text}' failed")
        } else {
            messages.join("\n")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_ours_and_upstream_keeping_nesting_and_options() {
        let elements = parse("builtin.module(lower-grim-to-bcr{block=8x16}, canonicalize, func.func(cse,canonicalize), bcr-reorder)").unwrap();
        assert_eq!(elements.len(), 4);
        assert!(
            matches!(&elements[0], Element::Ours { flag, options } if flag == "lower-grim-to-bcr" && options.values["block"] == "8x16")
        );
        assert_eq!(elements[1], Element::Upstream("canonicalize".into()));
        assert_eq!(
            elements[2],
            Element::Upstream("func.func(cse,canonicalize)".into())
        );
        assert!(matches!(&elements[3], Element::Ours { flag, .. } if flag == "bcr-reorder"));
    }

    #[test]
    fn rejects_unbalanced_text() {
        assert!(parse("builtin.module(canonicalize").is_err());
        assert!(parse("a{b=1").is_err());
    }
}
