//! Part II · Engineer.

pub mod golden_triangle;
