'use strict';
// Shared parts of the Node ORM scenarios of pgveil's encryption suite
// (sequelize_scenario.js, knex_scenario.js), run by
// integration/enc_node_orm_test.go:
//
//   node sequelize_scenario.js SPEC.json
//
// SPEC.json is the Go test's nodeORMSpec: the suite's encSpec (connection,
// users, lookups, expected results), its ormValues under "orm" and the Node
// values under "node". Every step prints "ok <step>" or "FAIL <step>: …",
// with the last SQL the ORM sent when it fails; "info …" lines record what
// the ORM sent where an adopting team wants to know. The exit status is 1
// if any step failed.

const fs = require('fs');

const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));

// Check is a failed assertion of a step.
class Check extends Error {}

function show(v) {
  if (v === null || v === undefined) return 'NULL';
  const s = JSON.stringify(v);
  if (s === undefined) return String(v);
  return s.length > 160 ? `${s.slice(0, 140)}… (${s.length} chars)` : s;
}

// norm renders a value as the spec writes it: NULL as null, everything
// else as its string (dates are strings already: DATEONLY and the date
// type parser give YYYY-MM-DD; int8 is a string in node-postgres).
function norm(v) {
  if (v === null || v === undefined) return null;
  if (Buffer.isBuffer(v)) return `<${v.length} bytes>`;
  return String(v);
}

function sameRows(got, want) {
  const g = got.map((r) => r.map(norm));
  if (g.length !== want.length) return `got ${g.length} rows, want ${want.length}: ${show(g)}`;
  for (let i = 0; i < g.length; i++) {
    if (g[i].length !== want[i].length) return `row ${i}: ${g[i].length} fields, want ${want[i].length}`;
    for (let j = 0; j < g[i].length; j++) {
      if (g[i][j] !== want[i][j]) return `row ${i} field ${j}: got ${show(g[i][j])}, want ${show(want[i][j])}`;
    }
  }
  return null;
}

// wantEq compares two JSON-able values (rows of normalised values, lists,
// objects) and throws a Check naming what differs.
function wantEq(what, got, want) {
  if (JSON.stringify(got) !== JSON.stringify(want)) throw new Check(`${what}: got ${show(got)}, want ${show(want)}`);
}

function wantRows(what, got, want) {
  const problem = sameRows(got, want);
  if (problem) throw new Check(`${what}: ${problem}`);
}

// The users fields the scenarios read back, in the spec's row order.
const FIELDS = ['name', 'email', 'phone', 'ssn', 'birth_date', 'api_token'];

function userRow(u) {
  return FIELDS.map((f) => u[f]);
}

// rowOf reads FIELDS from a record (a Sequelize instance or a plain row).
function rowOf(r) {
  const get = typeof r.get === 'function' ? (f) => r.get(f) : (f) => r[f];
  return FIELDS.map((f) => get(f));
}

// checkTypes: the ORM got the types it expects, not bytes of bytea:
// strings for the text columns, 'YYYY-MM-DD' for the date, a decimal
// string for int8 (node-postgres never makes a JavaScript number of it).
function checkTypes(r) {
  const [, email, phone, ssn, birth, token] = rowOf(r);
  for (const [f, v] of [['email', email], ['phone', phone], ['ssn', ssn], ['birth_date', birth], ['api_token', token]]) {
    if (v !== null && typeof v !== 'string') throw new Check(`${f} is ${Buffer.isBuffer(v) ? 'a Buffer' : typeof v}, want a string`);
  }
  if (birth !== null && !/^\d{4}-\d{2}-\d{2}$/.test(birth)) throw new Check(`birth_date ${show(birth)} is not YYYY-MM-DD`);
  if (token !== null && !/^-?\d+$/.test(token)) throw new Check(`api_token ${show(token)} is not decimal`);
}

// pgError finds the server's error under an ORM's wrapper (Sequelize:
// err.parent; Knex rethrows node-postgres' error with the SQL prepended to
// its message).
function pgError(e) {
  const pe = (e && (e.parent || e.original)) || e;
  let message = String((pe && pe.message) || '');
  const at = message.indexOf('pgveil: ');
  if (at > 0) message = message.slice(at);
  return { code: pe && pe.code, message, hint: pe && pe.hint, detail: pe && pe.detail };
}

// The runner: steps, refusals, the SQL sent.
class Runner {
  constructor() {
    this.failures = 0;
    this.sql = [];
  }

  // record keeps a statement the ORM sent (shortened: a value can be
  // 1 MiB) for failure messages and info lines.
  record(text, params) {
    let s = String(text);
    if (s.length > 400) s = `${s.slice(0, 380)}… (${s.length} chars)`;
    if (params && params.length) s += ` -- ${params.length} parameter(s)`;
    this.sql.push(s);
    if (this.sql.length > 50) this.sql.shift();
  }

  sent() {
    return this.sql.length ? ` | last SQL sent: ${this.sql[this.sql.length - 1]}` : '';
  }

  info(line) {
    console.log(`info ${line}`);
  }

  fail(name, msg) {
    this.failures++;
    console.log(`FAIL ${name}: ${msg}`);
  }

  async step(name, fn) {
    this.sql = [];
    try {
      await fn();
    } catch (e) {
      if (e instanceof Check) return this.fail(name, `${e.message}${this.sent()}`);
      const pe = pgError(e);
      return this.fail(name, `${e.name || 'Error'} ${pe.code || ''}: ${pe.message || e}${this.sent()}`);
    }
    console.log(`ok ${name}`);
  }

  // refused: fn must fail with pgveil's refusal: SQLSTATE code and a
  // message that is pgveil's and names each of needles (table.column).
  // after, if given, runs next and checks nothing changed.
  async refused(name, fn, needles, code = '0A000', hintNeedles = []) {
    this.sql = [];
    try {
      await fn();
    } catch (e) {
      if (e instanceof Check) return this.fail(name, `${e.message}${this.sent()}`);
      const pe = pgError(e);
      if (pe.code !== code) return this.fail(name, `${e.name || 'Error'} SQLSTATE ${pe.code}, want ${code}: ${pe.message}${this.sent()}`);
      const missing = needles.filter((n) => !pe.message.includes(n));
      if (missing.length || !pe.message.startsWith('pgveil: ')) {
        return this.fail(name, `message ${show(pe.message)} does not name ${show(missing.length ? missing : 'pgveil')}`);
      }
      const missingHint = hintNeedles.filter((n) => !(pe.hint || '').includes(n));
      if (missingHint.length) return this.fail(name, `hint ${show(pe.hint)} does not name ${show(missingHint)}`);
      console.log(`ok ${name} (${e.name || 'Error'} ${pe.code}: ${pe.message}${pe.hint ? ` HINT: ${pe.hint}` : ''})`);
      return;
    }
    this.fail(name, `was not refused${this.sent()}`);
  }
}

// run runs main(runner) and exits 1 if a step failed or main threw.
function run(main) {
  const r = new Runner();
  main(r).then(
    () => process.exit(r.failures ? 1 : 0),
    (e) => {
      console.log(`FAIL (driver): ${(e && e.stack) || e}`.replace(/\n/g, ' | '));
      process.exit(1);
    },
  );
}

module.exports = {
  spec, Check, show, norm, sameRows, wantEq, wantRows, FIELDS, userRow, rowOf, checkTypes, pgError, Runner, run,
};
