#!/usr/bin/env bash
# Executes the stack's state machine (templates/asl/biojob.asl.json with the job definitions of
# templates/cfn/biojob.yaml) in moto's Step Functions engine, each Batch job a real biojob
# process against a loopback SeaweedFS server: the scenarios of tests/state-machine (pytest).
# Arguments go to pytest (e.g. -k resume). Run by scripts/test.sh after the workspace's tests.
# BIOJOB_BINARY names the biojob the jobs run (default: target/debug/biojob, built when missing).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/state-machine-venv.sh
. "$root/scripts/state-machine-venv.sh"
state_machine_venv "$root"
BIOJOB_TESTDATA="$(realpath "${BIOJOB_TESTDATA:-$root/../shared/testdata}")"
export BIOJOB_TESTDATA
export AWS_EC2_METADATA_DISABLED=true
cd "$root/tests/state-machine"
exec "$state_machine_python" -m pytest -p no:cacheprovider "$@"
