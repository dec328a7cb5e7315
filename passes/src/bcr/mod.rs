//! Transformations at the bcr level (schedule and work order).

pub mod lre;
pub mod parallelize;
pub mod reorder;
pub mod tile;
pub mod uniform_blocks;
pub mod vectorize;
