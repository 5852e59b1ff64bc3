#!/usr/bin/env bash
# Installs what .ci/run needs on a CodeBuild machine and is not there yet: the AWS CLI (test
# data), Node.js (asl-validator), Python's venv (the linters) from the distribution, and the
# workspace's Rust toolchain (rust-version in Cargo.toml, with rustfmt and clippy) with rustup
# when cargo is missing or older. CI runs on Debian bookworm (the rust:*-bookworm image), so the
# genomics tools scripts/install-tools.sh installs are the versions containers/versions.env
# declares for the tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
packages=()
command -v aws >/dev/null 2>&1 || packages+=(awscli)
command -v npx >/dev/null 2>&1 || packages+=(nodejs npm)
python3 -c 'import ensurepip, venv' 2>/dev/null || packages+=(python3-venv)
if [ "${#packages[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

want="$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)"
export PATH="$HOME/.cargo/bin:$PATH"
have="$(rustc --version 2>/dev/null | cut -d' ' -f2 || true)"
if [ -n "$have" ] && [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -n 1)" = "$want" ]; then
  echo "rustc $have (>= $want)"
  rustup component add rustfmt clippy 2>/dev/null || true
  exit 0
fi
if ! command -v rustup >/dev/null 2>&1; then
  curl --proto '=https' --tlsv1.2 --fail --silent --show-error https://sh.rustup.rs |
    sh -s -- -y --profile minimal --default-toolchain "$want"
fi
rustup toolchain install "$want" --profile minimal --component rustfmt,clippy
rustup default "$want"
