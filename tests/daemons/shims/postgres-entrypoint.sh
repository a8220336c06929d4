#!/bin/sh
# Stand-in for the official postgres image's docker-entrypoint.sh, written from its documented
# behaviour (https://hub.docker.com/_/postgres, "Environment Variables" and "Initialization
# scripts"), for the daemon tier only. On an empty PGDATA: initdb with POSTGRES_USER and
# POSTGRES_PASSWORD (local connections trusted, as initdb does by default), a pg_hba line that
# asks every network client for a password (POSTGRES_HOST_AUTH_METHOD, default scram-sha-256),
# POSTGRES_DB created, then /docker-entrypoint-initdb.d/* run against a socket-only temporary
# server (its log on stdout, as the image prints it). Then `postgres "$@"`.
set -eu
case "${1:-}" in -*) set -- postgres "$@" ;; esac
if [ "${1:-}" != postgres ]; then exec "$@"; fi

: "${PGDATA:?}"
POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?the image refuses to initialise without POSTGRES_PASSWORD}"
  mkdir -p "$PGDATA"
  chmod 700 "$PGDATA"
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  # shellcheck disable=SC2086
  initdb --username="$POSTGRES_USER" --pwfile="$pwfile" ${POSTGRES_INITDB_ARGS:-} > /dev/null
  rm -f "$pwfile"
  # The image's postgresql.conf.sample listens on every address (its Dockerfile seds
  # listen_addresses to '*'); Debian's sample keeps 'localhost', which no Service could reach.
  printf "\nlisten_addresses = '*'\n" >> "$PGDATA/postgresql.conf"
  printf '\nhost all all all %s\n' "${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" >> "$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
  export PGUSER="$POSTGRES_USER" PGPASSWORD="$POSTGRES_PASSWORD" PGHOST=/var/run/postgresql PGPORT=5432
  if [ "$POSTGRES_DB" != postgres ]; then
    psql -v ON_ERROR_STOP=1 -d postgres -q -v db="$POSTGRES_DB" <<'EOSQL'
CREATE DATABASE :"db";
EOSQL
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    [ -e "$f" ] || continue
    case "$f" in
      *.sh) if [ -x "$f" ]; then echo "running $f"; "$f"; else echo "sourcing $f"; . "$f"; fi ;;
      *.sql) echo "running $f"; psql -v ON_ERROR_STOP=1 -d "$POSTGRES_DB" -f "$f" ;;
      *) echo "ignoring $f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop > /dev/null
  unset PGUSER PGPASSWORD PGHOST PGPORT
  echo "PostgreSQL init process complete; ready for start up."
fi
exec "$@"
