-- LISTEN in this session; NOTIFY from another connection (a second psql
-- run through the shell), then from this session itself. psql prints each
-- notification after the next command's result.
LISTEN relay_psql_ch;
\! "$RELAY_PSQL" -X -q -c "NOTIFY relay_psql_ch, 'hello from another session'" "$RELAY_NOTIFY_URL"
SELECT 'after notify' AS step;
\! "$RELAY_PSQL" -X -q -c "SELECT pg_notify('relay_psql_ch', 'second ü')" "$RELAY_NOTIFY_URL" > /dev/null
SELECT 'after second notify' AS step;
NOTIFY relay_psql_ch, 'self';
UNLISTEN relay_psql_ch;
SELECT 'unlistened' AS step;
