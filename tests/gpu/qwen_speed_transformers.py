#!/usr/bin/env python3
"""Images/s of the relsim embedding in HF transformers + peft at the Qwen2.5-VL-7B shape with
random weights: the baseline `relsim bench qwen-speed` is compared with (tests/gpu/run.sh runs
both on one GPU). The procedure is relsim's (relsim_score.py / relsim_model.py): LoRA r16 on
q_proj/v_proj, `<|query|>` added (151666 rows), the full Qwen2_5_VLForConditionalGeneration called
with output_hidden_states=True, hidden_states[-1] at `<|query|>` -> Linear(3584, 384) -> L2.
Inputs are what the processor gives a 448x448 image (1024 patches, 256 image tokens); the pixel
values are made on the host and uploaded each call, and the embeddings read back, as ours are.

Usage: python qwen_speed_transformers.py [--dtype bf16|f32] [--batch 1 16] [--seconds 10]
       [--layers 28] [--blocks 32] [--tokenizer tests/fixtures/qwen/tokenizer/tokenizer.json.gz]
"""
import argparse
import gzip
import json
import os
import pathlib
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
warnings.filterwarnings("ignore")

import torch
import torch.nn.functional as F
import transformers
from peft import LoraConfig, get_peft_model
from tokenizers import Tokenizer
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

ROOT = pathlib.Path(__file__).resolve().parents[2]
IMAGE_PAD, QUERY = 151655, 151665


def config(layers, blocks):
    # Qwen/Qwen2.5-VL-7B-Instruct's config.json, in transformers 5's nested form.
    return Qwen2_5_VLConfig(
        text_config=dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=layers,
                         num_attention_heads=28, num_key_value_heads=4, hidden_act="silu", max_position_embeddings=128000,
                         rms_norm_eps=1e-6, use_sliding_window=False, max_window_layers=layers,
                         rope_parameters={"rope_type": "default", "mrope_section": [16, 24, 24], "rope_theta": 1000000.0},
                         tie_word_embeddings=False, bos_token_id=151643, eos_token_id=151645),
        vision_config=dict(depth=blocks, hidden_size=1280, intermediate_size=3420, num_heads=16, hidden_act="silu",
                           in_channels=3, patch_size=14, spatial_merge_size=2, temporal_patch_size=2, tokens_per_second=2,
                           window_size=112, out_hidden_size=3584, fullatt_block_indexes=[7, 15, 23, 31]),
        image_token_id=IMAGE_PAD, video_token_id=151656, vision_start_token_id=151652, vision_end_token_id=151653,
        tie_word_embeddings=False,
    )


def prompt_ids(tokenizer_path, image_tokens):
    """The chat-template text relsim builds for one image and `<|query|>`, tokenised."""
    tok = Tokenizer.from_str(gzip.decompress(pathlib.Path(tokenizer_path).read_bytes()).decode())
    tok.add_special_tokens(["<|query|>"])
    text = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|>"
            + "<|image_pad|>" * image_tokens + "<|vision_end|><|query|><|im_end|>\n<|im_start|>assistant\n")
    ids = tok.encode(text, add_special_tokens=False).ids
    assert ids.count(IMAGE_PAD) == image_tokens and ids.count(QUERY) == 1, "prompt tokens"
    return ids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "f32"])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--layers", type=int, default=28)
    ap.add_argument("--blocks", type=int, default=32)
    ap.add_argument("--size", type=int, default=448)
    ap.add_argument("--device", default="cuda", help="cpu only to check this script on a small shape")
    ap.add_argument("--tokenizer", default=str(ROOT / "tests/fixtures/qwen/tokenizer/tokenizer.json.gz"))
    args = ap.parse_args()
    dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[args.dtype]
    dev = torch.device(args.device)

    start = time.time()
    torch.set_default_dtype(dtype)
    with dev:
        model = Qwen2_5_VLForConditionalGeneration(config(args.layers, args.blocks))
    model.resize_token_embeddings(151666)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"], lora_dropout=0.05,
                                             bias="none", task_type="CAUSAL_LM"))
    model.eval()
    projection = torch.nn.Linear(3584, 384, device=dev, dtype=dtype)
    built = time.time() - start

    grid = args.size // 14
    ids = prompt_ids(args.tokenizer, (grid // 2) ** 2)
    q = ids.index(QUERY)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, {(torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu')}, "
          f"{args.layers} layers, {args.blocks} blocks, {args.dtype}, seq {len(ids)}, built in {built:.1f} s", flush=True)
    hf = model.base_model.model  # what relsim's QwenWithQueryToken calls

    for batch in args.batch:
        input_ids = torch.tensor([ids] * batch, device=dev)
        inputs = dict(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                      mm_token_type_ids=(input_ids == IMAGE_PAD).long(),
                      image_grid_thw=torch.tensor([[1, grid, grid]] * batch, device=dev))
        pixels = torch.randn(batch * grid * grid, 3 * 2 * 14 * 14, dtype=torch.float32)

        def call():
            with torch.inference_mode():
                out = hf(pixel_values=pixels.to(dev, dtype), output_hidden_states=True, return_dict=True, **inputs)
                e = F.normalize(projection(out.hidden_states[-1][:, q]).float(), dim=-1)
                return e.cpu()

        warm = time.time()
        for _ in range(2):
            call()
        warm = time.time() - warm
        times = []
        t0 = time.time()
        while len(times) < 3 or time.time() - t0 < args.seconds:
            t = time.time()
            e = call()
            assert torch.isfinite(e).all()
            times.append(time.time() - t)
        times.sort()
        median = times[len(times) // 2]
        print(json.dumps({"engine": "transformers+peft", "attention": hf.config._attn_implementation, "precision": args.dtype,
                          "batch": batch, "calls": len(times), "median_s": median, "images_per_s": batch / median,
                          "warmup_s": warm}), flush=True)


if __name__ == "__main__":
    main()
