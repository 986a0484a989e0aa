//! Part II · Engineer.

pub mod automated_forge;
pub mod golden_triangle;
pub mod infrastructure_canon;
pub mod pocket_worlds;
