#!/usr/bin/env bash
# Starts the local services the test suite needs when they are not running: PostgreSQL 15
# on 127.0.0.1:5432 (trust auth), as on every machine of this kind and in CI; installs nginx
# (Debian's) for the cluster tests, chromium for the report's browser test and prometheus
# (promtool) for the metrics lint and softhsm2 (a PKCS#11 token) for the HSM tests when
# missing.
set -euo pipefail

install() {  # a Debian package, when its command is missing
    command -v "$1" >/dev/null 2>&1 && return
    echo "installing $2" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "$2" >/dev/null 2>&1 \
        || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "$2" >/dev/null; }
}

install nginx nginx
install chromium chromium
install promtool prometheus  # promtool lints the metrics exposition
install softhsm2-util softhsm2  # a real PKCS#11 token for the key-management tests

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    echo "starting PostgreSQL ${version}" >&2
    pg_ctlcluster --skip-systemctl-redirect "${version}" main start || true
    for _ in $(seq 1 60); do
        pg_isready -q -h 127.0.0.1 -p 5432 && break
        sleep 0.5
    done
    pg_isready -h 127.0.0.1 -p 5432
fi
