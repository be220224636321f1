"""The encryption scenario with psycopg 3 (Debian's python3-psycopg).

psycopg 3 binds parameters server-side (extended protocol); every
statement runs with prepare=True, so it is prepared as a named server
statement at once and reused. Its cache keeps only 2 prepared statements,
so it drops the others as it goes with SQL DEALLOCATE (libpq before 17),
which pgveil must send for the upstream names it chose. executemany
pipelines the rows; COPY uses cursor.copy() in text and CSV.

    /usr/bin/python3 psycopg3_scenario.py SPEC.json scenario|copy
"""

import psycopg

import enc_common as common


def main(r):
    s = common.load_spec()
    conn = psycopg.connect(host=s["host"], port=s["port"], user=s["user"], password=s["password"],
                           dbname=s["dbname"], application_name="enc_psycopg3", autocommit=True)
    conn.prepared_max = 2
    cur = conn.cursor()

    def ex(sql, params):
        cur.execute(sql, params, prepare=True)
        rows = cur.fetchall() if cur.description is not None else None
        return rows, cur.rowcount

    def exmany(sql, seq):
        cur.executemany(sql, seq)
        return cur.rowcount

    if common.phase() == "copy":
        def copy_in(sql, data):
            with cur.copy(sql) as copy:
                copy.write(data)
            return None, cur.rowcount

        def copy_out(sql):
            buf = bytearray()
            with cur.copy(sql) as copy:
                for chunk in copy:
                    buf += chunk
            return [[buf.decode("utf-8")]], None

        r.step("copy text FROM STDIN", lambda: copy_in(s["copy_in_text_sql"], s["copy_in_text"]), rowcount=2)
        r.step("copy csv FROM STDIN", lambda: copy_in(s["copy_in_csv_sql"], s["copy_in_csv"]), rowcount=2)
        r.step("copy text TO STDOUT", lambda: copy_out(s["copy_out_text_sql"]), want=[[s["copy_out_text"]]])
        r.step("copy csv TO STDOUT", lambda: copy_out(s["copy_out_csv_sql"]), want=[[s["copy_out_csv"]]])
        conn.close()
        return

    common.scenario(r, s, ex, exmany,
                    lambda emails: ("SELECT email FROM users WHERE email IN (%s, %s, %s) ORDER BY id", tuple(emails)))
    # A prepared statement reused with other parameters (served from
    # psycopg's prepared-statement cache this time).
    r.step("find by email (prepared, reused)",
           lambda: ex("SELECT " + common.COLS + " FROM users WHERE email = %s", (s["new_lookup"],)),
           want=[common.user_row(s["final"][0])], rowcount=1)

    # A server-side cursor: DECLARE "ssc3" CURSOR FOR … with the parameter
    # bound server-side, then FETCH FORWARD, both in the extended protocol.
    def named():
        rows = []
        with conn.transaction():
            with conn.cursor(name="ssc3") as c:
                c.itersize = 2
                c.execute("SELECT " + common.COLS + " FROM users WHERE org_id = %s ORDER BY id", (s["org"],))
                rows += c.fetchmany(3)
                rows += c.fetchall()
        return rows, None
    r.step("server-side cursor (DECLARE … FETCH)", named, want=[common.user_row(u) for u in s["final"]])
    conn.close()


common.run(main)
