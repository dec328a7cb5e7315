//! The reference interpreter: dense, naive and obviously correct.
//!
//! Every compiled kernel is tested against this, so it favours clarity over
//! speed: plain index loops, f64 accumulation, no sparsity, no BCRC.

use std::collections::BTreeMap;

use crate::error::ModelError;
use crate::graph::{broadcast_shapes, node_label, node_output_shape, Graph, Op};
use crate::tensor::Tensor;

/// Row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Index into a tensor of shape `from` that broadcasts to `to`, for the
/// multi-index `idx` of `to`.
fn broadcast_index(idx: &[usize], from: &[usize]) -> usize {
    let off = idx.len() - from.len();
    let st = strides(from);
    from.iter()
        .enumerate()
        .map(|(i, &d)| if d == 1 { 0 } else { idx[off + i] * st[i] })
        .sum()
}

/// Calls `f(flat, multi_index)` for every element of `shape` in row-major order.
fn for_each_index(shape: &[usize], mut f: impl FnMut(usize, &[usize])) {
    let n: usize = shape.iter().product();
    let mut idx = vec![0; shape.len()];
    for flat in 0..n {
        f(flat, &idx);
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// Runs `graph` on `inputs` (one per graph input, in order) and returns the
/// graph outputs in order.
///
/// Errors name the input whose count or shape is wrong, or the node whose
/// shapes do not fit.
pub fn run_reference(graph: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
    if inputs.len() != graph.inputs.len() {
        return Err(ModelError::Tensor {
            name: String::new(),
            message: format!(
                "the graph has {} inputs ({}) but {} tensors were given",
                graph.inputs.len(),
                graph
                    .inputs
                    .iter()
                    .map(|v| v.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                inputs.len()
            ),
        });
    }
    let mut env: BTreeMap<&str, Tensor> = BTreeMap::new();
    for (vi, t) in graph.inputs.iter().zip(inputs) {
        if t.shape != vi.shape {
            return Err(ModelError::Tensor {
                name: vi.name.clone(),
                message: format!("expected shape {:?}, got {:?}", vi.shape, t.shape),
            });
        }
        if t.data.len() != t.numel() {
            return Err(ModelError::Tensor {
                name: vi.name.clone(),
                message: format!(
                    "shape {:?} needs {} values but it holds {}",
                    t.shape,
                    t.numel(),
                    t.data.len()
                ),
            });
        }
        env.insert(&vi.name, t.clone());
    }
    for (name, t) in &graph.initializers {
        if t.data.len() != t.numel() {
            return Err(ModelError::Tensor {
                name: name.clone(),
                message: format!("initializer shape {:?} does not match its data", t.shape),
            });
        }
        env.entry(name).or_insert_with(|| t.clone());
    }
    for (i, node) in graph.nodes.iter().enumerate() {
        let label = node_label(node, i);
        let mut ins: Vec<&Tensor> = Vec::with_capacity(node.inputs.len());
        for name in &node.inputs {
            ins.push(env.get(name.as_str()).ok_or_else(|| ModelError::Shape {
                node: label.clone(),
                message: format!("input '{name}' is not defined before this node"),
            })?);
        }
        let shapes: Vec<&[usize]> = ins.iter().map(|t| t.shape.as_slice()).collect();
        let out_shape = node_output_shape(&label, node, &shapes)?;
        let out = eval(&node.op, &ins, out_shape);
        for o in &node.outputs {
            env.insert(o, out.clone());
        }
    }
    graph
        .outputs
        .iter()
        .map(|vi| {
            env.get(vi.name.as_str())
                .cloned()
                .ok_or_else(|| ModelError::Shape {
                    node: vi.name.clone(),
                    message: "graph output is never computed".into(),
                })
        })
        .collect()
}

/// Evaluates one op whose shapes have already been checked.
fn eval(op: &Op, ins: &[&Tensor], out_shape: Vec<usize>) -> Tensor {
    match op {
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => {
            let (a, b) = (ins[0], ins[1]);
            let (n, m) = (out_shape[0], out_shape[1]);
            let k = if *trans_a { a.shape[0] } else { a.shape[1] };
            let a_at = |i: usize, kk: usize| {
                if *trans_a {
                    a.data[kk * a.shape[1] + i]
                } else {
                    a.data[i * a.shape[1] + kk]
                }
            };
            let b_at = |kk: usize, j: usize| {
                if *trans_b {
                    b.data[j * b.shape[1] + kk]
                } else {
                    b.data[kk * b.shape[1] + j]
                }
            };
            let mut data = vec![0.0f32; n * m];
            for i in 0..n {
                for j in 0..m {
                    let mut acc = 0.0f64;
                    for kk in 0..k {
                        acc += a_at(i, kk) as f64 * b_at(kk, j) as f64;
                    }
                    let mut v = *alpha as f64 * acc;
                    if let Some(c) = ins.get(2) {
                        v += *beta as f64 * c.data[broadcast_index(&[i, j], &c.shape)] as f64;
                    }
                    data[i * m + j] = v as f32;
                }
            }
            Tensor {
                shape: out_shape,
                data,
            }
        }
        Op::MatMul => {
            // Promote 1-D operands to 2-D as numpy does, then drop the added dim
            // (out_shape already has the right rank).
            let (a, b) = (ins[0], ins[1]);
            let (n, k) = if a.shape.len() == 2 {
                (a.shape[0], a.shape[1])
            } else {
                (1, a.shape[0])
            };
            let m = if b.shape.len() == 2 { b.shape[1] } else { 1 };
            let mut data = vec![0.0f32; n * m];
            for i in 0..n {
                for j in 0..m {
                    let mut acc = 0.0f64;
                    for kk in 0..k {
                        acc += a.data[i * k + kk] as f64 * b.data[kk * m + j] as f64;
                    }
                    data[i * m + j] = acc as f32;
                }
            }
            Tensor {
                shape: out_shape,
                data,
            }
        }
        Op::Add => {
            let (a, b) = (ins[0], ins[1]);
            debug_assert_eq!(
                broadcast_shapes(&a.shape, &b.shape).as_deref(),
                Some(out_shape.as_slice())
            );
            let mut data = vec![0.0f32; out_shape.iter().product()];
            for_each_index(&out_shape, |flat, idx| {
                data[flat] =
                    a.data[broadcast_index(idx, &a.shape)] + b.data[broadcast_index(idx, &b.shape)];
            });
            Tensor {
                shape: out_shape,
                data,
            }
        }
        Op::Relu => Tensor {
            shape: out_shape,
            data: ins[0].data.iter().map(|&v| v.max(0.0)).collect(),
        },
        Op::Transpose => {
            let (rows, cols) = (ins[0].shape[0], ins[0].shape[1]);
            let mut data = vec![0.0f32; rows * cols];
            for r in 0..rows {
                for c in 0..cols {
                    data[c * rows + r] = ins[0].data[r * cols + c];
                }
            }
            Tensor {
                shape: out_shape,
                data,
            }
        }
        // Row-major data does not move when only the shape changes.
        Op::Flatten { .. } | Op::Reshape { .. } => Tensor {
            shape: out_shape,
            data: ins[0].data.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Node, ValueInfo};

    fn t(shape: &[usize], data: &[f32]) -> Tensor {
        Tensor::new(shape.to_vec(), data.to_vec()).unwrap()
    }

    fn one_node(
        op: Op,
        ins: &[(&str, Vec<usize>)],
        inits: Vec<(&str, Tensor)>,
        out: Vec<usize>,
    ) -> Graph {
        let mut names: Vec<String> = ins.iter().map(|(n, _)| n.to_string()).collect();
        names.extend(inits.iter().map(|(n, _)| n.to_string()));
        Graph {
            name: "t".into(),
            inputs: ins
                .iter()
                .map(|(n, s)| ValueInfo {
                    name: n.to_string(),
                    shape: s.clone(),
                })
                .collect(),
            outputs: vec![ValueInfo {
                name: "y".into(),
                shape: out,
            }],
            nodes: vec![Node {
                name: "n".into(),
                op,
                inputs: names,
                outputs: vec!["y".into()],
            }],
            initializers: inits.into_iter().map(|(n, t)| (n.to_string(), t)).collect(),
        }
    }

    #[test]
    fn gemm_trans_alpha_beta_by_hand() {
        // A stored transposed: A^T = [[1,2],[3,4],[5,6]] (3x2) so A = [[1,3,5],[2,4,6]].
        // B stored transposed: B^T = [[1,0,1],[0,1,1]] (2x3) so B = [[1,0],[0,1],[1,1]].
        // A*B = [[1+5, 3+5],[2+6, 4+6]] = [[6,8],[8,10]].
        // Y = 2*A*B + 0.5*C with C = [10, 20] broadcast over rows.
        let g = one_node(
            Op::Gemm {
                alpha: 2.0,
                beta: 0.5,
                trans_a: true,
                trans_b: true,
            },
            &[("a", vec![3, 2])],
            vec![
                ("b", t(&[2, 3], &[1., 0., 1., 0., 1., 1.])),
                ("c", t(&[2], &[10., 20.])),
            ],
            vec![2, 2],
        );
        let y = run_reference(&g, &[t(&[3, 2], &[1., 2., 3., 4., 5., 6.])]).unwrap();
        assert_eq!(y[0].shape, vec![2, 2]);
        assert_eq!(y[0].data, vec![17., 26., 21., 30.]);
    }

    #[test]
    fn gemm_plain_and_matmul_agree() {
        let a = t(&[2, 3], &[1., -2., 3., 0.5, 0., -1.]);
        let b = t(&[3, 2], &[1., 2., 3., 4., 5., 6.]);
        let g = one_node(
            Op::MatMul,
            &[("a", vec![2, 3])],
            vec![("b", b.clone())],
            vec![2, 2],
        );
        let y = run_reference(&g, std::slice::from_ref(&a)).unwrap();
        // Row 0: 1-6+15=10, 2-8+18=12; row 1: 0.5-5=-4.5, 1-6=-5.
        assert_eq!(y[0].data, vec![10., 12., -4.5, -5.]);
        let g = one_node(
            Op::Gemm {
                alpha: 1.0,
                beta: 1.0,
                trans_a: false,
                trans_b: false,
            },
            &[("a", vec![2, 3])],
            vec![("b", b)],
            vec![2, 2],
        );
        assert_eq!(run_reference(&g, &[a]).unwrap()[0].data, y[0].data);
    }

    #[test]
    fn add_broadcast_relu_flatten() {
        let g = one_node(
            Op::Add,
            &[("a", vec![2, 1]), ("b", vec![3])],
            vec![],
            vec![2, 3],
        );
        let y = run_reference(&g, &[t(&[2, 1], &[10., 20.]), t(&[3], &[1., 2., 3.])]).unwrap();
        assert_eq!(y[0].data, vec![11., 12., 13., 21., 22., 23.]);
        let g = one_node(Op::Relu, &[("a", vec![4])], vec![], vec![4]);
        let y = run_reference(&g, &[t(&[4], &[-1., 0., 2., -0.5])]).unwrap();
        assert_eq!(y[0].data, vec![0., 0., 2., 0.]);
        let g = one_node(
            Op::Flatten { axis: 1 },
            &[("a", vec![2, 2, 2])],
            vec![],
            vec![2, 4],
        );
        let y = run_reference(&g, &[t(&[2, 2, 2], &[1., 2., 3., 4., 5., 6., 7., 8.])]).unwrap();
        assert_eq!((y[0].shape.clone(), y[0].data[5]), (vec![2, 4], 6.));
    }

    #[test]
    fn input_errors_name_the_input() {
        let g = one_node(Op::Relu, &[("x", vec![4])], vec![], vec![4]);
        let e = run_reference(&g, &[t(&[5], &[0.; 5])])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'x'") && e.contains("[4]") && e.contains("[5]"),
            "{e}"
        );
        let e = run_reference(&g, &[]).unwrap_err().to_string();
        assert!(e.contains("1 inputs (x)"), "{e}");
    }
}
