#!/usr/bin/env bash
# The whole test suite on a bare Debian machine with Python 3.11: installs what it needs
# (redis-server, prometheus for promtool, node and npm, a virtualenv with the package and its test
# tools), then lint, types, the Prometheus config/rule checks and tests.
# Extra arguments go to pytest, e.g. `bash tests/run.sh tests/unit` for one tier (tests/README.md)
# or `bash tests/run.sh -k chat`.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)  # promtool + the prometheus server
command -v openssl >/dev/null 2>&1 || missing+=(openssl)  # a throwaway TLS certificate for the upstream client tests
# The TLS front of the upstream transport test (tests/server/upstream/test_nginx_front.py).
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
python3 -c "import ensurepip, venv" >/dev/null 2>&1 || missing+=(python3-venv)
# The openai Node SDK test (tests/server/endpoints/test_responses_node.py; the SDK asks for Node 20
# and also runs on Debian 12's Node 18). Only when missing: a node already on PATH stays.
{ command -v node && command -v npm; } >/dev/null 2>&1 || missing+=(nodejs npm)
# Another apt (unattended upgrades, a parallel job) may hold its locks: wait for it, up to 10
# minutes. apt-get waits for the dpkg lock when told to, but `update` not for the lists lock.
apt_get() {
  local out tries=0
  while ! out=$(sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@" 2>&1); do
    if ! grep -q "Could not get lock" <<<"$out" || [ $((tries += 1)) -gt 120 ]; then
      echo "$out" >&2
      return 1
    fi
    sleep 5
  done
}
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt_get update -qq
  apt_get install -y -qq --no-install-recommends "${missing[@]}"
fi

VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]'

echo "== ruff"; "$VENV/bin/ruff" check . && "$VENV/bin/ruff" format --check .
echo "== mypy"; "$VENV/bin/mypy"
quiet() { local out; out=$("$@" 2>&1) || { echo "$out"; return 1; }; }
echo "== promtool"
quiet promtool check config deploy/prometheus/prometheus.yml
quiet promtool check rules deploy/prometheus/alerts.yml
quiet promtool test rules deploy/prometheus/alerts_test.yml
echo "== pytest"; "$VENV/bin/pytest" "$@"
