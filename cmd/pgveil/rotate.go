package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/pgveil/pgveil/cmd/pgveil/internal/ops"
	"github.com/pgveil/pgveil/keysource"
)

func runRotate(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("rotate", stderr, `Rotate data keys: make a new version of each selected column's key (per tenant
where the table has key_context) that new writes use at once on every replica,
re-encrypt every value still under an older version in batches (FOR UPDATE SKIP
LOCKED, as migrate), wait --grace so no replica still writes with an old version,
re-check, then destroy the old versions. Interrupted? Run with --finish.
--master instead rewraps every data key under the configured master key (local:
key_file is the new key and previous_key_files holds the old one; vault: after
rotating the Transit key) without touching rows.
Blind-index keys are not rotated here: see docs/KEYS.md.
Exit 0: done; 1: a problem (retired versions kept); 2: bad usage or config; 130: interrupted.`)
	cfgPath := fs.String("c", "", "config file (required)")
	table := fs.String("table", "", "only this table (schema.table)")
	column := fs.String("column", "", "only this column of --table")
	tenant := fs.String("tenant", "", "only this tenant (key_context value)")
	master := fs.Bool("master", false, "rewrap data keys under the current master key; rows untouched")
	finish := fs.Bool("finish", false, "no new version: finish an earlier rotation (re-encrypt what is left, drop retired versions)")
	keep := fs.Bool("keep-retired", false, "re-encrypt, but keep the retired versions")
	grace := fs.Duration("grace", ops.DefaultGrace, "wait this long after the new versions became active before dropping the old ones (keep it at least the 1m active-key TTL: a shorter one is taken, with a warning)")
	batch := fs.Int("batch", ops.DefaultBatch, "rows per batch transaction")
	workers := fs.Int("workers", ops.DefaultWorkers, "batches in flight at once")
	every := fs.Duration("progress-every", 10*time.Second, "log a progress line this often when stderr is not a terminal")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *batch < 1 || *batch > 50000 || *workers < 1 || *workers > 32 {
		fmt.Fprintln(stderr, "pgveil rotate: --batch must be 1..50000 and --workers 1..32")
		return exitUsage
	}
	if *master && (*table != "" || *column != "" || *tenant != "" || *finish || *keep) {
		fmt.Fprintln(stderr, "pgveil rotate: --master rewraps every data key; it takes no --table, --column, --tenant, --finish or --keep-retired")
		return exitUsage
	}
	if *column != "" && *table == "" {
		fmt.Fprintln(stderr, "pgveil rotate: --column needs --table")
		return exitUsage
	}
	if !*master && !*keep && *grace < keysource.DefaultActiveTTL {
		fmt.Fprintf(stderr, "pgveil rotate: warning: --grace %s is shorter than the %s active-key TTL: a replica that missed the rotation's "+
			"notification may seal values under an old version after it is dropped, and they then read as NULL\n", *grace, keysource.DefaultActiveTTL)
	}
	ctx, in := ops.WatchInterrupts(context.Background(), func() {
		fmt.Fprintln(stderr, "pgveil rotate: stopping after the batches in flight (Ctrl-C again to roll them back)")
	})
	defer in.Close()
	e, code := openOps(ctx, "rotate", *cfgPath, *workers+2, stdout, stderr)
	if e == nil {
		return code
	}
	defer e.Close()
	e.ProgressEvery = *every
	err := ops.Rotate(ctx, e, ops.RotateOptions{Table: *table, Column: *column, Tenant: *tenant, Master: *master,
		Finish: *finish, KeepRetired: *keep, Grace: *grace, Batch: *batch, Workers: *workers, Stop: in})
	return opsExit("rotate", err, stderr)
}
