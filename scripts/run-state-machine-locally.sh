#!/usr/bin/env bash
# Runs an execution input through the stack's state machine on this machine and prints its
# states as they pass:
#
#   scripts/run-state-machine-locally.sh input.json [--name NAME] [--workdir DIR] [--parameter Key=Value]
#
# The state machine (templates/asl/biojob.asl.json) runs in moto's Step Functions engine with
# the stack's job definitions (templates/cfn/biojob.yaml; --parameter overrides a stack
# parameter, e.g. AlignVcpus=2); each Batch job is this checkout's biojob (BIOJOB_BINARY,
# default target/debug/biojob) with the job's command and environment, retried as its job
# definition says. Prefixes are absolute local paths, or s3:// URIs on the S3-compatible server
# named by AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_S3 (credentials from the environment). Exits 0 when the execution
# succeeded, 1 when it did not.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "$#" -lt 1 ]; then
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
# shellcheck source=scripts/state-machine-venv.sh
. "$root/scripts/state-machine-venv.sh"
state_machine_venv "$root"
export AWS_EC2_METADATA_DISABLED=true
# The S3 server is for S3 only: moto serves IAM, Batch and Step Functions in this process, and
# AWS_ENDPOINT_URL would send those calls to the S3 server too. biojob and botocore read
# AWS_ENDPOINT_URL_S3 for S3.
if [ -n "${AWS_ENDPOINT_URL:-}" ]; then
  export AWS_ENDPOINT_URL_S3="${AWS_ENDPOINT_URL_S3:-$AWS_ENDPOINT_URL}"
  unset AWS_ENDPOINT_URL
fi
input="$(realpath "$1")"
shift
cd "$root/tests/state-machine"
exec "$state_machine_python" -m biojob_sm "$input" "$@"
