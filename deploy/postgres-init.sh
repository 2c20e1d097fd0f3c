#!/bin/sh
# The TSM nodes' databases in compose's PostgreSQL: a user and a database for each node
# (run once, by the postgres image, into an empty volume).
set -e
for n in 1 2; do
  psql -v ON_ERROR_STOP=1 -U postgres -c "CREATE USER tsmnode$n PASSWORD '$POSTGRES_PASSWORD'" \
    -c "CREATE DATABASE tsmnode$n OWNER tsmnode$n"
done
