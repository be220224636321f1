-- COPY in every form psql has: server COPY with inline data, \copy,
-- CSV with a header and a quoted newline, and COPY ... TO STDOUT.
\set ON_ERROR_STOP on
DROP TABLE IF EXISTS relay_psql_copy;
CREATE TABLE relay_psql_copy (id int PRIMARY KEY, name text, note text);
COPY relay_psql_copy FROM STDIN;
1	alpha	\N
2	béta 🐘	tab\there
\.
\copy relay_psql_copy from stdin
3	gamma	backslash\\
4	delta	
\.
COPY relay_psql_copy (id, name) FROM STDIN WITH (FORMAT csv, HEADER);
id,name
5,"quoted, comma"
6,"multi
line"
\.
COPY relay_psql_copy TO STDOUT;
COPY (SELECT id, name FROM relay_psql_copy ORDER BY id DESC) TO STDOUT WITH (FORMAT csv, HEADER);
\copy (SELECT * FROM relay_psql_copy WHERE id > 2 ORDER BY id) to stdout
\copy relay_psql_copy to stdout with (format csv)
SELECT count(*), string_agg(name, '|' ORDER BY id) FROM relay_psql_copy;
DROP TABLE relay_psql_copy;
