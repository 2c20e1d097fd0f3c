#!/usr/bin/env bash
# Smoke test of the deployment without Docker: two vault processes on different loopback
# ports, configured with the Kubernetes Deployment's VAULT_* environment, over one bucket
# of a real MinIO, and two tsmnode processes configured with the StatefulSets' TSMNODE_*
# environment; a backup made through one is restored through the other. It is the Go
# test TestTwoReplicas, which `make test` also runs. Needs the pinned MinIO: `make tools`.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s tools
exec go test ./deploy -run 'TestTwoReplicas|TestEveryVariableIsAFlag' -count=1 -v
