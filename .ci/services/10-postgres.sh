#!/usr/bin/env bash
# Start the machine's PostgreSQL cluster and create a test database for the store tests.
set -euo pipefail
env_file=${1:-/dev/null}
version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
if ! pg_lsclusters -h | grep -q "^$version main"; then
  pg_createcluster "$version" main >/dev/null
fi
pg_ctlcluster "$version" main start 2>/dev/null || true
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p "$(pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $3}')" && break
  sleep 1
done
port=$(pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $3}')
su postgres -c "psql -q -p $port -c \"DO \\\$\\\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='sdpflow') THEN CREATE ROLE sdpflow LOGIN PASSWORD 'sdpflow-test'; END IF; END \\\$\\\$;\""
su postgres -c "psql -q -p $port -tc \"SELECT 1 FROM pg_database WHERE datname='sdpflow_test'\"" | grep -q 1 \
  || su postgres -c "createdb -p $port -O sdpflow sdpflow_test"
echo "SDPFLOW_TEST_POSTGRES_URL=postgresql+psycopg://sdpflow:sdpflow-test@127.0.0.1:$port/sdpflow_test" >> "$env_file"
