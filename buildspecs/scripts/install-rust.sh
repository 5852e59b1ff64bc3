#!/usr/bin/env bash
# Installs the workspace's Rust toolchain (rust-version in Cargo.toml) with rustup when cargo is
# missing or older, plus rustfmt and clippy. For CodeBuild images without Rust.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
want="$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)"
export PATH="$HOME/.cargo/bin:$PATH"
have="$(rustc --version 2>/dev/null | cut -d' ' -f2 || true)"
if [ -n "$have" ] && [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -n 1)" = "$want" ]; then
  echo "rustc $have (>= $want)"
  exit 0
fi
if ! command -v rustup >/dev/null 2>&1; then
  curl --proto '=https' --tlsv1.2 --fail --silent --show-error https://sh.rustup.rs |
    sh -s -- -y --profile minimal --default-toolchain "$want"
fi
rustup toolchain install "$want" --profile minimal --component rustfmt,clippy
rustup default "$want"
