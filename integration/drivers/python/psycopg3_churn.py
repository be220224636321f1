"""psycopg 3's prepared-statement cache under churn (review 19b).

prepare_threshold=0 prepares every statement; prepared_max=4 makes
psycopg evict (DEALLOCATE through the extended protocol) all the time.
Statements alternate between the encrypted table and a plain one, some
fail in a transaction (psycopg then deallocates in an aborted block).
Usage: psycopg3_churn.py URL ORG ROUNDS. Prints "ok ..." or "FAIL ...".
"""
import sys

import psycopg

url, org, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with psycopg.connect(url, prepare_threshold=0, autocommit=True) as conn:
    conn.prepared_max = 4
    conn.execute("CREATE TEMP TABLE churn_plain (id int, v text)")
    for i in range(rounds):
        email = f"churn-{org}-{i % 7}@example.org"
        # A new text each round: a cache miss, and an eviction.
        conn.execute(f"INSERT INTO contacts (org_id, email) VALUES (%s, %s) -- {i}", (org, email))
        row = conn.execute(f"SELECT email FROM contacts WHERE org_id = %s AND email = %s LIMIT 1 -- {i}", (org, email)).fetchone()
        if row is None or row[0] != email:
            print(f"FAIL round {i}: read back {row!r}")
            sys.exit(1)
        conn.execute(f"INSERT INTO churn_plain (id, v) VALUES (%s, %s) -- {i}", (i, "x"))
        if i % 25 == 0:
            try:
                with conn.transaction():
                    conn.execute(f"SELECT 1/0 -- {i}")
            except psycopg.errors.DivisionByZero:
                pass
    n = conn.execute("SELECT count(*) FROM churn_plain").fetchone()[0]
    left = conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0]
    if n != rounds:
        print(f"FAIL {n} plain rows, want {rounds}")
    elif left > 8:
        print(f"FAIL {left} statements left upstream")
    else:
        print(f"ok churn: {rounds} rounds, {left} statements upstream")
