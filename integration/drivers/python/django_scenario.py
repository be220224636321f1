"""The Django 3.2 ORM (Debian's python3-django, psycopg2 backend) through pgveil.

Django runs standalone: settings.configure() here, django.setup(), and
unmanaged models (managed = False, db_table set, app_label "pgveil_orm")
over the suite's existing tables. The encrypted columns keep the fields
the application had before adopting pgveil: EmailField, CharField,
DateField, BigIntegerField. pgveil reports the logical types in
RowDescription, so psycopg2 hands Django str, datetime.date and int.
psycopg2 interpolates every value client-side (simple protocol); Django
quotes every identifier ("users"."email"). Django's introspection
(get_table_description, inspectdb) reports TextField, DateField and
BigIntegerField for the encrypted columns, BinaryField for the blind
indexes. Updates need not name the tenant (users.org_id, the
key_context): for save(update_fields=['phone']) (UPDATE … WHERE "users"."id"
= …) and filter(email=…).update(…) pgveil looks it up on the session's
connection; an update over rows of two tenants is refused, one matching no
row updates 0 rows.

    /usr/bin/python3 django_scenario.py SPEC.json
"""

import datetime
import io

import django
import psycopg2
from django.conf import settings

import enc_common as common

SPEC = common.load_spec()


def database(app, **extra):
    return dict(ENGINE="django.db.backends.postgresql", NAME=SPEC["dbname"], USER=SPEC["user"],
                PASSWORD=SPEC["password"], HOST=SPEC["host"], PORT=str(SPEC["port"]),
                # A session time zone other than UTC: Django sends SET TIME ZONE 'UTC'.
                OPTIONS={"application_name": app, "options": "-c TimeZone=America/New_York"}, **extra)


settings.configure(
    DEBUG=False,
    USE_TZ=True,
    TIME_ZONE="Europe/Paris",  # Django sets the session's time zone to UTC at connect (SET TIME ZONE)
    INSTALLED_APPS=[],
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    DATABASES={
        "default": database("enc_django"),
        # QuerySet.iterator() without server-side cursors (DECLARE … CURSOR).
        "nossc": database("enc_django_nossc", DISABLE_SERVER_SIDE_CURSORS=True),
    },
)
django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import DatabaseError, connections, models, transaction  # noqa: E402
from django.db.models import Count, Exists, OuterRef, Prefetch  # noqa: E402


class Org(models.Model):
    id = models.BigIntegerField(primary_key=True)
    name = models.TextField()

    class Meta:
        app_label = "pgveil_orm"
        managed = False
        db_table = "orgs"


class User(models.Model):
    id = models.BigAutoField(primary_key=True)
    org = models.ForeignKey(Org, on_delete=models.DO_NOTHING, db_column="org_id", related_name="users")
    name = models.TextField(null=True)
    email = models.EmailField(max_length=320, null=True)
    phone = models.CharField(max_length=64, null=True)
    ssn = models.CharField(max_length=64, null=True)
    birth_date = models.DateField(null=True)
    api_token = models.BigIntegerField(null=True)

    class Meta:
        app_label = "pgveil_orm"
        managed = False
        db_table = "users"


class Contact(models.Model):
    id = models.BigAutoField(primary_key=True)
    org = models.ForeignKey(Org, on_delete=models.DO_NOTHING, db_column="org_id", related_name="contacts")
    email = models.EmailField(max_length=320, null=True)
    note = models.TextField(null=True)

    class Meta:
        app_label = "pgveil_orm"
        managed = False
        db_table = "contacts"


FIELDS = common.FIELDS
Check = common.Check
row_of, rows_of, check_types = common.row_of, common.rows_of, common.check_types


class Rollback(Exception):
    pass


def want_eq(what, got, want):
    if got != want:
        raise Check("%s: got %s, want %s" % (what, common.show(got), common.show(want)))


def kwargs(u):
    return dict(name=u["name"], email=u["email"], phone=u["phone"], ssn=u["ssn"],
                birth_date=common.date_arg(u["birth_date"]), api_token=common.int_arg(u["api_token"]))


class Run:
    """Steps, with the SQL each sent (psycopg2's cursor.query, values
    interpolated) kept for failure messages."""

    def __init__(self, r):
        self.r = r
        self.sql = []

    def wrapper(self, execute, sql, params, many, context):
        try:
            return execute(sql, params, many, context)
        finally:
            q = getattr(context["cursor"].cursor, "query", None)
            if isinstance(q, bytes):
                q = q.decode("utf-8", "replace")
            self.sql.append((sql, q if q is not None else sql))

    def watch(self, alias):
        connections[alias].execute_wrappers.append(self.wrapper)

    def sent(self):
        return " | SQL sent: " + common.show(self.sql[-1][1]) if self.sql else ""

    def step(self, name, fn):
        self.sql = []
        try:
            fn()
        except Check as e:
            return self.r.fail(name, "%s%s" % (e, self.sent()))
        except Exception as e:
            return self.r.fail(name, "%s%s" % (describe(e), self.sent()))
        print("ok %s" % name, flush=True)

    def refused(self, name, fn, *needles, code="0A000"):
        """fn must fail with pgveil's refusal: SQLSTATE code and a message
        naming the table and column (each of needles)."""
        self.sql = []
        try:
            fn()
        except DatabaseError as e:
            orig = e.__cause__
            got = getattr(orig, "pgcode", None)
            msg = getattr(getattr(orig, "diag", None), "message_primary", None) or str(e)
            if got != code:
                return self.r.fail(name, "%s SQLSTATE %s, want %s: %s%s" % (type(e).__name__, got, code, msg, self.sent()))
            missing = [n for n in needles if n not in msg]
            if missing or "pgveil" not in msg:
                return self.r.fail(name, "message %r does not name %s" % (msg, missing or "pgveil"))
            print("ok %s (%s %s: %s)" % (name, type(e).__name__, code, msg), flush=True)
            return
        except Exception as e:
            return self.r.fail(name, "not a database refusal: %s%s" % (describe(e), self.sent()))
        self.r.fail(name, "was not refused%s" % self.sent())


def describe(e):
    orig = e.__cause__ or e
    code = getattr(orig, "pgcode", None)
    text = str(orig).strip()
    return "%s %s: %s" % (type(e).__name__, code, text.splitlines()[0] if text else "")


def main(r):
    s = SPEC
    run = Run(r)
    run.watch("default")
    run.watch("nossc")
    u = s["users"]
    o = s["orm"]
    org, org2 = s["org"], s["copy_org"]
    pks = []

    def connect():
        # The startup option reaches the server through pgveil, so the
        # session starts in New York and Django has to SET TIME ZONE.
        raw = psycopg2.connect(**connections["default"].get_connection_params())
        try:
            with raw.cursor() as cur:
                cur.execute("SELECT current_setting('TimeZone')")
                want_eq("startup TimeZone", cur.fetchone()[0], "America/New_York")
        finally:
            raw.close()
        c = connections["default"]
        with c.cursor() as cur:
            cur.execute("SELECT 1, current_setting('TimeZone')")
            want_eq("select", cur.fetchone(), (1, "UTC"))
        print("info server_version %s" % c.pg_version, flush=True)
    run.step("connect (SET TIME ZONE 'UTC', server version)", connect)

    def introspection():
        # get_table_description takes each column's type from
        # cursor.description of SELECT * FROM "users" LIMIT 1 (pgveil's
        # RowDescription gives the logical types) and nullability, default
        # and collation from pg_attribute (pgveil's catalog overlay);
        # inspectdb builds its model from them.
        c = connections["default"]
        with c.cursor() as cur:
            got = {d.name: (d.type_code, d.internal_size, d.null_ok, d.collation, c.introspection.get_field_type(d.type_code, d))
                   for d in c.introspection.get_table_description(cur, "users")}
        want = {"email": (25, -1, True, None, "TextField"), "email_bidx": (17, -1, True, None, "BinaryField"),
                "phone": (25, -1, True, None, "TextField"), "ssn": (25, -1, True, None, "TextField"),
                "ssn_bidx": (17, -1, True, None, "BinaryField"), "birth_date": (1082, 4, True, None, "DateField"),
                "api_token": (20, 8, True, None, "BigIntegerField")}
        want_eq("get_table_description (type_code, internal_size, null_ok, collation, field)",
                {k: got.get(k) for k in want}, want)
        want_eq("columns", list(got), ["id", "org_id", "name", "email", "email_bidx", "phone", "ssn", "ssn_bidx",
                                       "birth_date", "api_token", "created_at"])
        buf = io.StringIO()
        call_command("inspectdb", "users", stdout=buf)
        lines = buf.getvalue().splitlines()
        start = lines.index("class Users(models.Model):") + 1
        want_eq("inspectdb fields", lines[start:lines.index("    class Meta:")], [
            "    id = models.BigAutoField(primary_key=True)",
            "    org = models.ForeignKey('Orgs', models.DO_NOTHING)",
            "    name = models.TextField(blank=True, null=True)",
            "    email = models.TextField(blank=True, null=True)",
            "    email_bidx = models.BinaryField(unique=True, blank=True, null=True)",
            "    phone = models.TextField(blank=True, null=True)",
            "    ssn = models.TextField(blank=True, null=True)",
            "    ssn_bidx = models.BinaryField(blank=True, null=True)",
            "    birth_date = models.DateField(blank=True, null=True)",
            "    api_token = models.BigIntegerField(blank=True, null=True)",
            "    created_at = models.DateTimeField(blank=True, null=True)",
            "",
        ])
    run.step("introspection: get_table_description and inspectdb give TextField, DateField, BigIntegerField "
             "(blind indexes BinaryField)", introspection)

    def create():
        obj = User.objects.create(org_id=org, **kwargs(u[0]))
        if not isinstance(obj.pk, int):
            raise Check("pk %r" % obj.pk)
        pks.append(obj.pk)
        print("info objects.create: %s" % run.sql[-1][0], flush=True)
    run.step("objects.create (INSERT … RETURNING id)", create)

    def bulk():
        objs = User.objects.bulk_create([User(org_id=org, **kwargs(x)) for x in u[1:]])
        got = [x.pk for x in objs]
        if any(not isinstance(i, int) for i in got) or got != sorted(got) or got[0] <= pks[0]:
            raise Check("pks %r after %r" % (got, pks))
        want_eq("statements", len(run.sql), 1)
        pks.extend(got)
        print("info bulk_create: %s" % run.sql[0][0], flush=True)
    run.step("bulk_create (one INSERT … VALUES (…), … RETURNING id)", bulk)

    def by_pk():
        got = [User.objects.get(pk=p) for p in pks]
        want_eq("rows", rows_of(got), [common.user_row(x) for x in u])
        for x in got:
            check_types(x)
    run.step("get(pk=…) (str, date, int back)", by_pk)

    def by_email():
        want_eq("row", row_of(User.objects.get(email=s["lookup_email"])), common.user_row(u[0]))
    run.step("get(email=…) (normalize)", by_email)

    def email_in():
        got = list(User.objects.filter(email__in=s["in_emails"]).order_by("id").values_list("email", flat=True))
        want_eq("emails", got, s["in_expect"])
    run.step("filter(email__in=[…]).order_by('id')", email_in)

    def by_ssn():
        want_eq("names", [x.name for x in User.objects.filter(ssn=o["ssn_lookup"])], [o["ssn_name"]])
        want_eq("1 MiB ssn", list(User.objects.filter(ssn=s["big_ssn"]).values_list("name", flat=True)), [s["big_name"]])
    run.step("filter(ssn=…) (and a 1 MiB ssn)", by_ssn)

    def exists():
        want_eq("present", User.objects.filter(email=s["lookup_email"]).exists(), True)
        want_eq("absent", User.objects.filter(email=s["in_emails"][2]).exists(), False)
    run.step("exists()", exists)

    def count():
        want_eq("email__in", User.objects.filter(email__in=s["in_emails"]).count(), 2)
        want_eq("org", User.objects.filter(org_id=org).count(), len(u))
    run.step("count()", count)

    def values_list():
        got = list(User.objects.filter(org_id=org).order_by("id").values_list("email", flat=True))
        want_eq("emails", got, [x["email"] for x in u])
    run.step("values_list('email', flat=True).order_by('id')", values_list)

    def is_null():
        got = list(User.objects.filter(org_id=org, email__isnull=True).values_list("name", flat=True))
        want_eq("names", got, s["null_email_names"])
    run.step("filter(email__isnull=True)", is_null)

    def save():
        obj = User.objects.get(pk=pks[0])
        obj.email = s["new_email"]
        obj.phone = s["new_phone"]
        obj.save()
        want_eq("old email", User.objects.filter(email=s["old_email"]).exists(), False)
        got = User.objects.get(email=s["new_lookup"])
        want_eq("name, email, phone", [got.name, got.email, got.phone], [s["update_name"], s["new_email"], s["new_phone"]])
        print("info save(): %s" % run.sql[1][0], flush=True)
    run.step("save() after changing email and phone (UPDATE of every field, org_id included)", save)

    def save_fields_org():
        obj = User.objects.get(pk=pks[0])
        obj.phone = o["tenant_phone"]
        obj.save(update_fields=["phone", "org"])
        want_eq("phone", User.objects.get(pk=pks[0]).phone, o["tenant_phone"])
    run.step("save(update_fields=['phone', 'org']) (tenant named)", save_fields_org)

    def save_fields():
        obj = User.objects.get(pk=pks[0])
        obj.phone = s["new_phone"]
        run.sql = []
        obj.save(update_fields=["phone"])
        print("info save(update_fields=['phone']): %s" % run.sql[0][0], flush=True)
        want = common.user_row(u[0])
        want[1:3] = [s["new_email"], s["new_phone"]]
        got = User.objects.get(pk=pks[0])
        want_eq("row", row_of(got), want)
        check_types(got)
        want_eq("by email", rows_of(User.objects.filter(email=s["new_lookup"])), [want])
    run.step("save(update_fields=['phone']) without org (pgveil looks the tenant up)", save_fields)

    def save_fields_no_row():
        # Django raises when an update_fields save updates no row: pgveil's
        # tenant lookup for UPDATE … WHERE "users"."id" = -1 finds no row,
        # and the UPDATE answers UPDATE 0.
        try:
            User(pk=-1, org_id=org, phone=o["no_row_phone"]).save(update_fields=["phone"])
        except DatabaseError as e:
            want_eq("error", str(e), "Save with update_fields did not affect any rows.")
        else:
            raise Check("save(update_fields=…) of a missing row did not raise")
        want_eq("rows", User.objects.filter(pk=-1).count(), 0)
    run.step("save(update_fields=['phone']) of a missing row: UPDATE 0 (DatabaseError from Django)", save_fields_no_row)

    up = s["upsert"]

    def upsert():
        obj, created = User.objects.update_or_create(email=up["email"], org_id=org,
                                                     defaults={"name": up["name"], "phone": up["phone"]})
        want_eq("created", created, True)
        obj, created = User.objects.update_or_create(email=s["upsert_variant"], org_id=org,
                                                     defaults={"phone": s["upsert_phone2"]})
        want_eq("created", created, False)
        want_eq("email, phone", [obj.email, obj.phone], [up["email"], s["upsert_phone2"]])
        got = User.objects.get(email=up["email"])
        want_eq("stored", [got.name, got.email, got.phone], [up["name"], up["email"], s["upsert_phone2"]])
    run.step("update_or_create (create, then update found through the blind index)", upsert)

    def conflicts():
        obj, created = User.objects.get_or_create(email=s["upsert_variant"], org_id=org, defaults={"name": "never"})
        want_eq("get_or_create", [created, obj.email, obj.phone], [False, up["email"], s["upsert_phone2"]])
        got = User.objects.bulk_create([User(org_id=org, name="never", email=s["upsert_variant"], phone=s["upsert_phone2"])],
                                       ignore_conflicts=True)
        want_eq("bulk_create returned", len(got), 1)
        want_eq("rows with the email", User.objects.filter(email=up["email"]).count(), 1)
        want_eq("rows named never", User.objects.filter(name="never").count(), 0)
    run.step("get_or_create (found), bulk_create(ignore_conflicts=True) (ON CONFLICT DO NOTHING)", conflicts)

    def org2_update():
        User.objects.bulk_create([User(org_id=org2, **kwargs(x)) for x in o["org2_rows"]])
        n = User.objects.filter(org_id=org2).update(phone=o["bulk_phone"])
        want_eq("rows updated", n, len(o["org2_rows"]))
        want_eq("phones", list(User.objects.filter(org_id=org2).values_list("phone", flat=True)),
                [o["bulk_phone"]] * len(o["org2_rows"]))
        want_eq("u2's phone", User.objects.get(pk=pks[1]).phone, u[1]["phone"])
    run.step("filter(org_id=…).update(phone=…)", org2_update)

    def email_update():
        run.sql = []
        n = User.objects.filter(email=o["email_lookup"]).update(phone=o["email_phone"])
        print("info filter(email=…).update(): %s" % run.sql[0][0], flush=True)
        want_eq("rows updated", n, 1)
        want_eq("u2's phone", User.objects.get(pk=pks[1]).phone, o["email_phone"])
        want_eq("by email", list(User.objects.filter(email=o["email_lookup"]).values_list("name", "phone")),
                [(u[1]["name"], o["email_phone"])])
    run.step("filter(email=…).update(phone=…) without org (pgveil looks the tenant up)", email_update)

    two = o["two_tenant_emails"]
    run.refused("filter(email__in=[…]).update(phone=…) over rows of two tenants is refused",
                lambda: User.objects.filter(email__in=two).update(phone=o["two_tenant_phone"]),
                "public.users", "more than one tenant", "org_id")

    def unchanged():
        got = User.objects.filter(email__in=two).order_by("id").values_list("name", "phone")
        want_eq("u2 (org) and o2a (org2)", list(got),
                [(u[1]["name"], o["email_phone"]), (o["org2_rows"][0]["name"], o["bulk_phone"])])
    run.step("the refused update changed neither tenant's row", unchanged)

    def no_row():
        want_eq("rows updated", User.objects.filter(email=o["no_row_email"]).update(phone=o["no_row_phone"]), 0)
        want_eq("count", User.objects.filter(email=o["no_row_email"]).count(), 0)
    run.step("filter(email=…).update(phone=…) matching no row: 0 rows", no_row)

    def tenant_update():
        n = User.objects.filter(org_id=org, email=s["new_lookup"]).update(phone=s["new_phone"])
        want_eq("rows updated", n, 1)
    run.step("filter(org_id=…, email=…).update(phone=…)", tenant_update)

    # bulk_update sends SET "phone" = (CASE WHEN ("users"."id" = 2) THEN '…'
    # … ELSE NULL END)::varchar(64) WHERE "users"."id" IN (…): pgveil seals
    # each THEN under the tenant it looks up, and sets email_bidx by the
    # same CASE.
    def bulk_objs():
        return list(User.objects.filter(pk__in=[pks[1], pks[3]]).order_by("id"))
    before = [(x.phone, x.email) for x in bulk_objs()]

    def bulk_update():
        objs = bulk_objs()
        for x, phone, email in zip(objs, o["bulk_phones"], o["bulk_emails"]):
            x.phone, x.email = phone, email
        run.sql = []
        User.objects.bulk_update(objs, ["phone", "email"])  # Django 3.2 returns None
        print("info bulk_update: %s" % run.sql[-1][0], flush=True)
        if "CASE WHEN" not in run.sql[-1][0]:
            raise Check("bulk_update sent no CASE: %s" % run.sql[-1][0])
        want_eq("phones, emails", [(x.phone, x.email) for x in bulk_objs()], list(zip(o["bulk_phones"], o["bulk_emails"])))
        want_eq("by the new emails", [User.objects.get(email=e).pk for e in o["bulk_email_lookups"]], [pks[1], pks[3]])
    run.step("bulk_update(objs, ['phone', 'email']) (SET … = CASE WHEN id = … THEN … END)", bulk_update)

    def bulk_back():
        objs = bulk_objs()
        for x, (phone, email) in zip(objs, before):
            x.phone, x.email = phone, email
        User.objects.bulk_update(objs, ["phone", "email"], batch_size=1)
        want_eq("phones, emails", [(x.phone, x.email) for x in bulk_objs()], before)
        want_eq("by the old emails", User.objects.filter(email__in=[e for _, e in before]).count(), 2)
        want_eq("by the bulk emails", User.objects.filter(email__in=o["bulk_emails"]).count(), 0)
    run.step("bulk_update back (batch_size=1)", bulk_back)

    def bulk_with_org():
        objs = bulk_objs()
        for x in objs:
            x.phone = o["temp_phone"]
        User.objects.bulk_update(objs, ["phone", "org"])
    # SET org_id = CASE …: the rows' tenant after the UPDATE is an expression.
    run.refused("bulk_update(objs, ['phone', 'org']) (SET org_id = CASE …) is refused", bulk_with_org,
                "public.users", "org_id")

    def bulk_unchanged():
        want_eq("phones", [User.objects.get(pk=pks[i]).phone for i in (1, 3)], [o["email_phone"], u[3]["phone"]])
    run.step("the refused bulk_update changed nothing", bulk_unchanged)

    def delete_obj():
        d = User.objects.create(org_id=org, **kwargs(s["doomed"]))
        n, _ = d.delete()
        want_eq("deleted", n, 1)
        want_eq("count", User.objects.filter(email=s["doomed_lookup"]).count(), 0)
    run.step("instance.delete()", delete_obj)

    def delete_qs():
        User.objects.create(org_id=org, **kwargs(o["doomed2"]))
        n, _ = User.objects.filter(email=o["doomed2_lookup"]).delete()
        want_eq("deleted", n, 1)
        want_eq("count", User.objects.filter(email=o["doomed2_lookup"]).count(), 0)
    run.step("filter(email=…).delete()", delete_qs)

    def atomic():
        rb = o["rolled"]
        try:
            with transaction.atomic():
                User.objects.create(org_id=org, **kwargs(rb))
                obj = User.objects.get(pk=pks[1])
                obj.phone = o["rolled_phone"]
                obj.save()
                want_eq("inside", User.objects.filter(email=rb["email"]).count(), 1)
                # A refusal inside a savepoint rolls back to it; the
                # transaction goes on.
                try:
                    with transaction.atomic():
                        list(User.objects.order_by("email"))
                    raise Check("ORDER BY email inside the savepoint was not refused")
                except DatabaseError:
                    pass
                want_eq("after the savepoint", User.objects.get(pk=pks[1]).phone, o["rolled_phone"])
                raise Rollback()
        except Rollback:
            pass
        want_eq("after rollback", User.objects.filter(email=rb["email"]).count(), 0)
        want_eq("u2's phone", User.objects.get(pk=pks[1]).phone, o["email_phone"])
    run.step("transaction.atomic rolled back (with a refusal in a savepoint)", atomic)

    def contacts():
        objs = Contact.objects.bulk_create([Contact(org_id=org, email=c["email"], note=c["note"]) for c in s["contacts"]])
        want_eq("contacts", len(objs), len(s["contacts"]))
    run.step("contacts: bulk_create", contacts)

    def select_related():
        run.sql = []
        obj = User.objects.select_related("org").get(email=s["new_lookup"])
        want_eq("org", [obj.name, obj.org.name], [s["update_name"], o["org_name"]])
        want_eq("queries", len(run.sql), 1)
    run.step("select_related('org')", select_related)

    def prefetch():
        run.sql = []
        got = Org.objects.prefetch_related(Prefetch("users", queryset=User.objects.order_by("id")),
                                           Prefetch("contacts", queryset=Contact.objects.order_by("id"))).get(pk=org)
        want_eq("users", [[x.name, x.email, x.phone] for x in got.users.all()],
                [[x["name"], x["email"], x["phone"]] for x in s["final"]])
        want_eq("contacts", [[x.email, x.note] for x in got.contacts.all()], [[c["email"], c["note"]] for c in s["contacts"]])
        want_eq("queries", len(run.sql), 3)
    run.step("prefetch_related('users', 'contacts')", prefetch)

    join_names = [x[0] for x in s["join_expect"]]

    def in_subquery():
        got = list(User.objects.filter(org_id=org, email__in=Contact.objects.filter(org_id=org).values("email"))
                   .order_by("id").values_list("name", flat=True))
        want_eq("names", got, join_names)
    run.step("filter(email__in=Contact…values('email')) (IN (SELECT U0.email …))", in_subquery)

    def exists_outer():
        got = list(User.objects.filter(org_id=org).filter(Exists(Contact.objects.filter(email=OuterRef("email"))))
                   .order_by("id").values_list("name", flat=True))
        want_eq("names", got, join_names)
    run.step("filter(Exists(Contact…filter(email=OuterRef('email'))))", exists_outer)

    def iterator_nossc():
        got = [x.name for x in User.objects.using("nossc").filter(org_id=org).order_by("id").iterator()]
        want_eq("names", got, [x["name"] for x in s["final"]])
    run.step("iterator() with DISABLE_SERVER_SIDE_CURSORS", iterator_nossc)

    def iterator_ssc():
        # Django's iterator() reads through a server-side cursor: DECLARE …
        # NO SCROLL CURSOR WITH HOLD FOR SELECT … in autocommit (WITHOUT
        # HOLD inside atomic()), then FETCH FORWARD chunk_size FROM it.
        # pgveil maps each FETCH with the cursor's result map.
        want = [common.user_row(x) for x in s["final"]]
        got = list(User.objects.filter(org_id=org).order_by("id").iterator(chunk_size=2))
        for x in got:
            check_types(x)
        want_eq("rows, autocommit", rows_of(got), want)
        with transaction.atomic():
            got = list(User.objects.filter(org_id=org).order_by("id").iterator(chunk_size=3))
        want_eq("rows, in atomic()", rows_of(got), want)
        got = list(User.objects.filter(org_id=org).order_by("id").values_list("email", "birth_date").iterator(chunk_size=4))
        want_eq("values_list", [[common.norm(v) for v in r] for r in got], [[x[1], x[4]] for x in want])
    run.step("iterator() over a server-side cursor (DECLARE … FETCH), with and without atomic()", iterator_ssc)

    def q(qs):
        return lambda: list(qs)
    run.refused("order_by('email') is refused", q(User.objects.order_by("email")), "public.users.email")
    run.refused("filter(email__iexact=…) is refused", q(User.objects.filter(email__iexact=s["lookup_email"])),
                "public.users.email")
    run.refused("filter(email__icontains=…) is refused", q(User.objects.filter(email__icontains=o["like_pattern"])),
                "public.users.email")
    run.refused("filter(email__startswith=…) is refused", q(User.objects.filter(email__startswith=o["like_pattern"])),
                "public.users.email")
    run.refused("filter(phone=…) (no blind index) is refused", q(User.objects.filter(phone=o["phone_lookup"])),
                "public.users.phone")
    run.refused("filter(birth_date__year=…) is refused", q(User.objects.filter(birth_date__year=1987)),
                "public.users.birth_date")
    run.refused("values('email').distinct() is refused", q(User.objects.values("email").distinct()), "public.users.email")
    run.refused("values('email').annotate(Count('id')) (GROUP BY email) is refused",
                q(User.objects.values("email").annotate(n=Count("id"))), "public.users.email")

    def final():
        want_eq("rows", rows_of(User.objects.filter(org_id=org).order_by("id")), [common.user_row(x) for x in s["final"]])
    run.step("final state", final)
    for alias in ("default", "nossc"):
        connections[alias].close()


common.run(main)
