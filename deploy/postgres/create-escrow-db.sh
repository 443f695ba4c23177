#!/bin/sh
# One-shot: the order store's role and database on the PostgreSQL service (docs/deployment.md).
# Idempotent: creates the role and the database when missing, and sets the role's password to
# ESCROW_DB_PASSWORD on every run (so rotating it in .env takes effect on the next `up`).
# Connection: the libpq variables PGHOST, PGPORT, PGUSER, PGPASSWORD (the superuser).
set -eu
: "${PGHOST:?}" "${PGUSER:?}" "${ESCROW_DB_PASSWORD:?}"
ROLE="${ESCROW_DB_USER:-escrow}"
DB="${ESCROW_DB_NAME:-escrow}"

attempt=1
until pg_isready -q -d postgres; do
  [ "$attempt" -ge 30 ] && { echo "postgres not reachable"; exit 1; }
  attempt=$((attempt + 1)); sleep 2
done

psql -X -q -v ON_ERROR_STOP=1 -d postgres \
  -v role="$ROLE" -v db="$DB" -v pw="$ESCROW_DB_PASSWORD" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'role', :'pw') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'db') \gexec
SELECT format('GRANT ALL ON DATABASE %I TO %I', :'db', :'role') \gexec
SQL
echo "order store database $DB (role $ROLE) ready"
