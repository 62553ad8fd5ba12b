#!/usr/bin/env bash
# The GPU check of issue 15 (point 6), run from the repository root on a lent NVIDIA machine in
# one call of at most 8 minutes, with the release binary and the qwen_parity test binary (built
# with `--features cuda`) in .gpu/ (see NOTES.md for how they are built and carried):
#   1. tiny parity on CUDA: f32 (every stage within 1e-4), bf16 (embedding within 2e-3);
#   2. the Qwen2.5-VL-7B shape, random weights, 448x448, bf16, batch 1 and 16: ours (burn-cuda)
#      with first-call time and kernels compiled, then HF transformers + peft on the same GPU.
# cubecl's compiled kernels and autotune results live in .gpu/kernels (carried in, and brought
# back as $OUT/kernels.tgz), so a rerun starts warm.
#
# Dry run without a GPU: RELSIM_GPU_BACKEND=wgpu runs the same steps on burn-wgpu (e.g. lavapipe)
# with the wgpu parity test and the narrow lavapipe config (software Vulkan refuses buffers of
# 155 MB and more); the transformers step runs a 1-layer, 1-block 7B shape on the CPU.
set -u
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
BACKEND=${RELSIM_GPU_BACKEND:-cuda}
SECONDS_PER_BATCH=${SECONDS_PER_BATCH:-8}
export RELSIM_KERNEL_CACHE=${RELSIM_KERNEL_CACHE:-$PWD/.gpu/kernels}
mkdir -p "$RELSIM_KERNEL_CACHE"
for f in .gpu/*.xz; do [ -e "$f" ] && xz -dkf "$f"; done
chmod +x .gpu/relsim .gpu/qwen_parity 2>/dev/null

# The test binary looks for fixtures where it was built (CARGO_MANIFEST_DIR).
built_at=/work/main
if [ ! -e "$built_at/tests/fixtures" ]; then mkdir -p "$(dirname $built_at)" && ln -sfn "$PWD" "$built_at"; fi

if [ "$BACKEND" = cuda ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
  # cubecl compiles kernels with NVRTC at run time and needs CUDA's headers.
  export CUDA_PATH=${CUDA_PATH:-/usr/local/cuda}
  nvrtc=$(ls "$CUDA_PATH"/lib64/libnvrtc.so* 2>/dev/null | head -1)
  [ -z "$nvrtc" ] && nvrtc=$(find / -name 'libnvrtc.so*' 2>/dev/null | head -1)
  export LD_LIBRARY_PATH="$(dirname "${nvrtc:-/x/x}"):$CUDA_PATH/lib64:${LD_LIBRARY_PATH:-}"
  echo "CUDA_PATH=$CUDA_PATH nvrtc=$nvrtc"
  PARITY_TESTS="cuda::cuda_f32_parity cuda::cuda_bf16_parity"
  PRECISION=bf16; SHAPE=""; HF_SHAPE=""; HF_DEVICE=cuda; HF_DTYPE=bf16; BATCHES="1 16"
else
  PARITY_TESTS="wgpu::wgpu_f32_parity"
  PRECISION=f32; SHAPE="--config tests/gpu/lavapipe_config.json"; HF_SHAPE="--layers 1 --blocks 1"; HF_DEVICE=cpu; HF_DTYPE=f32; BATCHES="1 2"
fi

# cubecl's own loggers count kernels compiled and autotune keys (cubecl.toml in the working
# directory is read at the first device use; relsim keeps the caches it names).
cat > cubecl.toml <<EOF
[compilation.logger]
level = "basic"
file = "$OUT/compilation.log"
append = true

[autotune.logger]
level = "minimal"
file = "$OUT/autotune.log"
append = true
EOF
count() { local n; n=$(grep -c "$1" "$2" 2>/dev/null); echo "${n:-0}"; }

echo "== parity ($BACKEND, tiny configs)"
for t in $PARITY_TESTS; do
  timeout 80 .gpu/qwen_parity --exact "$t" --include-ignored --nocapture 2>&1 | tee -a "$OUT/parity.log" | grep -E "PARITY|test |panicked|differs|error" | head -20
done
echo "kernels compiled so far: $(count 'Compiling kernel' "$OUT/compilation.log"), autotune keys: $(count 'Fastest' "$OUT/autotune.log")"

echo "== relsim (burn) throughput, 7B shape, $PRECISION"
before=$(count 'Compiling kernel' "$OUT/compilation.log")
timeout 170 .gpu/relsim bench qwen-speed --backend "$BACKEND" --precision $PRECISION $SHAPE $(printf -- '--batch %s ' $BATCHES) \
  --seconds "$SECONDS_PER_BATCH" --tokenizer tests/fixtures/qwen/tokenizer/tokenizer.json.gz 2>&1 | tee "$OUT/ours.log" | tail -4
echo "kernels compiled by the benchmark: $(( $(count 'Compiling kernel' "$OUT/compilation.log") - before ))"
[ "$BACKEND" = cuda ] && nvidia-smi --query-gpu=memory.used --format=csv | tail -1

echo "== transformers throughput, same shape"
PYTHONUNBUFFERED=1 timeout 140 python3 tests/gpu/qwen_speed_transformers.py --dtype $HF_DTYPE --device $HF_DEVICE \
  $HF_SHAPE --batch $BATCHES --seconds "$SECONDS_PER_BATCH" 2>&1 | tee "$OUT/transformers.log" | tail -4

rm -f cubecl.toml
tar czf "$OUT/kernels.tgz" -C "$(dirname "$RELSIM_KERNEL_CACHE")" "$(basename "$RELSIM_KERNEL_CACHE")"
echo "== summary"
grep -h PARITY "$OUT/parity.log"; grep -h "test result" "$OUT/parity.log"
grep -h images_per_s "$OUT/ours.log" "$OUT/transformers.log"
echo "kernels compiled in all: $(count 'Compiling kernel' "$OUT/compilation.log"), autotune keys: $(count 'Fastest' "$OUT/autotune.log"), kernel cache $(du -sh "$RELSIM_KERNEL_CACHE" | cut -f1)"
