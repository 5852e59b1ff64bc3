#!/usr/bin/env bash
# Installs the genomics tools biojob runs when any is missing: bwa, samtools (with wgsim),
# bcftools and tabix from Debian; and bwa-mem2, which Debian does not package, built from
# source (containers/build-tools.sh) for the best instruction set this CPU has and installed as
# /usr/local/bin/bwa-mem2 (with sudo unless root) so that the tests find it on PATH.
#
# bwa-mem2's source: LOCAL_BWA_MEM2_SOURCE (containers/versions.env) in BIOJOB_TOOLS_SOURCES
# (default ../shared/tools beside the repository) when it is there, else BWA_MEM2_URL; either
# is refused unless its SHA-256 is the pinned one. The build is kept in BIOJOB_TOOLS_CACHE
# (default ~/.cache/biojob-tools), one directory per version, instruction set and tarball
# digest, and reused. BIOJOB_BWA_MEM2_ARCH picks the instruction set (a bwa-mem2 Makefile
# arch: avx512, avx2, avx, sse42, sse41). Nothing is installed when BIOJOB_BWA_MEM2 names the
# program, or when `bwa-mem2 version` on PATH already prints BWA_MEM2_VERSION.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091 # versions.env is data: KEY=value lines
. "$root/containers/versions.env"

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  sudo=(sudo)
fi
apt_install() {
  echo "installing from Debian: $*" >&2
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

missing=()
for tool in bwa samtools wgsim bcftools tabix; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "missing: ${missing[*]}" >&2
  apt_install bwa samtools bcftools tabix
fi

if [ -n "${BIOJOB_BWA_MEM2:-}" ] || [ "$(bwa-mem2 version 2>/dev/null || true)" = "$BWA_MEM2_VERSION" ]; then
  exit 0
fi

# The best bwa-mem2 build (Makefile arch) that the CPU's flags allow.
arch="${BIOJOB_BWA_MEM2_ARCH:-}"
if [ -z "$arch" ]; then
  flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
  for candidate in avx512bw:avx512 avx2:avx2 avx:avx sse4_2:sse42 sse4_1:sse41; do
    if [[ "$flags" == *" ${candidate%%:*} "* ]]; then
      arch="${candidate#*:}"
      break
    fi
  done
  if [ -z "$arch" ]; then
    echo "install-tools: bwa-mem2 needs an x86-64 CPU with SSE4.1 at least; this one has none" >&2
    exit 1
  fi
fi

sources="${BIOJOB_TOOLS_SOURCES:-$root/../shared/tools}"
tarball="$sources/$LOCAL_BWA_MEM2_SOURCE"
sha256="$LOCAL_BWA_MEM2_SHA256"
if [ ! -r "$tarball" ]; then
  tarball="" sha256="$BWA_MEM2_SHA256"
fi
cache="${BIOJOB_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/biojob-tools}"
build="$cache/bwa-mem2-$BWA_MEM2_VERSION-$arch-${sha256:0:12}"
if [ ! -x "$build/bin/bwa-mem2" ]; then
  packages=()
  command -v g++ >/dev/null 2>&1 || packages+=(g++)
  command -v make >/dev/null 2>&1 || packages+=(make)
  [ -r /usr/include/zlib.h ] || packages+=(zlib1g-dev)
  if [ -z "$tarball" ]; then command -v curl >/dev/null 2>&1 || packages+=(curl ca-certificates); fi
  if [ "${#packages[@]}" -gt 0 ]; then apt_install "${packages[@]}"; fi
  mkdir -p "$cache"
  work="$(mktemp -d "$cache/.build.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  if [ -z "$tarball" ]; then
    echo "downloading $BWA_MEM2_URL" >&2
    curl --fail --silent --show-error --location --retry 3 --output "$work/source.tar.gz" "$BWA_MEM2_URL"
    tarball="$work/source.tar.gz"
  fi
  if ! echo "$sha256  $tarball" | sha256sum --check --strict --quiet; then
    echo "install-tools: $tarball has SHA-256 $(sha256sum "$tarball" | cut -d' ' -f1), expected $sha256" >&2
    exit 1
  fi
  echo "building bwa-mem2 $BWA_MEM2_VERSION (arch=$arch) into $build" >&2
  "$root/containers/build-tools.sh" bwa-mem2 "$tarball" "$work/prefix" "$arch" >"$work/build.log" 2>&1 ||
    { tail -n 30 "$work/build.log" >&2; exit 1; }
  # Another run may have finished the same build meanwhile: either copy is good.
  mv -T "$work/prefix" "$build" 2>/dev/null || true
fi
"${sudo[@]}" install -D -m 0755 "$build/bin/bwa-mem2" /usr/local/bin/bwa-mem2
found="$(command -v bwa-mem2 || true)"
if [ "$(bwa-mem2 version 2>/dev/null || true)" != "$BWA_MEM2_VERSION" ]; then
  echo "install-tools: installed /usr/local/bin/bwa-mem2, but ${found:-no bwa-mem2} comes first on PATH" \
    "and does not print $BWA_MEM2_VERSION; set BIOJOB_BWA_MEM2=/usr/local/bin/bwa-mem2" >&2
  exit 1
fi
echo "bwa-mem2 $BWA_MEM2_VERSION (arch=$arch): /usr/local/bin/bwa-mem2" >&2
