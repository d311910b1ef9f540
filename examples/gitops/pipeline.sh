#!/bin/sh
# The GitOps pipeline's steps, one per job (.github/workflows/podnet.yml runs them):
#   pipeline.sh plan     on a pull request: what Terraform and each host would change
#   pipeline.sh deploy   on merge to main: cdktf deploy (terraform_data, no provider download)
#   pipeline.sh drift    on a schedule: podnet drift; exit 0 in sync, 2 drift, 1 error
# Needs: podnet on PATH (`npm ci && npm link` in the repository), terraform >= 1.4,
# PG_CONN_STR (the state backend), PODNET_SSH_KEY and PODNET_KNOWN_HOSTS.
# Writes its reports (plan.txt, drift.json) to $ARTIFACTS (default: artifacts/ here) and
# cdktf's output to $CDKTF_OUT (default: cdktf.out/ here).
set -eu
cd "$(dirname "$0")"
here=$(pwd)
out=${CDKTF_OUT:-$here/cdktf.out}
artifacts=${ARTIFACTS:-$here/artifacts}
manifest=$out/stacks/podnet/assets/podnet-cluster/manifest.json
export CHECKPOINT_DISABLE=1
mkdir -p "$artifacts"

case "${1:-}" in
  plan)
    # No pipe into tee: sh has no pipefail, and the job must fail when a step fails.
    code=0
    npx --no-install cdktf diff podnet --output "$out" > "$artifacts/plan.txt" 2>&1 || code=$?
    # The hosts' side of the same change, read over SSH (routes, files, restarts).
    [ "$code" -ne 0 ] || podnet plan --manifest "$manifest" >> "$artifacts/plan.txt" 2>&1 || code=$?
    cat "$artifacts/plan.txt"
    exit "$code"
    ;;
  deploy)
    npx --no-install cdktf deploy podnet --auto-approve --output "$out"
    ;;
  drift)
    npx --no-install cdktf synth --output "$out" >/dev/null
    code=0
    podnet drift --manifest "$manifest" --json > "$artifacts/drift.json" || code=$?
    exit "$code"
    ;;
  *)
    echo "usage: $0 plan|deploy|drift" >&2
    exit 1
    ;;
esac
