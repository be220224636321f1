'use strict';
// Drizzle ORM (drizzle-orm/node-postgres over a node-postgres Pool)
// through pgveil, run by integration/enc_node_orm2_test.go
// (TestEncDrizzle):
//
//   node drizzle_scenario.js SPEC.json
//
// The tables are pgTables declared as the application had them before it
// adopted pgveil: varchar for email, phone and ssn, date (string mode) for
// birth_date, bigint (bigint mode: int8's range) for api_token, with
// relations users → orgs on org_id. Nothing in them is pgveil's: no
// blind-index column, no tenant in any UPDATE (pgveil looks it up).
//
// Drizzle sends every value as a bind parameter ($1 …, node-postgres'
// unnamed statements; .prepare('name') makes a named one), lists every
// column of the table in an INSERT (default for those not given), and
// builds its relational queries (db.query.…) with json_build_array in a
// LEFT JOIN LATERAL for each relation.

const { Pool } = require('pg');
const { drizzle } = require('drizzle-orm/node-postgres');
const {
  pgTable, bigserial, bigint, text, varchar, date, timestamp,
} = require('drizzle-orm/pg-core');
const {
  sql, eq, ne, and, or, inArray, TransactionRollbackError, notInArray, isNull, isNotNull, asc, gt, like, ilike, count, max, relations,
} = require('drizzle-orm');
const {
  spec: s, Check, wantEq, wantRows, rowOf, run,
} = require('./orm_common');

const orgs = pgTable('orgs', {
  id: bigint('id', { mode: 'number' }).primaryKey(),
  name: text('name').notNull(),
});
const users = pgTable('users', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  org_id: bigint('org_id', { mode: 'number' }).notNull().references(() => orgs.id),
  name: text('name'),
  email: varchar('email', { length: 320 }).unique(),
  phone: varchar('phone', { length: 64 }),
  ssn: varchar('ssn', { length: 64 }),
  birth_date: date('birth_date'),
  api_token: bigint('api_token', { mode: 'bigint' }),
  created_at: timestamp('created_at', { withTimezone: true }).defaultNow(),
});
const contacts = pgTable('contacts', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  org_id: bigint('org_id', { mode: 'number' }).notNull().references(() => orgs.id),
  email: varchar('email', { length: 320 }),
  note: text('note'),
});
const orgsRelations = relations(orgs, ({ many }) => ({ users: many(users) }));
const usersRelations = relations(users, ({ one }) => ({ org: one(orgs, { fields: [users.org_id], references: [orgs.id] }) }));

// unwrap: Drizzle wraps the driver's error in a DrizzleQueryError whose
// cause is node-postgres' error (code, message, hint).
function unwrap(fn) {
  return async () => {
    try {
      return await fn();
    } catch (e) {
      throw (e && e.cause && e.cause.code) ? e.cause : e;
    }
  };
}

// The row as the spec writes it (api_token a BigInt here: norm makes it a
// string), and the types Drizzle gives.
const userRow = (x) => [x.name, x.email, x.phone, x.ssn, x.birth_date, x.api_token];
function checkTypes(x) {
  for (const f of ['email', 'phone', 'ssn', 'birth_date']) {
    if (x[f] !== null && typeof x[f] !== 'string') throw new Check(`${f} is ${Buffer.isBuffer(x[f]) ? 'a Buffer' : typeof x[f]}, want a string`);
  }
  if (x.birth_date !== null && !/^\d{4}-\d{2}-\d{2}$/.test(x.birth_date)) throw new Check(`birth_date ${x.birth_date} is not YYYY-MM-DD`);
  if (x.api_token !== null && typeof x.api_token !== 'bigint') throw new Check(`api_token is ${typeof x.api_token}, want a bigint`);
}

run(async (r) => {
  const step = (name, fn) => r.step(name, unwrap(fn));
  const refused = (name, fn, needles, code) => r.refused(name, unwrap(fn), needles, code);
  const pool = new Pool({
    host: s.host, port: s.port, user: s.user, password: s.password, database: s.dbname, application_name: 'enc_drizzle', max: 3,
  });
  const db = drizzle({
    client: pool,
    schema: {
      orgs, users, contacts, orgsRelations, usersRelations,
    },
    logger: { logQuery: (q, p) => r.record(q, p) },
  });
  const sent = () => r.sql.slice();

  const u = s.users;
  const o = s.orm;
  const n = s.node;
  const { org } = s;
  const org2 = s.copy_org;
  const tok = (v) => (v === null || v === undefined ? v : BigInt(v));
  const row = (orgId, x) => ({
    org_id: orgId, name: x.name, email: x.email, phone: x.phone, ssn: x.ssn, birth_date: x.birth_date, api_token: tok(x.api_token),
  });
  const want = (xs) => xs.map((x) => userRow(x).map((v) => (v === null || v === undefined ? null : String(v))));
  const got = (xs) => xs.map(rowOf);
  const ids = [];
  const all = (orgId = org) => db.select().from(users).where(eq(users.org_id, orgId)).orderBy(asc(users.id));
  const names = (xs) => xs.map((x) => x.name);

  await step('insert(users).values(row).returning()', async () => {
    const res = await db.insert(users).values(row(org, u[0])).returning();
    r.info(`insert: ${sent()[0]}`);
    wantRows('returned', got(res), want([u[0]]));
    checkTypes(res[0]);
    ids.push(res[0].id);
  });

  await step('insert(users).values([rows]).returning({id}) (one multi-row INSERT, 1 MiB values)', async () => {
    const res = await db.insert(users).values(u.slice(1).map((x) => row(org, x))).returning({ id: users.id });
    wantEq('statements', sent().length, 1);
    ids.push(...res.map((x) => x.id));
    const rows = await all();
    wantRows('rows', got(rows), want(u));
    rows.forEach(checkTypes);
  });

  await step('select().where(eq(email)) in another case (normalize)', async () => {
    const res = await db.select().from(users).where(eq(users.email, s.lookup_email));
    r.info(`select eq: ${sent()[0]}`);
    wantRows('row', got(res), want([u[0]]));
    wantEq('absent', await db.select({ id: users.id }).from(users).where(eq(users.email, o.no_row_email)), []);
  });

  await step('inArray, or(eq, eq), and(eq(org_id), isNull), ne, notInArray, isNotNull', async () => {
    const emails = (q) => q.orderBy(asc(users.id)).then((xs) => xs.map((x) => x.email));
    const sel = () => db.select({ email: users.email }).from(users);
    wantEq('inArray', await emails(sel().where(inArray(users.email, s.in_emails))), s.in_expect);
    wantEq('or', await emails(sel().where(or(eq(users.email, s.any_emails[0]), eq(users.email, s.any_emails[1]), eq(users.email, s.any_emails[2])))), s.any_expect);
    const nm = (cond) => db.select({ name: users.name }).from(users).where(and(eq(users.org_id, org), cond)).orderBy(asc(users.id)).then(names);
    wantEq('isNull email', await nm(isNull(users.email)), s.null_email_names);
    wantEq('isNull phone', await nm(isNull(users.phone)), s.null_phone_names);
    wantEq('isNotNull email', await nm(isNotNull(users.email)), u.filter((x) => x.email !== null).map((x) => x.name));
    wantEq('ne email', await nm(ne(users.email, s.lookup_email)), u.slice(1).filter((x) => x.email !== null).map((x) => x.name));
    wantEq('notInArray email', await nm(notInArray(users.email, s.in_emails)),
      u.filter((x) => x.email !== null && !s.in_expect.includes(x.email)).map((x) => x.name));
  });

  await step('eq(ssn) (blind index, and a 1 MiB value)', async () => {
    const nm = (v) => db.select({ name: users.name }).from(users).where(eq(users.ssn, v)).then(names);
    wantEq('ssn', await nm(o.ssn_lookup), [o.ssn_name]);
    wantEq('1 MiB ssn', await nm(s.big_ssn), [s.big_name]);
  });

  await step('$count and count(), count(email)', async () => {
    wantEq('$count', await db.$count(users, inArray(users.email, s.in_emails)), 2);
    wantEq('count()', await db.select({ n: count() }).from(users).where(inArray(users.email, s.in_emails)), [{ n: 2 }]);
    wantEq('count(email)', await db.select({ n: count(users.email) }).from(users).where(eq(users.org_id, org)),
      [{ n: u.filter((x) => x.email !== null).length }]);
  });

  await step('orderBy(id)/limit/offset', async () => {
    const res = await all().limit(2).offset(1);
    wantRows('page', got(res), want(u.slice(1, 3)));
  });

  await step('update(users).set({email, phone}).where(eq(id)).returning() without the tenant (pgveil looks it up)', async () => {
    const res = await db.update(users).set({ email: s.new_email, phone: s.new_phone }).where(eq(users.id, ids[0]))
      .returning({ email: users.email, phone: users.phone });
    r.info(`update by id: ${sent()[0]}`);
    wantEq('returned', res, [{ email: s.new_email, phone: s.new_phone }]);
    wantEq('old email', await db.select({ id: users.id }).from(users).where(eq(users.email, s.old_email)), []);
    wantEq('new email', await db.select({ name: users.name }).from(users).where(eq(users.email, s.new_lookup)), [{ name: s.update_name }]);
  });

  await step('update(users).set({phone}).where(eq(email)) without the tenant', async () => {
    const res = await db.update(users).set({ phone: o.email_phone }).where(eq(users.email, o.email_lookup));
    wantEq('rowCount', res.rowCount, 1);
    wantEq("u2's phone", await db.select({ phone: users.phone }).from(users).where(eq(users.id, ids[1])), [{ phone: o.email_phone }]);
  });

  await step('org2: multi-row insert, update by org_id', async () => {
    await db.insert(users).values(o.org2_rows.map((x) => row(org2, x)));
    const res = await db.update(users).set({ phone: o.bulk_phone }).where(eq(users.org_id, org2));
    wantEq('rowCount', res.rowCount, o.org2_rows.length);
  });

  const two = o.two_tenant_emails;
  await refused('update over rows of two tenants is refused',
    () => db.update(users).set({ phone: o.two_tenant_phone }).where(inArray(users.email, two)),
    ['public.users', 'more than one tenant', 'org_id']);

  await step('the refused update changed neither row', async () => {
    const res = await db.select({ name: users.name, phone: users.phone }).from(users).where(inArray(users.email, two)).orderBy(asc(users.id));
    wantEq('rows', res, [{ name: u[1].name, phone: o.email_phone }, { name: o.org2_rows[0].name, phone: o.bulk_phone }]);
  });

  await step('update matching no row: rowCount 0', async () => {
    wantEq('rowCount', (await db.update(users).set({ phone: o.no_row_phone }).where(eq(users.email, o.no_row_email))).rowCount, 0);
  });

  const up = s.upsert;
  const upRow = (email, phone) => ({
    org_id: org, name: up.name, email, phone,
  });
  await step('onConflictDoNothing({target: email}): new, then a conflict in another case', async () => {
    const res = await db.insert(users).values(upRow(up.email, up.phone)).onConflictDoNothing({ target: users.email })
      .returning({ email: users.email, phone: users.phone });
    wantEq('new', res, [{ email: up.email, phone: up.phone }]);
    const again = await db.insert(users).values(upRow(s.upsert_variant, s.upsert_phone2)).onConflictDoNothing({ target: users.email })
      .returning({ id: users.id });
    wantEq('conflict', again, []);
    const none = await db.insert(users).values(upRow(s.upsert_variant, s.upsert_phone2)).onConflictDoNothing().returning({ id: users.id });
    wantEq('conflict (no target)', none, []);
  });

  await step('onConflictDoUpdate({target: email, set: {email: excluded, phone: excluded}}), then set: {phone: value}', async () => {
    let res = await db.insert(users).values(upRow(s.upsert_variant, up.phone)).onConflictDoUpdate({
      target: users.email, set: { email: sql`excluded.email`, phone: sql`excluded.phone` },
    }).returning({ email: users.email, phone: users.phone });
    r.info(`onConflictDoUpdate: ${sent()[0]}`);
    wantEq('excluded', res, [{ email: s.upsert_variant, phone: up.phone }]);
    res = await db.insert(users).values(upRow(up.email, up.phone)).onConflictDoUpdate({
      target: users.email, set: { phone: s.upsert_phone2 },
    }).returning({ email: users.email, phone: users.phone });
    wantEq('set a value', res, [{ email: s.upsert_variant, phone: s.upsert_phone2 }]);
    wantEq('rows with the email', await db.$count(users, eq(users.email, up.email)), 1);
  });

  await step('multi-row insert with onConflictDoUpdate({target: email, set: {phone: excluded.phone}})', async () => {
    const rows = [upRow(up.email, s.upsert_phone2), { ...row(org2, o.org2_rows[1]), phone: o.bulk_phone }];
    const res = await db.insert(users).values(rows).onConflictDoUpdate({ target: users.email, set: { phone: sql`excluded.phone` } })
      .returning({ email: users.email, phone: users.phone });
    wantEq('returned', res, [{ email: s.upsert_variant, phone: s.upsert_phone2 }, { email: o.org2_rows[1].email, phone: o.bulk_phone }]);
  });

  // set: {phone: v} over several rows: v is a parameter of its own, sealed
  // once, under the first row's tenant; pgveil checks that every row names
  // that tenant (docs/SQL.md).
  await step('multi-row insert with onConflictDoUpdate({set: {phone: value}}), rows of one tenant', async () => {
    const res = await db.insert(users).values([upRow(up.email, up.phone), upRow(s.doomed.email, up.phone)])
      .onConflictDoUpdate({ target: users.email, set: { phone: n.merge_phone } })
      .returning({ email: users.email, phone: users.phone });
    wantEq('returned', res, [{ email: s.upsert_variant, phone: n.merge_phone }, { email: s.doomed.email, phone: up.phone }]);
    // Back to the state the later steps expect.
    await db.update(users).set({ phone: s.upsert_phone2 }).where(eq(users.email, up.email));
    await db.delete(users).where(eq(users.email, s.doomed.email));
  });

  await refused('multi-row insert with onConflictDoUpdate({set: {phone: value}}), rows of two tenants, is refused',
    () => db.insert(users).values([upRow(up.email, up.phone), { ...row(org2, o.org2_rows[1]), phone: o.bulk_phone }])
      .onConflictDoUpdate({ target: users.email, set: { phone: n.merge_phone } }),
    ['public.users', 'more than one tenant']);

  await step('the refused upsert changed nothing', async () => {
    wantEq('phone', await db.select({ phone: users.phone }).from(users).where(eq(users.email, up.email)), [{ phone: s.upsert_phone2 }]);
    wantEq('doomed', await db.$count(users, eq(users.email, s.doomed.email)), 0);
  });

  const d = s.doomed;
  await step('delete(users).where(eq(email)).returning()', async () => {
    await db.insert(users).values(row(org, d));
    const res = await db.delete(users).where(eq(users.email, s.doomed_lookup)).returning();
    wantRows('returned', got(res), want([d]));
    wantEq('count', await db.$count(users, eq(users.email, s.doomed_lookup)), 0);
  });

  const rb = o.rolled;
  await step('db.transaction rolled back by tx.rollback() (with a refusal in a nested transaction: a savepoint)', async () => {
    let reached = false;
    try {
      await db.transaction(async (tx) => {
        await tx.insert(users).values(row(org, rb));
        await tx.update(users).set({ phone: o.rolled_phone }).where(eq(users.id, ids[1]));
        wantEq('inside', await tx.$count(users, eq(users.email, rb.email)), 1);
        try {
          await tx.transaction((sp) => sp.select().from(users).orderBy(users.email));
          throw new Check('ORDER BY email in the savepoint was not refused');
        } catch (e) {
          const pe = (e && e.cause && e.cause.code) ? e.cause : e;
          if (e instanceof Check || pe.code !== '0A000') throw e;
        }
        wantEq('after the savepoint', await tx.select({ phone: users.phone }).from(users).where(eq(users.id, ids[1])), [{ phone: o.rolled_phone }]);
        reached = true;
        tx.rollback();
      });
    } catch (e) {
      if (!reached || !(e instanceof TransactionRollbackError)) throw e;
    }
    if (!sent().some((q) => /rollback to savepoint/i.test(q))) r.info(`nested transaction: ${sent().join(' ; ')}`);
    wantEq('after rollback', await db.$count(users, eq(users.email, rb.email)), 0);
    wantEq("u2's phone", await db.select({ phone: users.phone }).from(users).where(eq(users.id, ids[1])), [{ phone: o.email_phone }]);
  });

  await step('db.transaction committed: contacts, and a nested transaction (savepoint) rolled back', async () => {
    await db.transaction(async (tx) => {
      await tx.insert(contacts).values(s.contacts.map((c) => ({ org_id: org, email: c.email, note: c.note })));
      try {
        await tx.transaction(async (sp) => {
          await sp.update(users).set({ phone: o.temp_phone }).where(eq(users.id, ids[3]));
          wantEq('in the savepoint', await sp.select({ phone: users.phone }).from(users).where(eq(users.id, ids[3])), [{ phone: o.temp_phone }]);
          sp.rollback();
        });
      } catch (e) {
        if (!(e instanceof TransactionRollbackError)) throw e;
      }
      wantEq('after the savepoint', await tx.select({ phone: users.phone }).from(users).where(eq(users.id, ids[3])), [{ phone: u[3].phone }]);
    });
    const res = await db.select({ email: contacts.email, note: contacts.note }).from(contacts).where(eq(contacts.org_id, org)).orderBy(asc(contacts.id));
    wantEq('contacts', res, s.contacts.map((c) => ({ email: c.email, note: c.note })));
  });

  await step('db.query.users.findFirst/findMany with {with: {org}}', async () => {
    const one = await db.query.users.findFirst({ where: eq(users.email, s.new_lookup), with: { org: true } });
    r.info(`findFirst with org: ${sent()[0]}`);
    wantEq('findFirst', one && [one.name, one.email, one.phone, one.org && one.org.name], [s.update_name, s.new_email, s.new_phone, o.org_name]);
    const many = await db.query.users.findMany({ where: eq(users.org_id, org), orderBy: [asc(users.id)], with: { org: true } });
    wantRows('findMany', got(many), want(s.final));
    wantEq('orgs', many.map((x) => x.org.name), s.final.map(() => o.org_name));
    many.forEach(checkTypes);
  });

  // A many relation is built in SQL: coalesce(json_agg(json_build_array(
  // <every column of users>) …)) in a LEFT JOIN LATERAL. The server puts
  // each envelope into the JSON as a string; pgveil opens it there
  // (docs/SQL.md, "JSON built from encrypted columns"). PostgreSQL writes
  // an int8 into JSON as a number, which JavaScript reads as a double:
  // api_token beyond 2^53 comes back rounded, directly as through pgveil.
  const viaJSON = (rows) => rows.map((x) => x.map((v, i) => (i === 5 && v !== null ? String(BigInt(Number(v))) : v)));
  await step('db.query.orgs.findMany({with: {users}}) (json_agg(json_build_array(…)) over encrypted columns)', async () => {
    const res = await db.query.orgs.findMany({
      where: eq(orgs.id, org), orderBy: [asc(orgs.id)], with: { users: { orderBy: [asc(users.id)] } },
    });
    r.info(`findMany with users: ${sent()[0]}`);
    wantEq('orgs', res.map((x) => x.name), [o.org_name]);
    wantRows('users', got(res[0].users), viaJSON(want(s.final)));
    res[0].users.forEach(checkTypes);
  });

  await step('db.query.orgs.findMany({with: {users: {with: {org}}}}) (a to-one inside a to-many)', async () => {
    const res = await db.query.orgs.findMany({
      where: eq(orgs.id, org), with: { users: { orderBy: [asc(users.id)], with: { org: true } } },
    });
    wantRows('users', got(res[0].users), viaJSON(want(s.final)));
    wantEq('their org', res[0].users.map((x) => x.org.name), s.final.map(() => o.org_name));
  });

  // Without org_id in the columns, pgveil adds it to the json_build_array
  // for itself and removes it from the JSON again.
  await step('db.query.orgs.findMany({with: {users: {columns: {email, phone}}}}) (the tenant column not selected)', async () => {
    const res = await db.query.orgs.findMany({
      where: eq(orgs.id, org), with: { users: { columns: { email: true, phone: true }, orderBy: [asc(users.id)] } },
    });
    r.info(`findMany with users' email and phone: ${sent()[0]}`);
    wantEq('users', res[0].users, s.final.map((x) => ({ email: x.email, phone: x.phone })));
  });

  await step('db.query.orgs.findMany({with: {users: {columns: {id, name}}}}) (plain columns only)', async () => {
    const res = await db.query.orgs.findMany({
      where: eq(orgs.id, org), with: { users: { columns: { id: true, name: true }, orderBy: [asc(users.id)] } },
    });
    wantEq('names', res.map((x) => x.users.map((y) => y.name)), [s.final.map((x) => x.name)]);
  });

  await step('innerJoin contacts on eq(users.email, contacts.email) (the shared blind index)', async () => {
    const res = await db.select({
      name: users.name, email: users.email, c_email: contacts.email, note: contacts.note,
    }).from(users).innerJoin(contacts, eq(users.email, contacts.email))
      .where(and(eq(users.org_id, org), eq(contacts.org_id, org))).orderBy(asc(users.id), asc(contacts.id));
    wantRows('join', res.map((x) => [x.name, x.email, x.c_email, x.note]), s.join_expect);
  });

  await step('db.execute(sql`…`) raw with a value, and an UPDATE without the tenant', async () => {
    const res = await db.execute(sql`SELECT name, email, phone, birth_date, api_token FROM users WHERE email = ${s.new_lookup}`);
    wantRows('rows', res.rows.map((x) => [x.name, x.email, x.phone, x.birth_date, x.api_token]),
      [[s.update_name, s.new_email, s.new_phone, u[0].birth_date, u[0].api_token]]);
    const upd = await db.execute(sql`UPDATE ${users} SET ${sql.identifier('phone')} = ${s.new_phone} WHERE ${users.email} = ${s.new_lookup}`);
    wantEq('rowCount', upd.rowCount, 1);
  });

  await step('prepared statements (.prepare(name), sql.placeholder): select, insert, update, delete, each executed again', async () => {
    const byEmail = db.select().from(users).where(eq(users.email, sql.placeholder('email'))).prepare('enc_user_by_email');
    wantRows('1st', got(await byEmail.execute({ email: s.new_lookup })), want([s.final[0]]));
    wantRows('2nd', got(await byEmail.execute({ email: o.email_lookup })), want([s.final[1]]));
    wantRows('3rd (none)', got(await byEmail.execute({ email: o.no_row_email })), []);
    const ins = db.insert(users).values({
      org_id: sql.placeholder('org'), name: sql.placeholder('name'), email: sql.placeholder('email'), phone: sql.placeholder('phone'),
    }).returning({ id: users.id }).prepare('enc_user_insert');
    const [{ id: id1 }] = await ins.execute({
      org, name: o.doomed2.name, email: o.doomed2.email, phone: o.doomed2.phone,
    });
    const upd = db.update(users).set({ phone: sql.placeholder('phone') }).where(eq(users.id, sql.placeholder('id'))).prepare('enc_user_phone');
    await upd.execute({ phone: o.temp_phone, id: id1 });
    await upd.execute({ phone: o.temp_phone, id: ids[3] });
    wantEq('updated', (await byEmail.execute({ email: o.doomed2_lookup })).map((x) => [x.id, x.phone]), [[id1, o.temp_phone]]);
    await upd.execute({ phone: u[3].phone, id: ids[3] });
    const del = db.delete(users).where(eq(users.email, sql.placeholder('email'))).returning({ id: users.id }).prepare('enc_user_delete');
    wantEq('deleted', await del.execute({ email: o.doomed2_lookup }), [{ id: id1 }]);
    wantEq('deleted again', await del.execute({ email: o.doomed2_lookup }), []);
    const parses = sent().filter((q) => /^insert|^update|^delete|^select/i.test(q)).length;
    r.info(`prepared statements: ${parses} executions`);
  });

  await refused('orderBy(users.email) is refused', () => db.select().from(users).orderBy(users.email), ['public.users.email']);
  await refused('like(email) is refused', () => db.select().from(users).where(like(users.email, `${o.like_pattern}%`)), ['public.users.email']);
  await refused('ilike(email) is refused', () => db.select().from(users).where(ilike(users.email, `%${o.like_pattern}%`)), ['public.users.email']);
  await refused('sql`lower(email) = …` is refused',
    () => db.select().from(users).where(sql`lower(${users.email}) = ${o.like_pattern}`), ['public.users.email']);
  await refused('eq(phone) (no blind index) is refused', () => db.select().from(users).where(eq(users.phone, o.phone_lookup)), ['public.users.phone']);
  await refused('gt(birth_date) is refused', () => db.select().from(users).where(gt(users.birth_date, '2000-01-01')), ['public.users.birth_date']);
  await refused('selectDistinct({email}) is refused', () => db.selectDistinct({ email: users.email }).from(users), ['public.users.email']);
  await refused('groupBy(email) is refused',
    () => db.select({ email: users.email, n: count() }).from(users).groupBy(users.email), ['public.users.email']);
  await refused('max(api_token) is refused', () => db.select({ m: max(users.api_token) }).from(users), ['public.users.api_token']);
  await refused('set({api_token: sql`api_token + 1`}) is refused',
    () => db.update(users).set({ api_token: sql`${users.api_token} + 1` }).where(eq(users.id, ids[0])), ['public.users.api_token']);

  // Moving a row to another tenant: set({org_id}) alone is refused
  // (docs/SQL.md, "Tenant moves"); with every encrypted column it moves.
  const mv = n.mover;
  await step('mover: set({org_id}) alone is refused, the row unchanged; with every encrypted column it moves', async () => {
    const [{ id }] = await db.insert(users).values(row(org, mv)).returning({ id: users.id });
    try {
      await unwrap(() => db.update(users).set({ org_id: org2 }).where(eq(users.id, id)))();
      throw new Check('set({org_id}) was not refused');
    } catch (e) {
      if (e instanceof Check) throw e;
      if (e.code !== '0A000' || !String(e.message).includes('public.users') || !String(e.message).includes('org_id')) {
        throw new Check(`set({org_id}): ${e.code} ${e.message}`);
      }
    }
    const still = await db.select().from(users).where(eq(users.id, id));
    wantEq('org_id', still.map((x) => x.org_id), [org]);
    wantRows('row', got(still), want([mv]));
    const moved = { ...row(org2, mv), phone: n.mover_phone };
    wantEq('rowCount', (await db.update(users).set(moved).where(eq(users.id, id))).rowCount, 1);
    const after = await db.select().from(users).where(eq(users.id, id));
    wantEq('org_id', after.map((x) => x.org_id), [org2]);
    wantRows('moved', got(after), want([{ ...mv, phone: n.mover_phone }]));
    wantEq('deleted', (await db.delete(users).where(eq(users.id, id))).rowCount, 1);
  });

  await step('final state', async () => {
    wantRows('rows', got(await all()), want(s.final));
  });
  await pool.end();
});
