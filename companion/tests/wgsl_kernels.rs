//! The browser's WebGPU kernels (relsim_shared::wgsl) on burn-wgpu without fusion, as the page
//! runs them, here over the software Vulkan driver: the linear kernel with each epilogue and
//! the packed self-attention against burn's ops on the CPU, and MiniLM through them against
//! sentence-transformers' embeddings.
#![cfg(feature = "wgpu")]

use std::path::PathBuf;
use std::sync::Once;

use burn::backend::ndarray::{NdArray, NdArrayDevice};
use burn::backend::wgpu::{CubeBackend, WgpuDevice, WgpuRuntime};
use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::{backend::Backend, Distribution, Tensor, TensorData};
use relsim_shared::attention::packed_self_attention_rows;
use relsim_shared::text::minilm::{read_reference, MiniLm, ReferenceCase};
use relsim_shared::vectors::max_abs_diff;
use relsim_shared::wgsl::{self, Epilogue};
use cubecl_runtime::config::cache::CacheConfig;
use cubecl_runtime::config::{CubeClRuntimeConfig, RuntimeConfig};

/// The wgpu device, with cubecl's autotune cache in a temporary folder (by default it writes
/// under the crate's folder).
fn gpu() -> WgpuDevice {
    static CONFIG: Once = Once::new();
    CONFIG.call_once(|| {
        let mut config = CubeClRuntimeConfig::default();
        config.autotune.cache = CacheConfig::File(std::env::temp_dir().join(format!("relsim-wgsl-{}", std::process::id())));
        CubeClRuntimeConfig::set(config);
    });
    WgpuDevice::default()
}

/// burn-wgpu as the page builds it: no fusion, f32.
type Gpu = CubeBackend<WgpuRuntime, f32, i32, u32>;
type Cpu = NdArray<f32>;

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().unwrap()
}

fn on<B: Backend, const D: usize>(v: &[f32], shape: [usize; D], device: &B::Device) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(v.to_vec(), shape), device)
}

fn layer<B: Backend>(w: &[f32], b: &[f32], [k, n]: [usize; 2], device: &B::Device) -> Linear<B> {
    Linear { weight: Param::from_tensor(on(w, [k, n], device)), bias: Some(Param::from_tensor(on(b, [n], device))) }
}

fn random(shape: &[usize]) -> Vec<f32> {
    values(Tensor::<Cpu, 1>::random([shape.iter().product::<usize>()], Distribution::Normal(0.0, 1.0), &NdArrayDevice::Cpu))
}

#[test]
fn linear_kernel_matches_burn_with_each_epilogue() {
    let gpu = gpu();
    let cpu = NdArrayDevice::Cpu;
    // 40 columns: fewer than one workgroup of 4-column invocations; row counts around the
    // kernel's 4-row blocks.
    let (k, n) = (48, 40);
    let (w, b) = (random(&[k, n]), random(&[n]));
    let (gpu_layer, cpu_layer) = (layer::<Gpu>(&w, &b, [k, n], &gpu), layer::<Cpu>(&w, &b, [k, n], &cpu));
    for m in [1, 3, 4, 13, 70] {
        let (x, r) = (random(&[m, k]), random(&[m, n]));
        let (xg, rg) = (on::<Gpu, 2>(&x, [m, k], &gpu), on::<Gpu, 2>(&r, [m, n], &gpu));
        let (xc, rc) = (on::<Cpu, 2>(&x, [m, k], &cpu), on::<Cpu, 2>(&r, [m, n], &cpu));
        let cases = [
            (Epilogue::None, cpu_layer.forward(xc.clone())),
            (Epilogue::Gelu, burn::tensor::activation::gelu(cpu_layer.forward(xc.clone()))),
            (Epilogue::Residual, cpu_layer.forward(xc.clone()) + rc.clone()),
        ];
        for (epilogue, want) in cases {
            let got = wgsl::linear(&gpu_layer, &xg, epilogue, Some(&rg)).expect("an f32 wgpu tensor takes the kernel");
            assert_eq!(got.dims(), [m, n]);
            let diff = max_abs_diff(&values(got), &values(want));
            assert!(diff < 1e-4, "{epilogue:?}, {m} rows: max diff {diff}");
        }
    }
}

#[test]
fn packed_attention_kernel_matches_the_cpu_rows() {
    let gpu = gpu();
    let (hidden, heads) = (24, 3);
    // Three sentences of different lengths in one dispatch, each attending only to itself.
    let sentences = [(0, 3), (3, 5), (8, 1)];
    let tokens = 9;
    let qkv = random(&[tokens, 3 * hidden]);
    let got = wgsl::packed_self_attention(&on::<Gpu, 2>(&qkv, [tokens, 3 * hidden], &gpu), heads, &sentences)
        .expect("an f32 wgpu tensor takes the kernel");
    let want = packed_self_attention_rows(&qkv, hidden, heads, &sentences);
    let diff = max_abs_diff(&values(got), &want);
    assert!(diff < 1e-5, "max diff {diff}");
    // Sentences that do not cover the tokens are refused, not misread.
    assert!(wgsl::packed_self_attention(&on::<Gpu, 2>(&qkv, [tokens, 3 * hidden], &gpu), heads, &sentences[..2]).is_none());
}

#[test]
fn minilm_through_the_kernels_matches_sentence_transformers() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::var_os("RELSIM_MINILM_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("models/all-MiniLM-L6-v2"));
    let model = MiniLm::<Gpu>::from_dir(&dir, &gpu())
        .unwrap_or_else(|e| panic!("{e}\nthe MiniLM weights are fetched by `cargo xtask setup`"));
    let reference = read_reference(&root.join("tests/fixtures/minilm/reference.json")).unwrap();
    // Short queries as the page sends them, one at a time, and the longest input (256 tokens).
    let mut cases: Vec<&ReferenceCase> = reference.iter().filter(|c| c.input_ids.len() <= 16).take(6).collect();
    cases.extend(reference.iter().filter(|c| c.input_ids.len() == 256).take(1));
    assert!(cases.len() >= 5);
    let before = wgsl::launches();
    for case in &cases {
        let got = model.embed_vecs(&[case.text.as_str()]).unwrap().pop().unwrap();
        let diff = max_abs_diff(&got, &case.embedding);
        assert!(diff <= 1e-4, "{:?}: max diff {diff}", case.text);
    }
    // Six layers, each: qkv, attention, output + residual, intermediate + GELU, output + residual.
    assert_eq!(wgsl::launches() - before, cases.len() * 6 * 5, "every layer went through the kernels");
}

#[test]
fn the_student_through_the_kernels_matches_the_cpu() {
    use relsim_companion::encoders::{ImageEncoder, LiteEncoder};
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = root.join("assets/relsim-lite-student");
    let cpu = LiteEncoder::<Cpu>::load(&dir, &NdArrayDevice::Cpu).unwrap();
    let gpu = LiteEncoder::<Gpu>::load(&dir, &gpu()).unwrap();
    // Two images in one batch: attention must keep each image's tokens to itself.
    let images: Vec<_> = [(200u8, 40u8), (30, 160)]
        .iter()
        .map(|&(r, g)| image::RgbImage::from_fn(96, 80, |x, y| image::Rgb([r.wrapping_add((x * 3) as u8), g ^ (y as u8), ((x + y) * 2) as u8])))
        .collect();
    let before = wgsl::launches();
    let (got, want) = (gpu.embed_batch(&images).unwrap(), cpu.embed_batch(&images).unwrap());
    assert!(wgsl::launches() > before, "the student's blocks went through the kernels");
    for (g, w) in got.iter().zip(&want) {
        let diff = max_abs_diff(g, w);
        assert!(diff < 1e-4, "max diff {diff}");
    }
    assert!(max_abs_diff(&got[0], &got[1]) > 1e-2, "different images, different vectors");
}
