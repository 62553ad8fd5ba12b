#!/usr/bin/env python3
"""The peer of `relsim bench generate`: transformers' Qwen2.5-VL `generate` on the CPU, random
weights of the same config.json, the same chat (one 448x448 image of the same pattern and the
same question), greedy, a fixed number of new tokens. Prints one JSON line: the prompt's time
(until the first new token) and decoded tokens/s (the rest), medians of --runs after one untimed.

Usage: generate_transformers.py CONFIG.json [--tokens 32] [--runs 3] [--threads N]
Needs torch, transformers, pillow, numpy (make_tiny.py's; no network).
"""
import argparse
import json
import pathlib
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "qwen"))
import make_tiny as tiny  # noqa: E402  (the processor as the fixtures build it)
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration  # noqa: E402
from transformers.generation.streamers import BaseStreamer  # noqa: E402

QUESTION = "Describe the relational logic of this image."


class FirstToken(BaseStreamer):
    """Notes when generate hands over its first new token (the prompt comes first)."""

    def __init__(self):
        self.calls, self.first = 0, None

    def put(self, value):
        self.calls += 1
        if self.calls == 2:
            self.first = time.perf_counter()

    def end(self):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(a.config, pathlib.Path(tmp) / "config.json")
        config = Qwen2_5_VLConfig.from_pretrained(tmp)
        torch.manual_seed(0)
        model = Qwen2_5_VLForConditionalGeneration(config).eval()
        processor, _ = tiny.load_processor(tiny.DEFAULT_MIN_PIXELS, tiny.DEFAULT_MAX_PIXELS, pathlib.Path(tmp))
    y, x = np.mgrid[0:448, 0:448]
    image = Image.fromarray(np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8), "RGB")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    chat = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[chat], images=[image], return_tensors="pt")
    runs = []
    for run in range(a.runs + 1):
        streamer = FirstToken()
        start = time.perf_counter()
        with torch.no_grad():
            out = model.generate(**inputs, do_sample=False, max_new_tokens=a.tokens, min_new_tokens=a.tokens,
                                 streamer=streamer, pad_token_id=151643)
        total = time.perf_counter() - start
        assert out.shape[1] - inputs["input_ids"].shape[1] == a.tokens
        prefill = streamer.first - start
        if run > 0:
            runs.append((prefill, (a.tokens - 1) / (total - prefill)))
    print(json.dumps({"engine": f"transformers {tiny.transformers.__version__} (torch {torch.__version__}, CPU)",
                      "config": a.config, "prompt_tokens": int(inputs["input_ids"].shape[1]), "new_tokens": a.tokens,
                      "threads": torch.get_num_threads(), "runs": a.runs,
                      "prefill_s": statistics.median(r[0] for r in runs),
                      "decode_tokens_per_s": statistics.median(r[1] for r in runs)}))


if __name__ == "__main__":
    main()
