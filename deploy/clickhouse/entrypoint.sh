#!/bin/sh
# Entrypoint of the compose stack's ClickHouse: exports the SHA-256 hashes
# of the users' passwords (from the secrets volume, mounted at
# /run/airtally) for users.d/airtally.xml (<password_sha256_hex
# from_env=...>), then runs the image's own entrypoint.
set -eu
for user in admin loader grafana analyst; do
	hash=$(cat "/run/airtally/${user}.sha256")
	name=$(echo "$user" | tr 'a-z' 'A-Z')
	export "AIRTALLY_CH_${name}_SHA256=$hash"
done
exec /entrypoint.sh "$@"
