#!/bin/sh
# Creates the secrets of the docker-compose stack, once, in the secrets
# volume (mounted here at /secrets), one folder per service so that each
# container mounts only its own (docker-compose.yml, volume subpath):
#
#   clickhouse/<user>.sha256   SHA-256 of each ClickHouse user's password
#                              (ClickHouse never sees the passwords)
#   admin/clickhouse_password  airtally_admin (migrations, replays)
#   loader/clickhouse_password airtally_loader (insert and select only)
#   grafana/clickhouse_password grafana (read-only), for the data source
#   grafana/admin_password     Grafana's admin user
#   analyst/clickhouse_password analyst (read-only), to hand to analysts
#   gateway/tokens, gateway/ani_key   the gateway's token file and the key
#                              that hashes callers' numbers
#   demo/gateway_token         the demo producer's gateway token
#
# A secret that exists is kept, so restarting the stack changes nothing.
# Runs in busybox. Read one with, e.g.:
#   docker compose run --rm secrets cat /secrets/grafana/admin_password
set -eu
umask 022
root=${SECRETS_DIR:-/secrets}

random() { head -c 48 /dev/urandom | base64 | tr -d '/+=\n' | cut -c1-32 | tr -d '\n'; }

# secret PATH: writes a random value to PATH unless it holds one already.
secret() {
	mkdir -p "$(dirname "$root/$1")"
	if [ ! -s "$root/$1" ]; then
		random > "$root/$1.tmp"
		mv "$root/$1.tmp" "$root/$1"
		echo "created $1"
	fi
}

mkdir -p "$root/clickhouse"
for user in admin loader grafana analyst; do
	secret "$user/clickhouse_password"
	sha256sum < "$root/$user/clickhouse_password" | cut -d' ' -f1 | tr -d '\n' > "$root/clickhouse/$user.sha256"
done
secret grafana/admin_password
secret gateway/ani_key
secret demo/gateway_token
if [ ! -s "$root/gateway/tokens" ]; then
	{
		echo "# token system instance name: one line per client of the HTTP gateway"
		echo "$(cat "$root/demo/gateway_token") * * demo producer"
	} > "$root/gateway/tokens.tmp"
	mv "$root/gateway/tokens.tmp" "$root/gateway/tokens"
	echo "created gateway/tokens"
fi
# Each service runs as its own user; the folders are mounted read-only
# into the one service that needs them.
chmod 0755 "$root"/*
chmod 0444 "$root"/*/*
