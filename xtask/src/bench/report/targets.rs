//! The targets: each goal of the benchmark checked against this run's
//! figures (PASS, MISS or NOT MEASURED, and by how much).

use super::{Report, TargetCheck};

impl Report<'_> {
    pub(in crate::bench) fn targets(&self) -> Vec<TargetCheck> {
        let mut out = Vec::new();
        let at_least = |target: &str,
                        subject: String,
                        measured: Option<f64>,
                        goal: f64,
                        what: &str|
         -> TargetCheck {
            match measured {
                Some(v) if v.is_finite() => {
                    let pass = v >= goal;
                    let detail = if pass {
                        format!("{v:.2}x (target >= {goal}x)")
                    } else {
                        format!(
                            "{v:.2}x, {:.0}% short of {goal}x (needs {:.2}x more)",
                            100.0 * (1.0 - v / goal),
                            goal / v
                        )
                    };
                    TargetCheck {
                        target: target.into(),
                        subject,
                        measured: Some(v),
                        status: if pass { "PASS" } else { "MISS" }.into(),
                        detail,
                    }
                }
                _ => TargetCheck {
                    target: target.into(),
                    subject,
                    measured: None,
                    status: "NOT MEASURED".into(),
                    detail: format!("no measurement of {what}"),
                },
            }
        };
        let t1 = "grim BCR 8x (best block) vs fastest dense peer: >= 5x conv/gemm, >= 4x gemv";
        let t2 = "grim BCR vs scipy CSR and MKL CSR, same nonzeros and threads: >= 4x";
        let t3 = "grim dense within 1.25x of OpenBLAS on conv and gemm shapes";
        let t4 = "2 threads >= 1.7x faster than 1 thread on the three largest shapes";
        let t5 = "BCRC index bytes <= 15% of value bytes at 8x, block 8x16";
        let t6 = "aarch64: llvm-mca-22 -mcpu=cortex-a76 FMA-pipe utilisation >= 75% (GEMM-shaped kernels)";
        let t7 = "a user's mask-multiplied pruned Gemm, grimc's default flags, vs onnxruntime on the dense layer, 1 thread: >= 5x";
        for &threads in &self.options.threads {
            for l in &self.file.layers {
                let goal = if l.kind == "gemv" { 4.0 } else { 5.0 };
                let grim = self.best_bcr(&l.name, "8x", threads);
                let peer = self.fastest_dense_peer(&l.name, threads);
                let measured = grim.zip(peer).map(|(g, p)| p.median_ms / g.median_ms);
                let subject = format!(
                    "{} T={threads} (grim block {}, peer {})",
                    l.name,
                    grim.and_then(|g| g.block.clone()).unwrap_or("-".into()),
                    peer.map_or("-", |p| p.implementation.as_str())
                );
                out.push(at_least(
                    t1,
                    subject,
                    measured,
                    goal,
                    "grim BCR at 8x or a dense peer",
                ));
            }
        }
        for &threads in &self.options.threads {
            for l in &self.file.layers {
                let Some(grim) = self.best_bcr(&l.name, "8x", threads) else {
                    out.push(at_least(
                        t2,
                        format!("{} T={threads}", l.name),
                        None,
                        4.0,
                        "grim BCR at 8x",
                    ));
                    continue;
                };
                for peer in ["scipy-csr", "mkl-csr"] {
                    if peer == "scipy-csr" && threads != 1 {
                        continue; // scipy is single-threaded: compared at 1 thread only
                    }
                    let p = self.find(peer, &l.name, Some("8x"), grim.block.as_deref(), threads);
                    let subject = format!(
                        "{} T={threads} vs {peer} (block {})",
                        l.name,
                        grim.block.as_deref().unwrap_or("-")
                    );
                    out.push(at_least(
                        t2,
                        subject,
                        p.map(|p| p.median_ms / grim.median_ms),
                        4.0,
                        peer,
                    ));
                }
            }
        }
        for &threads in &self.options.threads {
            for l in self.file.layers.iter().filter(|l| l.kind != "gemv") {
                let g = self.find("grim-dense", &l.name, None, None, threads);
                let o = self.find("numpy-openblas", &l.name, None, None, threads);
                let subject = format!("{} T={threads}", l.name);
                out.push(match g.zip(o) {
                    Some((g, o)) => {
                        let v = g.median_ms / o.median_ms;
                        let pass = v <= 1.25;
                        let detail = if pass {
                            format!("grim dense takes {v:.2}x OpenBLAS's time (target <= 1.25x)")
                        } else {
                            format!("grim dense takes {v:.2}x OpenBLAS's time: {:.0}% over the 1.25x limit (needs {:.2}x more speed)", 100.0 * (v / 1.25 - 1.0), v / 1.25)
                        };
                        TargetCheck { target: t3.into(), subject, measured: Some(v), status: if pass { "PASS" } else { "MISS" }.into(), detail }
                    }
                    None => TargetCheck { target: t3.into(), subject, measured: None, status: "NOT MEASURED".into(), detail: "no grim dense or numpy measurement".into() },
                });
            }
        }
        let has_1_and_2 = self.options.threads.contains(&1) && self.options.threads.contains(&2);
        for l in self.three_largest() {
            let subject = format!("{} grim BCR 8x (1-thread best block)", l.name);
            if !has_1_and_2 {
                out.push(TargetCheck {
                    target: t4.into(),
                    subject,
                    measured: None,
                    status: "NOT MEASURED".into(),
                    detail: "needs --threads 1,2".into(),
                });
                continue;
            }
            let one = self.best_bcr(&l.name, "8x", 1);
            let two =
                one.and_then(|o| self.find("grim-bcr", &l.name, Some("8x"), o.block.as_deref(), 2));
            out.push(at_least(
                t4,
                subject,
                one.zip(two).map(|(o, t)| o.median_ms / t.median_ms),
                1.7,
                "grim BCR at 1 and 2 threads",
            ));
        }
        for l in &self.file.layers {
            let row = self
                .index_rows
                .iter()
                .find(|r| r["layer_name"].as_str() == Some(&l.name));
            let subject = l.name.clone();
            out.push(match row.and_then(|r| r["index_to_value"].as_f64()) {
                Some(v) => {
                    let pass = v <= 0.15;
                    let detail = if pass {
                        format!("{:.1}% (target <= 15%)", 100.0 * v)
                    } else {
                        format!("{:.1}%: {:.1} points over 15%", 100.0 * v, 100.0 * v - 15.0)
                    };
                    TargetCheck {
                        target: t5.into(),
                        subject,
                        measured: Some(v),
                        status: if pass { "PASS" } else { "MISS" }.into(),
                        detail,
                    }
                }
                None => TargetCheck {
                    target: t5.into(),
                    subject,
                    measured: None,
                    status: "NOT MEASURED".into(),
                    detail: "no grimc inspect figures".into(),
                },
            });
        }
        for figures in self.mca.iter().filter(|f| f.kernel == "spmm") {
            let a76 = figures.cpus.iter().find(|c| c.0 == "cortex-a76");
            out.push(match a76 {
                Some((_, cycles, busy, rate)) => TargetCheck {
                    target: t6.into(),
                    subject: format!("{} spmm inner loop (8x, 8x16)", figures.layer),
                    measured: Some(*busy),
                    status: if *busy >= 0.75 { "PASS" } else { "MISS" }.into(),
                    detail: format!(
                        "FP pipes busy {:.0}% in llvm-mca's model ({} FMAs in {cycles:.2} cycles per iteration); FMA rate {:.0}% of a real A76's two 128-bit FMAs per cycle",
                        100.0 * busy,
                        figures.fmas,
                        100.0 * rate
                    ),
                },
                None => TargetCheck { target: t6.into(), subject: figures.layer.clone(), measured: None, status: "NOT MEASURED".into(), detail: "llvm-mca gave no cortex-a76 figures".into() },
            });
        }
        if self.mca.is_empty() {
            out.push(TargetCheck {
                target: t6.into(),
                subject: "aarch64 inner loops".into(),
                measured: None,
                status: "NOT MEASURED".into(),
                detail: "llvm-mca analysis failed (see failures)".into(),
            });
        }
        for l in self.file.layers.iter() {
            let Some(user) = &l.user else { continue };
            let sparsity = &self.file.sparsity[user.sparsity].name;
            let grim = self.find("grim-auto", &l.name, Some(sparsity), None, 1);
            let ort = self.find("onnxruntime", &l.name, None, None, 1);
            let choice = self
                .auto_rows
                .iter()
                .find(|r| r["layer_name"].as_str() == Some(&l.name))
                .map_or("-".to_string(), |r| {
                    format!(
                        "kernel {}, block {}",
                        r["kernel"].as_str().unwrap_or("?"),
                        r["block"].as_str().unwrap_or("?")
                    )
                });
            out.push(at_least(
                t7,
                format!(
                    "{} pruned {sparsity} in {} blocks (cost model chose {choice})",
                    l.name, user.block
                ),
                grim.zip(ort).map(|(g, o)| o.median_ms / g.median_ms),
                5.0,
                "grim-auto at 1 thread or onnxruntime",
            ));
        }
        out
    }
}
