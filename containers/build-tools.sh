#!/usr/bin/env bash
# The tool steps of containers/Dockerfile, kept here so they are linted and readable.
#
#   build-tools.sh build PREFIX   download htslib, samtools, bcftools, bwa and bwa-mem2 at the
#                                 versions of versions.env, check each tarball's SHA-256, build,
#                                 install into PREFIX (bin/ and lib/), then remove the compilers;
#                                 bwa-mem2 for every x86-64 instruction set (multi)
#   build-tools.sh bwa-mem2 TARBALL PREFIX ARCH
#                                 build bwa-mem2 from a source tarball that holds its
#                                 ext/safestringlib submodule, for ARCH (a bwa-mem2 Makefile
#                                 arch: sse41, sse42, avx, avx2, avx512; or multi), into
#                                 PREFIX/bin; needs g++, make and zlib's headers
#                                 (scripts/install-tools.sh builds the test machines' one so)
#   build-tools.sh runtime-deps   the shared libraries the built tools need, nothing else
#   build-tools.sh debian-tools   Debian's samtools, bcftools, bwa and tabix instead (smoke
#                                 builds where the tarballs cannot be downloaded; Debian has no
#                                 bwa-mem2, so such an image has none)
#
# versions.env is read from beside this script (or VERSIONS_ENV).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
versions="${VERSIONS_ENV:-$here/versions.env}"
# shellcheck disable=SC1090,SC1091 # versions.env is data: KEY=value lines
. "$versions"

export DEBIAN_FRONTEND=noninteractive
apt_install() {
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
apt_clean() {
  apt-get clean
  rm -rf /var/lib/apt/lists/*
}

# fetch URL SHA256 FILE: downloads URL to FILE and fails unless its SHA-256 is SHA256.
fetch() {
  local url="$1" sha256="$2" file="$3"
  if [ -z "$sha256" ]; then
    echo "build-tools: no SHA-256 pinned for $url in $versions" >&2
    exit 1
  fi
  curl --fail --silent --show-error --location --retry 3 --output "$file" "$url"
  if ! echo "$sha256  $file" | sha256sum --check --strict --quiet; then
    echo "build-tools: $url has SHA-256 $(sha256sum "$file" | cut -d' ' -f1), expected $sha256" >&2
    exit 1
  fi
}

# build_bwa_mem2 TARBALL PREFIX ARCH: see the usage above. `multi` builds one binary per
# instruction set (bwa-mem2.sse41 ... bwa-mem2.avx512bw) and the launcher `bwa-mem2`, which runs
# the best one the CPU has from beside itself, so one image runs on any x86-64 instance type.
# v2.3's sources still call themselves 2.2.1 (bwa-mem2 issue #283); their `#ifndef
# PACKAGE_VERSION` lets the build set the release's number, BWA_MEM2_VERSION.
build_bwa_mem2() {
  local tarball="$1" prefix="$2" arch="$3"
  local src target version_define
  src="$(mktemp -d)"
  tar -xzf "$tarball" -C "$src" --strip-components=1
  if [ "$arch" = multi ]; then target=multi; else target="arch=$arch"; fi
  # Make hands CPPFLAGS to the shell, so the C string's quotes go in escaped: "\"2.3\"".
  printf -v version_define -- '-DPACKAGE_VERSION="\\"%s\\""' "$BWA_MEM2_VERSION"
  CPPFLAGS="$version_define" make -C "$src" -j "$(nproc)" "$target" >&2
  install -d "$prefix/bin"
  for program in "$src"/bwa-mem2 "$src"/bwa-mem2.*; do
    if [ -f "$program" ] && [ -x "$program" ]; then install -m 0755 "$program" "$prefix/bin/"; fi
  done
  rm -rf "$src"
}

build() {
  local prefix="$1"
  local build_deps=(ca-certificates curl bzip2 make gcc g++ libc6-dev zlib1g-dev libbz2-dev liblzma-dev libdeflate-dev)
  apt_install "${build_deps[@]}"
  local work
  work="$(mktemp -d)"
  cd "$work"
  fetch "$HTSLIB_URL" "$HTSLIB_SHA256" htslib.tar.bz2
  fetch "$SAMTOOLS_URL" "$SAMTOOLS_SHA256" samtools.tar.bz2
  fetch "$BCFTOOLS_URL" "$BCFTOOLS_SHA256" bcftools.tar.bz2
  fetch "$BWA_URL" "$BWA_SHA256" bwa.tar.gz
  fetch "$BWA_MEM2_URL" "$BWA_MEM2_SHA256" bwa-mem2.tar.gz
  for tarball in htslib.tar.bz2 samtools.tar.bz2 bcftools.tar.bz2; do tar -xjf "$tarball"; done
  tar -xzf bwa.tar.gz
  local jobs
  jobs="$(nproc)"

  # htslib: biojob stages data itself, so no network plugins (libcurl, S3, GCS).
  (cd "htslib-$HTSLIB_VERSION" &&
    ./configure --prefix="$prefix" --disable-libcurl --disable-gcs --disable-s3 --with-libdeflate &&
    make -j "$jobs" && make install)
  # samtools and bcftools link htslib statically from its build tree.
  (cd "samtools-$SAMTOOLS_VERSION" &&
    ./configure --prefix="$prefix" --with-htslib="$work/htslib-$HTSLIB_VERSION" --without-curses &&
    make -j "$jobs" && make install)
  (cd "bcftools-$BCFTOOLS_VERSION" &&
    ./configure --prefix="$prefix" --with-htslib="$work/htslib-$HTSLIB_VERSION" --disable-libgsl --disable-perl-filters &&
    make -j "$jobs" && make install)
  (cd "bwa-$BWA_VERSION" && make -j "$jobs" && install -D -m 0755 bwa "$prefix/bin/bwa")
  build_bwa_mem2 "$work/bwa-mem2.tar.gz" "$prefix" multi

  # Only what the image needs: programs and the shared htslib; no headers, docs, static libs.
  rm -rf "$prefix/include" "$prefix/share" "$prefix/lib/pkgconfig" "$prefix"/lib/*.a
  cd /
  rm -rf "$work"
  apt-get purge -y -qq --auto-remove "${build_deps[@]}" >/dev/null
  apt_clean
}

runtime_deps() {
  # libstdc++6 and libgcc-s1: bwa-mem2 is C++.
  apt_install ca-certificates zlib1g libbz2-1.0 liblzma5 libdeflate0 libstdc++6 libgcc-s1
  apt_clean
}

debian_tools() {
  apt_install samtools bcftools bwa tabix
  apt_clean
}

case "${1:-}" in
  build) build "${2:?usage: build-tools.sh build PREFIX}" ;;
  bwa-mem2)
    build_bwa_mem2 "${2:?usage: build-tools.sh bwa-mem2 TARBALL PREFIX ARCH}" \
      "${3:?usage: build-tools.sh bwa-mem2 TARBALL PREFIX ARCH}" \
      "${4:?usage: build-tools.sh bwa-mem2 TARBALL PREFIX ARCH}"
    ;;
  runtime-deps) runtime_deps ;;
  debian-tools) debian_tools ;;
  *)
    echo "usage: build-tools.sh build PREFIX | bwa-mem2 TARBALL PREFIX ARCH | runtime-deps | debian-tools" >&2
    exit 2
    ;;
esac
