#!/usr/bin/env bash
# Packages the stack into OUTPUT_DIR (default dist/):
#  - uploads the pinned amazon-ebs-autoscale bundle (containers/versions.env) to
#    s3://$ARTIFACT_BUCKET/ebs-autoscale/, checked against EBS_AUTOSCALE_SHA256;
#  - `aws cloudformation package`s templates/cfn/biojob.yaml (uploads the state machine,
#    templates/asl/biojob.asl.json) into biojob.packaged.yaml;
#  - writes template-configuration.json: the stack parameters (ImageUri, the bundle's key and
#    digest, ProjectName, ArtifactBucket, plus STACK_PARAMETERS, a JSON object) and tags.
# Environment: ARTIFACT_BUCKET, IMAGE_URI (pinned by digest or version tag), PROJECT_NAME
# (default biojob), STACK_PARAMETERS (default {}), EBS_AUTOSCALE_TRUST_ON_FIRST_USE=1 to accept
# an unpinned bundle digest (printed, to be committed to versions.env).
#   buildspecs/scripts/package-templates.sh [OUTPUT_DIR]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="${1:-$root/dist}"
bucket="${ARTIFACT_BUCKET:?set ARTIFACT_BUCKET}"
image="${IMAGE_URI:?set IMAGE_URI (the image pinned by digest or version tag)}"
project="${PROJECT_NAME:-biojob}"
# shellcheck disable=SC1091 # versions.env is data: KEY=value lines
. "$root/containers/versions.env"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

key="ebs-autoscale/amazon-ebs-autoscale-$EBS_AUTOSCALE_VERSION.tar.gz"
bundle="$work/ebs-autoscale.tar.gz"
if aws s3api head-object --bucket "$bucket" --key "$key" >/dev/null 2>&1; then
  aws s3 cp --only-show-errors "s3://$bucket/$key" "$bundle"
else
  curl --fail --silent --show-error --location --retry 3 --output "$bundle" "$EBS_AUTOSCALE_URL"
fi
digest="$(sha256sum "$bundle" | cut -d' ' -f1)"
if [ -n "$EBS_AUTOSCALE_SHA256" ]; then
  if [ "$digest" != "$EBS_AUTOSCALE_SHA256" ]; then
    echo "package: $key has SHA-256 $digest, containers/versions.env pins $EBS_AUTOSCALE_SHA256" >&2
    exit 1
  fi
elif [ "${EBS_AUTOSCALE_TRUST_ON_FIRST_USE:-}" = 1 ]; then
  echo "package: WARNING: EBS_AUTOSCALE_SHA256 is not pinned; trusting $digest on first use." >&2
  echo "package: check it against $EBS_AUTOSCALE_URL and set it in containers/versions.env" >&2
else
  echo "package: EBS_AUTOSCALE_SHA256 is not pinned in containers/versions.env." >&2
  echo "package: the bundle's SHA-256 is $digest; check it, pin it, or set EBS_AUTOSCALE_TRUST_ON_FIRST_USE=1" >&2
  exit 1
fi
aws s3 cp --only-show-errors "$bundle" "s3://$bucket/$key"

aws cloudformation package \
  --template-file "$root/templates/cfn/biojob.yaml" \
  --s3-bucket "$bucket" --s3-prefix templates \
  --output-template-file "$out/biojob.packaged.yaml" >/dev/null

P_PROJECT="$project" P_IMAGE="$image" P_BUCKET="$bucket" P_KEY="$key" P_DIGEST="$digest" \
  python3 - "$out/template-configuration.json" <<'PY'
import json, os, sys
env = os.environ
parameters = {
    "ProjectName": env["P_PROJECT"],
    "ImageUri": env["P_IMAGE"],
    "ArtifactBucket": env["P_BUCKET"],
    "EbsAutoscaleKey": env["P_KEY"],
    "EbsAutoscaleSha256": env["P_DIGEST"],
}
parameters.update(json.loads(env.get("STACK_PARAMETERS") or "{}"))
with open(sys.argv[1], "w") as f:
    json.dump({"Parameters": parameters, "Tags": {"biojob:project": env["P_PROJECT"]}}, f, indent=2)
PY
echo "packaged: $out/biojob.packaged.yaml, $out/template-configuration.json"
