//! Choosing the burn backend at run time; every model function is generic over it.

/// The compute backends this binary was built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// CPU (burn-ndarray); always available.
    Ndarray,
    /// CPU through burn-flex (SIMD kernels, the gemm crate's matmul): faster than ndarray for
    /// inference; always available.
    Flex,
    /// wgpu: Vulkan, Metal or DX12 (build with `--features wgpu`).
    Wgpu,
    /// NVIDIA CUDA (build with `--features cuda`).
    Cuda,
}

impl BackendKind {
    /// The name `--backend` takes.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Ndarray => "ndarray",
            BackendKind::Flex => "flex",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Cuda => "cuda",
        }
    }
}

/// The backend `--backend auto` picks, and why: CUDA when this build has it and the machine has
/// the CUDA driver, NVRTC and a device; else wgpu when built in and a GPU adapter is found (a
/// software one, like Mesa's lavapipe, is slower than the CPU backend and does not count); else
/// the CPU, through burn-flex (the faster of the two CPU backends).
pub fn auto() -> (BackendKind, String) {
    let mut passed_over: Vec<String> = Vec::new();
    #[cfg(feature = "cuda")]
    match cuda_devices() {
        Ok(n) if n > 0 => return (BackendKind::Cuda, format!("{n} CUDA device(s)")),
        Ok(_) => passed_over.push("cuda: no CUDA device".into()),
        Err(e) => passed_over.push(format!("cuda: {e}")),
    }
    #[cfg(not(feature = "cuda"))]
    passed_over.push("cuda: not in this build (--features cuda)".into());
    #[cfg(feature = "wgpu")]
    {
        let adapters = wgpu_adapters();
        match adapters.iter().find(|a| a.device_type != wgpu::DeviceType::Cpu) {
            Some(gpu) => return (BackendKind::Wgpu, format!("{} over {:?}", gpu.name, gpu.backend)),
            None if adapters.is_empty() => passed_over.push("wgpu: no adapter".into()),
            None => passed_over.push(format!("wgpu: only software adapters ({})", adapters.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", "))),
        }
    }
    #[cfg(not(feature = "wgpu"))]
    passed_over.push("wgpu: not in this build (--features wgpu)".into());
    (BackendKind::Flex, passed_over.join("; "))
}

/// The backend a command runs on: the one asked for, or (`None`) the one [`auto`] picks, said
/// on stderr.
pub fn resolve(asked: Option<BackendKind>) -> BackendKind {
    asked.unwrap_or_else(|| {
        let (kind, why) = auto();
        tracing::info!("backend: {} (auto: {why})", kind.name());
        kind
    })
}

/// Where cubecl keeps compiled kernels and autotune results: `RELSIM_KERNEL_CACHE`, else
/// [`paths::default_kernel_cache_dir`](crate::paths::default_kernel_cache_dir).
pub fn kernel_cache_dir() -> std::path::PathBuf {
    std::env::var_os("RELSIM_KERNEL_CACHE").filter(|d| !d.is_empty()).map_or_else(crate::paths::default_kernel_cache_dir, Into::into)
}

/// Points cubecl's compiled-kernel cache (off by default) and its autotune results at
/// [`kernel_cache_dir`], so that the next process finds its kernels compiled and tuned instead
/// of spending its first forward pass on it. A `cubecl.toml` (or `burn.toml` `[cubecl]`) above
/// the working directory that names its own caches wins; `CUBECL_*` variables still apply.
/// Runs once, before the first GPU tensor is made.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub fn use_kernel_caches() {
    use cubecl_runtime::config::cache::CacheConfig;
    use cubecl_runtime::config::{CubeClRuntimeConfig, RuntimeConfig};
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let dir = kernel_cache_dir();
        // Setting twice panics in cubecl: leave a configuration that something else already made.
        if CubeClRuntimeConfig::storage().lock().is_some() {
            tracing::warn!("cubecl was configured before relsim could point its kernel caches at {}", dir.display());
            return;
        }
        let mut config = CubeClRuntimeConfig::from_current_dir();
        if config.compilation.cache.is_none() {
            config.compilation.cache = Some(CacheConfig::File(dir.join("compilation")));
        }
        if matches!(config.autotune.cache, CacheConfig::Target) {
            config.autotune.cache = CacheConfig::File(dir.join("autotune"));
        }
        tracing::info!("kernel caches: {}", dir.display());
        CubeClRuntimeConfig::set(config.override_from_env());
    });
}

/// An error saying why, when `--backend cuda` cannot run here (burn would panic).
#[cfg(feature = "cuda")]
pub fn ensure_cuda() -> anyhow::Result<()> {
    match cuda_devices() {
        Ok(n) if n > 0 => Ok(()),
        Ok(_) => anyhow::bail!("--backend cuda: the CUDA driver reports no device"),
        Err(e) => anyhow::bail!("--backend cuda: {e}"),
    }
}

/// An error saying why, when `--backend wgpu` has no adapter at all (burn would panic); a
/// software adapter is accepted when asked for by name.
#[cfg(feature = "wgpu")]
pub fn ensure_wgpu() -> anyhow::Result<()> {
    anyhow::ensure!(!wgpu_adapters().is_empty(), "--backend wgpu: no adapter (no Vulkan, Metal or DX12 driver found)");
    Ok(())
}

/// How many CUDA devices the driver reports, or why CUDA cannot run here; asked once per
/// process (`auto` and the backend's own check both need it).
#[cfg(feature = "cuda")]
fn cuda_devices() -> Result<i32, String> {
    static PROBED: std::sync::OnceLock<Result<i32, String>> = std::sync::OnceLock::new();
    PROBED.get_or_init(probe_cuda).clone()
}

#[cfg(feature = "cuda")]
fn probe_cuda() -> Result<i32, String> {
    // Safety: both only try to load the shared library (no CUDA call is made).
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err("no CUDA driver library (libcuda)".into());
    }
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err("no NVRTC library (CUDA's run-time compiler)".into());
    }
    cudarc::driver::result::init().map_err(|e| format!("the CUDA driver does not start: {e}"))?;
    cudarc::driver::result::device::get_count().map_err(|e| format!("counting CUDA devices: {e}"))
}

/// The adapters wgpu finds (Vulkan, Metal or DX12; `WGPU_BACKEND` narrows them), enumerated once
/// per process (`auto` and the backend's own check both need them).
#[cfg(feature = "wgpu")]
fn wgpu_adapters() -> &'static [wgpu::AdapterInfo] {
    static FOUND: std::sync::OnceLock<Vec<wgpu::AdapterInfo>> = std::sync::OnceLock::new();
    FOUND.get_or_init(|| {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapters = futures_lite::future::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY));
        adapters.iter().map(wgpu::Adapter::get_info).collect()
    })
}

/// The float type a model's weights and activations use on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// 32-bit floats (every backend).
    #[default]
    F32,
    /// IEEE half precision (CUDA; burn-flex on the CPU).
    F16,
    /// bfloat16, as the published Qwen2.5-VL weights are stored (CUDA; burn-flex on the CPU).
    Bf16,
}

/// Makes burn-flex create tensors of `precision`: f32, or f16/bf16 so that a bf16 checkpoint
/// stays 16-bit in memory (the 7B in ~16 GB rather than ~31 GB as f32). Burn fixes a device's
/// float type once per process, so asking for another one later is an error.
pub fn use_flex_precision(precision: Precision) -> anyhow::Result<()> {
    use burn::tensor::DType;
    let dtype = match precision {
        Precision::F32 => DType::F32,
        Precision::F16 => DType::F16,
        Precision::Bf16 => DType::BF16,
    };
    let device = burn::backend::flex::FlexDevice;
    if burn::tensor::set_default_dtypes::<burn::backend::Flex>(&device, dtype, DType::I32).is_err() {
        let now = DType::from(burn::tensor::get_device_settings::<burn::backend::Flex>(&device).float_dtype);
        anyhow::ensure!(now == dtype, "the CPU already computes in {now:?} in this process; {dtype:?} needs a fresh process");
    }
    Ok(())
}

/// Whether burn-flex computes in f32 in this process (and from now on it does, if nothing chose
/// yet). It does not when a half-precision model (a bf16 Qwen on the CPU) came first: then an f32
/// model runs on ndarray instead, and this says so once.
pub fn flex_runs_f32() -> bool {
    match use_flex_precision(Precision::F32) {
        Ok(()) => true,
        Err(e) => {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| tracing::warn!("{e}: f32 models run on ndarray in this process"));
            false
        }
    }
}

/// Calls `$body` with the type alias `B` bound to the chosen backend and `device` to its device.
macro_rules! with_backend {
    ($kind:expr, |$device:ident: $b:ident| $body:expr) => {{
        match $kind {
            $crate::backend::BackendKind::Flex if $crate::backend::flex_runs_f32() => {
                type $b = burn::backend::Flex;
                let $device = burn::backend::flex::FlexDevice;
                $body
            }
            $crate::backend::BackendKind::Ndarray | $crate::backend::BackendKind::Flex => {
                type $b = burn::backend::NdArray<f32>;
                let $device = burn::backend::ndarray::NdArrayDevice::Cpu;
                $body
            }
            #[cfg(feature = "wgpu")]
            $crate::backend::BackendKind::Wgpu => {
                $crate::backend::ensure_wgpu()?;
                $crate::backend::use_kernel_caches();
                type $b = burn::backend::Wgpu<f32>;
                let $device = burn::backend::wgpu::WgpuDevice::default();
                $body
            }
            #[cfg(feature = "cuda")]
            $crate::backend::BackendKind::Cuda => {
                $crate::backend::ensure_cuda()?;
                $crate::backend::use_kernel_caches();
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
/// in 16 bits on the device (half the memory of f32): on CUDA, and on the CPU through burn-flex.
macro_rules! with_float_backend {
    ($kind:expr, $precision:expr, |$device:ident: $b:ident| $body:expr) => {{
        match ($kind, $precision) {
            (kind, $crate::backend::Precision::F32) => $crate::backend::with_backend!(kind, |$device: $b| $body),
            ($crate::backend::BackendKind::Ndarray | $crate::backend::BackendKind::Flex, precision) => {
                $crate::backend::use_flex_precision(precision)?;
                type $b = burn::backend::Flex;
                let $device = burn::backend::flex::FlexDevice;
                $body
            }
            #[cfg(feature = "cuda")]
            ($crate::backend::BackendKind::Cuda, $crate::backend::Precision::F16) => {
                $crate::backend::ensure_cuda()?;
                $crate::backend::use_kernel_caches();
                type $b = burn::backend::Cuda<half::f16>;
                let $device = burn::backend::cuda::CudaDevice::default();
                $body
            }
            #[cfg(feature = "cuda")]
            ($crate::backend::BackendKind::Cuda, $crate::backend::Precision::Bf16) => {
                $crate::backend::ensure_cuda()?;
                $crate::backend::use_kernel_caches();
                type $b = burn::backend::Cuda<half::bf16>;
                let $device = burn::backend::cuda::CudaDevice::default();
                $body
            }
            (kind, precision) => anyhow::bail!(
                "precision `{}` is not available on backend `{}`: half precision runs on `--backend cuda` (built with `--features cuda`) or `--backend ndarray|flex` (the CPU)",
                format!("{precision:?}").to_lowercase(),
                format!("{kind:?}").to_lowercase()
            ),
        }
    }};
}
pub(crate) use with_float_backend;

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(any(feature = "cuda", feature = "wgpu")))]
    #[test]
    fn auto_without_gpu_backends_is_the_cpu_and_says_why() {
        let (kind, why) = auto();
        assert_eq!(kind, BackendKind::Flex);
        assert!(why.contains("cuda: not in this build") && why.contains("wgpu: not in this build"), "{why}");
    }

    #[test]
    fn an_explicit_choice_is_kept() {
        for kind in [BackendKind::Ndarray, BackendKind::Flex, BackendKind::Wgpu, BackendKind::Cuda] {
            assert_eq!(resolve(Some(kind)), kind);
        }
    }
}
