-- Without ON_ERROR_STOP psql reports each error and goes on: a failing
-- statement, a failing COPY with inline data, a constraint violation and an
-- aborted transaction.
SELECT 1 AS one;
SELECT 1/0;
SELECT 'continued' AS after_error;
CREATE TEMP TABLE relay_psql_e (id int PRIMARY KEY, note text);
COPY relay_psql_e FROM STDIN;
1	one
not a number	two
3	three
\.
SELECT count(*) AS after_failed_copy FROM relay_psql_e;
\copy relay_psql_e from stdin
1	one
2	two
2	duplicate
\.
SELECT count(*) AS after_failed_copy FROM relay_psql_e;
INSERT INTO relay_psql_e VALUES (1), (1);
BEGIN;
INSERT INTO relay_psql_e VALUES (7);
SELECT nonexistent_column FROM relay_psql_e;
SELECT 'ignored in aborted tx';
ROLLBACK;
DO $$ BEGIN RAISE NOTICE 'notice with detail' USING DETAIL = 'the detail', HINT = 'the hint'; END $$;
SELECT 'done' AS last;
