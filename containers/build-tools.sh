#!/usr/bin/env bash
# The tool steps of containers/Dockerfile, kept here so they are linted and readable.
#
#   build-tools.sh build PREFIX   download htslib, samtools, bcftools and bwa at the versions of
#                                 versions.env, check each tarball's SHA-256, build, install
#                                 into PREFIX (bin/ and lib/), then remove the compilers
#   build-tools.sh runtime-deps   the shared libraries the built tools need, nothing else
#   build-tools.sh debian-tools   Debian's samtools, bcftools, bwa and tabix instead (smoke
#                                 builds where the tarballs cannot be downloaded)
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

build() {
  local prefix="$1"
  local build_deps=(ca-certificates curl bzip2 make gcc libc6-dev zlib1g-dev libbz2-dev liblzma-dev libdeflate-dev)
  apt_install "${build_deps[@]}"
  local work
  work="$(mktemp -d)"
  cd "$work"
  fetch "$HTSLIB_URL" "$HTSLIB_SHA256" htslib.tar.bz2
  fetch "$SAMTOOLS_URL" "$SAMTOOLS_SHA256" samtools.tar.bz2
  fetch "$BCFTOOLS_URL" "$BCFTOOLS_SHA256" bcftools.tar.bz2
  fetch "$BWA_URL" "$BWA_SHA256" bwa.tar.gz
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

  # Only what the image needs: programs and the shared htslib; no headers, docs, static libs.
  rm -rf "$prefix/include" "$prefix/share" "$prefix/lib/pkgconfig" "$prefix"/lib/*.a
  cd /
  rm -rf "$work"
  apt-get purge -y -qq --auto-remove "${build_deps[@]}" >/dev/null
  apt_clean
}

runtime_deps() {
  apt_install ca-certificates zlib1g libbz2-1.0 liblzma5 libdeflate0
  apt_clean
}

debian_tools() {
  apt_install samtools bcftools bwa tabix
  apt_clean
}

case "${1:-}" in
  build) build "${2:?usage: build-tools.sh build PREFIX}" ;;
  runtime-deps) runtime_deps ;;
  debian-tools) debian_tools ;;
  *)
    echo "usage: build-tools.sh build PREFIX | runtime-deps | debian-tools" >&2
    exit 2
    ;;
esac
