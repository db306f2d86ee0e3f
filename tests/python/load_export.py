"""Loads a Pairwise export folder with Hugging Face `datasets`, the way a researcher would,
and prints every split's rows as JSON so the Rust test can compare them with what was written.

usage: load_export.py FOLDER
"""
import json
import sys

from datasets import load_dataset

folder = sys.argv[1]
# The dataset card's YAML header names the data file of each split.
dataset = load_dataset(folder)
print(json.dumps({split: dataset[split].to_list() for split in dataset}, ensure_ascii=False))
