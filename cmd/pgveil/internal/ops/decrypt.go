package ops

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/pgveil/pgveil/keysource"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// Leaving pgveil (`pgveil migrate --decrypt --apply`), table by table:
//
//  1. pgveil.tables = decrypting: every replica reads values without an
//     envelope as plaintext, so the application sees no gap while rows change.
//  2. Passes write each envelope's plaintext back in place (a text column
//     gets the canonical text, a bytea column its UTF-8 bytes, or the raw
//     bytes for the logical type bytea) and set blind indexes to NULL. A
//     shredded value becomes NULL, as the proxy has been returning it.
//  3. The state stays decrypting. The operator removes the table from the
//     policy and reloads every replica (SIGHUP); from then on pgveil relays
//     the table untouched. Values the proxies sealed between step 2 and the
//     reload are found by running step 2 again with the old config. Then
//     the leftover pgveil.tables row can be deleted (`pgveil check` prints
//     the statement); while it stays it is ignored.
//
// Removing the row at the end of step 2 instead would be wrong: a replica
// that still has the table in its policy then treats it as complete and
// fails on every plaintext value (PV003).

// decryptTable runs steps 1 and 2 for one table.
func decryptTable(ctx context.Context, e *Env, keys *keysource.Keyring, tp *tablePlan, o MigrateOptions) error {
	name := tp.pol.QualifiedName()
	tg, err := newTarget(tp.pol, tp.live, false)
	if err != nil {
		return &ProblemError{Msg: err.Error()}
	}
	if tp.state != proxy.TableDecrypting {
		gen, err := setTableState(ctx, e, name, proxy.TableDecrypting)
		if err != nil {
			return err
		}
		e.Log.Info("table state", zap.String("table", name), zap.String("state", proxy.TableDecrypting))
		fmt.Fprintf(e.Out, "%s: state decrypting (every pgveil replica now reads plaintext and envelopes alike)\n", name)
		// No plaintext is written back before every replica reads it.
		if err := settleState(ctx, e, name, proxy.TableDecrypting, gen); err != nil {
			return err
		}
	}
	d := &decrypter{keys: keys, t: tg}
	cols := tp.pol.Columns
	idx := indexed(tg, cols)
	p := &pass{t: tg, cols: cols, idx: idx, batch: o.Batch, workers: o.Workers, keys: keys}
	p.pred = decryptPredicate(tg, cols, idx)
	p.work = func(ctx context.Context, r *row) error { return d.work(ctx, p, r) }
	st, err := runPasses(ctx, e, p, "decrypt "+name, o)
	if errors.Is(err, errKeptAppearing) {
		// The replicas seal what the application writes until the table
		// leaves their policy (step 3): with an application writing through
		// them, every pass finds new envelopes. Not a writer that bypasses
		// pgveil, and not a failure of this step.
		e.Log.Info("values sealed by pgveil while decrypting", zap.String("table", name))
		fmt.Fprintf(e.Out, "%s: the application kept writing through pgveil while this ran; pgveil seals what it writes until the table leaves the policy, so the values written meanwhile are still sealed (the run after the reload, below, decrypts them)\n", name)
		err = nil
	}
	if err != nil {
		return err
	}
	if len(st.Problems) > 0 {
		return &ProblemError{Msg: fmt.Sprintf("%s: some values could not be decrypted and were left as they are:\n  - %s", name, strings.Join(st.problemLines(), "\n  - "))}
	}
	fmt.Fprintf(e.Out, "%s: every value is plaintext. Next: remove %s from the policy, reload every pgveil replica (SIGHUP), "+
		"then run this command once more with the old config to catch values written meanwhile (docs/ADOPTION.md, \"Leaving pgveil\").\n", name, name)
	return nil
}

// decryptPredicate: some value is sealed, or a blind index is set.
func decryptPredicate(t *target, cols []*policy.Column, idx []ixTarget) func(a *args) string {
	return func(a *args) string {
		var ps []string
		for _, c := range cols {
			qc := col(c.Name)
			ps = append(ps, fmt.Sprintf("(%s IS NOT NULL AND %s)", qc, sealedSQL(qc, t.physical[c])))
		}
		for _, x := range idx {
			ps = append(ps, fmt.Sprintf("%s IS NOT NULL", col(x.bi.Column)))
		}
		return orJoin(ps)
	}
}

type decrypter struct {
	keys *keysource.Keyring
	t    *target
}

func (d *decrypter) work(ctx context.Context, p *pass, r *row) error {
	var problem error
	for i, c := range p.cols {
		v := r.vals[i]
		if v == nil || !sealedGo(v, d.t.physical[c]) {
			continue
		}
		tenant, has, err := d.t.tenantOf(r)
		if err != nil {
			return err
		}
		pt, err := d.keys.OpenFor(ctx, c, tenant, has, v, nil)
		switch {
		case errors.Is(err, keysource.ErrShredded):
			if lc := d.t.live.Cols[c.Name]; lc != nil && lc.NotNull {
				// NULL would fail the whole batch (23502): leave the
				// envelope and say what to do.
				problem = cmp.Or(problem, error(&rowProblem{kind: fmt.Sprintf("%s: the key is shredded, so the value is NULL, but the column is NOT NULL: "+
					"delete these rows (or ALTER TABLE %s ALTER COLUMN %s DROP NOT NULL) and run again", c.Name, d.t.name, col(c.Name))}))
				continue
			}
			r.setVal[i], r.newVal[i], r.changed = true, nil, true // reads as NULL through pgveil already
			continue
		case err != nil:
			if err := rowOrFatal(openProblem(c, err), &problem); err != nil {
				return err
			}
			continue
		}
		id, err := keyIDGo(v, d.t.physical[c])
		if err != nil {
			return err // it opened: cannot happen
		}
		r.opened = append(r.opened, id)
		if d.t.physical[c] == policy.OIDText && (!utf8.Valid(pt) || bytes.IndexByte(pt, 0) >= 0) {
			problem = cmp.Or(problem, error(&rowProblem{kind: fmt.Sprintf("%s: plaintext is not valid text for a text column (bytes that are not UTF-8)", c.Name)}))
			continue
		}
		if pt == nil {
			pt = []byte{}
		}
		r.setVal[i], r.newVal[i], r.changed = true, pt, true
	}
	for i := range p.idx {
		if r.hasIdx[i] {
			r.setIdx[i], r.newIdx[i], r.changed = true, nil, true
		}
	}
	return problem
}
