//! Part II · Engineer.

pub mod automated_forge;
pub mod golden_triangle;
pub mod pocket_worlds;
