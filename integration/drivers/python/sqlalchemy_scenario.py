"""SQLAlchemy 1.4 (Debian's python3-sqlalchemy, psycopg2 dialect) through pgveil.

The models are declared as the application had them before adopting
pgveil: String, Date and BigInteger for what are now bytea columns holding
envelopes. pgveil reports the logical types in RowDescription, so psycopg2
hands the ORM str, datetime.date and int. psycopg2 interpolates every bound
value client-side into the SQL text (simple protocol): pgveil encrypts
literals, '...'::date included.

    /usr/bin/python3 sqlalchemy_scenario.py SPEC.json scenario|reflect

scenario: the ORM Session and Core on declarative models. User's primary
          key is id, as the application declared it: the unit of work's
          UPDATE users SET … WHERE users.id = … does not name the tenant
          (users.org_id, the key_context), and pgveil looks it up on the
          session's connection; an UPDATE over rows of two tenants is
          refused, one matching no row gives rowcount 0.
reflect:  the same table reflected (autoload_with=engine) with no type
          given: pgveil's catalog overlays describe the encrypted columns
          with their logical types, so SQLAlchemy reflects TEXT, DATE and
          BIGINT (the blind-index columns stay BYTEA), and Core on the
          reflected table (and an automap class) reads and writes str,
          datetime.date and int; then a table reflected with Column
          overrides, as before the overlays.
"""

import datetime

import sqlalchemy as sa
from sqlalchemy import (BigInteger, Column, Date, ForeignKey, MetaData, String, Table, Text, delete, event, func,
                        insert, select, text, update)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import URL
from sqlalchemy.orm import declarative_base, joinedload, relationship, selectinload, sessionmaker

import enc_common as common

Base = declarative_base()


class Org(Base):
    __tablename__ = "orgs"
    id = Column(BigInteger, primary_key=True, autoincrement=False)
    name = Column(Text, nullable=False)


class User(Base):
    """users as the application declared it: the primary key is id."""
    __tablename__ = "users"
    id = Column(BigInteger, primary_key=True)
    org_id = Column(BigInteger, ForeignKey("orgs.id"), nullable=False)
    name = Column(Text)
    email = Column(String(320))
    phone = Column(String)
    ssn = Column(String)
    birth_date = Column(Date)
    api_token = Column(BigInteger)
    org = relationship(Org)
    # contacts share the email blind-index key: JOIN ON users.email = contacts.email.
    contacts = relationship("Contact", primaryjoin="User.email == foreign(Contact.email)", viewonly=True,
                            order_by="Contact.id")


class Contact(Base):
    __tablename__ = "contacts"
    id = Column(BigInteger, primary_key=True)
    org_id = Column(BigInteger, ForeignKey("orgs.id"), nullable=False)
    email = Column(String(320))
    note = Column(Text)


TenantBase = declarative_base()


class TenantUser(TenantBase):
    """users with org_id in the mapper's primary key: every UPDATE and DELETE
    the unit of work emits says WHERE users.id = … AND users.org_id = …,
    which names the tenant pgveil encrypts under (key_context). No longer
    needed (pgveil looks up the tenant of User's UPDATE … WHERE users.id);
    one step shows this form still works, with no lookup."""
    __tablename__ = "users"
    id = Column(BigInteger, primary_key=True, autoincrement=True)
    org_id = Column(BigInteger, primary_key=True, autoincrement=False)
    name = Column(Text)
    email = Column(String(320))
    phone = Column(String)
    ssn = Column(String)
    birth_date = Column(Date)
    api_token = Column(BigInteger)


FIELDS = common.FIELDS
Check = common.Check
row_of, rows_of, check_types = common.row_of, common.rows_of, common.check_types


def want_eq(what, got, want):
    if got != want:
        raise Check("%s: got %s, want %s" % (what, common.show(got), common.show(want)))


def kwargs(u):
    """A spec user as model keyword arguments, in Python types."""
    return dict(name=u["name"], email=u["email"], phone=u["phone"], ssn=u["ssn"],
                birth_date=common.date_arg(u["birth_date"]), api_token=common.int_arg(u["api_token"]))


def count_email(ses, email):
    return ses.execute(select(func.count()).select_from(User).where(User.email == email)).scalar()


def names_email(ses, email):
    return ses.execute(select(User.name).where(User.email == email)).scalars().all()


class Run:
    def __init__(self, r, engine):
        self.r = r
        self.engine = engine
        self.last_sql = None
        self.statements = []

        self.last_template = None

        @event.listens_for(engine, "after_cursor_execute")
        def after(conn, cursor, statement, parameters, context, executemany):
            self.statements.append((statement.split(None, 1)[0].upper(), executemany, cursor.rowcount))
            self.last_template = statement

        @event.listens_for(engine, "handle_error")
        def on_error(ctx):
            q = getattr(ctx.cursor, "query", None)
            self.last_sql = q.decode("utf-8", "replace") if isinstance(q, bytes) else q
            self.last_template = ctx.statement

    def step(self, name, fn):
        self.last_sql = None
        try:
            fn()
        except Check as e:
            return self.r.fail(name, str(e))
        except Exception as e:
            return self.r.fail(name, "%s%s" % (describe(e), self.sent()))
        print("ok %s" % name, flush=True)

    def info(self, what):
        """Print the last statement's text as SQLAlchemy wrote it (bound
        values are %(name)s placeholders: no value is printed)."""
        print("info %s: %s" % (what, " ".join((self.last_template or "").split())), flush=True)

    def sent(self):
        if not self.last_sql:
            return ""
        return " | SQL sent: " + common.show(self.last_sql)

    def refused(self, name, fn, *needles, code="0A000"):
        """fn must fail with pgveil's refusal: SQLSTATE code (0A000 unless
        told) and a message naming the table and column (each of needles)."""
        self.last_sql = None
        try:
            fn()
        except sa.exc.DBAPIError as e:
            orig = e.orig
            got = getattr(orig, "pgcode", None)
            msg = getattr(getattr(orig, "diag", None), "message_primary", None) or str(orig)
            if got != code:
                return self.r.fail(name, "SQLSTATE %s, want %s: %s%s" % (got, code, msg, self.sent()))
            missing = [n for n in needles if n not in msg]
            if missing:
                return self.r.fail(name, "message %r does not name %s" % (msg, missing))
            if "pgveil" not in msg:
                return self.r.fail(name, "message %r is not pgveil's" % msg)
            print("ok %s (%s: %s)" % (name, code, msg), flush=True)
            return
        except Exception as e:
            return self.r.fail(name, "not a database refusal: %s%s" % (describe(e), self.sent()))
        self.r.fail(name, "was not refused")


def describe(e):
    orig = getattr(e, "orig", None)
    code = getattr(orig, "pgcode", None)
    text_ = str(orig if orig is not None else e).strip()
    return "%s %s: %s" % (type(e).__name__, code, text_.splitlines()[0] if text_ else "")


def make_engine(s, app):
    url = URL.create("postgresql+psycopg2", username=s["user"], password=s["password"], host=s["host"],
                     port=s["port"], database=s["dbname"])
    return sa.create_engine(url, future=True, connect_args={"application_name": app})


def scenario(r, s):
    engine = make_engine(s, "enc_sqlalchemy")
    run = Run(r, engine)
    Session = sessionmaker(engine, future=True)
    u = s["users"]
    o = s["orm"]
    org, org2 = s["org"], s["copy_org"]
    ids = []

    def connect():
        with engine.connect() as c:
            want_eq("select 1", c.execute(text("SELECT 1")).scalar(), 1)
        print("info server %s, dialect %s, executemany_mode %s" % (
            engine.dialect.server_version_info, engine.dialect.driver, engine.dialect.executemany_mode), flush=True)
    run.step("engine connects (dialect initialize)", connect)

    def add_one():
        with Session() as ses:
            obj = User(org_id=org, **kwargs(u[0]))
            ses.add(obj)
            ses.commit()
            if not isinstance(obj.id, int):
                raise Check("id after commit: %r" % obj.id)
            ids.append(obj.id)
    run.step("Session.add + commit (INSERT … RETURNING id)", add_one)

    def add_many():
        with Session() as ses:
            objs = [User(org_id=org, **kwargs(x)) for x in u[1:]]
            ses.add_all(objs)
            mark = len(run.statements)
            ses.commit()
            got = [x.id for x in objs]
            if any(not isinstance(i, int) for i in got) or got != sorted(got) or len(set(got)) != len(got) or got[0] <= ids[0]:
                raise Check("ids %r after %r" % (got, ids))
            ids.extend(got)
            inserts = [st for st in run.statements[mark:] if st[0] == "INSERT"]
            print("info add_all of %d users: %d INSERT statement(s), executemany=%s" % (
                len(objs), len(inserts), [st[1] for st in inserts]), flush=True)
    run.step("Session.add_all + commit (executemany INSERT … RETURNING id)", add_many)

    def get_by_id():
        with Session() as ses:
            got = [ses.get(User, i) for i in ids]
            want_eq("rows", rows_of(got), [common.user_row(x) for x in u])
            for x in got:
                check_types(x)
    run.step("session.get (str, date, int back)", get_by_id)

    def by_email():
        with Session() as ses:
            got = ses.execute(select(User).where(User.email == s["lookup_email"])).scalars().all()
            want_eq("rows", rows_of(got), [common.user_row(u[0])])
    run.step("select(User).where(User.email == …) (normalize)", by_email)

    def in_list():
        with Session() as ses:
            got = ses.execute(select(User.email).where(User.email.in_(s["in_emails"])).order_by(User.id)).scalars().all()
            want_eq("emails", got, s["in_expect"])
    run.step("User.email.in_([…])", in_list)

    def by_ssn():
        with Session() as ses:
            got = ses.query(User).filter_by(ssn=o["ssn_lookup"]).all()
            want_eq("names", [x.name for x in got], [o["ssn_name"]])
            got = ses.query(User.name).filter_by(ssn=s["big_ssn"]).all()
            want_eq("1 MiB ssn", [x.name for x in got], [s["big_name"]])
    run.step("query(User).filter_by(ssn=…) (and a 1 MiB ssn)", by_ssn)

    def count_exists():
        with Session() as ses:
            want_eq("query.count()", ses.query(User).filter(User.email.in_(s["in_emails"])).count(), 2)
            want_eq("query(User.email).count()", ses.query(User.email).filter(User.org_id == org).count(), len(u))
            want_eq("query.exists()", ses.query(ses.query(User).filter(User.email == s["lookup_email"]).exists()).scalar(), True)
            want_eq("exists().where()", ses.execute(select(sa.exists().where(User.email == s["in_emails"][2]))).scalar(), False)
    run.step("query.count() (count over a subquery), exists()", count_exists)

    def is_null():
        with Session() as ses:
            got = ses.execute(select(User.name).where(User.org_id == org, User.email.is_(None)).order_by(User.id)).scalars().all()
            want_eq("names", got, s["null_email_names"])
    run.step("User.email.is_(None)", is_null)

    def text_params():
        with Session() as ses:
            got = ses.execute(text("SELECT name, email, birth_date, api_token FROM users WHERE email = :e AND org_id = :o"),
                              {"e": s["lookup_email"], "o": org}).all()
            want_eq("rows", [[common.norm(v) for v in row] for row in got],
                    [[u[0]["name"], u[0]["email"], u[0]["birth_date"], u[0]["api_token"]]])
    run.step("text() with bound parameters", text_params)

    def update_tenant():
        with Session() as ses:
            obj = ses.get(TenantUser, (ids[0], org))
            obj.phone = o["tenant_phone"]
            ses.commit()
            run.info("flush UPDATE with org_id in the primary key")
        with Session() as ses:
            want_eq("phone", ses.get(User, ids[0]).phone, o["tenant_phone"])
    run.step("flush UPDATE with org_id in the mapper's primary key (tenant named)", update_tenant)

    def update_by_id():
        with Session() as ses:
            obj = ses.get(User, ids[0])
            obj.email = s["new_email"]
            mark = len(run.statements)
            ses.flush()
            run.info("flush UPDATE of one attribute")
            want_eq("statements", run.statements[mark:], [("UPDATE", False, 1)])
            obj.phone = s["new_phone"]
            ses.commit()
            run.info("flush UPDATE of another")
            want_eq("in the session", [obj.email, obj.phone], [s["new_email"], s["new_phone"]])
    run.step("flush UPDATE … WHERE users.id = … (mapper keyed by id: pgveil looks the tenant up)", update_by_id)

    def updated():
        want = common.user_row(u[0])
        want[1:3] = [s["new_email"], s["new_phone"]]
        with Session() as ses:
            obj = ses.get(User, ids[0])
            want_eq("row", row_of(obj), want)
            check_types(obj)
            want_eq("old email", ses.execute(select(User.id).where(User.email == s["old_email"])).all(), [])
            got = ses.execute(select(User).where(User.email == s["new_lookup"])).scalars().all()
            want_eq("by the new email", rows_of(got), [want])
    run.step("the flushed row reads back exactly (session.get, the new email through the blind index)", updated)

    def core_multirow():
        with Session() as ses:
            rows = [dict(org_id=org2, **kwargs(x)) for x in o["org2_rows"]]
            got = ses.execute(insert(User).values(rows).returning(User.name, User.email, User.birth_date)).all()
            ses.commit()
            want_eq("returned", [[common.norm(v) for v in row] for row in got],
                    [[x["name"], x["email"], x["birth_date"]] for x in o["org2_rows"]])
    run.step("Core insert().values([…]) multi-row RETURNING", core_multirow)

    def bulk_update():
        with Session() as ses:
            loaded = ses.execute(select(User).where(User.org_id == org2).order_by(User.id)).scalars().all()
            res = ses.execute(update(User).where(User.org_id == org2).values(phone=o["bulk_phone"]))
            want_eq("rowcount", res.rowcount, len(o["org2_rows"]))
            want_eq("phones in the session (evaluate)", [x.phone for x in loaded], [o["bulk_phone"]] * len(loaded))
            ses.commit()
        with Session() as ses:
            want_eq("phones of org2", ses.execute(select(User.phone).where(User.org_id == org2)).scalars().all(),
                    [o["bulk_phone"]] * len(o["org2_rows"]))
            want_eq("u2's phone", ses.get(User, ids[1]).phone, u[1]["phone"])
    run.step("bulk update(User).where(User.org_id == …).values(phone=…)", bulk_update)

    def synchronize():
        # Equality goes through the blind index (normalize: lowercase, trim),
        # so SQL matches u4 by its upper-cased email; the 'evaluate'
        # strategy compares in Python, exactly, and leaves the object stale.
        variant = u[3]["email"].upper()
        with Session() as ses:
            obj = ses.get(User, ids[3])
            res = ses.execute(update(User).where(User.org_id == org, User.email == variant).values(phone=o["temp_phone"])
                              .execution_options(synchronize_session="fetch"))
            want_eq("rowcount (fetch)", res.rowcount, 1)
            want_eq("in-session phone after 'fetch'", obj.phone, o["temp_phone"])
            res = ses.execute(update(User).where(User.org_id == org, User.email == variant).values(phone=u[3]["phone"])
                              .execution_options(synchronize_session="evaluate"))
            want_eq("rowcount (evaluate)", res.rowcount, 1)
            want_eq("in-session phone after 'evaluate' (stale)", obj.phone, o["temp_phone"])
            ses.commit()
            want_eq("phone after commit", obj.phone, u[3]["phone"])
    run.step("bulk update by email: synchronize_session 'fetch' follows the blind index, 'evaluate' does not", synchronize)

    def stream():
        # yield_per / stream_results: a psycopg2 named cursor (DECLARE …
        # CURSOR, then FETCH FORWARD 2 at a time), which pgveil maps with
        # the cursor's result map: the same rows as a plain read.
        q = select(User).where(User.org_id == org).order_by(User.id)
        with Session() as ses:
            want = rows_of(ses.execute(q).scalars().all())
        with Session() as ses:
            parts = [rows_of(p) for p in ses.execute(q.execution_options(yield_per=2)).scalars().partitions()]
        if len(want) < 3:
            raise Check("too few rows to stream in parts: %d" % len(want))
        want_eq("partitions of 2", [len(p) for p in parts], [min(2, len(want) - i) for i in range(0, len(want), 2)])
        want_eq("streamed rows", [x for p in parts for x in p], want)
        with engine.connect() as c:
            res = c.execution_options(stream_results=True, max_row_buffer=2).execute(
                select(User.__table__.c.email, User.__table__.c.birth_date, User.__table__.c.api_token)
                .where(User.__table__.c.org_id == org).order_by(User.__table__.c.id))
            got = [[common.norm(v) for v in r] for r in res]
        want_eq("stream_results rows", got, [[x[1], x[4], x[5]] for x in want])
    run.step("yield_per and stream_results (server-side cursor: DECLARE … FETCH)", stream)

    up = s["upsert"]

    def upsert(email, phone):
        return pg_insert(User).values(org_id=org, name=up["name"], email=email, phone=phone)

    def on_conflict():
        with Session() as ses:
            res = ses.execute(upsert(up["email"], up["phone"]).on_conflict_do_nothing(index_elements=[User.email]))
            want_eq("new rowcount", res.rowcount, 1)
            res = ses.execute(upsert(s["upsert_variant"], s["upsert_phone2"]).on_conflict_do_nothing(index_elements=[User.email]))
            want_eq("conflict rowcount", res.rowcount, 0)
            stmt = upsert(s["upsert_variant"], s["upsert_phone2"])
            got = ses.execute(stmt.on_conflict_do_update(index_elements=[User.email], set_={"phone": stmt.excluded.phone})
                              .returning(User.email, User.phone)).all()
            want_eq("DO UPDATE RETURNING", [list(x) for x in got], [[up["email"], s["upsert_phone2"]]])
            ses.commit()
    run.step("postgresql insert().on_conflict_do_nothing/do_update (index_elements=[email])", on_conflict)

    def session_delete():
        with Session() as ses:
            d = User(org_id=org, **kwargs(s["doomed"]))
            ses.add(d)
            ses.commit()
            ses.delete(d)
            ses.commit()
            want_eq("count", count_email(ses, s["doomed_lookup"]), 0)
    run.step("session.delete + commit", session_delete)

    def bulk_delete():
        with Session() as ses:
            ses.add(User(org_id=org, **kwargs(o["doomed2"])))
            ses.commit()
            res = ses.execute(delete(User).where(User.email == o["doomed2_lookup"])
                              .execution_options(synchronize_session="fetch"))
            want_eq("rowcount", res.rowcount, 1)
            ses.commit()
            want_eq("count", count_email(ses, o["doomed2_lookup"]), 0)
    run.step("bulk delete(User).where(User.email == …) (synchronize_session='fetch')", bulk_delete)

    def rollback():
        rb = o["rolled"]
        with Session() as ses:
            ses.add(User(org_id=org, **kwargs(rb)))
            # Two objects changed alike: one executemany UPDATE … WHERE
            # users.id = …, a tenant lookup for each row, in the transaction.
            objs = [ses.get(User, ids[i]) for i in (1, 3)]  # (autoflush: the INSERT goes here)
            mark = len(run.statements)
            for x in objs:
                x.phone = o["rolled_phone"]
            ses.flush()
            updates = [st for st in run.statements[mark:] if st[0] == "UPDATE"]
            want_eq("statements (executemany UPDATE, 2 rows)", run.statements[mark:], [("UPDATE", True, 2)])
            want_eq("in the transaction", names_email(ses, rb["email"]), [rb["name"]])
            want_eq("phones in the transaction",
                    ses.execute(select(User.phone).where(User.id.in_([ids[1], ids[3]])).order_by(User.id)).scalars().all(),
                    [o["rolled_phone"]] * 2)
            ses.rollback()
            want_eq("after rollback", names_email(ses, rb["email"]), [])
        with Session() as ses:
            want_eq("phones", [ses.get(User, ids[i]).phone for i in (1, 3)], [u[1]["phone"], u[3]["phone"]])
    run.step("rollback (INSERT and an executemany UPDATE undone)", rollback)

    def contacts():
        with Session() as ses:
            ses.add_all([Contact(org_id=org, email=c["email"], note=c["note"]) for c in s["contacts"]])
            ses.commit()
    run.step("contacts: add_all + commit", contacts)

    # join_expect: u.name, u.email, c.email, c.note by u.id, c.id.
    def by_user():
        out = {}
        for name, _, cemail, note in s["join_expect"]:
            out.setdefault(name, []).append([cemail, note])
        return out

    def lazy():
        with Session() as ses:
            got = ses.get(User, ids[1]).contacts
            want_eq("contacts of u2", [[c.email, c.note] for c in got], by_user()[u[1]["name"]])
            want_eq("org of u2", ses.get(User, ids[1]).org.name, o["org_name"])
    run.step("relationship lazy load (contacts.email = :param, org)", lazy)

    def eager(option):
        def fn():
            with Session() as ses:
                got = ses.execute(select(User).options(option(User.contacts)).where(User.org_id == org)
                                  .order_by(User.id)).unique().scalars().all()
                want = by_user()
                want_eq("contacts per user", [[x.name, [[c.email, c.note] for c in x.contacts]] for x in got],
                        [[x["name"], want.get(x["name"], [])] for x in s["final"]])
        return fn
    run.step("joinedload (LEFT JOIN contacts ON users.email = contacts.email)", eager(joinedload))
    run.step("selectinload", eager(selectinload))

    # LIMIT with a joined eager load of a collection: the ORM wraps the
    # users query in a subquery and joins contacts on the subquery's email
    # (… FROM (SELECT users.email AS email, … LIMIT %(param_1)s) AS anon_1
    # LEFT OUTER JOIN contacts AS contacts_1 ON anon_1.email =
    # contacts_1.email). The subquery does not return email_bidx, so pgveil
    # refuses the comparison (rewrite/equality.go renameToIndex; docs/SQL.md
    # "the same rule holds for subqueries"). selectinload works.
    def eager_limit(option):
        def fn():
            with Session() as ses:
                got = ses.execute(select(User).options(option(User.contacts)).where(User.org_id == org)
                                  .order_by(User.id).limit(2)).unique().scalars().all()
                want = by_user()
                want_eq("contacts per user", [[x.name, [[c.email, c.note] for c in x.contacts]] for x in got],
                        [[x["name"], want.get(x["name"], [])] for x in s["final"][:2]])
        return fn
    run.refused("joinedload with limit (JOIN ON the subquery's email) is refused", eager_limit(joinedload),
                "public.users.email", "anon_1", "email_bidx")
    run.info("refused joinedload with limit")
    run.step("selectinload with limit", eager_limit(selectinload))

    def join():
        with Session() as ses:
            got = ses.execute(select(User.name, User.email, Contact.email, Contact.note)
                              .join(Contact, User.email == Contact.email)
                              .where(User.org_id == org, Contact.org_id == org).order_by(User.id, Contact.id)).all()
            want_eq("rows", [list(x) for x in got], s["join_expect"])
    run.step("select(User, Contact).join(Contact, User.email == Contact.email)", join)

    def in_subquery():
        with Session() as ses:
            got = ses.execute(select(User.name).where(User.email.in_(select(Contact.email).where(Contact.org_id == org)))
                              .order_by(User.id)).scalars().all()
            want_eq("names", got, [x[0] for x in s["join_expect"]])
    run.step("User.email.in_(select(Contact.email))", in_subquery)

    def q(stmt):
        def fn():
            with Session() as ses:
                ses.execute(stmt).all()
        return fn
    run.refused("order_by(User.email) is refused", q(select(User.id).order_by(User.email)), "public.users.email")
    run.refused("User.email.like(…) is refused", q(select(User.id).where(User.email.like(o["like_pattern"] + "%"))),
                "public.users.email")
    run.refused("User.email.ilike(…) is refused", q(select(User.id).where(User.email.ilike(o["like_pattern"] + "%"))),
                "public.users.email")
    run.refused("func.lower(User.email) is refused", q(select(func.lower(User.email)).where(User.org_id == org)),
                "public.users.email")
    run.refused("User.phone == … (no blind index) is refused", q(select(User.id).where(User.phone == o["phone_lookup"])),
                "public.users.phone")
    run.refused("User.birth_date > … (range) is refused",
                q(select(User.id).where(User.birth_date > datetime.date(1990, 1, 1))), "public.users.birth_date")
    run.refused("select(User.email).distinct() is refused", q(select(User.email).distinct()), "public.users.email")

    def bulk_no_tenant():
        with Session() as ses:
            res = ses.execute(update(User).where(User.email == o["email_lookup"]).values(phone=o["email_phone"])
                              .execution_options(synchronize_session=False))
            run.info("bulk UPDATE by email")
            want_eq("rowcount", res.rowcount, 1)
            ses.commit()
        with Session() as ses:
            want_eq("u2's phone", ses.get(User, ids[1]).phone, o["email_phone"])
            want_eq("by email", ses.execute(select(User.name, User.phone).where(User.email == o["email_lookup"])).all(),
                    [(u[1]["name"], o["email_phone"])])
    run.step("bulk update(User).where(User.email == …) without org_id (pgveil looks the tenant up)", bulk_no_tenant)

    def phones_of(ses, emails):
        return ses.execute(select(User.name, User.phone).where(User.email.in_(emails)).order_by(User.id)).all()

    two = o["two_tenant_emails"]

    def two_tenants():
        with Session() as ses:
            ses.execute(update(User).where(User.email.in_(two)).values(phone=o["two_tenant_phone"])
                        .execution_options(synchronize_session=False))
    run.refused("bulk update(User).where(User.email.in_([…])) over rows of two tenants is refused", two_tenants,
                "public.users", "more than one tenant", "org_id")

    def unchanged():
        with Session() as ses:
            want_eq("u2 (org) and o2a (org2)", [list(x) for x in phones_of(ses, two)],
                    [[u[1]["name"], o["email_phone"]], [o["org2_rows"][0]["name"], o["bulk_phone"]]])
    run.step("the refused UPDATE changed neither tenant's row", unchanged)

    def no_row():
        with Session() as ses:
            res = ses.execute(update(User).where(User.email == o["no_row_email"]).values(phone=o["no_row_phone"])
                              .execution_options(synchronize_session=False))
            want_eq("rowcount by email", res.rowcount, 0)
            res = ses.execute(update(User).where(User.id == -1).values(phone=o["no_row_phone"])
                              .execution_options(synchronize_session=False))
            want_eq("rowcount by id", res.rowcount, 0)
            ses.commit()
            want_eq("count", count_email(ses, o["no_row_email"]), 0)
    run.step("bulk update(User) matching no row (no tenant to look up): rowcount 0", no_row)

    def final():
        with Session() as ses:
            got = ses.execute(select(User).where(User.org_id == org).order_by(User.id)).scalars().all()
            want_eq("rows", rows_of(got), [common.user_row(x) for x in s["final"]])
    run.step("final state", final)
    engine.dispose()


def reflect(r, s):
    engine = make_engine(s, "enc_sqlalchemy_reflect")
    run = Run(r, engine)
    o = s["orm"]
    org, org2 = s["org"], s["copy_org"]
    rows, doomed = o["reflect_rows"], o["reflect_doomed"]
    t = {}

    def do_reflect():
        md = MetaData()
        t["users"] = Table("users", md, autoload_with=engine)
        t["md"] = md
        c = t["users"].c
        types = {n: type(c[n].type).__name__ for n in ("email", "email_bidx", "phone", "ssn", "ssn_bidx", "birth_date",
                                                       "api_token")}
        want_eq("reflected types", types, {"email": "TEXT", "email_bidx": "BYTEA", "phone": "TEXT", "ssn": "TEXT",
                                           "ssn_bidx": "BYTEA", "birth_date": "DATE", "api_token": "BIGINT"})
        want_eq("python types", {n: c[n].type.python_type for n in ("email", "birth_date", "api_token", "email_bidx")},
                {"email": str, "birth_date": datetime.date, "api_token": int, "email_bidx": bytes})
        print("info reflected users: %s" % ", ".join("%s %s" % (col.name, col.type) for col in t["users"].c), flush=True)
    run.step("Table('users', autoload_with=engine) reflects TEXT, DATE, BIGINT (blind indexes BYTEA)", do_reflect)
    if "users" not in t:
        return
    users = t["users"]

    def cols():
        return [users.c[f] for f in FIELDS]

    def norm_rows(got):
        return [[common.norm(v) for v in row] for row in got]

    def read_scenario():
        with engine.connect() as c:
            got = c.execute(select(*cols()).where(users.c.org_id == org).order_by(users.c.id)).all()
            want_eq("rows", norm_rows(got), [common.user_row(x) for x in s["final"]])
            for row in got:
                check_types(row)
    run.step("reflected table reads the scenario's rows (str, date, int back)", read_scenario)

    def automap():
        from sqlalchemy.ext.automap import automap_base
        base = automap_base(metadata=t["md"])
        base.prepare()
        cls = base.classes.users
        with sessionmaker(engine, future=True)() as ses:
            got = ses.execute(select(cls).where(cls.org_id == org).order_by(cls.id)).scalars().all()
            want_eq("rows", rows_of(got), [common.user_row(x) for x in s["final"]])
            for x in got:
                check_types(x)
    run.step("automap class over the reflected table: session reads (str, date, int back)", automap)

    def insert_rows():
        with engine.begin() as c:
            got = c.execute(insert(users).values(org_id=org2, **kwargs(rows[0]))
                            .returning(users.c.id, *cols())).one()
            if not isinstance(got.id, int):
                raise Check("id %r" % (got.id,))
            want_eq("RETURNING", norm_rows([got[1:]]), [common.user_row(rows[0])])
            res = c.execute(insert(users), [dict(org_id=org2, **kwargs(x)) for x in rows[1:] + [doomed]])
            want_eq("executemany rowcount", res.rowcount, len(rows[1:]) + 1)
    run.step("reflected table: insert … RETURNING, then executemany (str, date, int8 extremes)", insert_rows)

    def names(us):
        return [x["name"] for x in us]

    def read_back():
        with engine.connect() as c:
            got = c.execute(select(*cols()).where(users.c.org_id == org2, users.c.name.in_(names(rows + [doomed])))
                            .order_by(users.c.id)).all()
            want_eq("rows", norm_rows(got), [common.user_row(x) for x in rows + [doomed]])
            for row in got:
                check_types(row)
            want_eq("int8 minimum", got[1].api_token, -9223372036854775808)
    run.step("reflected table: rows read back exactly", read_back)

    def lookups():
        with engine.connect() as c:
            got = c.execute(select(*cols()).where(users.c.email == o["reflect_lookup"])).all()
            want_eq("email ==", norm_rows(got), [common.user_row(rows[0])])
            got = c.execute(select(users.c.email).where(users.c.email.in_(o["reflect_in"])).order_by(users.c.id)).scalars().all()
            want_eq("email IN", got, o["reflect_in_expect"])
            got = c.execute(select(users.c.name).where(users.c.ssn == rows[1]["ssn"])).scalars().all()
            want_eq("ssn ==", got, [rows[1]["name"]])
    run.step("reflected table: email == (normalize), email.in_([…]), ssn ==", lookups)

    new = dict(email=o["reflect_new_email"], phone=o["reflect_new_phone"], birth_date=None,
               api_token=int(o["reflect_new_token"]))

    def update_tenant():
        with engine.begin() as c:
            got = c.execute(update(users).where(users.c.org_id == org2, users.c.email == o["reflect_lookup"])
                            .values(phone=o["reflect_mid_phone"]).returning(*cols())).all()
            want = common.user_row(rows[0])
            want[2] = o["reflect_mid_phone"]
            want_eq("RETURNING", norm_rows(got), [want])
    run.step("reflected table: update … WHERE org_id = … AND email = … RETURNING (tenant named)", update_tenant)

    renamed = [rows[0]["name"], new["email"], new["phone"], rows[0]["ssn"], None, o["reflect_new_token"]]

    def update_no_tenant():
        with engine.begin() as c:
            got = c.execute(update(users).where(users.c.email == o["reflect_lookup"]).values(**new)
                            .returning(*cols())).all()
            run.info("UPDATE through the reflected table")
            want_eq("RETURNING", norm_rows(got), [renamed])
        with engine.connect() as c:
            want_eq("old email", c.execute(select(users.c.id).where(users.c.email == o["reflect_lookup"])).all(), [])
            got = c.execute(select(*cols()).where(users.c.email == o["reflect_new_lookup"])).all()
            want_eq("by the new email", norm_rows(got), [renamed])
            check_types(got[0])
    run.step("reflected table: update … WHERE email = … RETURNING (no tenant: pgveil looks it up)", update_no_tenant)

    def update_again():
        with engine.begin() as c:
            res = c.execute(update(users).where(users.c.email == o["reflect_lookup"]).values(**new))
            want_eq("rowcount", res.rowcount, 0)
            got = c.execute(update(users).where(users.c.email == o["reflect_lookup"]).values(**new)
                            .returning(*cols())).all()
            want_eq("RETURNING", got, [])
        with engine.connect() as c:
            got = c.execute(select(*cols()).where(users.c.email == o["reflect_new_lookup"])).all()
            want_eq("by the new email", norm_rows(got), [renamed])
    run.step("reflected table: the same update again matches no row (rowcount 0, RETURNING nothing)", update_again)

    def delete_row():
        with engine.begin() as c:
            got = c.execute(delete(users).where(users.c.email == o["reflect_doomed_lookup"])
                            .returning(*cols())).all()
            want_eq("DELETE RETURNING", norm_rows(got), [common.user_row(doomed)])
        with engine.connect() as c:
            want_eq("count", c.execute(select(func.count()).select_from(users)
                                       .where(users.c.email == o["reflect_doomed_lookup"])).scalar(), 0)
    run.step("reflected table: delete … WHERE email = … RETURNING", delete_row)

    # bytes for an encrypted column: psycopg2 sends '\x…'::bytea, which
    # pgveil refuses (42804) whatever type the application declared.
    def write_bytes():
        with engine.begin() as c:
            c.execute(insert(users).values(org_id=org2, name="rfb", email=o["reflect_bytes"].encode()))
    run.refused("reflected table: writing bytes ('\\x…'::bytea) is refused (42804)", write_bytes, "public.users.email",
                code="42804")

    def compare_bytes():
        with engine.connect() as c:
            c.execute(select(users.c.id).where(users.c.email == o["reflect_bytes"].encode())).all()
    run.refused("reflected table: comparing with bytes is refused (42804)", compare_bytes, "public.users.email",
                code="42804")

    def none_written():
        with engine.connect() as c:
            want_eq("rows written", c.execute(select(func.count()).select_from(users)
                                              .where(users.c.name == "rfb")).scalar(), 0)
    run.step("reflected table: nothing was written", none_written)

    def overridden():
        ut = Table("users", MetaData(), Column("email", String), Column("phone", String), Column("ssn", String),
                   Column("birth_date", Date), Column("api_token", BigInteger), autoload_with=engine)
        rf = o["reflect_row"]
        with engine.begin() as c:
            got = c.execute(insert(ut).values(org_id=org2, **kwargs(rf)).returning(ut.c.id)).scalar_one()
            if not isinstance(got, int):
                raise Check("id %r" % got)
        with engine.connect() as c:
            rows = c.execute(select(*[ut.c[f] for f in FIELDS]).where(ut.c.email == rf["email"].upper())).all()
            want_eq("rows", [[common.norm(v) for v in row] for row in rows], [common.user_row(rf)])
            row = rows[0]
            want_eq("types", [type(row.email), type(row.birth_date), type(row.api_token)], [str, datetime.date, int])
            rows = c.execute(select(ut.c.name, ut.c.email).where(ut.c.org_id == s["org"]).order_by(ut.c.id)).all()
            want_eq("org rows", [list(x) for x in rows], [[x["name"], x["email"]] for x in s["final"]])
    run.step("reflection with the encrypted columns' types given explicitly (Column overrides)", overridden)

    def final():
        with engine.connect() as c:
            got = c.execute(select(*cols()).where(users.c.org_id == org2).order_by(users.c.id)).all()
            want_eq("rows", norm_rows(got), [common.user_row(x) for x in o["reflect_final"]])
    run.step("reflected table: final state of org2", final)
    engine.dispose()


def main(r):
    s = common.load_spec()
    {"scenario": scenario, "reflect": reflect}[common.phase()](r, s)


common.run(main)
