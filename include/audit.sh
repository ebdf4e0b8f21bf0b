#!/usr/bin/env bash
# Dependency audit for CI: every pin of both locks against the PyPI advisory data.
#
#   include/audit.sh [requirements file ...]
#
# By default the runtime lock requirements.txt (what the image installs) and then the dev
# lock requirements-dev.txt (what `make setup` and CI install: the runtime pins again plus
# the test and lint tools), so the output says whether a vulnerable pin ships in the image.
#
# Fails on any known vulnerability not listed in include/audit-ignore.txt, and (--strict)
# on any pin it could not look up: an audit that checked nothing must not pass.
# Needs pip-audit in the venv and network access to pypi.org's JSON API.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
project="$(dirname "${here}")"
if (($#)); then
  locks=("$@")
else
  locks=("${project}/requirements.txt" "${project}/requirements-dev.txt")
fi
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

# Every lock is audited even when an earlier one failed; the exit status is the worst.
status=0
for lock in "${locks[@]}"; do
  echo "audit: ${lock#"${project}/"}" >&2
  rc=0
  "${pip_audit}" --requirement "${lock}" --no-deps --disable-pip \
    --vulnerability-service pypi --strict --progress-spinner off "${ignores[@]}" || rc=$?
  if ((rc > status)); then status=${rc}; fi
done
exit "${status}"
