-- Bulk traffic: 200,000 rows in through \copy from a program (CopyData
-- from the client), megabytes out through COPY TO STDOUT and \copy.
\set ON_ERROR_STOP on
CREATE TEMP TABLE relay_psql_big (i int, s text);
\copy relay_psql_big (i) from program 'seq 1 200000'
UPDATE relay_psql_big SET s = md5(i::text);
SELECT count(*), sum(i), md5(string_agg(s, '' ORDER BY i)) FROM relay_psql_big;
COPY (SELECT * FROM relay_psql_big ORDER BY i) TO STDOUT;
\copy (SELECT * FROM relay_psql_big ORDER BY i DESC LIMIT 50000) to stdout with (format csv)
SELECT i, s FROM relay_psql_big WHERE i % 20000 = 0 ORDER BY i;
