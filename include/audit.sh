#!/usr/bin/env bash
# Dependency audit for CI: every pin of requirements.txt against the PyPI advisory data.
#
#   include/audit.sh [requirements file]      (default: requirements.txt)
#
# Fails on any known vulnerability not listed in include/audit-ignore.txt, and (--strict)
# on any pin it could not look up: an audit that checked nothing must not pass.
# Needs pip-audit in the venv and network access to pypi.org's JSON API.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
project="$(dirname "${here}")"
requirements="${1:-${project}/requirements.txt}"
ignore_file="${here}/audit-ignore.txt"
pip_audit="${PIP_AUDIT:-${project}/.venv/bin/pip-audit}"

[[ -x "${pip_audit}" ]] || {
  echo "audit: ${pip_audit} not found: install pip-audit into the venv (see docs/SECURITY.md)" >&2
  exit 2
}

# One vulnerability id a line, then its reason after whitespace; "#" starts a comment.
ignores=()
while read -r id _reason; do
  [[ -z "${id}" || "${id}" == \#* ]] && continue
  ignores+=(--ignore-vuln "${id}")
done <"${ignore_file}"

exec "${pip_audit}" --requirement "${requirements}" --no-deps --disable-pip \
  --vulnerability-service pypi --strict --progress-spinner off "${ignores[@]}"
