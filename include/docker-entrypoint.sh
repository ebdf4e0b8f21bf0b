#!/usr/bin/env bash
# Entry point of the lakehouse image: `airflow <command>`, with the API server guarded.
#
#   api-server    refuses to start without a login: every user of
#                 AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS needs a password, either from
#                 the operator's AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE or from
#                 LAKEHOUSE_AIRFLOW_PASSWORD (written to a 0600 file, then unset). It binds
#                 to ${AIRFLOW_API_HOST:-127.0.0.1}:${AIRFLOW_API_PORT:-8080}.
#   migrate       creates or upgrades the metadata DB and the one-slot pool every
#                 lakehouse writer task takes (run once before the other components).
#   healthcheck   exits 0 when the API server answers /api/v2/monitor/health.
#   anything else is passed to `airflow` unchanged (scheduler, dag-processor, ...).
#
# A password is never printed: messages name the variable, not its value.
set -euo pipefail

api_host="${AIRFLOW_API_HOST:-127.0.0.1}"
api_port="${AIRFLOW_API_PORT:-8080}"
min_password_length=12

refuse() {
  echo "docker-entrypoint: $*" >&2
  exit 64
}

users() {
  # "admin:admin,viewer:viewer" -> one user name a line
  local spec="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:-}"
  [[ -n "${spec}" ]] || refuse "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS is empty: set it to user:role pairs, e.g. admin:admin"
  tr ',' '\n' <<<"${spec}" | cut -d: -f1 | sed 's/^ *//; s/ *$//' | grep -v '^$'
}

check_supplied_passwords_file() {
  # SimpleAuthManager generates (and prints) a password for any user missing from the
  # file, so every configured user must already be in it.
  local file="$1"
  [[ -r "${file}" ]] || refuse "the passwords file ${file} (AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE) does not exist or is not readable"
  users | python3 -c '
import json, sys
path = sys.argv[1]
try:
    with open(path) as handle:
        passwords = json.load(handle)
except (OSError, ValueError) as exc:
    sys.exit(f"docker-entrypoint: {path} is not a JSON object of user -> password ({exc.__class__.__name__})")
if not isinstance(passwords, dict):
    sys.exit(f"docker-entrypoint: {path} is not a JSON object of user -> password")
missing = " ".join(u for u in sys.stdin.read().split() if not passwords.get(u))
if missing:
    sys.exit(f"docker-entrypoint: {path} has no password for user(s) {missing}")
' "${file}" || exit 64
}

write_passwords_file() {
  # The password reaches python through the environment, never the command line.
  local file="${AIRFLOW_HOME:?AIRFLOW_HOME is not set}/simple_auth_manager_passwords.json"
  (
    umask 077
    users | python3 -c '
import json, os, sys
password = os.environ["LAKEHOUSE_AIRFLOW_PASSWORD"]
with open(sys.argv[1], "w") as handle:
    json.dump({user: password for user in sys.stdin.read().split()}, handle)
' "${file}"
  )
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="${file}"
}

require_login() {
  case "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS:-False}" in
    [Tt]rue | 1) refuse "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS is true: that turns the login off; set it to False" ;;
  esac
  if [[ -n "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:-}" ]]; then
    check_supplied_passwords_file "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE}"
  elif [[ -n "${LAKEHOUSE_AIRFLOW_PASSWORD:-}" ]]; then
    if ((${#LAKEHOUSE_AIRFLOW_PASSWORD} < min_password_length)); then
      refuse "LAKEHOUSE_AIRFLOW_PASSWORD is shorter than ${min_password_length} characters: choose a longer one"
    fi
    write_passwords_file
  else
    refuse "no login configured: set LAKEHOUSE_AIRFLOW_PASSWORD (at least ${min_password_length} characters) or mount a passwords file and point AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE at it; the API server does not start without one"
  fi
  # The API server and everything it starts do not need the clear password.
  unset LAKEHOUSE_AIRFLOW_PASSWORD
}

command="${1:-api-server}"
case "${command}" in
  api-server)
    shift || true
    require_login
    exec airflow api-server --host "${api_host}" --port "${api_port}" "$@"
    ;;
  migrate)
    airflow db migrate
    exec airflow pools set lakehouse_writers 1 "Tasks that write lakehouse tables, one at a time"
    ;;
  healthcheck)
    probe_host="${api_host}"
    [[ "${probe_host}" == "0.0.0.0" ]] && probe_host="127.0.0.1"
    exec python3 -c '
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as response:
    sys.exit(0 if response.status == 200 else 1)
' "http://${probe_host}:${api_port}/api/v2/monitor/health"
    ;;
  *)
    exec airflow "$@"
    ;;
esac
