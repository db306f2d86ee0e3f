# Pairwise. `make run` sets everything up and serves the app; `make test` runs every test.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export PATH := $(CURDIR)/tools/node_modules/.bin:$(HOME)/.cargo/bin:$(PATH)
# The same values cargo-leptos uses, so plain cargo builds reuse its artefacts.
export LEPTOS_OUTPUT_NAME := pairwise
export LEPTOS_SITE_ROOT := target/site
export LEPTOS_SITE_PKG_DIR := pkg

PG_URL = $(shell scripts/database.sh)

.PHONY: run test setup build build-release bench-ingest lint clean-data

setup:
	scripts/setup-tools.sh

build: setup
	cargo leptos build

build-release: setup
	cargo leptos build --release

## Serve on http://127.0.0.1:3000 (PAIRWISE_ADDR), against PAIRWISE_DATABASE_URL or a local database.
run: build-release
	@url="$${PAIRWISE_DATABASE_URL:-}"; \
	if [ -z "$$url" ]; then \
	  base="$(PG_URL)"; \
	  psql "$$base/postgres" -qAtc "select 1 from pg_database where datname = 'pairwise'" | grep -q 1 \
	    || psql "$$base/postgres" -qc "create database pairwise"; \
	  url="$$base/pairwise"; \
	fi; \
	PAIRWISE_DATABASE_URL="$$url" target/release/pairwise serve

## Every test: unit, PostgreSQL-backed (a fresh database per test), CLI and browser.
test: build
	DATABASE_URL="$(PG_URL)/postgres" cargo test --workspace --no-fail-fast

## Labeling throughput benchmark (see README).
bench-ingest: build-release
	PAIRWISE_DATABASE_URL="$(PG_URL)/postgres" target/release/pairwise bench ingest

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

## Stops and deletes the private PostgreSQL cluster, if one was started.
clean-data:
	-runuser -u postgres -- $$(ls -d /usr/lib/postgresql/*/bin | tail -n1)/pg_ctl -D $(CURDIR)/.data/postgres stop
	rm -rf .data
