-- With ON_ERROR_STOP psql stops at the first error and exits 3.
\set ON_ERROR_STOP on
SELECT 'before' AS step;
BEGIN;
CREATE TEMP TABLE relay_psql_stop (id int);
SELECT * FROM relay_psql_no_such_table;
SELECT 'never printed' AS step;
COMMIT;
