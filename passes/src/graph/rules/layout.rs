//! Transposes and reshapes: two transposes of a 2-D value cancel, two
//! reshapes are one, a reshape to the shape a value already has is the
//! value, and a transpose or reshape of a constant is a constant
//! expression (evaluated when the function is rebuilt, so it costs nothing
//! at run time).

use super::{has_shape_of_leaf, is_constant};
use crate::graph::egraph::{facts::Facts, lang::Node};
use egg::{rewrite, Rewrite};

/// The layout rules.
pub fn rules() -> Vec<Rewrite<Node, Facts>> {
    vec![
        rewrite!("transpose-transpose"; "(transpose ?n1 (transpose ?n2 ?x))" => "?x"),
        rewrite!("reshape-reshape"; "(reshape ?s ?n1 (reshape ?t ?n2 ?x))" => "(reshape ?s ?n1 ?x)"),
        rewrite!("reshape-noop"; "(reshape ?s ?n ?x)" => "?x" if has_shape_of_leaf("?x", "?s")),
        rewrite!("transpose-constant"; "(transpose ?n ?c)" => "(const-transpose ?c)" if is_constant("?c")),
        rewrite!("reshape-constant"; "(reshape ?s ?n ?c)" => "(const-as ?s ?c)" if is_constant("?c")),
    ]
}
