"""Checks that Pairwise export folders train, unchanged, in TRL: one DPOTrainer step and one
RewardTrainer step on a tiny random Llama that uses the SmolLM2 tokenizer (read from the GGUF).

usage: trl_accepts.py GGUF_FILE EXPORT_DIR [EXPORT_DIR ...]
Each EXPORT_DIR is a folder written by `pairwise export --format trl|trl-conversational`.
"""
import os
import sys
import tempfile

from datasets import load_dataset
from transformers import (AutoTokenizer, LlamaConfig, LlamaForCausalLM,
                          LlamaForSequenceClassification)
from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer

gguf, folders = sys.argv[1], sys.argv[2:]
tokenizer = AutoTokenizer.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf))
if tokenizer.pad_token is None:
    tokenizer.pad_token = tokenizer.eos_token
config = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
              num_attention_heads=2, num_key_value_heads=2, pad_token_id=tokenizer.pad_token_id)

for folder in folders:
    train = load_dataset(folder)["train"]
    common = dict(output_dir=tempfile.mkdtemp(), max_steps=1, per_device_train_batch_size=2,
                  report_to=[], use_cpu=True, save_strategy="no", logging_steps=1)
    policy = LlamaForCausalLM(LlamaConfig(**config))
    reference = LlamaForCausalLM(LlamaConfig(**config))
    reference.load_state_dict(policy.state_dict())
    dpo = DPOTrainer(model=policy, ref_model=reference,
                     args=DPOConfig(max_length=256, **common),
                     train_dataset=train, processing_class=tokenizer)
    dpo_loss = dpo.train().training_loss
    reward = RewardTrainer(model=LlamaForSequenceClassification(LlamaConfig(num_labels=1, **config)),
                           args=RewardConfig(max_length=256, **common),
                           train_dataset=train, processing_class=tokenizer)
    reward_loss = reward.train().training_loss
    print(f"{folder}: columns {train.column_names}; DPOTrainer loss {dpo_loss:.4f}, "
          f"RewardTrainer loss {reward_loss:.4f}")
