//! Choosing the burn backend at run time; every model function is generic over it.

/// The compute backends this binary was built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// CPU (burn-ndarray); always available.
    Ndarray,
    /// wgpu: Vulkan, Metal or DX12 (build with `--features wgpu`).
    Wgpu,
    /// NVIDIA CUDA (build with `--features cuda`).
    Cuda,
}

/// The float type a model's weights and activations use on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// 32-bit floats (every backend).
    #[default]
    F32,
    /// IEEE half precision (CUDA).
    F16,
    /// bfloat16, as the published Qwen2.5-VL weights are stored (CUDA).
    Bf16,
}

/// Calls `$body` with the type alias `B` bound to the chosen backend and `device` to its device.
macro_rules! with_backend {
    ($kind:expr, |$device:ident: $b:ident| $body:expr) => {{
        match $kind {
            $crate::backend::BackendKind::Ndarray => {
                type $b = burn::backend::NdArray<f32>;
                let $device = burn::backend::ndarray::NdArrayDevice::Cpu;
                $body
            }
            #[cfg(feature = "wgpu")]
            $crate::backend::BackendKind::Wgpu => {
                type $b = burn::backend::Wgpu<f32>;
                let $device = burn::backend::wgpu::WgpuDevice::default();
                $body
            }
            #[cfg(feature = "cuda")]
            $crate::backend::BackendKind::Cuda => {
                type $b = burn::backend::Cuda<f32>;
                let $device = burn::backend::cuda::CudaDevice::default();
                $body
            }
            #[allow(unreachable_patterns)]
            other => anyhow::bail!(
                "backend `{other:?}` is not in this build; rebuild with `--features {}`",
                format!("{other:?}").to_lowercase()
            ),
        }
    }};
}
pub(crate) use with_backend;

/// Like `with_backend!`, with the float type too: half precision keeps weights and activations
/// in 16 bits on the device (half the memory of f32). Only CUDA is built for f16/bf16.
macro_rules! with_float_backend {
    ($kind:expr, $precision:expr, |$device:ident: $b:ident| $body:expr) => {{
        match ($kind, $precision) {
            (kind, $crate::backend::Precision::F32) => $crate::backend::with_backend!(kind, |$device: $b| $body),
            #[cfg(feature = "cuda")]
            ($crate::backend::BackendKind::Cuda, $crate::backend::Precision::F16) => {
                type $b = burn::backend::Cuda<half::f16>;
                let $device = burn::backend::cuda::CudaDevice::default();
                $body
            }
            #[cfg(feature = "cuda")]
            ($crate::backend::BackendKind::Cuda, $crate::backend::Precision::Bf16) => {
                type $b = burn::backend::Cuda<half::bf16>;
                let $device = burn::backend::cuda::CudaDevice::default();
                $body
            }
            (kind, precision) => anyhow::bail!(
                "precision `{}` is not available on backend `{}`: half precision needs `--backend cuda` (built with `--features cuda`)",
                format!("{precision:?}").to_lowercase(),
                format!("{kind:?}").to_lowercase()
            ),
        }
    }};
}
pub(crate) use with_float_backend;
