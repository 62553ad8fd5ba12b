//! Reading named tensors out of safetensors files into burn tensors, with shape checks.

use burn::module::Param;
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear, RmsNorm, RmsNormConfig};
use burn::tensor::{backend::Backend, Tensor, TensorData};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::error::{ModelError, Result};

/// Decodes little-endian F32, F16 or BF16 bytes to f32.
pub fn to_f32(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F16 => bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::BF16 => bytes.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        _ => return None,
    })
}

/// burn's `[in, out]` Linear weight from PyTorch's row-major `[out, in]` values, transposed on
/// the host so the tensor is contiguous. A lazily transposed (column-major) weight is what
/// cubecl 0.10's matmul gets wrong on wgpu for some shapes (2-32 rows, inner size ≡ 8 mod 16
/// and ≥ 520, e.g. the 1176-wide patch embedding); row-major weights take a correct kernel.
pub fn linear_weight<B: Backend>(values: &[f32], d_out: usize, d_in: usize, device: &B::Device) -> Tensor<B, 2> {
    debug_assert_eq!(values.len(), d_out * d_in);
    let mut t = vec![0f32; values.len()];
    for (o, row) in values.chunks_exact(d_in).enumerate() {
        for (i, &v) in row.iter().enumerate() {
            t[i * d_out + o] = v;
        }
    }
    Tensor::from_data(TensorData::new(t, [d_in, d_out]), device)
}

/// The error for a tensor stored in a type we cannot read.
pub fn dtype_error(view: &TensorView<'_>, file: String, key: &str) -> ModelError {
    ModelError::DType { file, key: key.to_string(), dtype: format!("{:?}", view.dtype()) }
}

/// A set of named tensors (one file or many shards) that modules are built from.
pub trait Weights {
    /// The tensor stored under `key`, with the name of the file holding it.
    fn view(&self, key: &str) -> Option<(TensorView<'_>, String)>;

    /// What to call these weights in an error about a key they lack.
    fn describe(&self) -> String;

    /// Whether `key` is present.
    fn contains(&self, key: &str) -> bool {
        self.view(key).is_some()
    }

    /// The tensor under `key` and its file, or an error naming them when it is absent or its
    /// shape is not `expected`.
    fn checked_view(&self, key: &str, expected: &[usize]) -> Result<(TensorView<'_>, String)> {
        let (view, file) =
            self.view(key).ok_or_else(|| ModelError::MissingTensor { file: self.describe(), key: key.to_string() })?;
        if view.shape() != expected {
            return Err(ModelError::Shape { file, key: key.to_string(), expected: expected.to_vec(), found: view.shape().to_vec() });
        }
        Ok((view, file))
    }

    /// Reads `key` as f32 values after checking that its shape is `expected`.
    fn read_f32(&self, key: &str, expected: &[usize]) -> Result<Vec<f32>> {
        let (view, file) = self.checked_view(key, expected)?;
        to_f32(view.dtype(), view.data()).ok_or_else(|| dtype_error(&view, file, key))
    }

    /// Reads `key` as a tensor of exactly the shape `expected`.
    fn tensor<B: Backend, const D: usize>(&self, key: &str, expected: [usize; D], device: &B::Device) -> Result<Tensor<B, D>> {
        let values = self.read_f32(key, &expected)?;
        Ok(Tensor::from_data(TensorData::new(values, expected), device))
    }

    /// A linear layer from PyTorch's `{prefix}.weight` (`[out, in]`) and, if `bias`, `{prefix}.bias`.
    fn linear<B: Backend>(&self, prefix: &str, d_in: usize, d_out: usize, bias: bool, device: &B::Device) -> Result<Linear<B>> {
        let weight = linear_weight(&self.read_f32(&format!("{prefix}.weight"), &[d_out, d_in])?, d_out, d_in, device);
        let bias = if bias { Some(Param::from_tensor(self.tensor::<B, 1>(&format!("{prefix}.bias"), [d_out], device)?)) } else { None };
        Ok(Linear { weight: Param::from_tensor(weight), bias })
    }

    /// A layer norm from `{prefix}.weight` and `{prefix}.bias`.
    fn layer_norm<B: Backend>(&self, prefix: &str, d: usize, epsilon: f64, device: &B::Device) -> Result<LayerNorm<B>> {
        let mut norm = LayerNormConfig::new(d).with_epsilon(epsilon).init(device);
        norm.gamma = Param::from_tensor(self.tensor(&format!("{prefix}.weight"), [d], device)?);
        norm.beta = Some(Param::from_tensor(self.tensor(&format!("{prefix}.bias"), [d], device)?));
        Ok(norm)
    }

    /// An RMS norm from `{prefix}.weight`.
    fn rms_norm<B: Backend>(&self, prefix: &str, d: usize, epsilon: f64, device: &B::Device) -> Result<RmsNorm<B>> {
        let mut norm = RmsNormConfig::new(d).with_epsilon(epsilon).init(device);
        norm.gamma = Param::from_tensor(self.tensor(&format!("{prefix}.weight"), [d], device)?);
        Ok(norm)
    }

    /// An embedding table from `key` of shape `[rows, d]`.
    fn embedding<B: Backend>(&self, key: &str, rows: usize, d: usize, device: &B::Device) -> Result<Embedding<B>> {
        Ok(Embedding { weight: Param::from_tensor(self.tensor(key, [rows, d], device)?) })
    }
}

/// A parsed safetensors file that remembers its name for error messages.
pub struct TensorFile<'a> {
    name: String,
    tensors: SafeTensors<'a>,
}

impl<'a> TensorFile<'a> {
    /// Parses the safetensors header of `bytes`; `name` is used in every error.
    pub fn parse(name: impl Into<String>, bytes: &'a [u8]) -> Result<Self> {
        let name = name.into();
        let tensors = SafeTensors::deserialize(bytes)
            .map_err(|e| ModelError::Invalid { file: name.clone(), reason: e.to_string() })?;
        Ok(Self { name, tensors })
    }
}

impl Weights for TensorFile<'_> {
    fn view(&self, key: &str) -> Option<(TensorView<'_>, String)> {
        self.tensors.tensor(key).ok().map(|v| (v, self.name.clone()))
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}
