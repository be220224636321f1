package ops

import (
	"context"
	"fmt"
	"os/user"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// ShredOptions are `pgveil shred`'s flags.
type ShredOptions struct {
	Table  string
	Tenant string // the key_context value, as SQL text input ("42", a uuid, …)
	Batch  int
}

// ShredTarget resolves and checks what Shred would destroy, for the
// confirmation prompt: the table, the tenant's canonical form and how many
// rows it has. It refuses (a *ProblemError, nothing changed) when shredding
// keys would not erase the tenant's values: the table is migrating or
// decrypting, or the tenant has values without an envelope (plaintext at
// rest, which no key protects).
func ShredTarget(ctx context.Context, e *Env, o ShredOptions) (*policy.Table, string, int64, error) {
	if o.Table == "" || o.Tenant == "" {
		return nil, "", 0, fmt.Errorf("%w: --table and --tenant are required", ErrConfig)
	}
	tables, err := e.tables(o.Table)
	if err != nil {
		return nil, "", 0, err
	}
	t := tables[0]
	if t.KeyContext == "" {
		return nil, "", 0, fmt.Errorf("%w: %s has no key_context in the policy: its keys are not per tenant, so one tenant cannot be shredded", ErrConfig, t.QualifiedName())
	}
	tg, err := loadTargets(ctx, e, tables, false)
	if err != nil {
		return nil, "", 0, err
	}
	tenant, err := operatorTenant(tg[0].tenant, o.Tenant)
	if err != nil {
		return nil, "", 0, fmt.Errorf("%w: --tenant %q is not a valid %s value: %v", ErrConfig, o.Tenant, tg[0].tenant.TypeName, err)
	}
	rows, err := e.TableStates(ctx)
	if err != nil {
		return nil, "", 0, fmt.Errorf("reading pgveil.tables: %w", err)
	}
	switch rows.States()[t.QualifiedName()] {
	case proxy.TableMigrating:
		return nil, "", 0, &ProblemError{Msg: fmt.Sprintf("%s is in state migrating: its values not encrypted yet are plaintext at rest, which destroying the tenant's keys does not erase "+
			"(the backfill would then seal them under a new key of the tenant, readable again). Finish the backfill first (`pgveil migrate --apply` until the table is complete), then shred; nothing was changed",
			t.QualifiedName())}
	case proxy.TableDecrypting:
		return nil, "", 0, &ProblemError{Msg: fmt.Sprintf("%s is in state decrypting (`pgveil migrate --decrypt`): the values decrypted so far are plaintext at rest, which destroying the tenant's keys does not erase. "+
			"Encrypt the table again first (`pgveil migrate --apply` until it is complete), then shred, or delete the tenant's rows on a direct connection; nothing was changed",
			t.QualifiedName())}
	}
	n, unsealed, err := tenantUnsealed(ctx, e, t, tg[0], o.Tenant, tenant)
	if err != nil {
		return nil, "", 0, err
	}
	if unsealed > 0 {
		return nil, "", 0, &ProblemError{Msg: fmt.Sprintf("%d row(s) of tenant %s = %s in %s hold values without an envelope (written around pgveil): they are plaintext at rest, which destroying the tenant's keys does not erase. "+
			"Encrypt them first (`pgveil migrate --apply --table %s`), or set them NULL on a direct connection, then shred; nothing was changed",
			unsealed, t.KeyContext, tenant, t.QualifiedName(), t.QualifiedName())}
	}
	return t, tenant, n, nil
}

// tenantUnsealed counts the tenant's rows, and those holding a value of a
// configured column without an envelope (plaintext at rest).
func tenantUnsealed(ctx context.Context, e *Env, t *policy.Table, tg *target, written, tenant string) (n, unsealed int64, err error) {
	var plain []string
	for _, c := range t.Columns {
		qc := col(c.Name)
		plain = append(plain, fmt.Sprintf("(%s IS NOT NULL AND NOT %s)", qc, sealedSQL(qc, tg.physical[c])))
	}
	err = e.Pool.QueryRow(ctx, fmt.Sprintf("SELECT count(*), count(*) FILTER (WHERE %s) FROM %s WHERE %s",
		orJoin(plain), tg.name, tenantRowsSQL(tg.tenant, col(t.KeyContext), tg.tenant.TypeName)), written, tenant).Scan(&n, &unsealed)
	return n, unsealed, err
}

// ShredResult is what Shred did.
type ShredResult struct {
	KeyIDs  []uint32 // data keys destroyed now (none on a rerun)
	Cleared int64    // rows whose blind indexes were set NULL
}

// Shred crypto-shreds one tenant of a table:
//
//  1. Keyring.Shred: every version of the tenant's data key of every
//     configured column of the table loses its wrapped bytes (a tombstone
//     remains), and NOTIFY pgveil_keys tells every replica to drop them
//     from its cache at once. The tenant's values read as NULL from then on.
//  2. The tenant's blind indexes are set NULL, in batches: the index key is
//     shared by all tenants, so they would otherwise stay linkable and
//     guessable by whoever holds the proxy's keys. Only those of values
//     under a destroyed key (shreddedSQL): the tenant's writes after step 1
//     are sealed under a new version, and their blind indexes stay.
//  3. An audit line: who (OS user, database role), when, table, tenant, key ids.
//
// It is idempotent: a rerun after a crash finishes step 2.
func Shred(ctx context.Context, e *Env, o ShredOptions) (*ShredResult, error) {
	t, tenant, _, err := ShredTarget(ctx, e, o)
	if err != nil {
		return nil, err
	}
	keys, err := e.Keyring(ctx)
	if err != nil {
		return nil, err
	}
	tgs, err := loadTargets(ctx, e, []*policy.Table{t}, false)
	if err != nil {
		return nil, err
	}
	tg := tgs[0]
	start := time.Now()
	ids, err := keys.Shred(ctx, t, tenant)
	if err != nil {
		return nil, err
	}
	res := &ShredResult{KeyIDs: ids}
	var sets, gone []string
	for _, x := range indexed(tg, t.Columns) {
		b, shredded := col(x.bi.Column), shreddedSQL(col(x.c.Name), tg.physical[x.c])
		sets = append(sets, fmt.Sprintf("%[1]s = CASE WHEN %[2]s THEN NULL ELSE %[1]s END", b, shredded))
		gone = append(gone, fmt.Sprintf("(%s IS NOT NULL AND %s)", b, shredded))
	}
	if len(sets) > 0 {
		batch := o.Batch
		if batch <= 0 {
			batch = 10000
		}
		// ctid batches: no primary key needed, each batch a short transaction.
		// The tenant's rows first (by its key_context value), then the rest
		// of the table: a row whose key_context was changed or set NULL
		// around pgveil may hold values under the destroyed keys too (one
		// more scan of the table, which finds none as a rule).
		mine := tenantRowsSQL(tg.tenant, col(t.KeyContext), tg.tenant.TypeName)
		for _, rows := range []string{mine, mine + " IS NOT TRUE"} {
			sql := fmt.Sprintf(`UPDATE %[1]s SET %[2]s WHERE ctid = ANY(ARRAY(
			SELECT ctid FROM %[1]s WHERE %[3]s AND %[4]s LIMIT %[5]d FOR UPDATE)) AND %[4]s`,
				tg.name, strings.Join(sets, ", "), rows, orJoin(gone), batch)
			for {
				tag, err := e.Pool.Exec(ctx, sql, o.Tenant, tenant)
				if err != nil {
					return res, fmt.Errorf("clearing blind indexes of the tenant in %s (the keys are already destroyed; run the same command again): %w", t.QualifiedName(), err)
				}
				res.Cleared += tag.RowsAffected()
				if tag.RowsAffected() == 0 {
					break
				}
			}
		}
	}
	osUser := "unknown"
	if u, err := user.Current(); err == nil {
		osUser = u.Username
	}
	var role, db string
	e.Pool.QueryRow(ctx, `SELECT session_user, current_database()`).Scan(&role, &db)
	e.Log.Info("audit: tenant crypto-shredded",
		zap.String("audit", "shred"),
		zap.String("os_user", osUser),
		zap.String("db_role", role),
		zap.String("database", db),
		zap.Time("at", start.UTC()),
		zap.String("table", t.QualifiedName()),
		zap.String("key_context", t.KeyContext),
		zap.String("tenant", tenant),
		zap.Uint32s("key_ids", ids),
		zap.Int64("blind_index_rows_cleared", res.Cleared),
	)
	// The state was checked before the keys were destroyed: a `pgveil
	// migrate --decrypt` that began in between (or a write around pgveil)
	// may have left plaintext of the tenant, which no key erases. Batches
	// that open a value after the shred skip it (pass.lockOpened); those
	// before it committed their plaintext.
	if _, unsealed, err := tenantUnsealed(ctx, e, t, tg, o.Tenant, tenant); err != nil {
		return res, fmt.Errorf("checking %s for the tenant's plaintext after the shred: %w", t.QualifiedName(), err)
	} else if unsealed > 0 {
		return res, &ProblemError{Msg: fmt.Sprintf("the tenant's keys are destroyed, but %d row(s) of tenant %s = %s in %s hold values without an envelope "+
			"(decrypted by a `pgveil migrate --decrypt` that started while the shred did, or written around pgveil): they are plaintext at rest. "+
			"Set those values NULL or delete the rows on a direct connection",
			unsealed, t.KeyContext, tenant, t.QualifiedName())}
	}
	return res, nil
}
