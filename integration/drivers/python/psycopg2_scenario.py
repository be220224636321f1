"""The encryption scenario with psycopg2 (Debian's python3-psycopg2).

psycopg2 interpolates parameters client-side into SQL literals and sends
every statement over the simple protocol, so pgveil encrypts literals:
'...' strings, '1987-06-05'::date, bare integers, ARRAY[...] for lists and
(...) for tuples. executemany runs the statement once per row; COPY uses
copy_expert in text and CSV.

    /usr/bin/python3 psycopg2_scenario.py SPEC.json scenario|copy
"""

import io

import psycopg2

import enc_common as common


def main(r):
    s = common.load_spec()
    conn = psycopg2.connect(host=s["host"], port=s["port"], user=s["user"], password=s["password"],
                            dbname=s["dbname"], application_name="enc_psycopg2")
    conn.autocommit = True
    cur = conn.cursor()

    def ex(sql, params):
        cur.execute(sql, params)
        rows = cur.fetchall() if cur.description is not None else None
        return rows, cur.rowcount

    def exmany(sql, seq):
        cur.executemany(sql, seq)
        return cur.rowcount

    if common.phase() == "copy":
        def copy_in(sql, data):
            cur.copy_expert(sql, io.StringIO(data))
            return None, cur.rowcount

        def copy_out(sql):
            buf = io.StringIO()
            cur.copy_expert(sql, buf)
            return [[buf.getvalue()]], None

        r.step("copy_expert text FROM STDIN", lambda: copy_in(s["copy_in_text_sql"], s["copy_in_text"]), rowcount=2)
        r.step("copy_expert csv FROM STDIN", lambda: copy_in(s["copy_in_csv_sql"], s["copy_in_csv"]), rowcount=2)
        r.step("copy_expert text TO STDOUT", lambda: copy_out(s["copy_out_text_sql"]), want=[[s["copy_out_text"]]])
        r.step("copy_expert csv TO STDOUT", lambda: copy_out(s["copy_out_csv_sql"]), want=[[s["copy_out_csv"]]])
        conn.close()
        return

    # psycopg2 expands a tuple to (a, b, c).
    common.scenario(r, s, ex, exmany,
                    lambda emails: ("SELECT email FROM users WHERE email IN %s ORDER BY id", (tuple(emails),)))

    # A named (server-side) cursor: DECLARE … CURSOR, then FETCH FORWARD
    # itersize at a time; WITH HOLD outlives the transaction.
    def named(hold):
        def run():
            rows = []
            if hold:
                c = conn.cursor(name="ssc_hold", withhold=True)
            else:
                conn.autocommit = False
                c = conn.cursor(name="ssc")
            c.itersize = 2
            c.execute("SELECT " + common.COLS + " FROM users WHERE org_id = %s ORDER BY id", (s["org"],))
            rows += c.fetchmany(3)
            rows += list(c)
            c.close()
            if not hold:
                conn.commit()
                conn.autocommit = True
            return rows, None
        return run
    final = [common.user_row(u) for u in s["final"]]
    r.step("named cursor (DECLARE … FETCH)", named(False), want=final)
    r.step("named cursor WITH HOLD", named(True), want=final)
    conn.close()


common.run(main)
