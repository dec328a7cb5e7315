//! The pass registry's contracts: every pass has its file, its lit test and
//! its section in the generated docs/passes.md.

use grim_passes::registry::{self, PASSES};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// `bcr-reorder` -> (`bcr`, `reorder`): the level directory and the name.
fn split(flag: &str) -> (&str, &str) {
    flag.split_once('-').expect("flags are <level>-<name>")
}

/// The `//!` module doc of a pass's source file (`<level>/<name>.rs`, or
/// `<level>/<name>/mod.rs` for a pass grown into a folder).
fn module_doc(flag: &str) -> String {
    let (level, name) = split(flag);
    let directory = repo().join("passes/src").join(level);
    let file = directory.join(format!("{}.rs", name.replace('-', "_")));
    let folder = directory.join(name.replace('-', "_")).join("mod.rs");
    let path = if file.exists() { file } else { folder };
    let source =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    source
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .map(|l| {
            l.trim_start_matches("//!")
                .strip_prefix(' ')
                .unwrap_or(l.trim_start_matches("//!"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_pass_has_a_source_file_whose_first_line_is_its_summary() {
    for pass in PASSES {
        let doc = module_doc(pass.flag);
        let first = doc.lines().next().unwrap_or_default();
        assert_eq!(
            first,
            format!("{}: {}.", pass.flag, pass.summary),
            "module doc of {}",
            pass.flag
        );
    }
}

#[test]
fn every_pass_has_a_lit_test() {
    for pass in PASSES {
        let (level, name) = split(pass.flag);
        let path = repo()
            .join("lit-tests")
            .join(level)
            .join(format!("{name}.mlir"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("pass {} has no lit test at {}", pass.flag, path.display()));
        assert!(
            text.contains(pass.flag),
            "{} does not run {}",
            path.display(),
            pass.flag
        );
    }
}

/// docs/passes.md is generated; `GRIM_BLESS=1 cargo test -p grim-passes --test registry` rewrites it.
#[test]
fn docs_passes_md_is_up_to_date() {
    let docs: Vec<(String, String)> = PASSES
        .iter()
        .map(|p| (p.flag.to_string(), module_doc(p.flag)))
        .collect();
    let pairs: Vec<(&str, &str)> = docs.iter().map(|(f, d)| (f.as_str(), d.as_str())).collect();
    let expected = registry::markdown(&pairs);
    let path = repo().join("docs/passes.md");
    if std::env::var("GRIM_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &expected).expect("write docs/passes.md");
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/passes.md is stale: run `GRIM_BLESS=1 cargo test -p grim-passes --test registry`"
    );
}

/// The levels table in docs/ARCHITECTURE.md (between its markers) is
/// generated from `grim_passes::levels`; `GRIM_BLESS=1` rewrites it.
#[test]
fn architecture_levels_table_is_up_to_date() {
    const BEGIN: &str = "<!-- levels table: generated from passes/src/levels.rs -->\n";
    const END: &str = "<!-- end of levels table -->";
    let path = repo().join("docs/ARCHITECTURE.md");
    let text = std::fs::read_to_string(&path).expect("docs/ARCHITECTURE.md");
    let (Some(start), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        panic!("docs/ARCHITECTURE.md has no levels table markers");
    };
    let table = grim_passes::levels::markdown();
    let current = &text[start + BEGIN.len()..end];
    if std::env::var("GRIM_BLESS").is_ok_and(|v| v == "1") && current != table {
        let updated = format!("{}{BEGIN}{table}{}", &text[..start], &text[end..]);
        std::fs::write(&path, updated).expect("write docs/ARCHITECTURE.md");
        return;
    }
    assert!(
        current == table,
        "the levels table in docs/ARCHITECTURE.md is stale: run `GRIM_BLESS=1 cargo test -p grim-passes --test registry`"
    );
}

/// Every named pipeline's elements parse and name registered or upstream
/// passes, and each level but the first is reached by exactly one.
#[test]
fn named_pipelines_chain_the_levels() {
    use grim_passes::levels::{self, Level, PIPELINES};
    for pipeline in PIPELINES {
        let text =
            (pipeline.elements)(&grim_passes::PassOptions::default()).expect("default options");
        let elements = grim_passes::pipeline::parse(&text).expect("elements parse");
        assert!(!elements.is_empty(), "{}", pipeline.name);
        assert_eq!(levels::to(pipeline.to).map(|p| p.name), Some(pipeline.name));
    }
    let chained: Vec<Level> = PIPELINES.iter().map(|p| p.from).collect();
    assert_eq!(
        chained,
        [Level::Input, Level::Graph, Level::Bcr, Level::Loops]
    );
    for level in Level::ALL {
        assert_eq!(level.name().parse::<Level>(), Ok(level));
    }
}
