'use strict';
// Knex 3 (client 'pg', node-postgres) through pgveil, run by
// integration/enc_node_orm_test.go (TestEncKnex):
//
//   node knex_scenario.js SPEC.json
//
// Knex sends every value as a bind parameter ($1 …, node-postgres'
// unnamed statements) and lists insert columns in alphabetical order, so
// the tenant (org_id) comes after the encrypted columns. Nothing here is
// pgveil's: no tenant in UPDATEs by id or email (pgveil looks it up), no
// blind-index column anywhere.
//
// What an adopting team needs to know:
// - SELECT * (first(), returning('*')) returns the blind-index columns too,
//   as Buffers: pgveil does not rewrite *. Writing such a row back (an
//   insert of a copied row) writes them beside their columns, where pgveil
//   puts the indexes it computes (the row's own are not sent).
// - onConflict('email').merge() and .merge(['phone']) work for one row or
//   many (DO UPDATE SET col = excluded.col); .merge({phone: v}) binds v as
//   a parameter of its own, which pgveil can seal only in a single-row
//   insert (the tenant of a multi-row conflict is not known): refused
//   (0A000) for several rows.
// - stream() needs the pg-query-stream package (a cursor over the
//   extended protocol: Execute with a row limit, PortalSuspended);
//   pgveil decrypts every batch.
// - orderBy, whereLike/whereILike, whereRaw with functions, distinct,
//   groupBy, max, increment and ranges on an encrypted column are refused
//   (0A000), as is equality on a column without a blind index.

const pg = require('pg');
const knexLib = require('knex');
const {
  spec: s, Check, wantEq, wantRows, userRow, rowOf, checkTypes, run,
} = require('./orm_common');

// Dates as the server sends them (YYYY-MM-DD), not JavaScript Dates in
// the local time zone; int8 stays a string (node-postgres' default).
pg.types.setTypeParser(1082, (v) => v);

run(async (r) => {
  const knex = knexLib({
    client: 'pg',
    connection: {
      host: s.host, port: s.port, user: s.user, password: s.password, database: s.dbname, application_name: 'enc_knex',
    },
    pool: { min: 0, max: 3 },
  });
  knex.on('query', (q) => r.record(q.sql, q.bindings));
  const sent = () => r.sql.slice();

  const u = s.users;
  const o = s.orm;
  const n = s.node;
  const { org } = s;
  const org2 = s.copy_org;
  const COLS = ['name', 'email', 'phone', 'ssn', 'birth_date', 'api_token'];
  const row = (orgId, x) => ({
    org_id: orgId, name: x.name, email: x.email, phone: x.phone, ssn: x.ssn, birth_date: x.birth_date, api_token: x.api_token,
  });
  const ids = [];
  const users = () => knex('users').where('org_id', org).orderBy('id').select(COLS);

  await r.step('columnInfo: logical types (text, date, bigint; blind indexes bytea)', async () => {
    const info = await knex('users').columnInfo();
    const got = {};
    for (const [k, v] of Object.entries(info)) got[k] = [v.type, v.nullable];
    wantEq('users', got, {
      id: ['bigint', false],
      org_id: ['bigint', false],
      name: ['text', true],
      email: ['text', true],
      email_bidx: ['bytea', true],
      phone: ['text', true],
      ssn: ['text', true],
      ssn_bidx: ['bytea', true],
      birth_date: ['date', true],
      api_token: ['bigint', true],
      created_at: ['timestamp with time zone', true],
    });
    const contacts = await knex('contacts').columnInfo();
    wantEq('contacts', Object.entries(contacts).map(([k, v]) => [k, v.type]),
      [['id', 'bigint'], ['org_id', 'bigint'], ['email', 'text'], ['email_bidx', 'bytea'], ['note', 'text']]);
  });

  await r.step('insert(row).returning([...])', async () => {
    const got = await knex('users').insert(row(org, u[0])).returning(['id', ...COLS]);
    r.info(`insert: ${sent()[0]}`);
    wantRows('returned', got.map(rowOf), [userRow(u[0])]);
    checkTypes(got[0]);
    ids.push(got[0].id);
  });

  await r.step('insert([rows]).returning("id") (one multi-row INSERT, 1 MiB values)', async () => {
    const got = await knex('users').insert(u.slice(1).map((x) => row(org, x))).returning('id');
    wantEq('statements', sent().length, 1);
    ids.push(...got.map((x) => x.id));
    wantRows('rows', (await users()).map(rowOf), u.map(userRow));
  });

  await r.step('where({email}) (normalize), first() brings the blind indexes as Buffers', async () => {
    const got = await knex('users').where({ email: s.lookup_email }).select(COLS);
    wantRows('row', got.map(rowOf), [userRow(u[0])]);
    checkTypes(got[0]);
    const first = await knex('users').where('email', s.lookup_email.trim().toLowerCase()).first();
    wantRows('first', [rowOf(first)], [userRow(u[0])]);
    const bidx = [first.email_bidx, first.ssn_bidx].map((b) => (Buffer.isBuffer(b) ? b.length : typeof b));
    wantEq('email_bidx, ssn_bidx', bidx, [32, 32]);
  });

  await r.step('whereIn, whereRaw("email = ANY(?)", [array])', async () => {
    const emails = (q) => q.orderBy('id').pluck('email');
    wantEq('whereIn', await emails(knex('users').whereIn('email', s.in_emails)), s.in_expect);
    wantEq('= ANY(?)', await emails(knex('users').whereRaw('email = ANY(?)', [s.any_emails])), s.any_expect);
  });

  await r.step('where ssn (blind index, and a 1 MiB value)', async () => {
    wantEq('ssn', await knex('users').where('ssn', o.ssn_lookup).pluck('name'), [o.ssn_name]);
    wantEq('1 MiB ssn', await knex('users').where('ssn', s.big_ssn).pluck('name'), [s.big_name]);
  });

  await r.step('whereNull, whereNotNull, whereNot, whereNotIn', async () => {
    const names = (q) => q.where('org_id', org).orderBy('id').pluck('name');
    wantEq('whereNull email', await names(knex('users').whereNull('email')), s.null_email_names);
    wantEq('whereNull phone', await names(knex('users').whereNull('phone')), s.null_phone_names);
    wantEq('whereNotNull email', await names(knex('users').whereNotNull('email')), u.filter((x) => x.email !== null).map((x) => x.name));
    wantEq('whereNot email', await names(knex('users').whereNot('email', s.lookup_email)),
      u.slice(1).filter((x) => x.email !== null).map((x) => x.name));
    wantEq('whereNotIn email', await names(knex('users').whereNotIn('email', s.in_emails)),
      u.filter((x) => x.email !== null && !s.in_expect.includes(x.email)).map((x) => x.name));
  });

  await r.step('count', async () => {
    wantEq('whereIn', await knex('users').whereIn('email', s.in_emails).count('* as n'), [{ n: '2' }]);
    wantEq('count(email)', await knex('users').where('org_id', org).count('email as n'), [{ n: String(u.filter((x) => x.email !== null).length) }]);
  });

  await r.step('where({id}).update({email, phone}, [returning]) without the tenant (pgveil looks it up)', async () => {
    const got = await knex('users').where({ id: ids[0] }).update({ email: s.new_email, phone: s.new_phone }, ['email', 'phone']);
    r.info(`update by id: ${sent()[0]}`);
    wantRows('returned', got.map((x) => [x.email, x.phone]), [[s.new_email, s.new_phone]]);
    wantEq('old email', await knex('users').where('email', s.old_email).pluck('name'), []);
    wantEq('new email', await knex('users').where('email', s.new_lookup).pluck('name'), [s.update_name]);
  });

  await r.step('where({email}).update({phone}) without the tenant', async () => {
    wantEq('updated', await knex('users').where('email', o.email_lookup).update({ phone: o.email_phone }), 1);
    wantEq("u2's phone", await knex('users').where('id', ids[1]).pluck('phone'), [o.email_phone]);
  });

  await r.step('org2: batchInsert (chunks of 1, in a transaction), update by org_id', async () => {
    const got = await knex.batchInsert('users', o.org2_rows.map((x) => row(org2, x)), 1).returning('id');
    wantEq('rows', got.length, o.org2_rows.length);
    wantEq('updated', await knex('users').where('org_id', org2).update({ phone: o.bulk_phone }), o.org2_rows.length);
  });

  const two = o.two_tenant_emails;
  await r.refused('update over rows of two tenants is refused',
    () => knex('users').whereIn('email', two).update({ phone: o.two_tenant_phone }),
    ['public.users', 'more than one tenant', 'org_id']);

  await r.step('the refused update changed neither row', async () => {
    const got = await knex('users').whereIn('email', two).orderBy('id').select('name', 'phone');
    wantRows('rows', got.map((x) => [x.name, x.phone]), [[u[1].name, o.email_phone], [o.org2_rows[0].name, o.bulk_phone]]);
  });

  await r.step('update matching no row: 0', async () => {
    wantEq('updated', await knex('users').where('email', o.no_row_email).update({ phone: o.no_row_phone }), 0);
  });

  const up = s.upsert;
  const upRow = (email, phone) => ({ org_id: org, name: up.name, email, phone });
  await r.step("onConflict('email').ignore() (ON CONFLICT (\"email\") DO NOTHING): new, then a conflict", async () => {
    const got = await knex('users').insert(upRow(up.email, up.phone)).onConflict('email').ignore().returning(['email', 'phone']);
    wantRows('new', got.map((x) => [x.email, x.phone]), [[up.email, up.phone]]);
    const again = await knex('users').insert(upRow(s.upsert_variant, s.upsert_phone2)).onConflict('email').ignore().returning('id');
    wantEq('conflict', again, []);
  });

  await r.step("onConflict('email').merge() (every column = excluded.…), merge(['phone']), merge({phone})", async () => {
    let got = await knex('users').insert(upRow(s.upsert_variant, up.phone)).onConflict('email').merge().returning(['email', 'phone']);
    r.info(`merge(): ${sent()[0]}`);
    wantRows('merge()', got.map((x) => [x.email, x.phone]), [[s.upsert_variant, up.phone]]);
    got = await knex('users').insert(upRow(up.email, s.upsert_phone2)).onConflict('email').merge(['phone']).returning(['email', 'phone']);
    wantRows("merge(['phone'])", got.map((x) => [x.email, x.phone]), [[s.upsert_variant, s.upsert_phone2]]);
    got = await knex('users').insert(upRow(up.email, up.phone)).onConflict('email').merge({ phone: s.upsert_phone2 }).returning(['email', 'phone']);
    wantRows('merge({phone})', got.map((x) => [x.email, x.phone]), [[s.upsert_variant, s.upsert_phone2]]);
    wantEq('rows with the email', await knex('users').where('email', up.email).count('* as n'), [{ n: '1' }]);
  });

  await r.step("multi-row insert with onConflict('email').merge(['phone'])", async () => {
    const rows = [upRow(up.email, s.upsert_phone2), { ...row(org2, o.org2_rows[1]), phone: o.bulk_phone }];
    const got = await knex('users').insert(rows).onConflict('email').merge(['phone']).returning(['email', 'phone']);
    wantRows('returned', got.map((x) => [x.email, x.phone]), [[s.upsert_variant, s.upsert_phone2], [o.org2_rows[1].email, o.bulk_phone]]);
  });

  // merge({phone: v}) over several rows: v is a parameter of its own,
  // sealed once, under the first row's tenant; pgveil checks that every
  // row names that tenant.
  await r.step("multi-row insert with onConflict('email').merge({phone}), rows of one tenant", async () => {
    const got = await knex('users').insert([upRow(up.email, up.phone), upRow(s.doomed.email, up.phone)])
      .onConflict('email').merge({ phone: n.merge_phone }).returning(['email', 'phone']);
    wantRows('returned', got.map((x) => [x.email, x.phone]), [[s.upsert_variant, n.merge_phone], [s.doomed.email, up.phone]]);
    // Back to the state the later steps expect.
    await knex('users').where('email', up.email).update({ phone: s.upsert_phone2 });
    wantEq('deleted', await knex('users').where('email', s.doomed.email).del(), 1);
  });

  await r.refused("multi-row insert with onConflict('email').merge({phone}), rows of two tenants, is refused",
    () => knex('users').insert([upRow(up.email, up.phone), { ...row(org2, o.org2_rows[1]), phone: o.bulk_phone }])
      .onConflict('email').merge({ phone: n.merge_phone }),
    ['public.users', 'more than one tenant']);

  await r.step('the refused merge changed nothing', async () => {
    wantEq('phone', await knex('users').where('email', up.email).pluck('phone'), [s.upsert_phone2]);
    wantEq('doomed', await knex('users').where('email', s.doomed.email).count('* as n'), [{ n: '0' }]);
  });

  const d = s.doomed;
  await r.step('del() by email with returning', async () => {
    await knex('users').insert(row(org, d));
    const got = await knex('users').where('email', s.doomed_lookup).del(['name', 'email', 'ssn', 'birth_date', 'api_token']);
    wantRows('returned', got.map((x) => [x.name, x.email, x.ssn, x.birth_date, x.api_token]),
      [[d.name, d.email, d.ssn, d.birth_date, d.api_token]]);
    wantEq('count', await knex('users').where('email', s.doomed_lookup).count('* as n'), [{ n: '0' }]);
  });

  await r.step('del() by id', async () => {
    const [{ id }] = await knex('users').insert(row(org, o.doomed2)).returning('id');
    wantEq('found', await knex('users').where('email', o.doomed2_lookup).pluck('id'), [id]);
    wantEq('deleted', await knex('users').where({ id }).del(), 1);
    wantEq('count', await knex('users').where('email', o.doomed2_lookup).count('* as n'), [{ n: '0' }]);
  });

  const rb = o.rolled;
  await r.step('knex.transaction(handler) rolled back (with a refusal in a savepoint)', async () => {
    const rollback = new Error('roll back');
    try {
      await knex.transaction(async (trx) => {
        await trx('users').insert(row(org, rb));
        await trx('users').where({ id: ids[1] }).update({ phone: o.rolled_phone });
        wantEq('inside', await trx('users').where('email', rb.email).count('* as n'), [{ n: '1' }]);
        try {
          await trx.transaction((sp) => sp('users').orderBy('email'));
          throw new Check('ORDER BY email in the savepoint was not refused');
        } catch (e) {
          if (e instanceof Check || e.code !== '0A000') throw e;
        }
        wantEq('after the savepoint', await trx('users').where({ id: ids[1] }).pluck('phone'), [o.rolled_phone]);
        throw rollback;
      });
    } catch (e) {
      if (e !== rollback) throw e;
    }
    wantEq('after rollback', await knex('users').where('email', rb.email).count('* as n'), [{ n: '0' }]);
    wantEq("u2's phone", await knex('users').where({ id: ids[1] }).pluck('phone'), [o.email_phone]);
  });

  await r.step('unmanaged transaction: rollback(), then commit() of the contacts', async () => {
    const trx = await knex.transaction();
    await trx('users').where({ id: ids[3] }).update({ phone: o.temp_phone });
    wantEq('inside', await trx('users').where({ id: ids[3] }).pluck('phone'), [o.temp_phone]);
    await trx.rollback();
    wantEq('after rollback', await knex('users').where({ id: ids[3] }).pluck('phone'), [u[3].phone]);
    const trx2 = await knex.transaction();
    await trx2('contacts').insert(s.contacts.map((c) => ({ org_id: org, email: c.email, note: c.note })));
    await trx2.commit();
    const got = await knex('contacts').where('org_id', org).orderBy('id').select('email', 'note');
    wantRows('contacts', got.map((c) => [c.email, c.note]), s.contacts.map((c) => [c.email, c.note]));
  });

  await r.step('join on the shared blind index, whereIn(email, subquery)', async () => {
    const got = await knex('users as u').join('contacts as c', 'u.email', 'c.email')
      .where('u.org_id', org).where('c.org_id', org).orderBy(['u.id', 'c.id'])
      .select('u.name', 'u.email', 'c.email as c_email', 'c.note');
    wantRows('join', got.map((x) => [x.name, x.email, x.c_email, x.note]), s.join_expect);
    const names = await knex('users').where('org_id', org)
      .whereIn('email', knex('contacts').select('email').where('org_id', org)).orderBy('id').pluck('name');
    wantEq('whereIn subquery', names, s.join_expect.map((x) => x[0]));
  });

  await r.step('knex.raw with ? and :named bindings, ?? identifiers, an UPDATE without the tenant', async () => {
    const want = [[s.update_name, s.new_email, s.new_phone]];
    const rows = (res) => res.rows.map((x) => [x.name, x.email, x.phone]);
    wantRows('?', rows(await knex.raw('SELECT name, email, phone FROM users WHERE email = ?', [s.new_lookup])), want);
    wantRows(':named', rows(await knex.raw('SELECT name, email, phone FROM users WHERE email = :email', { email: s.new_lookup })), want);
    wantRows('??', rows(await knex.raw('SELECT name, ??, phone FROM ?? WHERE ?? = ?', ['email', 'users', 'email', s.new_lookup])), want);
    const res = await knex.raw('UPDATE users SET phone = ? WHERE email = ?', [s.new_phone, s.new_lookup]);
    wantEq('rowCount', res.rowCount, 1);
  });

  await r.step('stream({batchSize: 2}) (pg-query-stream: a portal read 2 rows at a time)', async () => {
    const got = [];
    for await (const x of users().stream({ batchSize: 2 })) got.push(x);
    wantRows('rows', got.map(rowOf), s.final.map(userRow));
    got.forEach(checkTypes);
  });

  // A row read with first() carries its blind indexes (Buffers); written
  // back beside their columns, pgveil puts the indexes it computes there.
  await r.step('insert of a row read with first() (its blind indexes with it), then delete', async () => {
    const copy = await knex('users').where('email', s.new_lookup).first();
    delete copy.id;
    copy.email = n.copy_email;
    copy.ssn = null;
    const [{ id }] = await knex('users').insert(copy).returning('id');
    const found = await knex('users').where('email', n.copy_email.toUpperCase()).select('id', 'email');
    wantEq('found by its new email', found, [{ id, email: n.copy_email }]);
    wantEq('deleted', await knex('users').where({ id }).del(), 1);
  });

  await r.refused("orderBy('email') is refused", () => knex('users').orderBy('email'), ['public.users.email']);
  await r.refused('whereILike email is refused', () => knex('users').whereILike('email', `%${o.like_pattern}%`), ['public.users.email']);
  await r.refused('whereLike email is refused', () => knex('users').whereLike('email', `${o.like_pattern}%`), ['public.users.email']);
  await r.refused("whereRaw('lower(email) = ?') is refused",
    () => knex('users').whereRaw('lower(email) = ?', [s.lookup_email.trim().toLowerCase()]), ['public.users.email']);
  await r.refused('where phone (no blind index) is refused', () => knex('users').where('phone', o.phone_lookup), ['public.users.phone']);
  await r.refused("where('birth_date', '>', …) is refused", () => knex('users').where('birth_date', '>', '2000-01-01'), ['public.users.birth_date']);
  await r.refused("distinct('email') is refused", () => knex('users').distinct('email'), ['public.users.email']);
  await r.refused("groupBy('email') is refused", () => knex('users').select('email').count('* as n').groupBy('email'), ['public.users.email']);
  await r.refused("max('api_token') is refused", () => knex('users').max('api_token'), ['public.users.api_token']);
  await r.refused("increment('api_token') is refused", () => knex('users').where({ id: ids[0] }).increment('api_token', 1), ['public.users.api_token']);

  await r.step('final state', async () => {
    wantRows('rows', (await users()).map(rowOf), s.final.map(userRow));
  });

  // Moving a row to another tenant (docs/SQL.md, "Tenant moves"): an
  // UPDATE that sets org_id (the key_context) and keeps encrypted values
  // of the row would leave them sealed under the old tenant's key,
  // unreadable (PV001). pgveil reads the rows first and refuses it (0A000,
  // naming public.users and org_id); nothing changes. The steps run on a
  // Knex of their own, with one connection (a PV001 would close it), and
  // the row is deleted by id either way.
  const mv = n.mover;
  const moving = knexLib({
    client: 'pg',
    connection: {
      host: s.host, port: s.port, user: s.user, password: s.password, database: s.dbname, application_name: 'enc_knex_mover',
    },
    pool: { min: 0, max: 1 },
  });
  moving.on('query', (q) => r.record(q.sql, q.bindings));
  let moverId;
  await r.step('mover: insert', async () => {
    [{ id: moverId }] = await knex('users').insert(row(org, mv)).returning('id');
  });
  await r.refused('update({org_id}) by id is refused',
    () => moving('users').where({ id: moverId }).update({ org_id: org2 }), ['public.users', 'org_id']);
  // phone would be sealed under org2, the rest stays under org.
  await r.refused('update({org_id, phone}) by email (not every encrypted column) is refused',
    () => moving('users').where('email', mv.email).update({ org_id: org2, phone: n.mover_phone }), ['public.users', 'org_id']);
  // ON CONFLICT … DO UPDATE SET org_id = excluded.org_id is guarded like
  // a DO UPDATE of an encrypted column (AND users.org_id =
  // EXCLUDED.org_id): an insert in another tenant that conflicts on the
  // (cross-tenant) unique email blind index updates nothing, where it
  // would move the row into its own tenant, unreadable.
  await r.step("onConflict('email').merge(['org_id', 'name']) from another tenant changes nothing", async () => {
    const got = await moving('users').insert({ ...row(org2, mv), email: mv.email.toUpperCase(), name: 'never' })
      .onConflict('email').merge(['org_id', 'name']).returning(['id']);
    wantEq('rows updated', got, []);
  });
  await r.step('the mover still reads in its tenant, unchanged', async () => {
    const got = await moving('users').where({ id: moverId }).select(['org_id', ...COLS]);
    wantEq('org_id', got.map((x) => x.org_id), [String(org)]);
    wantRows('row', got.map(rowOf), [userRow(mv)]);
  });
  await moving.destroy().catch(() => {});

  await r.step('mover: del() by id', async () => {
    wantEq('deleted', await knex('users').where({ id: moverId }).del(), 1);
  });

  await r.step('moving a row: update of org_id with every encrypted column, read back in the new tenant', async () => {
    const moved = { ...row(org2, mv), phone: n.mover_phone };
    const [{ id }] = await knex('users').insert(row(org, mv)).returning('id');
    wantEq('updated', await knex('users').where({ id }).update(moved), 1);
    const got = await knex('users').where({ id }).select(['org_id', ...COLS]);
    wantEq('org_id', got.map((x) => x.org_id), [String(org2)]);
    wantRows('row', got.map(rowOf), [userRow(moved)]);
    wantEq('deleted', await knex('users').where({ id }).del(), 1);
  });

  // Migrations run through pgveil too (the same DATABASE_URL), as the
  // tables' owner: knex_migrations and its lock table, then ALTER TABLE
  // users ADD COLUMN nickname, which the application's connection writes
  // and reads at once (pgveil reads its catalog again), then rolled back.
  const owner = knexLib({
    client: 'pg',
    connection: {
      host: s.host, port: s.port, user: n.owner_user, password: n.owner_password, database: s.dbname, application_name: 'enc_knex_migrate',
    },
    pool: { min: 0, max: 1 },
  });
  owner.on('query', (q) => r.record(q.sql, q.bindings));
  const migrationSource = {
    getMigrations: async () => ['20240101000000_users_nickname'],
    getMigrationName: (m) => m,
    getMigration: async () => ({
      up: (k) => k.schema.alterTable('users', (t) => { t.text('nickname'); }),
      down: (k) => k.schema.alterTable('users', (t) => { t.dropColumn('nickname'); }),
    }),
  };
  await r.step('migrate.latest through pgveil (ALTER TABLE users ADD COLUMN nickname)', async () => {
    await owner.schema.dropTableIfExists('knex_migrations');
    await owner.schema.dropTableIfExists('knex_migrations_lock');
    const [, log] = await owner.migrate.latest({ migrationSource });
    wantEq('migrations run', log, ['20240101000000_users_nickname']);
    const info = await knex('users').columnInfo();
    wantEq('nickname', info.nickname && info.nickname.type, 'text');
  });

  await r.step('the new column through the application\'s connection (update by email with phone, select)', async () => {
    const got = await knex('users').where('email', s.new_lookup).update({ nickname: n.nickname, phone: s.new_phone }, ['nickname', 'phone']);
    wantRows('returned', got.map((x) => [x.nickname, x.phone]), [[n.nickname, s.new_phone]]);
    wantEq('by email', await knex('users').where('email', s.new_lookup).pluck('nickname'), [n.nickname]);
  });

  await r.step('migrate.rollback through pgveil (DROP COLUMN nickname)', async () => {
    const [, log] = await owner.migrate.rollback({ migrationSource });
    wantEq('migrations rolled back', log, ['20240101000000_users_nickname']);
    wantEq('nickname', Object.keys(await knex('users').columnInfo()).includes('nickname'), false);
    await owner.schema.dropTable('knex_migrations');
    await owner.schema.dropTable('knex_migrations_lock');
  });
  await owner.destroy();
  await knex.destroy();
});
