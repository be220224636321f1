package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/pgveil/pgveil/cmd/pgveil/internal/ops"
)

func runShred(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("shred", stderr, `Crypto-shred one tenant of a table with key_context: destroy every version of
the tenant's data keys (the values can never be decrypted again; a pgveil replica
reads them as NULL once it gets the pgveil_keys notification, or once its
listener reconnects if it was down: docs/SHREDDING.md), set the tenant's blind
indexes to NULL, and log an audit line. This cannot be undone. Refuses, changing
nothing, while the table is migrating or decrypting or the tenant has values
without an envelope. Asks to type the tenant value back unless --yes; without a
terminal, --yes is required.
Exit 0: done; 1: failed or refused (rerun it: it is idempotent); 2: bad usage or
config, or no terminal and no --yes.`)
	cfgPath := fs.String("c", "", "config file (required)")
	table := fs.String("table", "", "the table (schema.table; required)")
	tenant := fs.String("tenant", "", "the key_context value of the tenant (required)")
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	batch := fs.Int("batch", 10000, "rows per blind-index clearing transaction")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *table == "" || *tenant == "" {
		fmt.Fprintln(stderr, "pgveil shred: --table and --tenant are required")
		return exitUsage
	}
	stdin, isTTY := os.Stdin, term.IsTerminal(int(os.Stdin.Fd()))
	if !*yes && !isTTY {
		fmt.Fprintln(stderr, "pgveil shred: refusing to destroy keys without confirmation: no terminal to ask on; pass --yes")
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	e, code := openOps(ctx, "shred", *cfgPath, 2, stdout, stderr)
	if e == nil {
		return code
	}
	defer e.Close()
	o := ops.ShredOptions{Table: *table, Tenant: *tenant, Batch: *batch}
	t, canonical, rows, err := ops.ShredTarget(ctx, e, o)
	if err != nil {
		return opsExit("shred", err, stderr)
	}
	if !*yes {
		fmt.Fprintf(stderr, "This destroys the data keys of tenant %s = %s in %s (%d rows): their encrypted values can never be read again.\nType the tenant value to confirm: ",
			t.KeyContext, canonical, t.QualifiedName(), rows)
		line, _ := bufio.NewReader(stdin).ReadString('\n')
		if strings.TrimSpace(line) != *tenant && strings.TrimSpace(line) != canonical {
			fmt.Fprintln(stderr, "pgveil shred: not confirmed; nothing was changed")
			return exitProblem
		}
	}
	if rows == 0 {
		// A mistyped value shreds nothing and would otherwise look done.
		fmt.Fprintf(stderr, "pgveil shred: warning: no row of %s has %s = %s; is --tenant right?\n", t.QualifiedName(), t.KeyContext, canonical)
	}
	res, err := ops.Shred(ctx, e, o)
	if res != nil {
		// The keys are destroyed even when a later step reports a problem.
		fmt.Fprintf(stdout, "shredded tenant %s = %s of %s: %d data key(s) destroyed (%s), blind indexes cleared in %d row(s)\n",
			t.KeyContext, canonical, t.QualifiedName(), len(res.KeyIDs), fmtIDs(res.KeyIDs), res.Cleared)
	}
	if err != nil {
		return opsExit("shred", err, stderr)
	}
	return exitOK
}

func fmtIDs(ids []uint32) string {
	if len(ids) == 0 {
		return "none: the tenant has no live data key, already shredded or never written"
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return "key ids " + strings.Join(s, ", ")
}
