"""Peer benchmark: HF transformers generate() on the same GGUF (dequantised to f32).

Prints one JSON line: tokens/s (K*new / wall time of generate), time to first
token (generate with max_new_tokens=1), peak RSS.
"""
import argparse, json, os, resource, statistics, time

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--k", type=int, default=2)
ap.add_argument("--new", type=int, default=128)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--runs", type=int, default=3)
a = ap.parse_args()

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

torch.set_num_threads(a.threads)
PROMPT = "Tell me a story about a robot."
d, f = os.path.split(os.path.abspath(a.model))
t0 = time.time()
tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
load_s = time.time() - t0
text = tok.apply_chat_template([{"role": "user", "content": PROMPT}], tokenize=False, add_generation_prompt=True)
enc = tok(text, return_tensors="pt", add_special_tokens=False)
ids = enc.input_ids.repeat(a.k, 1)
mask = enc.attention_mask.repeat(a.k, 1)
kw = dict(do_sample=True, temperature=0.7, top_p=0.9, top_k=0, pad_token_id=2)


def run(n):
    torch.manual_seed(1)
    t = time.time()
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, **kw)
    return time.time() - t, out.shape[1] - ids.shape[1]


run(8)  # warm-up
tps, ttft = [], []
for _ in range(a.runs):
    secs, n = run(a.new)
    tps.append(a.k * n / secs)
    ttft.append(run(1)[0] * 1e3)
print(json.dumps({
    "impl": f"transformers {__import__('transformers').__version__} generate() (torch {torch.__version__}, f32)",
    "k": a.k, "prompt_tokens": ids.shape[1], "new_tokens": a.new, "threads": a.threads,
    "tokens_per_s": round(statistics.median(tps), 1), "ttft_ms": round(statistics.median(ttft), 1),
    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    "load_s": round(load_s, 2),
}))
