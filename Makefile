# Pairwise. `make run` sets everything up and serves the app; `make test` runs every test.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export PATH := $(CURDIR)/tools/node_modules/.bin:$(HOME)/.cargo/bin:$(PATH)
# The same values cargo-leptos passes, so plain cargo builds (tests) reuse its artefacts.
export LEPTOS_OUTPUT_NAME := pairwise
export LEPTOS_SITE_ROOT := target/site
export LEPTOS_SITE_PKG_DIR := pkg
export LEPTOS_SITE_ADDR := 127.0.0.1:3000
export LEPTOS_RELOAD_PORT := 3001
export LEPTOS_LIB_DIR := app
export LEPTOS_BIN_DIR := server
export LEPTOS_HASH_FILES := false

PG_URL = $(shell scripts/database.sh)

WITH_ENV := scripts/with-env.sh

.PHONY: run test test-api-schema setup build build-release build-bench bench-ingest bench-soak bench-export bench-generate bench-train fuzz lint clean-data

setup:
	scripts/setup-tools.sh

build: setup
	$(WITH_ENV) cargo leptos build

build-release: setup
	$(WITH_ENV) cargo leptos build --release

## The benchmark binary, beside the release server it starts.
build-bench: build-release
	$(WITH_ENV) cargo build --release -p bench

## Serve on http://127.0.0.1:3000 (PAIRWISE_ADDR), against PAIRWISE_DATABASE_URL or a local database.
run: build-release
	@url="$${PAIRWISE_DATABASE_URL:-}"; \
	if [ -z "$$url" ]; then \
	  base="$(PG_URL)"; \
	  psql "$$base/postgres" -qAtc "select 1 from pg_database where datname = 'pairwise'" | grep -q 1 \
	    || psql "$$base/postgres" -qc "create database pairwise"; \
	  url="$$base/pairwise"; \
	fi; \
	PAIRWISE_DATABASE_URL="$$url" $(WITH_ENV) target/release/pairwise serve

## Every test: unit, PostgreSQL-backed (a fresh database per test), CLI and browser.
test: build
	DATABASE_URL="$(PG_URL)/postgres" PAIRWISE_PYTHON="$$(scripts/python-datasets.sh | tail -n 1)" \
	  PAIRWISE_TRAINER="$(CURDIR)/target/debug/pairwise" \
	  $(WITH_ENV) cargo test --workspace --no-fail-fast

## Schema fuzzing of the JSON API: schemathesis as admin, researcher and labeler against
## /api/openapi.json on a scratch database; no 5xx, every answer as documented (see scripts/).
test-api-schema: build
	$(WITH_ENV) scripts/api-schema.sh

## Labeling throughput benchmark (see README): one request per item, then next + judgment apart.
bench-ingest: build-bench
	PAIRWISE_DATABASE_URL="$(PG_URL)/postgres" target/release/pairwise-bench ingest --flow advance
	PAIRWISE_DATABASE_URL="$(PG_URL)/postgres" target/release/pairwise-bench ingest --flow separate

## Soak: 200 retrying labelers, 100k judgments, one request per item; latency, server memory
## over the run, and every acknowledged judgment stored exactly once.
bench-soak: build-bench
	PAIRWISE_DATABASE_URL="$(PG_URL)/postgres" target/release/pairwise-bench soak

## Export speed and memory, 100k and 1M judgments, beside psql \copy (see README).
bench-export: build-bench
	PAIRWISE_DATABASE_URL="$(PG_URL)/postgres" target/release/pairwise-bench export

## Generation speed of the engine beside Hugging Face transformers (see docs/engine.md).
## Then the same model through the job queue (claims, leases, commits) beside the engine alone.
bench-generate: build-bench
	$(WITH_ENV) bench/generate.sh
	PAIRWISE_DATABASE_URL="$(PG_URL)/postgres" $(WITH_ENV) target/release/pairwise-bench queue

## DPO and reward-model training speed beside TRL, and first-batch agreement (see README).
bench-train: setup
	$(WITH_ENV) bench/train.sh

## libFuzzer on the parsers of untrusted input, FUZZ_SECONDS each (see README). The seeds are
## in fuzz/seeds/ (the engine's from fuzz/make_seeds.py); what a run finds goes to fuzz/corpus/
## and crashes to fuzz/artifacts/. An input running over FUZZ_TIMEOUT seconds counts as a hang,
## one over libFuzzer's 2 GB RSS limit as a crash. The engine targets link libtorch (hence
## $(WITH_ENV), for LIBTORCH; the binaries find it by rpath) and build with AddressSanitizer.
FUZZ_SECONDS ?= 60
FUZZ_TIMEOUT ?= 10
FUZZ_TARGETS := import_jsonl import_csv prompt_line judgment_body export_spec \
  gguf_header hf_config chat_template
fuzz:
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	for target in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$target; \
	  echo "== $$target"; \
	  (cd fuzz && RUSTC_BOOTSTRAP=1 $(CURDIR)/$(WITH_ENV) cargo fuzz run $$target \
	    corpus/$$target seeds/$$target -- -max_total_time=$(FUZZ_SECONDS) \
	    -timeout=$(FUZZ_TIMEOUT) 2>&1 | grep -E "^Done|ERROR|panicked|SUMMARY"); \
	done

lint:
	cargo fmt --all -- --check
	$(WITH_ENV) cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p app --no-default-features --features hydrate --target wasm32-unknown-unknown -- -D warnings

## Stops and deletes the private PostgreSQL cluster, if one was started.
clean-data:
	-runuser -u postgres -- $$(ls -d /usr/lib/postgresql/*/bin | tail -n1)/pg_ctl -D $(CURDIR)/.data/postgres stop
	rm -rf .data
