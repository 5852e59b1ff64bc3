# shellcheck shell=bash
# Sourced by test-state-machine.sh and run-state-machine-locally.sh: the state-machine harness's
# Python (tests/state-machine), its pinned packages (tests/state-machine/requirements.txt) in their
# own virtual environment, ${BIOJOB_CI_TOOLS:-~/.cache/biojob-ci}/state-machine-venv, rebuilt when
# the requirements change; never the machine's own Python packages.
#
#   state_machine_venv ROOT   installs it when needed and sets `state_machine_python`; also sets
#                             BIOJOB_BINARY (default ROOT/target/debug/biojob, built when unset)
#                             and BIOJOB_WEED (when `weed` is not on PATH) for the harness.
state_machine_venv() {
  local root="$1" requirements venv
  requirements="$root/tests/state-machine/requirements.txt"
  venv="${BIOJOB_CI_TOOLS:-$HOME/.cache/biojob-ci}/state-machine-venv"
  if ! cmp -s "$requirements" "$venv/.pinned" 2>/dev/null; then
    echo "== installing the state-machine harness's packages into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$venv/.pinned"
  fi
  # shellcheck disable=SC2034 # read by the scripts that source this file
  state_machine_python="$venv/bin/python"
  if [ -z "${BIOJOB_BINARY:-}" ]; then
    (cd "$root" && cargo build --quiet -p biojob-cli)
    export BIOJOB_BINARY="$root/target/debug/biojob"
  fi
  if [ -z "${BIOJOB_WEED:-}" ] && ! command -v weed >/dev/null 2>&1; then
    BIOJOB_WEED="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/weed"
    export BIOJOB_WEED
  fi
}
