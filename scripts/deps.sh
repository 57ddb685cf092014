#!/usr/bin/env bash
# Installs what airtally's local mode and tests need, and only what is
# missing: a ClickHouse server (Debian's clickhouse-server, via apt) and,
# for the tests, ZooKeeper (Debian's zookeeper, via apt: the replicated
# ClickHouse tests) and libchdb (current ClickHouse in-process, via npm)
# under .cache/chdb/. airtally itself never installs anything; this script is the
# one place that does.
#
#   scripts/deps.sh clickhouse   # the ClickHouse server only (local mode)
#   scripts/deps.sh all          # also ZooKeeper and libchdb (tests)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
what=${1:-all}
chdb_version=26.5.3

have_clickhouse() { command -v clickhouse-server >/dev/null 2>&1 || command -v clickhouse >/dev/null 2>&1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

if ! have_clickhouse; then
  echo "deps: installing clickhouse-server with apt" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server clickhouse-client >/dev/null
  have_clickhouse || { echo "deps: clickhouse-server did not install" >&2; exit 1; }
fi

if [ "$what" = all ] && [ ! -x /usr/share/zookeeper/bin/zkServer.sh ]; then
  echo "deps: installing zookeeper with apt" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends zookeeper >/dev/null
  [ -x /usr/share/zookeeper/bin/zkServer.sh ] || { echo "deps: zookeeper did not install" >&2; exit 1; }
fi

if [ "$what" = all ]; then
  lib="$root/.cache/chdb/libchdb.so"
  if [ ! -s "$lib" ]; then
    command -v npm >/dev/null 2>&1 || { echo "deps: npm is needed to fetch libchdb (apt-get install npm)" >&2; exit 1; }
    echo "deps: fetching libchdb $chdb_version with npm (about 170 MB)" >&2
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && npm pack --silent "@chdb/lib-linux-x64-gnu@$chdb_version" >/dev/null && tar xzf ./*.tgz)
    mkdir -p "$(dirname "$lib")"
    mv "$tmp/package/libchdb.so" "$lib.tmp" && mv "$lib.tmp" "$lib"
  fi
fi
