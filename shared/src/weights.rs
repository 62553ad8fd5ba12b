//! Reading named tensors out of a safetensors file into burn tensors, with shape checks.

use burn::module::Param;
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear};
use burn::tensor::{backend::Backend, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};

use crate::error::{ModelError, Result};

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

    /// The file name given at parse time.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the file holds `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.tensors.tensor(key).is_ok()
    }

    /// Reads `key` as f32 values after checking that its shape is `expected`.
    pub fn read_f32(&self, key: &str, expected: &[usize]) -> Result<Vec<f32>> {
        let view = self.tensors.tensor(key).map_err(|_| ModelError::MissingTensor {
            file: self.name.clone(),
            key: key.to_string(),
        })?;
        if view.shape() != expected {
            return Err(ModelError::Shape {
                file: self.name.clone(),
                key: key.to_string(),
                expected: expected.to_vec(),
                found: view.shape().to_vec(),
            });
        }
        let bytes = view.data();
        let values = match view.dtype() {
            Dtype::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            Dtype::F16 => bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Dtype::BF16 => bytes.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            other => {
                return Err(ModelError::DType {
                    file: self.name.clone(),
                    key: key.to_string(),
                    dtype: format!("{other:?}"),
                })
            }
        };
        Ok(values)
    }

    /// Reads `key` as a tensor of exactly the shape `expected`.
    pub fn tensor<B: Backend, const D: usize>(
        &self,
        key: &str,
        expected: [usize; D],
        device: &B::Device,
    ) -> Result<Tensor<B, D>> {
        let values = self.read_f32(key, &expected)?;
        Ok(Tensor::from_data(TensorData::new(values, expected), device))
    }

    /// A linear layer from PyTorch's `{prefix}.weight` (`[out, in]`) and `{prefix}.bias`.
    pub fn linear<B: Backend>(&self, prefix: &str, d_in: usize, d_out: usize, device: &B::Device) -> Result<Linear<B>> {
        // burn stores Linear weights as [in, out]: the transpose of PyTorch's.
        let weight = self.tensor::<B, 2>(&format!("{prefix}.weight"), [d_out, d_in], device)?.transpose();
        let bias = self.tensor::<B, 1>(&format!("{prefix}.bias"), [d_out], device)?;
        Ok(Linear { weight: Param::from_tensor(weight), bias: Some(Param::from_tensor(bias)) })
    }

    /// A layer norm from `{prefix}.weight` and `{prefix}.bias`.
    pub fn layer_norm<B: Backend>(&self, prefix: &str, d: usize, epsilon: f64, device: &B::Device) -> Result<LayerNorm<B>> {
        let mut norm = LayerNormConfig::new(d).with_epsilon(epsilon).init(device);
        norm.gamma = Param::from_tensor(self.tensor(&format!("{prefix}.weight"), [d], device)?);
        norm.beta = Some(Param::from_tensor(self.tensor(&format!("{prefix}.bias"), [d], device)?));
        Ok(norm)
    }

    /// An embedding table from `key` of shape `[rows, d]`.
    pub fn embedding<B: Backend>(&self, key: &str, rows: usize, d: usize, device: &B::Device) -> Result<Embedding<B>> {
        Ok(Embedding { weight: Param::from_tensor(self.tensor(key, [rows, d], device)?) })
    }
}
