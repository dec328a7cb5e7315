//! A grim function as an e-graph: the language, the analysis (shapes and
//! constness), the extraction cost, and the conversions from MLIR and
//! back.

pub mod convert;
pub mod cost;
pub mod evaluate;
pub mod facts;
pub mod lang;
pub mod rebuild;
