#!/bin/sh
# A TSM node's database in its own PostgreSQL (compose's postgres1, postgres2): the user the
# node connects as, with its own password (NODE_PASSWORD), and its database. Run once, by
# the postgres image, into an empty volume.
set -e
psql -v ON_ERROR_STOP=1 -U postgres -c "CREATE USER tsmnode PASSWORD '$NODE_PASSWORD'" \
  -c "CREATE DATABASE tsmnode OWNER tsmnode"
