package rewrite

import (
	"strings"
	"testing"
)

// Whole rows in PL/pgSQL bodies (the HIGH review 13 left open): a row
// variable, a record, NEW or OLD names no column, so the text test of
// bodyText let `r::text LIKE '<literal>'` through, and PostgreSQL 15 kept
// the literal in pg_proc.prosrc. plpgsqlRows reads the body with the
// PL/pgSQL parser.
func TestPlpgsqlWholeRowRefused(t *testing.T) {
	p := newTestPlanner(t)
	rev13Refused(t, p, publicPath,
		// A variable of the table's row type, %ROWTYPE, a record.
		`CREATE FUNCTION f(i int) RETURNS bool LANGUAGE plpgsql AS $$DECLARE r contacts; BEGIN SELECT * INTO r FROM contacts WHERE id = i; RETURN r::text LIKE '%`+rev4Leak+`%'; END$$`,
		`CREATE FUNCTION f(i int) RETURNS bool LANGUAGE plpgsql AS $$DECLARE r public.contacts%ROWTYPE; BEGIN SELECT * INTO r FROM contacts WHERE id = i; RETURN position('`+rev4Leak+`' in r::text) > 0; END$$`,
		`CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$DECLARE rec record; n int := 0; BEGIN FOR rec IN SELECT * FROM contacts LOOP IF row_to_json(rec)->>'e' || 'mail' = '`+rev4Leak+`' THEN n := n + 1; END IF; END LOOP; RETURN n; END$$`,
		`CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$DECLARE r contacts; BEGIN r := ROW(1, 1, '`+rev4Leak+`', null, null, null)::contacts; INSERT INTO orgs SELECT r.id; END$$`,
		`CREATE FUNCTION f() RETURNS bool LANGUAGE plpgsql AS $$DECLARE r "contacts"; BEGIN RETURN r = ROW(1, 1, '`+rev4Leak+`', null, null, null)::"contacts"; END$$`,
		// Trigger functions: NEW and OLD.
		`CREATE FUNCTION t() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN IF NEW::text LIKE '%`+rev4Leak+`%' THEN RETURN NULL; END IF; RETURN NEW; END$$`,
		`CREATE FUNCTION t() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW := jsonb_populate_record(NEW, '{"e":"`+rev4Leak+`"}'); RETURN NEW; END$$`,
		`CREATE OR REPLACE FUNCTION public.t() RETURNS pg_catalog.trigger AS $$BEGIN IF TG_OP = 'INSERT' AND to_jsonb(NEW) @> '{"x":"`+rev4Leak+`"}' THEN RETURN NULL; END IF; RETURN NEW; END$$ LANGUAGE plpgsql`,
		// DO blocks.
		`DO $$DECLARE r contacts; BEGIN FOR r IN SELECT * FROM contacts LOOP RAISE NOTICE '%', r::text = '`+rev4Leak+`'; END LOOP; END$$`,
		// Bodies pg_query's PL/pgSQL parser cannot read (a field of a
		// record assigned) that may hold a row: refused, fail closed.
		`CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$DECLARE r record; BEGIN SELECT * INTO r FROM contacts LIMIT 1; r.id := 2; PERFORM r::text = '`+rev4Leak+`'; END$$`,
	)
}

// What plpgsqlRows lets through: rows used without constants, constants
// in other parts of a condition, fields by name, and bodies without rows.
func TestPlpgsqlWholeRowHolds(t *testing.T) {
	p := newTestPlanner(t)
	for _, sql := range []string{
		`CREATE FUNCTION t() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN IF TG_OP = 'UPDATE' AND NEW IS DISTINCT FROM OLD THEN NEW.updated_at := now(); END IF; RETURN NEW; END$$`,
		`CREATE FUNCTION t() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.id := NEW.id + 1; RETURN NEW; END$$`,
		`CREATE FUNCTION t() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN IF NEW.id = 3 THEN RETURN OLD; END IF; RETURN NULL; END$$`,
		`CREATE FUNCTION f(i int) RETURNS int LANGUAGE plpgsql AS $$DECLARE n int := 0; s text; BEGIN SELECT count(*) INTO n FROM orgs WHERE id = i AND name = 'x'; s := 'a' || n; RETURN n; END$$`,
		`CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$DECLARE r orgs; BEGIN SELECT * INTO r FROM orgs LIMIT 1; IF r::text LIKE '%x%' THEN RETURN; END IF; END$$`,
		`DO $$BEGIN RAISE NOTICE 'hello %', 1; END$$`,
		`CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$DECLARE n int; BEGIN n.x := 1; END$$`, // unreadable, holds no row: the server judges it
	} {
		if _, err := p.Plan(sql, publicPath); err != nil {
			t.Errorf("%s\n refused: %v", sql, err)
		}
	}
	_, err := p.Plan(`CREATE FUNCTION t() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN IF NEW::text LIKE '%`+rev4Leak+`%' THEN RETURN NULL; END IF; RETURN NEW; END$$`, publicPath)
	if err == nil || strings.Contains(err.Error(), rev4Leak) || !strings.Contains(err.Error(), "whole row") {
		t.Errorf("refusal must explain itself without the literal: %v", err)
	}
}
