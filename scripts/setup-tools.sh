#!/usr/bin/env bash
# Installs what building and testing Pairwise needs, skipping whatever is already there:
# Debian packages (Chromium + ChromeDriver for browser tests, pkg-config, unzip), the wasm32
# target, cargo-leptos, the wasm-bindgen CLI matching Cargo.lock, and wasm-opt and axe-core
# (the browser tests' accessibility check) from npm.
# Nothing is downloaded from outside the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "setup: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_needed=()
command -v chromium >/dev/null || apt_needed+=(chromium)
command -v chromedriver >/dev/null || apt_needed+=(chromium-driver)
command -v npm >/dev/null || apt_needed+=(npm)
command -v pip3 >/dev/null || command -v pip >/dev/null || apt_needed+=(python3-pip)
command -v psql >/dev/null || apt_needed+=(postgresql-client)
python3 -c "import venv, ensurepip" 2>/dev/null || apt_needed+=(python3-venv)
if [ ${#apt_needed[@]} -gt 0 ]; then
  log "installing Debian packages: ${apt_needed[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_needed[@]}" >/dev/null
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# Fast, non-LTO release builds of the tools: they only run at build time.
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
if [ "$(cargo leptos --version 2>/dev/null || true)" != "cargo-leptos 0.3.10" ]; then
  log "installing cargo-leptos 0.3.10 (about 12 minutes, once)"
  cargo install cargo-leptos@0.3.10 --locked
fi

wb_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$wb_version" ]; then
  log "installing wasm-bindgen-cli $wb_version (matches Cargo.lock)"
  CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback cargo install wasm-bindgen-cli --version "$wb_version"
fi

if [ ! -x tools/node_modules/.bin/wasm-opt ] || [ ! -f tools/node_modules/axe-core/axe.min.js ]; then
  log "installing wasm-opt (binaryen) and axe-core from npm"
  npm ci --prefix tools --no-audit --no-fund >/dev/null
fi
