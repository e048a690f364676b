#!/usr/bin/env bash
# Copies the parts of config/ that the Helm chart serves as they are (the CRD,
# the RBAC rules, the API's ClusterRoles, the admission policy, the KubeVirt
# catalog, the ServiceMonitor, the alerts and the dashboard) under charts/instance-operator/files/config/, at the same paths.
# config/ stays the one source of truth: `make manifests` runs this, `make
# verify` fails when the copies are stale, and test/install fails when the
# chart's templated objects drift from kustomize's rendering of config/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/charts/instance-operator/files/config"
files=(
  crd/bases/compute.k0rdent.ai_instances.yaml
  rbac/role.yaml
  restapi/role.yaml
  rbac/leader_election_role.yaml
  rbac/metrics_auth_role.yaml
  rbac/metrics_reader_role.yaml
  rbac/api/compute_viewer_role.yaml
  rbac/api/compute_deployer_role.yaml
  rbac/api/compute_admin_role.yaml
  rbac/api/compute_platform_admin_role.yaml
  admission/instance_finalizer_policy.yaml
  admission/tenancy_policies.yaml
  admission/owned_secrets_policy.yaml
  admission/instance_bounds_policy.yaml
  admission/namespace-name/namespace_name_policy.yaml
  kubevirt/component/role.yaml
  kubevirt/component/catalog.yaml
  prometheus/monitor.yaml
  prometheus/prometheusrule.yaml
  grafana/instance-operator.json
)
rm -rf "$dest"
for f in "${files[@]}"; do
  mkdir -p "$dest/$(dirname "$f")"
  cp "$root/config/$f" "$dest/$f"
done
