#!/bin/sh
# One-shot: create and migrate the temporal and temporal_visibility schemas (idempotent).
set -eu
: "${POSTGRES_SEEDS:?}" "${POSTGRES_USER:?}" "${SQL_PASSWORD:?}"
PORT="${DB_PORT:-5432}"
SCHEMA=/etc/temporal/schema/postgresql/v12

attempt=1
until nc -z -w 5 "$POSTGRES_SEEDS" "$PORT"; do
  [ "$attempt" -ge 30 ] && { echo "postgres not reachable"; exit 1; }
  attempt=$((attempt + 1)); sleep 2
done

for db in temporal temporal_visibility; do
  dir=temporal
  [ "$db" = temporal_visibility ] && dir=visibility
  sql="temporal-sql-tool --plugin postgres12 --ep $POSTGRES_SEEDS -u $POSTGRES_USER -p $PORT --db $db"
  $sql create || echo "database $db exists"
  $sql setup-schema -v 0.0 || echo "schema of $db already set up"
  $sql update-schema -d "$SCHEMA/$dir/versioned"
done
echo "schemas ready"
