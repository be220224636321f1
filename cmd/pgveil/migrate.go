package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/pgveil/pgveil/cmd/pgveil/internal/ops"
)

func runMigrate(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("migrate", stderr, `Encrypt the existing plaintext of the configured tables in place, online.
Without --apply, print the plan: the DDL it would run and how many values of each
column it would encrypt. With --apply: add missing blind-index columns, build
their indexes CONCURRENTLY, create the keys, mark the table "migrating" (every
pgveil replica then reads values without an envelope as legacy plaintext), then
encrypt in batches — one short transaction each, rows locked with FOR UPDATE
SKIP LOCKED, walking the primary key — and mark the table "complete".
Safe to stop and rerun at any point: finished values are recognised and skipped,
never encrypted twice. The first Ctrl-C (SIGINT/SIGTERM) lets the batches in
flight commit and exits 130; a second one rolls them back.
--prepare stops after the DDL, keys and state: run it before pgveil serves the
table, then again without --prepare once the application goes through pgveil.
--decrypt reverses everything for leaving pgveil (docs/ADOPTION.md).
Exit 0: done; 1: a problem (the table keeps its state; rerun when fixed);
2: bad usage or config; 130: interrupted.`)
	cfgPath := fs.String("c", "", "config file (required)")
	apply := fs.Bool("apply", false, "carry the plan out (default: print it)")
	prepare := fs.Bool("prepare", false, "with --apply: DDL, keys and state only; no rows are touched")
	decrypt := fs.Bool("decrypt", false, "write plaintext back and clear blind indexes (leaving pgveil)")
	table := fs.String("table", "", "only this table (schema.table; default: every configured table)")
	batch := fs.Int("batch", ops.DefaultBatch, "rows per batch transaction")
	workers := fs.Int("workers", ops.DefaultWorkers, "batches in flight at once")
	every := fs.Duration("progress-every", 10*time.Second, "log a progress line this often when stderr is not a terminal")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *batch < 1 || *batch > 50000 || *workers < 1 || *workers > 32 {
		fmt.Fprintln(stderr, "pgveil migrate: --batch must be 1..50000 and --workers 1..32")
		return exitUsage
	}
	if *prepare && (!*apply || *decrypt) {
		fmt.Fprintln(stderr, "pgveil migrate: --prepare goes with --apply, and not with --decrypt")
		return exitUsage
	}
	ctx, in := ops.WatchInterrupts(context.Background(), func() {
		fmt.Fprintln(stderr, "pgveil migrate: stopping after the batches in flight (Ctrl-C again to roll them back)")
	})
	defer in.Close()
	e, code := openOps(ctx, "migrate", *cfgPath, *workers+2, stdout, stderr)
	if e == nil {
		return code
	}
	defer e.Close()
	e.ProgressEvery = *every
	err := ops.Migrate(ctx, e, ops.MigrateOptions{Table: *table, Apply: *apply, Prepare: *prepare, Decrypt: *decrypt,
		Batch: *batch, Workers: *workers, Stop: in})
	return opsExit("migrate", err, stderr)
}
