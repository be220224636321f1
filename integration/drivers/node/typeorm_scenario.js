'use strict';
// TypeORM (DataSource, postgres driver over node-postgres) through pgveil,
// run by integration/enc_node_orm2_test.go:
//
//   node typeorm_scenario.js SPEC.json scenario      (TestEncTypeORM)
//   node typeorm_scenario.js SPEC.json synchronize   (TestEncTypeORMSynchronize)
//
// The entities are EntitySchemas in plain JavaScript, declared as the
// application had them before it adopted pgveil: varchar for email, phone
// and ssn, date for birth_date, bigint for api_token, email unique, users
// → orgs many-to-one on org_id. Nothing in them is pgveil's: no
// blind-index column, no tenant in any UPDATE (pgveil looks it up).
//
// TypeORM sends every value as a bind parameter ($1 …, node-postgres'
// unnamed statements); save() of a loaded entity first reads it by id,
// then sends UPDATE "users" SET <changed columns> WHERE "id" = $n.

const pg = require('pg');
const {
  DataSource, EntitySchema, In, IsNull, Not, Like, ILike, MoreThan, Raw,
} = require('typeorm');
const {
  spec: s, Check, wantEq, wantRows, userRow, rowOf, checkTypes, run,
} = require('./orm_common');

// Raw results (query(), getRawMany(), stream()) with dates as the server
// sends them (YYYY-MM-DD), as the other Node scenarios read them.
pg.types.setTypeParser(1082, (v) => v);

const mode = process.argv[3] || 'scenario';

// unwrap: TypeORM's QueryFailedError carries node-postgres' error as
// driverError (its code, hint and detail copied).
function unwrap(fn) {
  return async () => {
    try {
      return await fn();
    } catch (e) {
      throw (e && e.driverError) || e;
    }
  };
}

// entities: the models. emailType is how email is declared ('varchar'
// with length 320 in the application; the synchronize mode also tries
// 'text', the type pgveil's catalog reports).
function entities(emailType = 'varchar') {
  const text = (length) => (emailType === 'text' ? { type: 'text' } : { type: 'varchar', length });
  const Org = new EntitySchema({
    name: 'Org',
    tableName: 'orgs',
    columns: {
      id: { type: 'bigint', primary: true },
      name: { type: 'text' },
    },
    relations: {
      users: { type: 'one-to-many', target: 'User', inverseSide: 'org' },
    },
  });
  const User = new EntitySchema({
    name: 'User',
    tableName: 'users',
    columns: {
      id: { type: 'bigint', primary: true, generated: 'increment' },
      org_id: { type: 'bigint' },
      name: { type: 'text', nullable: true },
      email: { ...text(320), nullable: true, unique: true },
      phone: { ...text(64), nullable: true },
      ssn: { ...text(64), nullable: true },
      birth_date: { type: 'date', nullable: true },
      api_token: { type: 'bigint', nullable: true },
      created_at: { type: 'timestamptz', nullable: true, createDate: true },
    },
    relations: {
      org: { type: 'many-to-one', target: 'Org', joinColumn: { name: 'org_id' }, inverseSide: 'users' },
    },
  });
  const Contact = new EntitySchema({
    name: 'Contact',
    tableName: 'contacts',
    columns: {
      id: { type: 'bigint', primary: true, generated: 'increment' },
      org_id: { type: 'bigint' },
      email: { ...text(320), nullable: true },
      note: { type: 'text', nullable: true },
    },
  });
  return [Org, User, Contact];
}

function dataSource(r, opts) {
  return new DataSource({
    type: 'postgres',
    host: s.host,
    port: s.port,
    username: s.user,
    password: s.password,
    database: s.dbname,
    applicationName: 'enc_typeorm',
    entities: entities(),
    synchronize: false,
    poolSize: 3,
    logging: true,
    logger: {
      logQuery: (q, p) => r.record(q, p),
      logQueryError: () => {},
      logQuerySlow: () => {},
      logSchemaBuild: (m) => r.record(`schema build: ${m}`),
      logMigration: () => {},
      log: () => {},
    },
    ...opts,
  });
}

async function scenario(r) {
  const step = (name, fn) => r.step(name, unwrap(fn));
  const refused = (name, fn, needles, code) => r.refused(name, unwrap(fn), needles, code);
  const ds = dataSource(r);
  const sent = () => r.sql.slice();

  const u = s.users;
  const o = s.orm;
  const n = s.node;
  const { org } = s;
  const org2 = s.copy_org;
  const fields = (orgId, x) => ({
    org_id: String(orgId), name: x.name, email: x.email, phone: x.phone, ssn: x.ssn, birth_date: x.birth_date, api_token: x.api_token,
  });
  let users;
  let contacts;
  let orgs;
  const ids = [];
  const all = (orgId = org) => users.find({ where: { org_id: String(orgId) }, order: { id: 'ASC' } });
  const names = (xs) => xs.map((x) => x.name);

  await step('initialize (synchronize: false sends no DDL)', async () => {
    await ds.initialize();
    users = ds.getRepository('User');
    contacts = ds.getRepository('Contact');
    orgs = ds.getRepository('Org');
    const ddl = sent().filter((q) => /^\s*(CREATE|ALTER|DROP)\b/i.test(q));
    wantEq('DDL sent', ddl, []);
    const [{ server_version: v }] = await ds.query('SHOW server_version');
    r.info(`server_version ${v}`);
  });

  await step('save(entity): INSERT … RETURNING, the entity gets its id', async () => {
    const saved = await users.save(users.create(fields(org, u[0])));
    r.info(`save (insert): ${sent().find((q) => /^INSERT/.test(q))}`);
    if (!/^\d+$/.test(String(saved.id))) throw new Check(`id ${saved.id}`);
    ids.push(saved.id);
    const got = await users.findOneBy({ id: saved.id });
    wantRows('found by id', [rowOf(got)], [userRow(u[0])]);
    checkTypes(got);
  });

  await step('save([entities]) (one multi-row INSERT, 1 MiB values)', async () => {
    const saved = await users.save(u.slice(1).map((x) => users.create(fields(org, x))));
    wantEq('INSERTs sent', sent().filter((q) => /^INSERT/.test(q)).length, 1);
    ids.push(...saved.map((x) => x.id));
    wantRows('rows', (await all()).map(rowOf), u.map(userRow));
  });

  await step('findOne({where: {email}}) and findOneBy in another case (normalize)', async () => {
    const got = await users.findOne({ where: { email: s.lookup_email } });
    r.info(`findOne: ${sent()[0]}`);
    wantRows('findOne', [rowOf(got)], [userRow(u[0])]);
    checkTypes(got);
    const by = await users.findOneBy({ email: s.lookup_email.trim().toLowerCase() });
    wantRows('findOneBy', [rowOf(by)], [userRow(u[0])]);
    wantEq('absent', await users.findOneBy({ email: o.no_row_email }), null);
  });

  await step('findBy({email: In([...])}), find({where: {email: In}})', async () => {
    const emails = (xs) => xs.sort((a, b) => Number(a.id) - Number(b.id)).map((x) => x.email);
    wantEq('In', emails(await users.findBy({ email: In(s.in_emails) })), s.in_expect);
    wantEq('find In', emails(await users.find({ where: { email: In(s.any_emails) }, order: { id: 'ASC' } })), s.any_expect);
  });

  await step('findBy ssn (blind index, and a 1 MiB value)', async () => {
    wantEq('ssn', names(await users.findBy({ ssn: o.ssn_lookup })), [o.ssn_name]);
    wantEq('1 MiB ssn', names(await users.findBy({ ssn: s.big_ssn })), [s.big_name]);
  });

  await step('IsNull, Not(IsNull), Not(email), where as an array (OR)', async () => {
    const find = (where) => users.find({ where, order: { id: 'ASC' } });
    wantEq('IsNull email', names(await find({ org_id: String(org), email: IsNull() })), s.null_email_names);
    wantEq('IsNull phone', names(await find({ org_id: String(org), phone: IsNull() })), s.null_phone_names);
    wantEq('Not(IsNull)', names(await find({ org_id: String(org), email: Not(IsNull()) })), u.filter((x) => x.email !== null).map((x) => x.name));
    wantEq('Not(email)', names(await find({ org_id: String(org), email: Not(s.lookup_email) })),
      u.slice(1).filter((x) => x.email !== null).map((x) => x.name));
    wantEq('[{email}, {ssn}]', names(await find([{ email: s.lookup_email }, { ssn: o.ssn_lookup }])), [u[0].name, u[1].name]);
  });

  await step('count, countBy, exists', async () => {
    wantEq('count In', await users.count({ where: { email: In(s.in_emails) } }), 2);
    wantEq('countBy org', await users.countBy({ org_id: String(org) }), u.length);
    wantEq('exists', await users.exists({ where: { email: s.lookup_email } }), true);
    wantEq('existsBy absent', await users.existsBy({ email: o.no_row_email }), false);
  });

  await step('save() of a loaded entity: UPDATE … WHERE "id" without the tenant (pgveil looks it up)', async () => {
    const e = await users.findOneBy({ id: ids[0] });
    e.email = s.new_email;
    e.phone = s.new_phone;
    await users.save(e);
    r.info(`save (update): ${sent().find((q) => /^UPDATE/.test(q))}`);
    wantEq('old email', await users.findOneBy({ email: s.old_email }), null);
    const got = await users.findOneBy({ email: s.new_lookup });
    wantEq('new email', got && [got.name, got.email, got.phone], [s.update_name, s.new_email, s.new_phone]);
  });

  await step('update({email}, {phone}) without the tenant', async () => {
    const res = await users.update({ email: o.email_lookup }, { phone: o.email_phone });
    r.info(`update by email: ${sent()[0]}`);
    wantEq('affected', res.affected, 1);
    wantEq("u2's phone", (await users.findOneBy({ id: ids[1] })).phone, o.email_phone);
  });

  await step('org2: insert([rows]) (InsertQueryBuilder), update({org_id}, {phone})', async () => {
    const res = await users.insert(o.org2_rows.map((x) => fields(org2, x)));
    wantEq('identifiers', res.identifiers.length, o.org2_rows.length);
    wantEq('affected', (await users.update({ org_id: String(org2) }, { phone: o.bulk_phone })).affected, o.org2_rows.length);
  });

  const two = o.two_tenant_emails;
  await refused('update over rows of two tenants is refused',
    () => users.update({ email: In(two) }, { phone: o.two_tenant_phone }),
    ['public.users', 'more than one tenant', 'org_id']);

  await step('the refused update changed neither row', async () => {
    const got = await users.find({ where: { email: In(two) }, order: { id: 'ASC' } });
    wantRows('rows', got.map((x) => [x.name, x.phone]), [[u[1].name, o.email_phone], [o.org2_rows[0].name, o.bulk_phone]]);
  });

  await step('update matching no row: affected 0', async () => {
    wantEq('affected', (await users.update({ email: o.no_row_email }, { phone: o.no_row_phone })).affected, 0);
  });

  const up = s.upsert;
  let upId;
  await step("upsert(entity, ['email']) (ON CONFLICT (\"email\") DO UPDATE SET every given column): new, then a conflict in another case", async () => {
    await users.upsert({ org_id: String(org), name: up.name, email: up.email, phone: up.phone }, ['email']);
    r.info(`upsert on email: ${sent()[0]}`);
    const first = await users.findOneBy({ email: up.email });
    wantEq('inserted', [first.name, first.email, first.phone], [up.name, up.email, up.phone]);
    upId = first.id;
    await users.upsert({ org_id: String(org), name: up.name, email: s.upsert_variant, phone: s.upsert_phone2 }, { conflictPaths: ['email'] });
    const got = await users.findBy({ email: up.email });
    wantEq('one row, email and phone updated', got.map((x) => [x.id, x.email, x.phone]), [[upId, s.upsert_variant, s.upsert_phone2]]);
  });

  await step("upsert([rows], ['email']): an update of two rows and an insert in one statement, then back", async () => {
    const d2 = o.doomed2;
    await users.upsert([
      fields(org, { ...up, email: s.upsert_variant.trim().toLowerCase(), phone: o.temp_phone }),
      fields(org, { ...u[3], phone: o.temp_phone }),
      fields(org, d2),
    ], ['email']);
    r.info(`multi-row upsert: ${sent()[0]}`);
    const got = await users.findBy({ id: In([upId, ids[3]]) });
    wantEq('updated', got.sort((a, b) => Number(a.id) - Number(b.id)).map((x) => [x.email, x.phone]),
      [[u[3].email, o.temp_phone], [s.upsert_variant.trim().toLowerCase(), o.temp_phone]]);
    wantRows('inserted', (await users.findBy({ email: o.doomed2_lookup })).map(rowOf), [userRow(d2)]);
    await users.upsert([
      fields(org, { ...up, email: s.upsert_variant, phone: s.upsert_phone2 }),
      fields(org, u[3]),
    ], { conflictPaths: ['email'] });
    wantRows('u4 back', [rowOf(await users.findOneBy({ id: ids[3] }))], [userRow(u[3])]);
    wantEq('upsert row back', (await users.findBy({ id: upId })).map((x) => [x.email, x.phone]), [[s.upsert_variant, s.upsert_phone2]]);
  });

  // upsert on the primary key: TypeORM never inserts a generated
  // ('increment') column on PostgreSQL, so a users row cannot conflict on
  // id; orgs (id given by the application) can.
  await step("orgs.upsert([rows], ['id']) (a plain table: conflict on the primary key)", async () => {
    await orgs.upsert([{ id: String(org), name: o.org_name }, { id: String(org2), name: `org ${org2}` }], ['id']);
    wantEq('orgs', (await orgs.findBy({ id: In([String(org), String(org2)]) })).map((x) => x.name).sort(), [o.org_name, `org ${org2}`].sort());
  });

  const d = s.doomed;
  await step('delete({email}), remove(entity)', async () => {
    await users.insert(fields(org, d));
    wantEq('affected', (await users.delete({ email: s.doomed_lookup })).affected, 1);
    wantEq('count', await users.countBy({ email: s.doomed_lookup }), 0);
    const d2 = await users.findOneBy({ email: o.doomed2_lookup });
    await users.remove(d2);
    wantEq('count doomed2', await users.countBy({ email: o.doomed2_lookup }), 0);
  });

  const rb = o.rolled;
  await step('dataSource.transaction rolled back (with a refusal in a nested transaction: a savepoint)', async () => {
    const rollback = new Error('roll back');
    try {
      await ds.transaction(async (em) => {
        await em.save('User', em.create('User', fields(org, rb)));
        await em.update('User', { id: ids[1] }, { phone: o.rolled_phone });
        wantEq('inside', await em.countBy('User', { email: rb.email }), 1);
        try {
          await em.transaction((sp) => sp.find('User', { order: { email: 'ASC' } }));
          throw new Check('ORDER BY email in the savepoint was not refused');
        } catch (e) {
          const pe = (e && e.driverError) || e;
          if (e instanceof Check || pe.code !== '0A000') throw e;
        }
        if (!sent().some((q) => /ROLLBACK TO SAVEPOINT/i.test(q))) throw new Check(`no ROLLBACK TO SAVEPOINT sent: ${sent().join(' ; ')}`);
        wantEq('after the savepoint', (await em.findOneBy('User', { id: ids[1] })).phone, o.rolled_phone);
        throw rollback;
      });
    } catch (e) {
      if (e !== rollback) throw e;
    }
    wantEq('after rollback', await users.countBy({ email: rb.email }), 0);
    wantEq("u2's phone", (await users.findOneBy({ id: ids[1] })).phone, o.email_phone);
  });

  await step('QueryRunner: nested startTransaction (savepoint) rolled back, outer rolled back; then commit of the contacts', async () => {
    const qr = ds.createQueryRunner();
    await qr.connect();
    try {
      await qr.startTransaction();
      await qr.manager.update('User', { id: ids[3] }, { phone: o.temp_phone });
      await qr.startTransaction();
      await qr.manager.update('User', { id: ids[3] }, { phone: o.rolled_phone });
      wantEq('in the savepoint', (await qr.manager.findOneBy('User', { id: ids[3] })).phone, o.rolled_phone);
      await qr.rollbackTransaction();
      wantEq('after the savepoint', (await qr.manager.findOneBy('User', { id: ids[3] })).phone, o.temp_phone);
      await qr.rollbackTransaction();
      wantEq('after rollback', (await users.findOneBy({ id: ids[3] })).phone, u[3].phone);
      await qr.startTransaction();
      await qr.manager.insert('Contact', s.contacts.map((c) => ({ org_id: String(org), email: c.email, note: c.note })));
      await qr.commitTransaction();
    } finally {
      await qr.release();
    }
    const got = await contacts.find({ where: { org_id: String(org) }, order: { id: 'ASC' } });
    wantRows('contacts', got.map((c) => [c.email, c.note]), s.contacts.map((c) => [c.email, c.note]));
  });

  await step('QueryBuilder: select/where/andWhere/orderBy/skip/take, getMany, getRawMany, getOne, getCount', async () => {
    const qb = () => users.createQueryBuilder('u').where('u.org_id = :org', { org });
    const many = await qb().andWhere('u.email IN (:...emails)', { emails: [o.email_lookup, s.new_lookup, o.no_row_email] }).orderBy('u.id', 'ASC').getMany();
    wantEq('getMany', many.map((x) => x.email), [s.new_email, u[1].email]);
    const page = await qb().orderBy('u.id', 'ASC').skip(1).take(2).getMany();
    wantRows('skip(1).take(2)', page.map(rowOf), s.final.slice(1, 3).map(userRow));
    const raw = await qb().select(['u.name', 'u.email', 'u.birth_date', 'u.api_token']).andWhere('u.email = :e', { e: s.new_lookup }).getRawMany();
    wantEq('getRawMany', raw, [{
      u_name: s.update_name, u_email: s.new_email, u_birth_date: u[0].birth_date, u_api_token: u[0].api_token,
    }]);
    const one = await qb().andWhere('u.ssn = :ssn', { ssn: o.ssn_lookup }).getOne();
    wantRows('getOne', [rowOf(one)], [userRow(s.final[1])]);
    wantEq('getCount', await qb().andWhere('u.email IS NOT NULL').getCount(), u.filter((x) => x.email !== null).length + 1);
    const [rows, count] = await qb().orderBy('u.id', 'ASC').take(1).getManyAndCount();
    wantEq('getManyAndCount', [rows.map((x) => x.name), count], [[u[0].name], s.final.length]);
  });

  await step('relations: find({relations: {org}}), leftJoinAndSelect users → org', async () => {
    const got = await users.find({ where: { email: s.new_lookup }, relations: { org: true } });
    wantEq('find with org', got.map((x) => [x.email, x.org && x.org.name]), [[s.new_email, o.org_name]]);
    const one = await users.createQueryBuilder('u').leftJoinAndSelect('u.org', 'o').where('u.email = :e', { e: s.new_lookup }).getOne();
    wantEq('getOne with org', one && [one.email, one.phone, one.org.name], [s.new_email, s.new_phone, o.org_name]);
  });

  await step('leftJoinAndSelect orgs → users with take (TypeORM\'s DISTINCT subquery)', async () => {
    const got = await orgs.createQueryBuilder('o').leftJoinAndSelect('o.users', 'u')
      .where('o.id IN (:...ids)', { ids: [org, org2] }).orderBy('o.id', 'ASC').take(2).getMany();
    got.forEach((x) => x.users.sort((a, b) => Number(a.id) - Number(b.id)));
    r.info(`take with a join: ${sent().join(' ; ')}`);
    wantEq('orgs', got.map((x) => x.name), [o.org_name, `org ${org2}`]);
    wantRows('users of org', got[0].users.map(rowOf), s.final.map(userRow));
    wantEq('users of org2', got[1].users.map((x) => [x.email, x.phone]), o.org2_rows.map((x) => [x.email, o.bulk_phone]));
    const found = await orgs.find({ where: { id: In([String(org), String(org2)]) }, relations: { users: true }, order: { id: 'ASC' }, take: 1 });
    wantEq('find relations take', found.map((x) => x.users.length), [s.final.length]);
  });

  await step('join of contacts on the shared email blind index (innerJoin on u.email = c.email)', async () => {
    const got = await users.createQueryBuilder('u').innerJoin('Contact', 'c', 'c.email = u.email')
      .select(['u.name AS name', 'u.email AS email', 'c.email AS c_email', 'c.note AS note'])
      .where('u.org_id = :org', { org }).andWhere('c.org_id = :org', { org })
      .orderBy('u.id', 'ASC').addOrderBy('c.id', 'ASC')
      .getRawMany();
    wantRows('join', got.map((x) => [x.name, x.email, x.c_email, x.note]), s.join_expect);
  });

  await step('query() raw SQL with $1, and an UPDATE without the tenant', async () => {
    const got = await ds.query('SELECT name, email, phone, birth_date, api_token FROM users WHERE email = $1', [s.new_lookup]);
    wantRows('rows', got.map((x) => [x.name, x.email, x.phone, x.birth_date, x.api_token]),
      [[s.update_name, s.new_email, s.new_phone, u[0].birth_date, u[0].api_token]]);
    const res = await ds.query('UPDATE users SET phone = $1 WHERE email = $2', [s.new_phone, s.new_lookup]);
    wantEq('UPDATE result', res, [[], 1]);
  });

  await step('QueryBuilder stream() (pg-query-stream: a portal read in batches)', async () => {
    const stream = await users.createQueryBuilder('u').where('u.org_id = :org', { org }).orderBy('u.id', 'ASC').stream();
    const got = [];
    for await (const x of stream) got.push(x);
    wantRows('rows', got.map((x) => ['name', 'email', 'phone', 'ssn', 'birth_date', 'api_token'].map((f) => x[`u_${f}`])),
      s.final.map(userRow));
  });

  await refused("find({order: {email: 'ASC'}}) is refused", () => users.find({ order: { email: 'ASC' } }), ['public.users.email']);
  await refused('findBy({email: Like(…)}) is refused', () => users.findBy({ email: Like(`%${o.like_pattern}%`) }), ['public.users.email']);
  await refused('findBy({email: ILike(…)}) is refused', () => users.findBy({ email: ILike(`${o.like_pattern}%`) }), ['public.users.email']);
  await refused('findBy({email: Raw(lower(…) = :v)}) is refused',
    () => users.findBy({ email: Raw((a) => `lower(${a}) = :v`, { v: o.like_pattern }) }), ['public.users.email']);
  await refused('findBy({phone}) (no blind index) is refused', () => users.findBy({ phone: o.phone_lookup }), ['public.users.phone']);
  await refused('findBy({birth_date: MoreThan(…)}) is refused', () => users.findBy({ birth_date: MoreThan('2000-01-01') }), ['public.users.birth_date']);
  await refused('QueryBuilder distinct email is refused', () => users.createQueryBuilder('u').select('u.email').distinct(true).getRawMany(), ['public.users.email']);
  await refused('QueryBuilder groupBy email is refused',
    () => users.createQueryBuilder('u').select('u.email', 'email').addSelect('count(*)', 'n').groupBy('u.email').getRawMany(), ['public.users.email']);
  await refused('maximum of api_token is refused', () => users.maximum('api_token', { org_id: String(org) }), ['public.users.api_token']);
  await refused('increment api_token is refused', () => users.increment({ id: ids[0] }, 'api_token', 1), ['public.users.api_token']);

  // Moving a row to another tenant (docs/SQL.md, "Tenant moves"): save()
  // sends only the columns that changed (org_id), which would leave the
  // encrypted values sealed under the old tenant: refused, nothing
  // changes. update() with every encrypted column moves it.
  const mv = n.mover;
  await step('mover: save() with a new org_id only is refused (0A000), the row unchanged; update() with every encrypted column moves it', async () => {
    const e = await users.save(users.create(fields(org, mv)));
    e.org_id = String(org2);
    try {
      await users.save(e);
      throw new Check('save() of a new org_id was not refused');
    } catch (err) {
      const pe = (err && err.driverError) || err;
      if (err instanceof Check) throw err;
      if (pe.code !== '0A000' || !String(pe.message).includes('public.users') || !String(pe.message).includes('org_id')) {
        throw new Check(`save() of a new org_id: ${pe.code} ${pe.message}`);
      }
    }
    const still = await users.findOneBy({ id: e.id });
    wantEq('org_id', still.org_id, String(org));
    wantRows('row', [rowOf(still)], [userRow(mv)]);
    const moved = { ...fields(org2, mv), phone: n.mover_phone };
    wantEq('affected', (await users.update({ id: e.id }, moved)).affected, 1);
    const got = await users.findOneBy({ id: e.id });
    wantEq('org_id', got.org_id, String(org2));
    wantRows('moved', [rowOf(got)], [userRow({ ...mv, phone: n.mover_phone })]);
    wantEq('deleted', (await users.delete({ id: e.id })).affected, 1);
  });

  await step('final state', async () => {
    wantRows('rows', (await all()).map(rowOf), s.final.map(userRow));
  });
  await ds.destroy();
}

// synchronize: the application's DataSource writes u1, u2 and u4; then
// the tables' owner runs TypeORM's schema synchronisation through pgveil.
// TypeORM reads the table (information_schema, pg_catalog: through pgveil
// the logical types) and plans DROP COLUMN for every column its
// entities lack (email_bidx, ssn_bidx), DROP INDEX for indexes it does
// not know (users_ssn_bidx), and DROP COLUMN + ADD COLUMN for a column
// whose type differs (email varchar(320) where the catalog says text).
// Each such plan must leave the encrypted table as it is: refused (0A000,
// naming public.users and the column) or not sent; TypeORM runs it in one
// transaction, rolled back on the refusal. Last, the application writes
// node.find_or_create (a user of its own) and reads it back.
async function synchronize(r) {
  const step = (name, fn) => r.step(name, unwrap(fn));
  const n = s.node;
  const app = dataSource(r);
  const u = s.users;
  const { org } = s;
  const fields = (x) => ({
    org_id: String(org), name: x.name, email: x.email, phone: x.phone, ssn: x.ssn, birth_date: x.birth_date, api_token: x.api_token,
  });
  const rows = [u[0], u[1], u[3]];
  await step('the application writes three users', async () => {
    await app.initialize();
    await app.getRepository('User').save(rows.map((x) => app.getRepository('User').create(fields(x))));
  });
  const check = async (what) => {
    const got = await app.getRepository('User').find({ where: { org_id: String(org) }, order: { id: 'ASC' } });
    wantRows(`${what}: rows`, got.map(rowOf), rows.map(userRow));
    const one = await app.getRepository('User').findOneBy({ email: s.lookup_email });
    wantRows(`${what}: lookup by email (blind index)`, one ? [rowOf(one)] : [], [userRow(u[0])]);
    const two = await app.getRepository('User').findOneBy({ ssn: s.orm.ssn_lookup });
    wantRows(`${what}: lookup by ssn (blind index)`, two ? [rowOf(two)] : [], [userRow(u[1])]);
  };

  for (const [label, emailType] of [['text (the catalog\'s types)', 'text'], ['varchar(320) (the application\'s)', 'varchar']]) {
    const owner = dataSource(r, {
      username: n.owner_user, password: n.owner_password, applicationName: 'enc_typeorm_sync', entities: entities(emailType), poolSize: 1,
    });
    let plan = [];
    await step(`synchronize, entities with ${label}: what TypeORM plans`, async () => {
      await owner.initialize();
      const sql = await owner.driver.createSchemaBuilder().log();
      plan = sql.upQueries.map((q) => q.query);
      r.info(`synchronize plan (${label}): ${plan.join(' ; ') || '(nothing)'}`);
    });
    // What an adopting team can accept: TypeORM changes nothing that
    // holds encrypted values or blind indexes, or pgveil refuses the
    // statement that would (0A000, naming the table and the column).
    await step(`dataSource.synchronize() with ${label}: no destructive change, or refused naming public.users and the column`, async () => {
      const destructive = plan.filter((q) => /\b(email|phone|ssn|birth_date|api_token|email_bidx|ssn_bidx)\b/.test(q) && /DROP|ALTER|TYPE/i.test(q));
      try {
        await owner.synchronize();
      } catch (e) {
        const pe = (e && e.driverError) || e;
        const last = r.sql.slice().reverse().find((q) => !/ROLLBACK/i.test(q)) || '';
        const col = (last.match(/"(email|phone|ssn|birth_date|api_token|email_bidx|ssn_bidx)"/) || [])[1];
        r.info(`synchronize (${label}) refused: ${pe.code} ${pe.message} | statement: ${last}`);
        if (pe.code !== '0A000' || !String(pe.message).startsWith('pgveil: ') || !String(pe.message).includes('public.users')
          || (col && !String(pe.message).includes(col))) {
          throw new Check(`synchronize failed with ${pe.code}: ${pe.message} | statement: ${last}`);
        }
        return;
      }
      if (destructive.length) {
        throw new Check(`synchronize was not refused and sent ${destructive.length} destructive statement(s): ${destructive.join(' ; ')}`);
      }
    });
    await owner.destroy().catch(() => {});
    await step(`after synchronize with ${label}: the rows read back and the blind indexes still find them`, async () => {
      await check('after synchronize');
    });
  }
  // What the application writes next goes where pgveil's catalog now
  // says the column is: it must still be sealed (the Go test scans the
  // tables for it) and read back.
  const fresh = n.find_or_create;
  await step('after synchronize: the application writes a new user and reads it back by email', async () => {
    await app.getRepository('User').insert(fields(fresh));
    const got = await app.getRepository('User').findOneBy({ email: fresh.email.toUpperCase() });
    wantRows('row', got ? [rowOf(got)] : [], [userRow(fresh)]);
  });
  await app.destroy();
}

run(async (r) => {
  if (mode === 'synchronize') return synchronize(r);
  return scenario(r);
});
