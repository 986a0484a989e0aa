//! The block formats the fused engine computes with: every GGML type the
//! Codex decodes except the plain floats. A row of a matrix is a whole
//! number of its blocks: 32 values for the blocks of [`super::blocks`],
//! 256 for the super-blocks of [`super::superblocks`].

use candle_core::quantized::GgmlDType;

use super::blocks::{
    Block, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, dequantize_blocks,
};
use super::superblocks::{BlockQ4K, BlockQ5K, BlockQ6K};

/// A quantized block format the fused engine reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q4K,
    Q5K,
    Q6K,
}

impl Format {
    /// All of them, in the order llama.cpp numbers their types.
    pub const ALL: [Format; 8] = [
        Format::Q4_0,
        Format::Q4_1,
        Format::Q5_0,
        Format::Q5_1,
        Format::Q8_0,
        Format::Q4K,
        Format::Q5K,
        Format::Q6K,
    ];

    /// Bytes of one block.
    pub const fn block_bytes(self) -> usize {
        match self {
            Format::Q4_0 => BlockQ4_0::BYTES,
            Format::Q4_1 => BlockQ4_1::BYTES,
            Format::Q5_0 => BlockQ5_0::BYTES,
            Format::Q5_1 => BlockQ5_1::BYTES,
            Format::Q8_0 => BlockQ8_0::BYTES,
            Format::Q4K => BlockQ4K::BYTES,
            Format::Q5K => BlockQ5K::BYTES,
            Format::Q6K => BlockQ6K::BYTES,
        }
    }

    /// Values in one block: 32, or 256 for a super-block.
    pub const fn block_values(self) -> usize {
        match self {
            Format::Q4_0 | Format::Q4_1 | Format::Q5_0 | Format::Q5_1 | Format::Q8_0 => {
                BlockQ4_0::VALUES
            }
            Format::Q4K | Format::Q5K | Format::Q6K => BlockQ4K::VALUES,
        }
    }

    /// Bytes of a row of `cols` values (a whole number of blocks).
    pub const fn row_bytes(self, cols: usize) -> usize {
        cols / self.block_values() * self.block_bytes()
    }

    /// The format of a GGML type, if the fused engine reads it.
    pub fn from_ggml(dtype: GgmlDType) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.ggml() == dtype)
    }

    pub fn ggml(self) -> GgmlDType {
        match self {
            Format::Q4_0 => GgmlDType::Q4_0,
            Format::Q4_1 => GgmlDType::Q4_1,
            Format::Q5_0 => GgmlDType::Q5_0,
            Format::Q5_1 => GgmlDType::Q5_1,
            Format::Q8_0 => GgmlDType::Q8_0,
            Format::Q4K => GgmlDType::Q4K,
            Format::Q5K => GgmlDType::Q5K,
            Format::Q6K => GgmlDType::Q6K,
        }
    }

    /// The names of all of them, for messages: `Q4_0, Q4_1, …, Q6_K`.
    pub fn names() -> String {
        Format::ALL
            .map(|f| super::dtype::name(f.ggml()).to_uppercase())
            .join(", ")
    }
}

/// Decodes a row of `format` blocks into floats (`out` holds the row's
/// values: [`Format::block_values`] per block).
pub fn dequantize_row(format: Format, row: &[u8], out: &mut [f32]) {
    match format {
        Format::Q4_0 => dequantize_blocks::<BlockQ4_0>(row, out),
        Format::Q4_1 => dequantize_blocks::<BlockQ4_1>(row, out),
        Format::Q5_0 => dequantize_blocks::<BlockQ5_0>(row, out),
        Format::Q5_1 => dequantize_blocks::<BlockQ5_1>(row, out),
        Format::Q8_0 => dequantize_blocks::<BlockQ8_0>(row, out),
        Format::Q4K => dequantize_blocks::<BlockQ4K>(row, out),
        Format::Q5K => dequantize_blocks::<BlockQ5K>(row, out),
        Format::Q6K => dequantize_blocks::<BlockQ6K>(row, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_is_its_ggml_types_size() {
        for f in Format::ALL {
            assert_eq!(Format::from_ggml(f.ggml()), Some(f));
            assert_eq!(f.block_bytes(), f.ggml().type_size(), "{f:?}");
            assert_eq!(f.block_values(), f.ggml().block_size(), "{f:?}");
        }
        assert_eq!(Format::from_ggml(GgmlDType::F16), None);
        assert_eq!(Format::Q4K.row_bytes(1536), 6 * 144);
        assert_eq!(
            Format::names(),
            "Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K"
        );
    }
}
