#!/usr/bin/env bash
# Logs Docker in to the registry of ECR_REPOSITORY_URI with the AWS CLI v2.
set -euo pipefail
repository="${ECR_REPOSITORY_URI:?set ECR_REPOSITORY_URI (account.dkr.ecr.region.amazonaws.com/name)}"
registry="${repository%%/*}"
region="${AWS_REGION:-${AWS_DEFAULT_REGION:?set AWS_REGION}}"
aws ecr get-login-password --region "$region" |
  docker login --username AWS --password-stdin "$registry"
