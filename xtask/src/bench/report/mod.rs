//! Report: the figures of one `bench kernels` run, with the lookups the
//! targets, the markdown and the plot share; kernels.json's target checks.

mod markdown;
pub(super) mod plot;
mod targets;

pub(super) use markdown::markdown_summary;

use super::{
    layers::{Layer, LayersFile},
    measure::Row,
    Options, DENSE_PEERS, IMPLS,
};
use serde_json::Value;
use std::collections::BTreeMap;

pub(super) struct Report<'a> {
    pub(super) file: &'a LayersFile,
    pub(super) options: &'a Options,
    pub(super) rows: &'a [Row],
    pub(super) unavailable: &'a BTreeMap<String, String>,
    pub(super) index_rows: &'a [Value],
    /// `grimc inspect` rows of the `grim-auto` cases (the cost model's choice).
    pub(super) auto_rows: &'a [Value],
    pub(super) mca: &'a [crate::mca::LoopFigures],
}

#[derive(Debug, Clone, serde::Serialize)]
pub(super) struct TargetCheck {
    target: String,
    subject: String,
    measured: Option<f64>,
    /// "PASS", "MISS" or "NOT MEASURED".
    status: String,
    detail: String,
}

fn label(key: &str) -> &str {
    IMPLS
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(key, |(_, l)| l)
}

fn fmt_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.1}")
    } else if ms >= 1.0 {
        format!("{ms:.3}")
    } else {
        format!("{ms:.4}")
    }
}

impl Report<'_> {
    fn find(
        &self,
        implementation: &str,
        layer: &str,
        sparsity: Option<&str>,
        block: Option<&str>,
        threads: usize,
    ) -> Option<&Row> {
        self.rows.iter().find(|r| {
            r.implementation == implementation
                && r.layer == layer
                && r.threads == threads
                && (sparsity.is_none() || r.sparsity.as_deref() == sparsity)
                && (block.is_none() || r.block.as_deref() == block)
        })
    }

    /// grim BCR's fastest block at `sparsity` and `threads` (GEMM view).
    fn best_bcr(&self, layer: &str, sparsity: &str, threads: usize) -> Option<&Row> {
        self.best_block("grim-bcr", layer, sparsity, threads)
    }

    /// `implementation`'s fastest block at `sparsity` and `threads`.
    fn best_block(
        &self,
        implementation: &str,
        layer: &str,
        sparsity: &str,
        threads: usize,
    ) -> Option<&Row> {
        self.rows
            .iter()
            .filter(|r| {
                r.implementation == implementation
                    && r.layer == layer
                    && r.sparsity.as_deref() == Some(sparsity)
                    && r.threads == threads
            })
            .min_by(|a, b| a.median_ms.total_cmp(&b.median_ms))
    }

    fn fastest_dense_peer(&self, layer: &str, threads: usize) -> Option<&Row> {
        self.rows
            .iter()
            .filter(|r| {
                DENSE_PEERS.contains(&r.implementation.as_str())
                    && r.layer == layer
                    && r.threads == threads
            })
            .min_by(|a, b| a.median_ms.total_cmp(&b.median_ms))
    }

    fn three_largest(&self) -> Vec<&Layer> {
        let mut layers: Vec<&Layer> = self.file.layers.iter().collect();
        layers.sort_by_key(|l| std::cmp::Reverse(l.m * l.k * l.n));
        layers.truncate(3);
        layers
    }
}
