//! Which layers BCR prunes, and the weight matrices it prunes in each.
//!
//! The matrices are the ones BCR.md defines and the compiler packs: a
//! Gemm's weight as `[out, in]` (its `B` as stored with `transB = 1`,
//! transposed without, as graph-simplify canonicalises it), a MatMul's
//! constant 2-D `B` transposed, a conv's `[M, C/group * kh * kw]`, and a
//! GRU/LSTM/RNN's `W` and `R` per direction and per gate (`[H, input]`,
//! `[H, H]`). Pruning the same matrices the compiler packs is what makes a
//! pruned layer compile as BCR with the block it was pruned with.
//!
//! Left dense, with the reason: a weight that is not a constant (a graph
//! input without an initializer), depthwise convs (one input channel per
//! group: nothing to share a column across), MatMul weights of rank other
//! than 2, and matrices smaller than one block on either side (a first
//! conv's K of 9 against 16-column blocks).

use grim_model::graph::node_label;
use grim_model::{BlockSize, Graph, Op};

/// One matrix inside a weight tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matrix {
    /// Rows (outputs).
    pub rows: usize,
    /// Columns (the reduced dim).
    pub cols: usize,
    /// Where element (0, 0) is in the tensor's data.
    pub offset: usize,
    /// The tensor stores the matrix transposed (`[cols, rows]`).
    pub transposed: bool,
    /// The gate, for recurrent weights (`z`, `r`, `h`, `i`, `o`, `f`, `c`).
    pub part: Option<String>,
}

impl Matrix {
    fn index(&self, i: usize, j: usize) -> usize {
        if self.transposed {
            self.offset + j * self.rows + i
        } else {
            self.offset + i * self.cols + j
        }
    }

    /// The matrix, row-major, out of the tensor's data.
    pub fn get(&self, data: &[f32]) -> Vec<f32> {
        let mut m = Vec::with_capacity(self.rows * self.cols);
        for i in 0..self.rows {
            m.extend((0..self.cols).map(|j| data[self.index(i, j)]));
        }
        m
    }

    /// Writes the row-major `m` back into the tensor's data, a `-0.0`
    /// becoming `+0.0` (pruned values are `+0.0`, whatever sign the
    /// pruned weight had).
    pub fn put(&self, data: &mut [f32], m: &[f32]) {
        for i in 0..self.rows {
            for j in 0..self.cols {
                let v = m[i * self.cols + j];
                data[self.index(i, j)] = if v == 0.0 { 0.0 } else { v };
            }
        }
    }
}

/// A prunable layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// The node's name (or `#index`).
    pub node: String,
    /// The node's index in the graph.
    pub index: usize,
    /// The LR file's name for this weight: the node, or for a recurrent
    /// op the compiler's unit `<node>.W` / `<node>.R`.
    pub unit: String,
    /// Its ONNX op type.
    pub op: &'static str,
    /// The weight's value name (an initializer of the graph).
    pub weight: String,
    /// The weight tensor's shape.
    pub shape: Vec<usize>,
    /// The matrices pruned in it.
    pub matrices: Vec<Matrix>,
}

impl Layer {
    /// Elements pruning applies to (all of its matrices).
    pub fn elements(&self) -> usize {
        self.matrices.iter().map(|m| m.rows * m.cols).sum()
    }
}

/// A layer left dense, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The node.
    pub node: String,
    /// The LR file's name for the weight (as [`Layer::unit`]).
    pub unit: String,
    /// Its ONNX op type.
    pub op: &'static str,
    /// Why (a sentence fragment: "depthwise conv", ...).
    pub reason: String,
}

/// Finds the prunable layers of `graph` for blocks of `block` (the default
/// one; a layer is too small when a matrix has fewer rows or columns than
/// it).
pub fn find(graph: &Graph, block: BlockSize) -> (Vec<Layer>, Vec<Skipped>) {
    let mut layers = Vec::new();
    let mut skipped = Vec::new();
    for (index, node) in graph.nodes.iter().enumerate() {
        let label = node_label(node, index);
        let op = node.op.op_type();
        let weight_at = match &node.op {
            Op::Gemm { .. } | Op::MatMul | Op::Conv { .. } | Op::Recurrent(_) => 1,
            _ => continue,
        };
        let skip = |reason: String| Skipped {
            node: label.clone(),
            unit: label.clone(),
            op,
            reason,
        };
        let Some(name) = node.inputs.get(weight_at) else {
            continue;
        };
        let Some(w) = graph.initializers.get(name) else {
            skipped.push(skip(format!(
                "weight '{name}' is not a constant (a graph input without an initializer)"
            )));
            continue;
        };
        let shape = w.shape.clone();
        // (weight, matrices) to prune in this node: one weight, or a
        // recurrent op's W and R, each sized up on its own.
        let mut candidates: Vec<(String, String, Vec<usize>, Vec<Matrix>)> = Vec::new();
        match &node.op {
            Op::Gemm { trans_b, .. } if shape.len() == 2 => candidates.push((
                label.clone(),
                name.clone(),
                shape.clone(),
                vec![Matrix {
                    rows: if *trans_b { shape[0] } else { shape[1] },
                    cols: if *trans_b { shape[1] } else { shape[0] },
                    offset: 0,
                    transposed: !trans_b,
                    part: None,
                }],
            )),
            Op::MatMul if shape.len() == 2 => candidates.push((
                label.clone(),
                name.clone(),
                shape.clone(),
                vec![Matrix {
                    rows: shape[1],
                    cols: shape[0],
                    offset: 0,
                    transposed: true,
                    part: None,
                }],
            )),
            Op::MatMul => {
                skipped.push(skip(format!(
                    "weight '{name}' has rank {}, not 2",
                    shape.len()
                )));
                continue;
            }
            Op::Conv { group, .. } if shape.len() == 4 => {
                if *group > 1 && shape[1] == 1 {
                    skipped.push(skip("depthwise conv".to_string()));
                    continue;
                }
                candidates.push((
                    label.clone(),
                    name.clone(),
                    shape.clone(),
                    vec![Matrix {
                        rows: shape[0],
                        cols: shape[1] * shape[2] * shape[3],
                        offset: 0,
                        transposed: false,
                        part: None,
                    }],
                ));
            }
            Op::Recurrent(r) if shape.len() == 3 => {
                let (gates, names, hidden) = (r.cell.gates(), r.cell.gate_names(), r.hidden_size);
                let per_gate = |t: &grim_model::Tensor| -> Vec<Matrix> {
                    let (dirs, cols) = (t.shape[0], t.shape[2]);
                    (0..dirs)
                        .flat_map(|d| {
                            (0..gates).map(move |g| Matrix {
                                rows: hidden,
                                cols,
                                offset: (d * gates + g) * hidden * cols,
                                transposed: false,
                                part: Some(names[g].to_string()),
                            })
                        })
                        .collect()
                };
                candidates.push((
                    format!("{label}.W"),
                    name.clone(),
                    shape.clone(),
                    per_gate(w),
                ));
                match node
                    .inputs
                    .get(2)
                    .and_then(|n| graph.initializers.get_key_value(n))
                {
                    Some((rname, rt)) if rt.shape.len() == 3 => candidates.push((
                        format!("{label}.R"),
                        rname.clone(),
                        rt.shape.clone(),
                        per_gate(rt),
                    )),
                    _ => skipped.push(skip("its recurrent weight R is not a constant".to_string())),
                }
            }
            _ => {
                skipped.push(skip(format!(
                    "weight '{name}' has an unexpected shape {shape:?}"
                )));
                continue;
            }
        }
        for (unit, weight, shape, matrices) in candidates {
            if let Some(m) = matrices
                .iter()
                .find(|m| m.rows < block.rows || m.cols < block.cols)
            {
                skipped.push(Skipped {
                    unit,
                    ..skip(format!(
                        "too small: its {}x{} matrix of '{weight}' is smaller than a {block} block",
                        m.rows, m.cols
                    ))
                });
                continue;
            }
            layers.push(Layer {
                node: label.clone(),
                index,
                unit,
                op,
                weight,
                shape,
                matrices,
            });
        }
    }
    (layers, skipped)
}

#[cfg(test)]
mod tests;
