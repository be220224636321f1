"""Shared parts of the Python scenarios of pgveil's encryption suite.

The Go test (integration/enc_python_test.go) writes an encSpec as JSON and
runs a scenario program with Debian's /usr/bin/python3:

    /usr/bin/python3 psycopg2_scenario.py SPEC.json scenario|copy

Each step prints "ok <step>" or "FAIL <step>: ..."; the exit status is 1
when any step failed. Values are compared as the spec writes them: dates
YYYY-MM-DD, integers in decimal, NULL as None.
"""

import datetime
import json
import sys
import traceback


def load_spec():
    with open(sys.argv[1], encoding="utf-8") as f:
        return json.load(f)


def phase():
    return sys.argv[2] if len(sys.argv) > 2 else "scenario"


def norm(v):
    if v is None:
        return None
    if isinstance(v, (datetime.date, datetime.datetime)):
        return v.isoformat()
    if isinstance(v, memoryview):
        v = bytes(v)
    if isinstance(v, bytes):
        return v.decode("utf-8")
    return str(v)


def show(v):
    s = repr(v)
    return s if len(s) <= 120 else "%s... (%d chars)" % (s[:100], len(str(v)))


def user_row(u):
    return [u["name"], u["email"], u["phone"], u["ssn"], u["birth_date"], u["api_token"]]


def date_arg(s):
    return None if s is None else datetime.date.fromisoformat(s)


def int_arg(s):
    return None if s is None else int(s)


def user_args(org, u):
    """The natural Python arguments of a users row."""
    return (org, u["name"], u["email"], u["phone"], u["ssn"], date_arg(u["birth_date"]), int_arg(u["api_token"]))


class Reporter:
    def __init__(self):
        self.failures = 0

    def fail(self, name, msg):
        self.failures += 1
        print("FAIL %s: %s" % (name, msg), flush=True)

    def compare(self, name, got, want):
        got = [[norm(v) for v in row] for row in got]
        if len(got) != len(want):
            return self.fail(name, "got %d rows, want %d: %s" % (len(got), len(want), show(got)))
        for i, (g, w) in enumerate(zip(got, want)):
            if len(g) != len(w):
                return self.fail(name, "row %d: %d fields, want %d" % (i, len(g), len(w)))
            for j, (a, b) in enumerate(zip(g, w)):
                if a != b:
                    return self.fail(name, "row %d field %d: got %s, want %s" % (i, j, show(a), show(b)))
        print("ok %s" % name, flush=True)

    def step(self, name, fn, want=None, rowcount=None):
        """Run fn() -> (rows or None, rowcount) and check it."""
        try:
            rows, n = fn()
        except Exception as e:  # a driver or server error: report and go on
            code = getattr(e, "pgcode", None) or getattr(getattr(e, "diag", None), "sqlstate", None)
            return self.fail(name, "%s %s: %s" % (type(e).__name__, code, str(e).strip().splitlines()[0] if str(e).strip() else ""))
        if rowcount is not None and n != rowcount:
            return self.fail(name, "rowcount %s, want %s" % (n, rowcount))
        if want is not None:
            return self.compare(name, rows or [], want)
        print("ok %s" % name, flush=True)

    def exit(self):
        sys.exit(1 if self.failures else 0)


def run(main):
    r = Reporter()
    try:
        main(r)
    except Exception:
        print("FAIL (driver): " + traceback.format_exc().replace("\n", " | "), flush=True)
        sys.exit(1)
    r.exit()


COLS = "name, email, phone, ssn, birth_date, api_token"
INS = "INSERT INTO users (org_id, " + COLS + ") VALUES "
ROW = "(%s, %s, %s, %s, %s, %s, %s)"


def scenario(r, s, ex, exmany, in_lookup):
    """The scenario of the suite, with %s placeholders.

    ex(sql, params) runs one statement and returns (rows or None, rowcount);
    exmany(sql, seq) runs one statement for each parameter tuple and returns
    the total rowcount; in_lookup(emails) returns (sql, params) for the IN
    lookup in the driver's idiom.
    """
    u = s["users"]
    org = s["org"]
    r.step("insert one RETURNING",
           lambda: ex(INS + ROW + " RETURNING email, phone, birth_date, api_token", user_args(org, u[0])),
           want=[[u[0]["email"], u[0]["phone"], u[0]["birth_date"], u[0]["api_token"]]], rowcount=1)
    r.step("insert many (executemany)",
           lambda: (None, exmany(INS + ROW, [user_args(org, x) for x in u[1:]])), rowcount=len(u) - 1)
    r.step("find by email (normalize)",
           lambda: ex("SELECT " + COLS + " FROM users WHERE email = %s", (s["lookup_email"],)),
           want=[user_row(u[0])], rowcount=1)
    r.step("read all (NULLs, Unicode, empty, 1 MiB)",
           lambda: ex("SELECT " + COLS + " FROM users WHERE org_id = %s ORDER BY id", (org,)),
           want=[user_row(x) for x in u])
    r.step("IN", lambda: ex(*in_lookup(s["in_emails"])), want=[[e] for e in s["in_expect"]])
    r.step("= ANY(%s) with a list",
           lambda: ex("SELECT email FROM users WHERE email = ANY(%s) ORDER BY id", (s["any_emails"],)),
           want=[[e] for e in s["any_expect"]])
    r.step("1 MiB blind-index lookup",
           lambda: ex("SELECT name FROM users WHERE ssn = %s", (s["big_ssn"],)), want=[[s["big_name"]]])
    r.step("phone IS NULL",
           lambda: ex("SELECT name FROM users WHERE org_id = %s AND phone IS NULL ORDER BY id", (org,)),
           want=[[n] for n in s["null_phone_names"]])
    r.step("email IS NULL",
           lambda: ex("SELECT name FROM users WHERE org_id = %s AND email IS NULL ORDER BY id", (org,)),
           want=[[n] for n in s["null_email_names"]])
    r.step("UPDATE RETURNING",
           lambda: ex("UPDATE users SET email = %s, phone = %s WHERE org_id = %s AND name = %s RETURNING email, phone",
                      (s["new_email"], s["new_phone"], org, s["update_name"])),
           want=[[s["new_email"], s["new_phone"]]], rowcount=1)
    r.step("old email gone", lambda: ex("SELECT name FROM users WHERE email = %s", (s["old_email"],)), want=[])
    r.step("new email found", lambda: ex("SELECT name FROM users WHERE email = %s", (s["new_lookup"],)),
           want=[[s["update_name"]]])
    up = s["upsert"]
    upsert = "INSERT INTO users (org_id, name, email, phone) VALUES (%s, %s, %s, %s) ON CONFLICT (email) DO "
    r.step("ON CONFLICT DO NOTHING (new)",
           lambda: ex(upsert + "NOTHING", (org, up["name"], up["email"], up["phone"])), rowcount=1)
    r.step("ON CONFLICT DO NOTHING (conflict)",
           lambda: ex(upsert + "NOTHING", (org, up["name"], s["upsert_variant"], s["upsert_phone2"])), rowcount=0)
    r.step("ON CONFLICT DO UPDATE RETURNING",
           lambda: ex(upsert + "UPDATE SET phone = EXCLUDED.phone RETURNING email, phone",
                      (org, up["name"], s["upsert_variant"], s["upsert_phone2"])),
           want=[[up["email"], s["upsert_phone2"]]], rowcount=1)
    d = s["doomed"]
    r.step("insert doomed", lambda: ex(INS + ROW, user_args(org, d)), rowcount=1)
    r.step("DELETE RETURNING",
           lambda: ex("DELETE FROM users WHERE email = %s RETURNING name, email, ssn, birth_date, api_token",
                      (s["doomed_lookup"],)),
           want=[[d["name"], d["email"], d["ssn"], d["birth_date"], d["api_token"]]], rowcount=1)
    r.step("deleted row gone",
           lambda: ex("SELECT count(*) FROM users WHERE email = %s", (s["doomed_lookup"],)), want=[["0"]])
    r.step("insert contacts (executemany)",
           lambda: (None, exmany("INSERT INTO contacts (org_id, email, note) VALUES (%s, %s, %s)",
                                 [(org, c["email"], c["note"]) for c in s["contacts"]])),
           rowcount=len(s["contacts"]))
    r.step("JOIN on the shared blind index",
           lambda: ex("SELECT u.name, u.email, c.email, c.note FROM users u JOIN contacts c ON u.email = c.email "
                      "WHERE u.org_id = %s AND c.org_id = %s ORDER BY u.id, c.id", (org, org)),
           want=s["join_expect"])
    r.step("final state",
           lambda: ex("SELECT " + COLS + " FROM users WHERE org_id = %s ORDER BY id", (org,)),
           want=[user_row(x) for x in s["final"]])


# The users fields the ORM programs read back, in the spec's row order.
FIELDS = ("name", "email", "phone", "ssn", "birth_date", "api_token")


class Check(Exception):
    """A step's check failed."""


def row_of(obj):
    return [norm(getattr(obj, f)) for f in FIELDS]


def rows_of(objs):
    return [row_of(o) for o in objs]


def check_types(obj):
    """The ORM gets the types it declared, not bytes of bytea."""
    for f, t in (("name", str), ("email", str), ("phone", str), ("ssn", str),
                 ("birth_date", datetime.date), ("api_token", int)):
        v = getattr(obj, f)
        if v is not None and type(v) is not t:
            raise Check("%s is %s, want %s" % (f, type(v).__name__, t.__name__))
