//! Ops that compute nothing: an identity (ONNX Identity, or Dropout in
//! inference) is its input.

use crate::graph::egraph::{facts::Facts, lang::Node};
use egg::{rewrite, Rewrite};

/// The cleanup rules.
pub fn rules() -> Vec<Rewrite<Node, Facts>> {
    vec![rewrite!("identity-remove"; "(identity ?n ?x)" => "?x")]
}
