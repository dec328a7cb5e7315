//! Machine facts for the report: the CPU, the measured FMA peak, the git
//! state of the tree and the date.

use crate::{capture, repo_root, run};
use serde_json::{json, Value};
use std::{path::Path, process::Command};

fn cpuinfo_field(field: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines().find_map(|l| {
        let (key, value) = l.split_once(':')?;
        (key.trim() == field).then(|| value.trim().to_string())
    })
}

pub(super) fn machine_facts() -> Value {
    let flags = cpuinfo_field("flags").unwrap_or_default();
    let simd: Vec<&str> = flags
        .split_whitespace()
        .filter(|f| {
            [
                "sse4_2",
                "avx",
                "avx2",
                "fma",
                "avx512f",
                "avx512vl",
                "avx512_vnni",
            ]
            .contains(f)
        })
        .collect();
    let processors = std::fs::read_to_string("/proc/cpuinfo")
        .map(|t| t.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(0);
    json!({
        "cpu_model": cpuinfo_field("model name"),
        "cpu_family": cpuinfo_field("cpu family"),
        "cpu_model_number": cpuinfo_field("model"),
        "cpu_mhz": cpuinfo_field("cpu MHz"),
        "simd_flags": simd,
        "logical_cpus": processors,
        "available_parallelism": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).ok(),
    })
}

/// The FMA microbenchmark (xtask/bench/fma_peak.c), per thread count: GFLOP/s.
pub(super) fn fma_peak(bench_dir: &Path, threads: &[usize]) -> Value {
    let source = repo_root().join("xtask").join("bench").join("fma_peak.c");
    let exe = bench_dir.join("fma_peak");
    let mut compile = Command::new("cc");
    compile
        .args(["-O2", "-march=native", "-pthread"])
        .arg(&source)
        .arg("-o")
        .arg(&exe);
    if let Err(error) = run("bench (compile fma_peak.c)", &mut compile) {
        return json!({ "error": format!("{error:#}") });
    }
    let mut out = Vec::new();
    for &t in threads {
        match capture("bench (fma peak)", Command::new(&exe).arg(t.to_string())) {
            Ok(text) => {
                let g = text
                    .split_whitespace()
                    .find_map(|kv| kv.strip_prefix("gflops="))
                    .and_then(|v| v.parse::<f64>().ok());
                println!("{}", text.trim());
                out.push(json!({ "threads": t, "gflops": g }));
            }
            Err(error) => out.push(json!({ "threads": t, "error": format!("{error:#}") })),
        }
    }
    json!({ "method": "xtask/bench/fma_peak.c (cc -O2 -march=native): 12 independent 256-bit vfmadd231ps chains per thread, best of 3", "results": out })
}

pub(super) fn git_state() -> Value {
    let head = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(repo_root())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .current_dir(repo_root())
        .output()
        .ok()
        .map(|o| !o.stdout.is_empty());
    json!({ "head": head, "uncommitted_changes": dirty })
}

/// UTC now as `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days, no date crate needed).
pub(super) fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_date_format() {
        let now = utc_now();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.starts_with("20") && now.ends_with('Z'));
    }
}
