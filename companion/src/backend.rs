//! Choosing the burn backend at run time; every model function is generic over it.

use clap::ValueEnum;

/// The compute backends this binary was built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// CPU (burn-ndarray); always available.
    Ndarray,
    /// wgpu: Vulkan, Metal or DX12 (build with `--features wgpu`).
    Wgpu,
    /// NVIDIA CUDA (build with `--features cuda`).
    Cuda,
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
