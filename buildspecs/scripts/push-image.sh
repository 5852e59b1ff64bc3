#!/usr/bin/env bash
# Pushes a tested local image to ECR_REPOSITORY_URI as :<commit SHA> and, the first time a
# version is built, :<version> (the repository's tags are immutable); waits for the scan on
# push, prints its finding counts on stderr, and prints the pushed image pinned by digest
# (repository@sha256:...) on stdout.
#   buildspecs/scripts/push-image.sh LOCAL_IMAGE COMMIT_SHA
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
local_image="${1:?usage: push-image.sh LOCAL_IMAGE COMMIT_SHA}"
commit="${2:?usage: push-image.sh LOCAL_IMAGE COMMIT_SHA}"
repository="${ECR_REPOSITORY_URI:?set ECR_REPOSITORY_URI}"
name="${repository#*/}"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)"
exists() {
  aws ecr describe-images --repository-name "$name" --image-ids "imageTag=$1" >/dev/null 2>&1
}
tags=("$commit")
if exists "$version"; then
  echo "push-image: :$version already names an earlier build; pushing :$commit only" >&2
else
  tags+=("$version")
fi
for tag in "${tags[@]}"; do
  if exists "$tag"; then
    echo "push-image: :$tag exists (immutable); not pushed again" >&2
    continue
  fi
  docker tag "$local_image" "$repository:$tag"
  docker push --quiet "$repository:$tag" >&2
done
digest="$(aws ecr describe-images --repository-name "$name" --image-ids "imageTag=$commit" \
  --query 'imageDetails[0].imageDigest' --output text)"
echo "push-image: $repository:$commit is $digest" >&2
if aws ecr wait image-scan-complete --repository-name "$name" --image-id "imageDigest=$digest" 2>/dev/null; then
  aws ecr describe-image-scan-findings --repository-name "$name" --image-id "imageDigest=$digest" \
    --query 'imageScanFindings.findingSeverityCounts' --output json >&2
else
  echo "push-image: scan on push did not complete; see the ECR console" >&2
fi
echo "$repository@$digest"
