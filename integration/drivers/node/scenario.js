'use strict';
// The encryption scenario of pgveil's end-to-end suite, with node-postgres
// (npm `pg`), run by integration/enc_node_test.go:
//
//   node scenario.js SPEC.json
//
// SPEC.json is the Go test's encSpec: connection, values and expected
// results. Statements run both as prepared (named) statements, executed
// more than once so the server-side statement is reused, and as unnamed
// ones. Every step prints "ok <step>" or "FAIL <step>: …"; the exit
// status is 1 if any step failed. node-postgres core has no COPY API, so
// there is no COPY phase here.

const fs = require('fs');
const { Client, types } = require('pg');

// Dates as the server sends them (YYYY-MM-DD), not JavaScript Dates in
// the local time zone; int8 stays a string (node-postgres' default).
types.setTypeParser(1082, (v) => v);

const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
let failures = 0;

function show(v) {
  if (v === null || v === undefined) return 'NULL';
  const s = JSON.stringify(v);
  return s.length > 120 ? `${s.slice(0, 100)}… (${String(v).length} chars)` : s;
}

function norm(v) {
  if (v === null || v === undefined) return null;
  return String(v);
}

function sameRows(got, want) {
  if (got.length !== want.length) return `got ${got.length} rows, want ${want.length}: ${show(got.map((r) => r.map(norm)))}`;
  for (let i = 0; i < got.length; i++) {
    if (got[i].length !== want[i].length) return `row ${i}: ${got[i].length} fields, want ${want[i].length}`;
    for (let j = 0; j < got[i].length; j++) {
      if (norm(got[i][j]) !== want[i][j]) return `row ${i} field ${j}: got ${show(norm(got[i][j]))}, want ${show(want[i][j])}`;
    }
  }
  return null;
}

function userRow(u) {
  return [u.name, u.email, u.phone, u.ssn, u.birth_date, u.api_token];
}

function userValues(org, u) {
  return [org, u.name, u.email, u.phone, u.ssn, u.birth_date, u.api_token];
}

async function step(client, st) {
  const query = { text: st.text, values: st.values || [], rowMode: 'array' };
  if (st.prepared) query.name = st.prepared;
  let res;
  try {
    res = await client.query(query);
  } catch (e) {
    failures++;
    console.log(`FAIL ${st.name}: ${e.code || ''} ${e.message}`);
    return;
  }
  let problem = null;
  if (st.want) problem = sameRows(res.rows, st.want);
  if (!problem && st.affected !== undefined && res.rowCount !== st.affected) {
    problem = `rowCount ${res.rowCount}, want ${st.affected}`;
  }
  if (problem) {
    failures++;
    console.log(`FAIL ${st.name}: ${problem}`);
  } else {
    console.log(`ok ${st.name}`);
  }
}

async function main() {
  const client = new Client({
    host: spec.host, port: spec.port, user: spec.user, password: spec.password, database: spec.dbname,
    application_name: 'enc_node',
  });
  await client.connect();
  const s = spec;
  const u = s.users;
  const cols = 'name, email, phone, ssn, birth_date, api_token';
  const ins = `INSERT INTO users (org_id, ${cols}) VALUES `;
  const one = (...vs) => [vs];
  const col = (vs) => vs.map((v) => [v]);

  await step(client, {
    name: 'insert one RETURNING (prepared)', prepared: 'enc_insert_user',
    text: `${ins}($1, $2, $3, $4, $5, $6, $7) RETURNING email, phone, birth_date, api_token`,
    values: userValues(s.org, u[0]), want: one(u[0].email, u[0].phone, u[0].birth_date, u[0].api_token), affected: 1,
  });
  // The rest, the first two with the same prepared statement (reused
  // server-side), the others in one unnamed multi-row INSERT.
  for (const usr of u.slice(1, 3)) {
    await step(client, {
      name: `insert ${usr.name} (prepared, reused)`, prepared: 'enc_insert_user',
      text: `${ins}($1, $2, $3, $4, $5, $6, $7) RETURNING email, phone, birth_date, api_token`,
      values: userValues(s.org, usr), want: one(usr.email, usr.phone, usr.birth_date, usr.api_token), affected: 1,
    });
  }
  const rest = u.slice(3);
  await step(client, {
    name: 'insert many (unnamed)',
    text: ins + rest.map((_, i) => `($${7 * i + 1}, $${7 * i + 2}, $${7 * i + 3}, $${7 * i + 4}, $${7 * i + 5}, $${7 * i + 6}, $${7 * i + 7})`).join(', '),
    values: rest.flatMap((usr) => userValues(s.org, usr)), affected: rest.length,
  });
  const find = { prepared: 'enc_find_by_email', text: `SELECT ${cols} FROM users WHERE email = $1` };
  await step(client, { ...find, name: 'find by email (prepared)', values: [s.lookup_email], want: [userRow(u[0])], affected: 1 });
  await step(client, { ...find, name: 'find by email (prepared, again)', values: [s.lookup_email.trim().toLowerCase()], want: [userRow(u[0])], affected: 1 });
  await step(client, {
    name: 'find by email (unnamed)', text: `SELECT ${cols} FROM users WHERE email = $1`,
    values: [s.lookup_email], want: [userRow(u[0])], affected: 1,
  });
  await step(client, {
    name: 'read all (NULLs, Unicode, empty, 1 MiB)', text: `SELECT ${cols} FROM users WHERE org_id = $1 ORDER BY id`,
    values: [s.org], want: u.map(userRow), affected: u.length,
  });
  await step(client, {
    name: 'IN', text: 'SELECT email FROM users WHERE email IN ($1, $2, $3) ORDER BY id',
    values: s.in_emails, want: col(s.in_expect),
  });
  await step(client, {
    name: '= ANY($1) (prepared)', prepared: 'enc_any', text: 'SELECT email FROM users WHERE email = ANY($1) ORDER BY id',
    values: [s.any_emails], want: col(s.any_expect),
  });
  await step(client, {
    name: '1 MiB blind-index lookup', text: 'SELECT name FROM users WHERE ssn = $1', values: [s.big_ssn], want: [[s.big_name]],
  });
  await step(client, {
    name: 'phone IS NULL', text: 'SELECT name FROM users WHERE org_id = $1 AND phone IS NULL ORDER BY id',
    values: [s.org], want: col(s.null_phone_names),
  });
  await step(client, {
    name: 'email IS NULL', text: 'SELECT name FROM users WHERE org_id = $1 AND email IS NULL ORDER BY id',
    values: [s.org], want: col(s.null_email_names),
  });
  await step(client, {
    name: 'UPDATE RETURNING (prepared)', prepared: 'enc_update',
    text: 'UPDATE users SET email = $1, phone = $2 WHERE org_id = $3 AND name = $4 RETURNING email, phone',
    values: [s.new_email, s.new_phone, s.org, s.update_name], want: one(s.new_email, s.new_phone), affected: 1,
  });
  await step(client, { ...find, name: 'old email gone', values: [s.old_email], want: [] });
  await step(client, {
    name: 'new email found', text: 'SELECT name FROM users WHERE email = $1', values: [s.new_lookup], want: [[s.update_name]],
  });
  const up = s.upsert;
  const upsert = 'INSERT INTO users (org_id, name, email, phone) VALUES ($1, $2, $3, $4) ON CONFLICT (email) DO ';
  await step(client, {
    name: 'ON CONFLICT DO NOTHING (new)', prepared: 'enc_upsert_nothing', text: `${upsert}NOTHING`,
    values: [s.org, up.name, up.email, up.phone], affected: 1,
  });
  await step(client, {
    name: 'ON CONFLICT DO NOTHING (conflict)', prepared: 'enc_upsert_nothing', text: `${upsert}NOTHING`,
    values: [s.org, up.name, s.upsert_variant, s.upsert_phone2], affected: 0,
  });
  await step(client, {
    name: 'ON CONFLICT DO UPDATE RETURNING', text: `${upsert}UPDATE SET phone = EXCLUDED.phone RETURNING email, phone`,
    values: [s.org, up.name, s.upsert_variant, s.upsert_phone2], want: one(up.email, s.upsert_phone2), affected: 1,
  });
  const d = s.doomed;
  await step(client, {
    name: 'insert doomed', text: `${ins}($1, $2, $3, $4, $5, $6, $7)`, values: userValues(s.org, d), affected: 1,
  });
  await step(client, {
    name: 'DELETE RETURNING', text: 'DELETE FROM users WHERE email = $1 RETURNING name, email, ssn, birth_date, api_token',
    values: [s.doomed_lookup], want: one(d.name, d.email, d.ssn, d.birth_date, d.api_token), affected: 1,
  });
  await step(client, {
    name: 'deleted row gone', text: 'SELECT count(*) FROM users WHERE email = $1', values: [s.doomed_lookup], want: [['0']],
  });
  for (const c of s.contacts) {
    await step(client, {
      name: 'insert contact (prepared)', prepared: 'enc_insert_contact',
      text: 'INSERT INTO contacts (org_id, email, note) VALUES ($1, $2, $3)', values: [s.org, c.email, c.note], affected: 1,
    });
  }
  await step(client, {
    name: 'JOIN on the shared blind index',
    text: 'SELECT u.name, u.email, c.email, c.note FROM users u JOIN contacts c ON u.email = c.email WHERE u.org_id = $1 AND c.org_id = $1 ORDER BY u.id, c.id',
    values: [s.org], want: s.join_expect,
  });
  await step(client, {
    name: 'final state', text: `SELECT ${cols} FROM users WHERE org_id = $1 ORDER BY id`, values: [s.org], want: s.final.map(userRow),
  });
  await client.end();
}

main().then(
  () => process.exit(failures ? 1 : 0),
  (e) => {
    console.log(`FAIL (driver): ${e.stack || e}`);
    process.exit(1);
  },
);
