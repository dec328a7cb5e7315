//! `cargo xtask conformance [--bless]`: the ONNX project's node tests for
//! every op grim claims, through `grimc run` on the host, checked against a
//! manifest of expected failures.
//!
//! The onnx package (the version the manifest pins, in target/conformance/venv)
//! generates the cases with their inputs and expected outputs
//! (`xtask/conformance/export.py`); every case whose graph uses only the
//! manifest's `ops` runs, and its outputs must equal the expected ones
//! (max |y - ref| <= 1e-4 max |ref|, the tolerance used everywhere here).
//! A case that fails must be listed in the manifest with a reason from the
//! fixed set [`Reason`]; an unlisted failure fails the run, and so does a
//! listed case that passes or that no longer exists. A wrong result is
//! never an expected failure. docs/onnx-ops.md is generated from the
//! manifest and the results; `--bless` rewrites both (the reasons of new
//! failures classified from grimc's error message, for review in the diff).

use crate::{cargo, heading, repo_root, run, target_dir, venv};
use anyhow::{anyhow, bail, Context as _, Result};
use grim_model::npy::read_npy;
use serde::{Deserialize, Serialize};
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
};

/// The manifest, relative to the repository root.
const MANIFEST: &str = "xtask/conformance/manifest.json";
/// The generated op table, relative to the repository root.
const OPS_DOC: &str = "docs/onnx-ops.md";

/// Why a node test is expected to fail: a fixed set, so the manifest says
/// what kind of gap each failure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// A tensor type grim does not compile (integers, bool, float16...).
    DtypeNotSupported,
    /// Training-mode semantics (Dropout's mask, batch-norm statistics).
    TrainingMode,
    /// A product's weight given as a graph input at run time.
    RuntimeWeight,
    /// An op parameter (a Clip bound, a Dropout ratio) given as a graph input.
    RuntimeParameter,
    /// A rank or shape form the op does not take yet (N-D MatMul, N-D Transpose).
    RankNotSupported,
    /// An attribute the op does not take yet.
    AttributeNotSupported,
    /// A graph input or output that is not a tensor (optional, sequence).
    NotATensor,
    /// A known defect of grim, to fix (the detail says which).
    Bug,
}

impl Reason {
    const ALL: [Reason; 8] = [
        Reason::DtypeNotSupported,
        Reason::TrainingMode,
        Reason::RuntimeWeight,
        Reason::RuntimeParameter,
        Reason::RankNotSupported,
        Reason::AttributeNotSupported,
        Reason::NotATensor,
        Reason::Bug,
    ];

    fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    fn meaning(self) -> &'static str {
        match self {
            Reason::DtypeNotSupported => {
                "a tensor type grim does not compile (integers, bool, float16, ...)"
            }
            Reason::TrainingMode => {
                "training-mode semantics (Dropout's mask, batch-norm statistics)"
            }
            Reason::RuntimeWeight => "a product's weight given as a graph input at run time",
            Reason::RuntimeParameter => {
                "an op parameter (a Clip bound, a Dropout ratio) given as a graph input"
            }
            Reason::RankNotSupported => "a rank or shape form the op does not take yet",
            Reason::AttributeNotSupported => "an attribute the op does not take yet",
            Reason::NotATensor => {
                "a graph input or output that is not a tensor (optional, sequence)"
            }
            Reason::Bug => "a known defect of grim, to fix",
        }
    }

    /// The reason grimc's error message (or a wrong result) points at.
    fn classify(case: &Case, message: &str) -> Reason {
        let has = |needle: &str| message.contains(needle);
        // Training semantics first: a used Dropout mask is also a bool output.
        if has("training") || has("only inference-mode") {
            Reason::TrainingMode
        } else if case.output_dtypes.iter().any(|d| d != "float32") || has("element type") {
            Reason::DtypeNotSupported
        } else if has("is not a tensor") {
            Reason::NotATensor
        } else if has("must be a constant f32 scalar") || has("ratio input") {
            Reason::RuntimeParameter
        } else if has("weight") && (has("must be a constant") || has("needs a constant")) {
            Reason::RuntimeWeight
        } else if has("1-D/2-D")
            || has("2-D inputs only")
            || has("on 2-D inputs")
            || has("only [N, K]")
            || has("only 2-D")
        {
            Reason::RankNotSupported
        } else if has("unsupported attribute") {
            Reason::AttributeNotSupported
        } else {
            Reason::Bug
        }
    }
}

/// A listed failure.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Expected {
    reason: Reason,
    /// What grimc says (its last error line), or what is wrong.
    detail: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    /// The onnx package version whose node tests these are.
    onnx: String,
    /// The onnxruntime version that computes the light models' expected
    /// outputs (export.py says why not onnx's own).
    onnxruntime: String,
    /// The ops grim claims: every node test using only these runs.
    ops: Vec<String>,
    /// Cases expected to fail, by name.
    expected_failures: BTreeMap<String, Expected>,
}

/// One exported case (`cases.json`, written by export.py).
#[derive(Debug, Clone, Deserialize)]
struct Case {
    name: String,
    /// `node` (a node test), `variant` (a node test made compilable) or
    /// `model` (a light model).
    #[serde(default)]
    kind: String,
    ops: Vec<String>,
    opset: i64,
    inputs: usize,
    outputs: usize,
    output_dtypes: Vec<String>,
    baked: Vec<String>,
    /// The case's own tolerances (onnx's node tests: rtol 1e-3, atol 1e-7
    /// unless a case says otherwise; some expected outputs are rounded to
    /// four digits).
    rtol: f32,
    atol: f32,
}

#[derive(Debug, Deserialize)]
struct Cases {
    onnx: String,
    cases: Vec<Case>,
}

/// How a case went.
#[derive(Debug, Clone)]
enum Outcome {
    Pass,
    /// It ran and gave other numbers (never an expected failure).
    Wrong(String),
    /// grimc refused it: its last error line.
    Error(String),
}

/// `cargo xtask conformance [--bless]`.
pub fn command(args: &[&str]) -> Result<()> {
    let bless = match args {
        [] => false,
        ["--bless"] => true,
        other => bail!(
            "conformance: unknown arguments {other:?} (usage: cargo xtask conformance [--bless])"
        ),
    };
    crate::runtime()?;
    heading("conformance: build grimc");
    run(
        "conformance (cargo build)",
        cargo().args(["build", "-p", "grim-compiler", "--bin", "grimc"]),
    )?;
    let (passed, total) = suite(&target_dir().join("debug").join("grimc"), bless)?;
    println!("conformance: {passed} of {total} node test cases pass, as the manifest expects");
    Ok(())
}

/// The python of the conformance venv, with the onnx and onnxruntime
/// versions the manifest pins (installed if missing). The zoo check uses
/// it too, so both compare against the same onnxruntime.
pub fn venv_python() -> Result<PathBuf> {
    let path = repo_root().join(MANIFEST);
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    let manifest: Manifest = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a conformance manifest", path.display()))?;
    python(&manifest)
}

fn python(manifest: &Manifest) -> Result<PathBuf> {
    let dir = target_dir().join("conformance");
    let python = venv::create("conformance", &dir.join("venv"))?;
    for package in [
        format!("onnx=={}", manifest.onnx),
        format!("onnxruntime=={}", manifest.onnxruntime),
        "numpy".to_string(),
    ] {
        venv::pip_install(&python, &package).map_err(|e| anyhow!("conformance: {e}"))?;
    }
    Ok(python)
}

/// Exports and runs the cases with `grimc`; checks them (or, with `bless`,
/// rewrites the manifest's failures and the op table). Returns (passed, total).
pub fn suite(grimc: &Path, bless: bool) -> Result<(usize, usize)> {
    let root = repo_root();
    let manifest_path = root.join(MANIFEST);
    let text = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("{}", manifest_path.display()))?;
    let mut manifest: Manifest = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a conformance manifest", manifest_path.display()))?;

    heading(&format!(
        "conformance: the node tests of onnx {}",
        manifest.onnx
    ));
    let dir = target_dir().join("conformance");
    let python = python(&manifest)?;
    let cases_dir = dir.join("cases");
    if cases_dir.exists() {
        std::fs::remove_dir_all(&cases_dir)?;
    }
    run(
        "conformance (export the node tests)",
        Command::new(&python)
            .arg(root.join("xtask/conformance/export.py"))
            .arg(&manifest_path)
            .arg(&cases_dir),
    )?;
    let cases: Cases =
        serde_json::from_str(&std::fs::read_to_string(cases_dir.join("cases.json"))?)?;
    if cases.onnx != manifest.onnx {
        bail!(
            "conformance: the venv has onnx {}, the manifest pins {}",
            cases.onnx,
            manifest.onnx
        );
    }

    let outcomes = run_cases(grimc, &cases_dir, &cases.cases);
    let passed = outcomes
        .values()
        .filter(|o| matches!(o, Outcome::Pass))
        .count();
    let mut problems = check(&manifest, &cases.cases, &outcomes);
    if bless {
        manifest.expected_failures = cases
            .cases
            .iter()
            .filter_map(|case| match &outcomes[&case.name] {
                // An entry whose message changed is classified afresh, so
                // a stale reason cannot outlive the error it explained.
                Outcome::Error(message) => Some((
                    case.name.clone(),
                    manifest
                        .expected_failures
                        .get(&case.name)
                        .filter(|known| known.detail == *message)
                        .cloned()
                        .unwrap_or_else(|| Expected {
                            reason: Reason::classify(case, message),
                            detail: message.clone(),
                        }),
                )),
                _ => None,
            })
            .collect();
        let text = serde_json::to_string_pretty(&manifest)? + "\n";
        grim_model::write_atomic(&manifest_path, text.as_bytes())?;
        grim_model::write_atomic(
            &root.join(OPS_DOC),
            ops_doc(&manifest, &cases, &outcomes).as_bytes(),
        )?;
        println!("conformance: wrote {MANIFEST} and {OPS_DOC}");
        let wrong: Vec<_> = problems
            .iter()
            .filter(|p| p.contains("wrong result"))
            .collect();
        if !wrong.is_empty() {
            bail!(
                "conformance: wrong results are never expected failures:\n{}",
                wrong
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        return Ok((passed, cases.cases.len()));
    }
    let doc = ops_doc(&manifest, &cases, &outcomes);
    if std::fs::read_to_string(root.join(OPS_DOC)).ok().as_deref() != Some(doc.as_str()) {
        problems.push(format!(
            "{OPS_DOC} is not what the manifest and the results give: cargo xtask conformance --bless"
        ));
    }
    if !problems.is_empty() {
        bail!(
            "conformance: {} problem(s):\n{}",
            problems.len(),
            problems.join("\n")
        );
    }
    Ok((passed, cases.cases.len()))
}

/// What is wrong with the results against the manifest: unlisted failures,
/// listed cases that pass or no longer exist, wrong results (never expected).
fn check(manifest: &Manifest, cases: &[Case], outcomes: &BTreeMap<String, Outcome>) -> Vec<String> {
    let mut problems = Vec::new();
    for case in cases {
        let listed = manifest.expected_failures.get(&case.name);
        match (outcomes.get(&case.name), listed) {
            (None, _) => problems.push(format!("{}: did not run", case.name)),
            (Some(Outcome::Pass), None) => {}
            (Some(Outcome::Pass), Some(_)) => problems.push(format!(
                "{}: passes but the manifest lists it as failing: remove it (cargo xtask conformance --bless)",
                case.name
            )),
            (Some(Outcome::Wrong(detail)), _) => {
                problems.push(format!("{}: wrong result: {detail}", case.name))
            }
            (Some(Outcome::Error(message)), None) => problems.push(format!(
                "{}: fails and is not in the manifest: {message}",
                case.name
            )),
            (Some(Outcome::Error(_)), Some(_)) => {}
        }
    }
    for name in manifest.expected_failures.keys() {
        if !cases.iter().any(|c| &c.name == name) {
            problems.push(format!(
                "{name}: listed in the manifest but not a node test of a claimed op"
            ));
        }
    }
    problems
}

/// Runs every case through `grimc run` on two workers.
fn run_cases(grimc: &Path, cases_dir: &Path, cases: &[Case]) -> BTreeMap<String, Outcome> {
    let next = AtomicUsize::new(0);
    let outcomes = Mutex::new(BTreeMap::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(case) = cases.get(index) else { break };
                let outcome = run_case(grimc, &cases_dir.join(&case.name), case);
                let mark = match &outcome {
                    Outcome::Pass => "pass",
                    Outcome::Wrong(_) => "WRONG",
                    Outcome::Error(_) => "error",
                };
                println!("conformance: {:<52} {mark}", case.name);
                if let Ok(mut outcomes) = outcomes.lock() {
                    outcomes.insert(case.name.clone(), outcome);
                }
            });
        }
    });
    outcomes.into_inner().unwrap_or_default()
}

fn run_case(grimc: &Path, dir: &Path, case: &Case) -> Outcome {
    let mut command = Command::new(grimc);
    command.arg("run").arg(dir.join("model.onnx"));
    for i in 0..case.inputs {
        command
            .arg("--input")
            .arg(dir.join(format!("input_{i}.npy")));
    }
    let got: Vec<PathBuf> = (0..case.outputs)
        .map(|i| dir.join(format!("got_{i}.npy")))
        .collect();
    for path in &got {
        command.arg("--output").arg(path);
    }
    let output = match command.output() {
        Ok(output) => output,
        Err(error) => return Outcome::Error(format!("cannot run grimc: {error}")),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let line = stderr
            .lines()
            .rev()
            .find(|l| l.contains("error"))
            .or_else(|| stderr.lines().rev().find(|l| !l.trim().is_empty()))
            .unwrap_or("no message")
            .trim();
        // Paths differ between machines: keep the message, not the directory.
        let line = line.replace(&format!("{}/", dir.display()), "");
        return Outcome::Error(line);
    }
    for (i, path) in got.iter().enumerate() {
        let expected = match read_npy(&dir.join(format!("output_{i}.npy"))) {
            Ok(t) => t,
            Err(e) => return Outcome::Wrong(format!("output {i}: the expected output: {e}")),
        };
        let actual = match read_npy(path) {
            Ok(t) => t,
            Err(e) => return Outcome::Wrong(format!("output {i}: {e}")),
        };
        if actual.shape != expected.shape {
            return Outcome::Wrong(format!(
                "output {i} has shape {:?}, expected {:?}",
                actual.shape, expected.shape
            ));
        }
        if let Some(error) = mismatch(&actual.data, &expected.data, case.rtol, case.atol) {
            return Outcome::Wrong(format!("output {i}: {error}"));
        }
    }
    Outcome::Pass
}

/// `None` when every element is within the case's tolerance, as the onnx
/// backend runner checks it: |y - ref| <= atol + rtol |ref| (NaN where the
/// reference has NaN, the same infinity where it has one).
fn mismatch(actual: &[f32], expected: &[f32], rtol: f32, atol: f32) -> Option<String> {
    for (index, (a, e)) in actual.iter().zip(expected).enumerate() {
        let ok = if e.is_nan() {
            a.is_nan()
        } else if e.is_infinite() {
            a == e
        } else {
            (a - e).abs() <= atol + rtol * e.abs()
        };
        if !ok {
            return Some(format!(
                "element {index}: {a} vs {e} (rtol {rtol}, atol {atol})"
            ));
        }
    }
    None
}

/// docs/onnx-ops.md: per op, the opsets its node tests use and how many pass;
/// the expected failures with their reasons.
fn ops_doc(manifest: &Manifest, cases: &Cases, outcomes: &BTreeMap<String, Outcome>) -> String {
    let mut doc = String::new();
    let _ = writeln!(doc, "# ONNX operators\n");
    let _ = writeln!(
        doc,
        "Generated by `cargo xtask conformance --bless` from `{MANIFEST}` and the node tests of onnx {}; do not edit by hand.\n",
        manifest.onnx
    );
    let _ = writeln!(
        doc,
        "grim claims the ops below. Every node test of the ONNX project whose graph uses only claimed ops (`onnx.backend.test.case.node.collect_testcases`) runs through `grimc run` on the host in `cargo xtask test`, and must give the expected outputs within the case's own tolerance, as the onnx backend runner checks it (|y - ref| <= atol + rtol |ref|; rtol 1e-3 and atol 1e-7 for every case here: some expected outputs are rounded to four digits), or be listed below with its reason. grim compiles for static shapes, so a graph input that is not float32 (shapes, axes, pads, indices) is baked into an initializer by the harness (`xtask/conformance/export.py`); those cases are marked *baked*. A few node tests whose data is integer only because of how the generator wrote it, or whose op parameter is a graph input where exporters write an initializer, also run as *variants* (kind `variant`, named `<case>_float` or `<case>_baked`): the data as float32 with the expected output recomputed by onnx's ReferenceEvaluator, or the parameter baked into an initializer (`VARIANTS` in export.py).\n"
    );
    let _ = writeln!(doc, "| op | opsets of its node tests | cases | passed |");
    let _ = writeln!(doc, "|---|---|---|---|");
    for op in &manifest.ops {
        let of_op: Vec<&Case> = cases.cases.iter().filter(|c| c.ops.contains(op)).collect();
        let mut opsets: Vec<i64> = of_op.iter().map(|c| c.opset).collect();
        opsets.sort_unstable();
        opsets.dedup();
        let passed = of_op
            .iter()
            .filter(|c| matches!(outcomes.get(&c.name), Some(Outcome::Pass)))
            .count();
        let opsets: Vec<String> = opsets.iter().map(i64::to_string).collect();
        let _ = writeln!(
            doc,
            "| {op} | {} | {} | {passed} |",
            opsets.join(", "),
            of_op.len()
        );
    }
    let total = cases.cases.len();
    let passed = outcomes
        .values()
        .filter(|o| matches!(o, Outcome::Pass))
        .count();
    let _ = writeln!(doc, "\n{passed} of {total} cases pass.\n");
    let models: Vec<&Case> = cases.cases.iter().filter(|c| c.kind == "model").collect();
    if !models.is_empty() {
        let _ = writeln!(doc, "## Models\n");
        let _ = writeln!(
            doc,
            "The onnx package's light models whose ops grim claims run too (`onnx.backend.test.case.model`), with seeded random weights in place of their ConstantOfShape ones and onnxruntime {}'s outputs as the expected ones (export.py says why), rtol 1e-3 and atol 1e-5.\n",
            manifest.onnxruntime
        );
        let _ = writeln!(doc, "| model | opset | ops | result |");
        let _ = writeln!(doc, "|---|---|---|---|");
        for case in models {
            let result = match outcomes.get(&case.name) {
                Some(Outcome::Pass) => "pass",
                _ => "fails (below)",
            };
            let _ = writeln!(
                doc,
                "| {} | {} | {} | {result} |",
                case.name,
                case.opset,
                case.ops.join(", ")
            );
        }
        let _ = writeln!(doc);
    }
    let recurrent: Vec<&Case> = cases
        .cases
        .iter()
        .filter(|c| c.kind == "onnxruntime")
        .collect();
    if !recurrent.is_empty() {
        let _ = writeln!(doc, "## Recurrent cases against onnxruntime\n");
        let _ = writeln!(
            doc,
            "What the node tests of GRU, LSTM and RNN barely cover (sequence_lens, clip, input_forget, bidirectional with initial states, layout 1, activations other than the defaults) runs as small models with seeded random weights (`RECURRENT` in export.py), and so does PyTorch's export of a `batch_first` GRU (a Transpose on either side, Squeeze's axes an attribute at opset 7 and an input at 13: `BATCH_FIRST_OPSETS`), onnxruntime {}'s outputs the expected ones (for layout 1, which onnxruntime does not run, the layout-0 model's outputs transposed), rtol 1e-4 and atol 1e-6.\n",
            manifest.onnxruntime
        );
        let _ = writeln!(doc, "| case | op | result |");
        let _ = writeln!(doc, "|---|---|---|");
        for case in recurrent {
            let result = match outcomes.get(&case.name) {
                Some(Outcome::Pass) => "pass",
                _ => "fails (below)",
            };
            let _ = writeln!(
                doc,
                "| {} | {} | {result} |",
                case.name,
                case.ops.join(", ")
            );
        }
        let _ = writeln!(doc);
    }
    let _ = writeln!(doc, "## Expected failures\n");
    let _ = writeln!(doc, "| reason | meaning | cases |");
    let _ = writeln!(doc, "|---|---|---|");
    for reason in Reason::ALL {
        let count = manifest
            .expected_failures
            .values()
            .filter(|e| e.reason == reason)
            .count();
        let _ = writeln!(
            doc,
            "| `{}` | {} | {count} |",
            reason.name(),
            reason.meaning()
        );
    }
    let _ = writeln!(doc, "\n| case | reason | grimc says |");
    let _ = writeln!(doc, "|---|---|---|");
    for case in &cases.cases {
        if let Some(expected) = manifest.expected_failures.get(&case.name) {
            let baked = if case.baked.is_empty() {
                ""
            } else {
                " (baked)"
            };
            let _ = writeln!(
                doc,
                "| `{}`{baked} | `{}` | {} |",
                case.name,
                expected.reason.name(),
                expected.detail.replace('|', "\\|")
            );
        }
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(dtypes: &[&str]) -> Case {
        Case {
            name: "test_x".into(),
            kind: "node".into(),
            ops: vec!["Add".into()],
            opset: 13,
            inputs: 1,
            outputs: 1,
            output_dtypes: dtypes.iter().map(|d| d.to_string()).collect(),
            baked: vec![],
            rtol: 1e-3,
            atol: 1e-7,
        }
    }

    #[test]
    fn reasons_come_from_the_message_and_the_dtypes() {
        let f32_case = case(&["float32"]);
        assert_eq!(
            Reason::classify(&case(&["int8"]), "anything"),
            Reason::DtypeNotSupported
        );
        assert_eq!(
            Reason::classify(
                &case(&["float32", "bool"]),
                "only inference-mode Dropout, whose mask nothing reads"
            ),
            Reason::TrainingMode
        );
        assert_eq!(
            Reason::classify(
                &f32_case,
                "node '#0' (Conv): weight W 'W' must be a constant initializer"
            ),
            Reason::RuntimeWeight
        );
        assert_eq!(
            Reason::classify(&f32_case, "min input 'min' must be a constant f32 scalar"),
            Reason::RuntimeParameter
        );
        assert_eq!(
            Reason::classify(&f32_case, "MatMul supports only 1-D/2-D operands"),
            Reason::RankNotSupported
        );
        assert_eq!(
            Reason::classify(&f32_case, "internal error: no lowered model function"),
            Reason::Bug
        );
        assert_eq!(Reason::TrainingMode.name(), "training-mode");
    }

    #[test]
    fn the_manifest_must_match_the_results_both_ways() {
        let named = |name: &str| Case {
            name: name.into(),
            ..case(&["float32"])
        };
        let cases = vec![named("test_a"), named("test_b"), named("test_c")];
        let listed = |reason| Expected {
            reason,
            detail: "x".into(),
        };
        let manifest = Manifest {
            onnx: "1".into(),
            onnxruntime: "1".into(),
            ops: vec!["Add".into()],
            expected_failures: [("test_b".to_string(), listed(Reason::Bug))].into(),
        };
        let outcomes: BTreeMap<String, Outcome> = [
            ("test_a".to_string(), Outcome::Pass),
            ("test_b".to_string(), Outcome::Error("e".into())),
            ("test_c".to_string(), Outcome::Pass),
        ]
        .into();
        assert!(check(&manifest, &cases, &outcomes).is_empty());
        // An unlisted failure, a listed pass, a wrong result, a stale entry.
        let mut outcomes = outcomes;
        outcomes.insert("test_a".into(), Outcome::Error("new".into()));
        outcomes.insert("test_b".into(), Outcome::Pass);
        outcomes.insert("test_c".into(), Outcome::Wrong("element 0".into()));
        let mut manifest = manifest;
        manifest
            .expected_failures
            .insert("test_gone".into(), listed(Reason::RuntimeWeight));
        let problems = check(&manifest, &cases, &outcomes);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("test_a: fails and is not in the manifest"));
        assert!(problems[1].contains("test_b: passes but the manifest lists it"));
        assert!(problems[2].contains("test_c: wrong result"));
        assert!(problems[3].contains("test_gone: listed in the manifest"));
    }

    #[test]
    fn mismatch_uses_the_cases_tolerance() {
        assert!(mismatch(&[0.15106], &[0.1511], 1e-3, 1e-7).is_none());
        assert!(mismatch(&[0.152], &[0.1511], 1e-3, 1e-7).is_some());
        assert!(mismatch(&[f32::NAN], &[f32::NAN], 1e-3, 1e-7).is_none());
        assert!(mismatch(&[1.0], &[f32::NAN], 1e-3, 1e-7).is_some());
        assert!(mismatch(&[f32::INFINITY], &[f32::INFINITY], 1e-3, 1e-7).is_none());
    }
}
