#!/bin/sh
# Writes PgBouncer's auth_file from the roles' SCRAM secrets exactly as the server stores them,
# then runs PgBouncer in the foreground.
#
# Why copies of the server's secrets: PgBouncer can log in to PostgreSQL with a SCRAM secret
# only if it is identical to the server's (same salt and iterations) and the client used SCRAM
# too (pgbouncer.ini(5), "Authentication file format"; docs/pgbouncer.md). They are read at
# every start, so restarting this container is how a changed password reaches PgBouncer.
#
# Reads them as a superuser through libpq's own variables: PGHOST, PGPORT, PGUSER, PGPASSWORD.
set -eu

userlist=/var/lib/tenantry-pgbouncer/userlist.txt
roles="'tenantry_app', 'tenantry_owner'"

until pg_isready --quiet --dbname=postgres; do
    echo "waiting for PostgreSQL at ${PGHOST:-localhost}:${PGPORT:-5432}" >&2
    sleep 1
done

umask 077
psql --no-psqlrc --quiet --tuples-only --no-align --dbname=postgres -v ON_ERROR_STOP=1 \
    --command="SELECT '\"' || rolname || '\" \"' || rolpassword || '\"'
               FROM pg_authid WHERE rolname IN ($roles) AND rolpassword LIKE 'SCRAM-SHA-256\$%'
               ORDER BY rolname" > "$userlist.new"
found=$(grep -c . "$userlist.new" || true)
if [ "$found" -ne 2 ]; then
    echo "expected SCRAM secrets for $roles, found $found: run platform/postgres/roles.sql" \
         "on the server (password_encryption = scram-sha-256)" >&2
    exit 1
fi
mv "$userlist.new" "$userlist"

exec pgbouncer /etc/pgbouncer/pgbouncer.ini
