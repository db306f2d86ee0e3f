"""Peer benchmark: TRL's DPOTrainer (precomputed reference log-probs) or RewardTrainer on the
same preference file, from the same weights and tokenizer Pairwise wrote (`--peer-dir`).

Prints one JSON line: pairs/s over `--steps` optimizer steps (TRL's train_runtime), the loss
of the first step, the first batch's figures (the file's first `--batch` rows, unshuffled),
peak RSS.
"""
import argparse, json, os, resource, tempfile

ap = argparse.ArgumentParser()
ap.add_argument("--kind", required=True, choices=["dpo", "reward"])
ap.add_argument("--data", required=True)
ap.add_argument("--peer-dir", required=True)
ap.add_argument("--steps", type=int, default=6)
ap.add_argument("--batch", type=int, default=4)
ap.add_argument("--max-length", type=int, default=128)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--f32", action="store_true",
                help="f32 without gradient checkpointing (Pairwise's arithmetic on CPU) instead of TRL's "
                     "defaults, bf16 autocast with gradient checkpointing")
a = ap.parse_args()

import torch
from datasets import load_dataset
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer

torch.set_num_threads(a.threads)
train = load_dataset("json", data_files=a.data)["train"]
common = dict(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=a.batch, max_length=a.max_length,
              max_steps=a.steps, report_to=[], use_cpu=True, save_strategy="no", logging_steps=1, seed=42)
if a.f32:
    common.update(bf16=False, gradient_checkpointing=False)
row = {"impl": "TRL 1.16, " + ("f32" if a.f32 else "defaults: bf16 autocast + gradient checkpointing"),
       "kind": a.kind, "batch": a.batch, "max_length": a.max_length, "steps": a.steps, "threads": a.threads}
if a.kind == "dpo":
    path = os.path.join(a.peer_dir, "base")
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    trainer = DPOTrainer(model=model, args=DPOConfig(learning_rate=1e-6, precompute_ref_log_probs=True, **common),
                         train_dataset=train, processing_class=tok)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(a.batch)])
    with torch.no_grad():
        trainer.compute_loss(model, batch)
    mode = "train" if model.training else "eval"
    row["first_logps_chosen"] = trainer._metrics[mode]["logps/chosen"][-1]
    row["first_logps_rejected"] = trainer._metrics[mode]["logps/rejected"][-1]
    trainer._metrics[mode].clear()
else:
    path = os.path.join(a.peer_dir, "rm-init")
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32)
    trainer = RewardTrainer(model=model, args=RewardConfig(learning_rate=1e-5, **common),
                            train_dataset=train, processing_class=tok)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(a.batch)])
    with torch.no_grad():
        row["first_batch_loss"] = trainer.compute_loss(model, batch).item()
out = trainer.train()
row["first_loss"] = next(h["loss"] for h in trainer.state.log_history if "loss" in h)
row["pairs_per_s"] = a.steps * a.batch / out.metrics["train_runtime"]
row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(row))
