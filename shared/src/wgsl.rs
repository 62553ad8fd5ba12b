//! Hand-written WGSL kernels for the browser's WebGPU path (burn-wgpu without fusion or autotune).
//!
//! Profiled on Chromium's software adapter (SwiftShader), 84% of all CPU samples while the page
//! answered text queries were in two JIT-compiled shaders, and replacing burn's linear layers and
//! attention took a query from ~3 s to ~0.1 s: a dozen rows against a 384-wide weight is not the
//! shape burn's matmul is tiled for. A plain kernel in which each invocation keeps four rows by
//! four columns in registers ran such a product at 2.4 GFLOP/s there (a naive one: 0.44). These kernels take over the
//! linear layers (bias, GELU and residual added in the same pass) and self-attention of packed
//! sentences; everything else stays burn's. Each entry point returns `None` where its tensors
//! are not f32 on burn-wgpu's unfused backend, or not laid out as it needs: the caller then
//! takes burn's ops, so the model code stays the same on every backend.
use std::any::Any;
use std::cell::Cell;

use burn::backend::wgpu::WgpuRuntime;
use burn::nn::Linear;
use burn::tensor::{backend::Backend, DType, Shape, Tensor, TensorPrimitive};
use burn_cubecl::cubecl::{server::KernelArguments, CubeCount, CubeDim};
use burn_cubecl::cubecl::prelude::KernelId;
use burn_cubecl::template::{KernelSource, SourceKernel, SourceTemplate};
use burn_cubecl::tensor::CubeTensor;

/// Invocations per workgroup.
const WORKGROUP: u32 = 64;

thread_local! {
    /// Kernels launched so far by this thread (tests check the model really takes these paths).
    static LAUNCHES: Cell<usize> = const { Cell::new(0) };
}

/// How many of these kernels this thread has launched.
pub fn launches() -> usize {
    LAUNCHES.get()
}

/// What the linear kernel adds to `x · w + bias` before storing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Epilogue {
    /// Nothing.
    None,
    /// BERT's exact (erf) GELU.
    Gelu,
    /// A residual `[m, n]` tensor.
    Residual,
}

/// One kernel: its WGSL and what makes it distinct (for the pipeline cache).
struct Wgsl {
    source: String,
    key: (&'static str, [usize; 2]),
}

impl KernelSource for Wgsl {
    fn source(&self) -> SourceTemplate {
        SourceTemplate::new(self.source.clone())
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info(self.key)
    }
}

/// The contiguous f32 wgpu tensor behind `t`, if that is what `B` stores.
fn wgpu_f32<B: Backend, const D: usize>(t: Tensor<B, D>) -> Option<CubeTensor<WgpuRuntime>> {
    let TensorPrimitive::Float(primitive) = t.into_primitive() else { return None };
    let any: Box<dyn Any> = Box::new(primitive);
    let t = *any.downcast::<CubeTensor<WgpuRuntime>>().ok()?;
    (t.dtype == DType::F32 && t.is_contiguous() && t.is_contiguous_buffer()).then_some(t)
}

/// `t` back as a tensor of `B` (which stores wgpu tensors: its inputs were).
fn tensor<B: Backend, const D: usize>(t: CubeTensor<WgpuRuntime>) -> Option<Tensor<B, D>> {
    let any: Box<dyn Any> = Box::new(t);
    let primitive = *any.downcast::<B::FloatTensorPrimitive>().ok()?;
    Some(Tensor::from_primitive(TensorPrimitive::Float(primitive)))
}

/// Runs `kernel` over `count` workgroups on `inputs`, writing a new `[rows, cols]` tensor that is
/// bound after the inputs, followed by `info` (u32s).
fn launch(kernel: Wgsl, count: [u32; 3], inputs: &[&CubeTensor<WgpuRuntime>], [rows, cols]: [usize; 2], info: &[u32]) -> CubeTensor<WgpuRuntime> {
    let first = inputs[0];
    let client = first.client.clone();
    let output = CubeTensor::new_contiguous(
        client.clone(),
        first.device.clone(),
        Shape::new([rows, cols]),
        client.empty(rows * cols * 4),
        DType::F32,
    );
    let info: Vec<u8> = info.iter().flat_map(|v| v.to_le_bytes()).collect();
    let info = client.create_from_slice(&info);
    let buffers = inputs.iter().map(|t| t.handle.clone().binding()).chain([output.handle.clone().binding(), info.binding()]).collect();
    client.launch(
        Box::new(SourceKernel::new(kernel, CubeDim::new_1d(WORKGROUP))),
        CubeCount::Static(count[0], count[1], count[2]),
        KernelArguments::new().with_buffers(buffers),
    );
    LAUNCHES.set(LAUNCHES.get() + 1);
    output
}

/// `layer(x)` then `epilogue` (`residual` for [`Epilogue::Residual`]) in one pass, for `x`
/// `[m, k]` with `k` and the output width multiples of 4 and a bias.
pub fn linear<B: Backend>(layer: &Linear<B>, x: &Tensor<B, 2>, epilogue: Epilogue, residual: Option<&Tensor<B, 2>>) -> Option<Tensor<B, 2>> {
    let [m, k] = x.dims();
    let [_, n] = layer.weight.dims();
    if m == 0 || !k.is_multiple_of(4) || !n.is_multiple_of(4) {
        return None;
    }
    let x = wgpu_f32(x.clone())?;
    let weight = wgpu_f32(layer.weight.val())?;
    let bias = wgpu_f32(layer.bias.as_ref()?.val())?;
    let residual = match (epilogue, residual) {
        (Epilogue::Residual, Some(r)) if r.dims() == [m, n] => Some(wgpu_f32(r.clone())?),
        (Epilogue::Residual, _) => return None,
        _ => None,
    };
    let (name, finish) = match epilogue {
        Epilogue::None => ("linear", "return v;"),
        Epilogue::Gelu => ("linear_gelu", "return 0.5 * v * (1.0 + erf4(v * 0.70710678118654752));"),
        Epilogue::Residual => ("linear_residual", "return v + residual[i];"),
    };
    let mut bindings = vec!["x", "w", "bias"];
    if residual.is_some() {
        bindings.push("residual");
    }
    bindings.extend(["y", "info"]);
    let source = format!(
        "{declarations}\nconst K4: u32 = {k4}u;\nconst N4: u32 = {n4}u;\n{ERF}\nfn finish(v: vec4<f32>, i: u32) -> vec4<f32> {{ {finish} }}\n{LINEAR}",
        declarations = declare(&bindings),
        k4 = k / 4,
        n4 = n / 4,
    );
    let kernel = Wgsl { source, key: (name, [k, n]) };
    let count = [(n / 4).div_ceil(WORKGROUP as usize) as u32, m.div_ceil(4) as u32, 1];
    let mut inputs = vec![&x, &weight, &bias];
    inputs.extend(residual.as_ref());
    tensor(launch(kernel, count, &inputs, [m, n], &[m as u32]))
}

/// Self-attention of packed sentences on `qkv` `[tokens, 3·hidden]` (queries, keys and values
/// side by side, each `heads` slices), `sentences` as (first token, length): the contexts
/// `[tokens, hidden]`, as [`crate::attention::packed_self_attention_rows`] computes them.
pub fn packed_self_attention<B: Backend>(qkv: &Tensor<B, 2>, heads: usize, sentences: &[(usize, usize)]) -> Option<Tensor<B, 2>> {
    let [tokens, width] = qkv.dims();
    let hidden = width / 3;
    if tokens == 0 || width != 3 * hidden || heads == 0 || !hidden.is_multiple_of(heads) || !(hidden / heads).is_multiple_of(4) {
        return None;
    }
    // Each token's sentence, so that one dispatch covers sentences of any lengths.
    let mut info = Vec::with_capacity(1 + 2 * tokens);
    info.push(tokens as u32);
    for &(first, len) in sentences {
        for _ in 0..len {
            info.extend([first as u32, len as u32]);
        }
    }
    if info.len() != 1 + 2 * tokens {
        return None;
    }
    let qkv = wgpu_f32(qkv.clone())?;
    let head_dim = hidden / heads;
    let source = format!(
        "{declarations}\nconst HEADS: u32 = {heads}u;\nconst D4: u32 = {d4}u;\nconst HIDDEN4: u32 = {hidden4}u;\nconst SCALE: f32 = {scale:e};\n{ATTENTION}",
        declarations = declare(&["qkv", "y", "info"]),
        d4 = head_dim / 4,
        hidden4 = hidden / 4,
        scale = 1.0 / (head_dim as f32).sqrt(),
    );
    let kernel = Wgsl { source, key: ("attention", [hidden, heads]) };
    let count = [(tokens * heads).div_ceil(WORKGROUP as usize) as u32, 1, 1];
    tensor(launch(kernel, count, &[&qkv], [tokens, hidden], &info))
}

/// Storage bindings in order: `info` holds u32s, the rest f32 vectors of four.
fn declare(names: &[&str]) -> String {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let ty = if *name == "info" { "u32" } else { "vec4<f32>" };
            // read_write throughout: cubecl may bind slices of one buffer to several arguments,
            // and WebGPU forbids a buffer being read-only and writable in the same dispatch.
            format!("@group(0) @binding({i}) var<storage, read_write> {name}: array<{ty}>;\n")
        })
        .collect()
}

/// [`crate::activation::erf_approx`]'s rational polynomial, four lanes at a time.
const ERF: &str = "
fn erf4(v: vec4<f32>) -> vec4<f32> {
    let x = clamp(v, vec4<f32>(-4.0), vec4<f32>(4.0));
    let x2 = x * x;
    var p = vec4<f32>(-2.7261423e-10);
    p = p * x2 + 2.7706814e-8;
    p = p * x2 - 2.101024e-6;
    p = p * x2 - 5.6925064e-5;
    p = p * x2 - 7.3499063e-4;
    p = p * x2 - 2.954600e-3;
    p = p * x2 - 1.6096033e-2;
    var q = vec4<f32>(-1.4566072e-5);
    q = q * x2 - 2.1337406e-4;
    q = q * x2 - 1.682827e-3;
    q = q * x2 - 7.373329e-3;
    q = q * x2 - 1.426474e-2;
    return x * p / q;
}
";

/// `y = finish(x · w + bias)`: each invocation four rows by four columns, so every weight vector
/// read serves four rows (eight rows spill registers on SwiftShader and run at half the speed).
/// Rows past the end read the last row and store nothing.
const LINEAR: &str = "
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
    let c = g.x;
    let rows = info[0];
    let m0 = g.y * 4u;
    if (c >= N4 || m0 >= rows) { return; }
    let last = rows - 1u;
    let r1 = min(m0 + 1u, last) * K4;
    let r2 = min(m0 + 2u, last) * K4;
    let r3 = min(m0 + 3u, last) * K4;
    let r0 = m0 * K4;
    var a0 = vec4<f32>(); var a1 = vec4<f32>(); var a2 = vec4<f32>(); var a3 = vec4<f32>();
    for (var k4 = 0u; k4 < K4; k4++) {
        let x0 = x[r0 + k4]; let x1 = x[r1 + k4]; let x2 = x[r2 + k4]; let x3 = x[r3 + k4];
        for (var j = 0u; j < 4u; j++) {
            let wv = w[(k4 * 4u + j) * N4 + c];
            a0 += x0[j] * wv; a1 += x1[j] * wv; a2 += x2[j] * wv; a3 += x3[j] * wv;
        }
    }
    let b = bias[c];
    let o = m0 * N4 + c;
    y[o] = finish(a0 + b, o);
    if (m0 + 1u <= last) { y[o + N4] = finish(a1 + b, o + N4); }
    if (m0 + 2u <= last) { y[o + 2u * N4] = finish(a2 + b, o + 2u * N4); }
    if (m0 + 3u <= last) { y[o + 3u * N4] = finish(a3 + b, o + 3u * N4); }
}
";

/// One invocation per (token, head): the query against its sentence's keys with a running
/// softmax (one pass, no scores stored), then the weighted values.
const ATTENTION: &str = "
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
    let tokens = info[0];
    let token = g.x / HEADS;
    let head = g.x % HEADS;
    if (token >= tokens) { return; }
    let first = info[1u + 2u * token];
    let len = info[2u + 2u * token];
    let row4 = 3u * HIDDEN4;
    let q0 = token * row4 + head * D4;
    var q: array<vec4<f32>, D4>;
    var acc: array<vec4<f32>, D4>;
    for (var d = 0u; d < D4; d++) { q[d] = qkv[q0 + d] * SCALE; acc[d] = vec4<f32>(); }
    var top = -3.0e38;
    var total = 0.0;
    for (var j = 0u; j < len; j++) {
        let k0 = (first + j) * row4 + HIDDEN4 + head * D4;
        var s = 0.0;
        for (var d = 0u; d < D4; d++) { s += dot(q[d], qkv[k0 + d]); }
        let next = max(top, s);
        let shrink = exp(top - next);
        let p = exp(s - next);
        total = total * shrink + p;
        let v0 = k0 + HIDDEN4;
        for (var d = 0u; d < D4; d++) { acc[d] = acc[d] * shrink + p * qkv[v0 + d]; }
        top = next;
    }
    let o = token * HIDDEN4 + head * D4;
    for (var d = 0u; d < D4; d++) { y[o + d] = acc[d] / total; }
}
";
