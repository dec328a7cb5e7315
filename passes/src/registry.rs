//! The one table of grim passes: flag, one-line summary, constructor.
//!
//! It feeds `grim-opt --list-passes`, the pipeline parser and the generated
//! docs/passes.md. A test fails when a registered pass has no lit test.

use crate::{bcr, graph, lower, Pass, PassError, PassOptions};

/// One registered pass.
pub struct PassInfo {
    /// The flag used in pipeline text.
    pub flag: &'static str,
    /// One line: what the pass rewrites.
    pub summary: &'static str,
    /// The options the pass accepts, as `name=meaning (default)`.
    pub options: &'static [&'static str],
    /// Makes the pass from its options.
    pub create: fn(&PassOptions) -> Result<Box<dyn Pass>, PassError>,
}

/// Every grim pass, in pipeline order.
pub static PASSES: &[PassInfo] = &[
    PassInfo {
        flag: graph::simplify::FLAG,
        summary: graph::simplify::SUMMARY,
        options: graph::simplify::OPTIONS,
        create: graph::simplify::create,
    },
    PassInfo {
        flag: graph::apply_lr::FLAG,
        summary: graph::apply_lr::SUMMARY,
        options: graph::apply_lr::OPTIONS,
        create: graph::apply_lr::create,
    },
    PassInfo {
        flag: graph::choose_kernel::FLAG,
        summary: graph::choose_kernel::SUMMARY,
        options: graph::choose_kernel::OPTIONS,
        create: graph::choose_kernel::create,
    },
    PassInfo {
        flag: graph::plan_memory::FLAG,
        summary: graph::plan_memory::SUMMARY,
        options: graph::plan_memory::OPTIONS,
        create: graph::plan_memory::create,
    },
    PassInfo {
        flag: graph::profile_layers::FLAG,
        summary: graph::profile_layers::SUMMARY,
        options: graph::profile_layers::OPTIONS,
        create: graph::profile_layers::create,
    },
    PassInfo {
        flag: lower::grim_to_bcr::FLAG,
        summary: lower::grim_to_bcr::SUMMARY,
        options: lower::grim_to_bcr::OPTIONS,
        create: lower::grim_to_bcr::create,
    },
    PassInfo {
        flag: bcr::reorder::FLAG,
        summary: bcr::reorder::SUMMARY,
        options: bcr::reorder::OPTIONS,
        create: bcr::reorder::create,
    },
    PassInfo {
        flag: bcr::uniform_blocks::FLAG,
        summary: bcr::uniform_blocks::SUMMARY,
        options: bcr::uniform_blocks::OPTIONS,
        create: bcr::uniform_blocks::create,
    },
    PassInfo {
        flag: bcr::vectorize::FLAG,
        summary: bcr::vectorize::SUMMARY,
        options: bcr::vectorize::OPTIONS,
        create: bcr::vectorize::create,
    },
    PassInfo {
        flag: bcr::lre::FLAG,
        summary: bcr::lre::SUMMARY,
        options: bcr::lre::OPTIONS,
        create: bcr::lre::create,
    },
    PassInfo {
        flag: bcr::tile::FLAG,
        summary: bcr::tile::SUMMARY,
        options: bcr::tile::OPTIONS,
        create: bcr::tile::create,
    },
    PassInfo {
        flag: lower::bcr_to_loops::FLAG,
        summary: lower::bcr_to_loops::SUMMARY,
        options: lower::bcr_to_loops::OPTIONS,
        create: lower::bcr_to_loops::create,
    },
    PassInfo {
        flag: bcr::parallelize::FLAG,
        summary: bcr::parallelize::SUMMARY,
        options: bcr::parallelize::OPTIONS,
        create: bcr::parallelize::create,
    },
];

/// Looks a pass up by flag.
pub fn find(flag: &str) -> Option<&'static PassInfo> {
    PASSES.iter().find(|p| p.flag == flag)
}

/// docs/passes.md, generated from this table and each pass's module doc.
pub fn markdown(module_docs: &[(&str, &str)]) -> String {
    let mut out = String::from("# grim passes\n\nGenerated from `passes/src/registry.rs` and each pass's module doc by `GRIM_BLESS=1 cargo test -p grim-passes --test registry`; do not edit by hand.\n\n");
    out.push_str("| flag | summary | options |\n|---|---|---|\n");
    for pass in PASSES {
        let cell = |text: &str| text.replace('|', "\\|");
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            pass.flag,
            cell(pass.summary),
            cell(&pass.options.join("; "))
        ));
    }
    for pass in PASSES {
        out.push_str(&format!("\n## `{}`\n\n", pass.flag));
        if let Some((_, doc)) = module_docs.iter().find(|(flag, _)| *flag == pass.flag) {
            out.push_str(doc.trim());
            out.push('\n');
        } else {
            out.push_str(pass.summary);
            out.push('\n');
        }
    }
    out
}
