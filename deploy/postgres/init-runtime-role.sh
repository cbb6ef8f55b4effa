#!/bin/sh
# Run once by the postgres image on an empty server (docker-entrypoint-initdb.d): creates
# keyvalet's least-privilege runtime role with the password from its compose secret. Its
# privileges on keyvalet's tables are granted by `keyvalet db migrate --grant-to keyvalet`.
set -eu
password=$(cat /run/secrets/keyvalet_db_runtime_password)
# The password goes in as a psql variable, quoted by psql (:'pw'), never spliced into the SQL.
psql -v ON_ERROR_STOP=1 -v pw="$password" --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE keyvalet LOGIN PASSWORD :'pw';
SQL
