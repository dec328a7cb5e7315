//! A one-node recurrent graph with random operands, for tests.

use rand::{rngs::StdRng, Rng, SeedableRng};

use super::Recurrent;
use crate::error::ModelError;
use crate::graph::{Graph, Node, Op, ValueInfo};
use crate::tensor::Tensor;

fn random(shape: &[usize], rng: &mut StdRng) -> Tensor {
    let n = shape.iter().product();
    Tensor {
        shape: shape.to_vec(),
        data: (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect(),
    }
}

/// A graph of one recurrent node `r` with `X` (`seq` steps of `batch`
/// vectors of `input`) as its input and every other operand a random
/// initializer drawn from `seed`, outputting every result; and a random
/// `X`. For tests of everything that runs recurrent ops.
pub fn single_node(
    r: &Recurrent,
    seq: usize,
    batch: usize,
    input: usize,
    seed: u64,
) -> Result<(Graph, Tensor), ModelError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let (d, g, h) = (r.direction.count(), r.cell.gates(), r.hidden_size);
    let x_shape = if r.batch_major {
        vec![batch, seq, input]
    } else {
        vec![seq, batch, input]
    };
    let state = if r.batch_major {
        vec![batch, d, h]
    } else {
        vec![d, batch, h]
    };
    let mut initializers = std::collections::BTreeMap::new();
    let mut inputs = vec!["X".to_string()];
    let mut add = |name: &str, shape: Vec<usize>, inputs: &mut Vec<String>| {
        initializers.insert(name.to_string(), random(&shape, &mut rng));
        inputs.push(name.to_string());
    };
    add("W", vec![d, g * h, input], &mut inputs);
    add("R", vec![d, g * h, h], &mut inputs);
    let o = r.optional;
    if o.bias {
        add("B", vec![d, 2 * g * h], &mut inputs);
    }
    if o.initial_h {
        add("initial_h", state.clone(), &mut inputs);
    }
    if o.initial_c {
        add("initial_c", state.clone(), &mut inputs);
    }
    if o.peepholes {
        add("P", vec![d, 3 * h], &mut inputs);
    }
    let outputs: Vec<String> = ["Y", "Y_h", "Y_c"][..r.cell.outputs()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut graph = Graph {
        name: "rnn".into(),
        inputs: vec![ValueInfo {
            name: "X".into(),
            shape: x_shape.clone(),
        }],
        outputs: vec![],
        nodes: vec![Node {
            name: "rnn".into(),
            op: Op::Recurrent(Box::new(r.clone())),
            inputs,
            outputs: outputs.clone(),
        }],
        initializers,
    };
    let shapes = graph.infer_shapes()?;
    graph.outputs = outputs
        .iter()
        .map(|o| ValueInfo {
            name: o.clone(),
            shape: shapes[o].clone(),
        })
        .collect();
    let x = random(&x_shape, &mut StdRng::seed_from_u64(seed ^ 0x55));
    Ok((graph, x))
}
