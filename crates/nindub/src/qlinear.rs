//! Quantized linear layers: `y = x·Wᵀ` with `W` stored as a [`crate::quant::QTensor`].
