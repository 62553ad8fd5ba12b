#!/usr/bin/env bash
# The GPU checks of issue 3, run on a lent NVIDIA machine from the repository root, with the
# release binary and the qwen_parity test binary (built with `--features cuda`) in .gpu/:
#   cargo build --release -p relsim-companion --features cuda
#   cargo test --release -p relsim-companion --features cuda --test qwen_parity --no-run
#   mkdir -p .gpu && cp target/release/relsim .gpu/ && cp <the qwen_parity test binary> .gpu/qwen_parity
# 1. tiny parity on CUDA: f32 (every stage within 1e-4), bf16 and f16 (embedding within 2e-3);
# 2. throughput at the Qwen2.5-VL-7B shape, random weights, 448x448, batch 1 and 16: ours (burn,
#    CUDA, bf16) and HF transformers + peft (bf16) on the same GPU.
# Results go to $OUT (or ./gpu-out) and the last lines of stdout.
set -u
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
SECONDS_PER_BATCH=${SECONDS_PER_BATCH:-8}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
# The test binary looks for fixtures where it was built (CARGO_MANIFEST_DIR).
built_at=/work/main
if [ ! -e "$built_at/tests/fixtures" ]; then mkdir -p "$(dirname $built_at)" && ln -sfn "$PWD" "$built_at"; fi
# cubecl compiles kernels with NVRTC at run time and needs CUDA's headers.
export CUDA_PATH=${CUDA_PATH:-/usr/local/cuda}
nvrtc=$(ls "$CUDA_PATH"/lib64/libnvrtc.so* 2>/dev/null | head -1)
[ -z "$nvrtc" ] && nvrtc=$(find / -name 'libnvrtc.so*' 2>/dev/null | head -1)
export LD_LIBRARY_PATH="$(dirname "${nvrtc:-/x/x}"):$CUDA_PATH/lib64:${LD_LIBRARY_PATH:-}"
echo "CUDA_PATH=$CUDA_PATH nvrtc=$nvrtc"

echo "== parity (CUDA, tiny configs)"
export CUBECL_AUTOTUNE_LEVEL=${CUBECL_AUTOTUNE_LEVEL:-minimal}
for t in f32 bf16 f16; do
  timeout 150 .gpu/qwen_parity --ignored --exact cuda::cuda_${t}_parity --nocapture 2>&1 | tee -a "$OUT/parity.log" | grep -E "PARITY|test |panicked|differs|error" | head -20
done

echo "== relsim (burn) throughput, 7B shape"
for precision in bf16; do
  timeout 200 .gpu/relsim bench qwen-speed --backend cuda --precision $precision --batch 1 --batch 16 \
    --seconds "$SECONDS_PER_BATCH" --tokenizer tests/fixtures/qwen/tokenizer/tokenizer.json.gz 2>&1 | tee "$OUT/ours-$precision.log" | tail -4
done
nvidia-smi --query-gpu=memory.used --format=csv | tail -1

echo "== transformers throughput, 7B shape"
PYTHONUNBUFFERED=1 timeout 180 python3 tests/gpu/qwen_speed_transformers.py --dtype bf16 --batch 1 16 \
  --seconds "$SECONDS_PER_BATCH" 2>&1 | tee "$OUT/transformers-bf16.log" | tail -4

echo "== summary"
grep -h PARITY "$OUT/parity.log"; grep -h "test result" "$OUT/parity.log"
grep -h images_per_s "$OUT"/ours-*.log "$OUT"/transformers-*.log
