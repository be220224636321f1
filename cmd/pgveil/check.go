package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"go.uber.org/zap"
	"golang.org/x/term"

	"github.com/pgveil/pgveil/cmd/pgveil/internal/ops"
	"github.com/pgveil/pgveil/policy"
)

func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("check", stderr, `Validate the config, then compare the policy with the live database over
upstream.service_url: tables and columns exist, encrypted columns are bytea or
text, blind-index columns are bytea with a b-tree index (UNIQUE where the policy
says unique), the key_context column exists, no encrypted column is part of the
primary key, pgveil.keys exists and the master key opens the data keys stored
there; and, reading the first 10,000 rows of each complete table, that no
encrypted column holds values without an envelope (pgveil would refuse them).
Prints each problem with the SQL that fixes it. Changes nothing.
Exit 0: no problem; 1: problems found (or the database is unreachable); 2: bad config.`)
	cfgPath := fs.String("c", "", "config file (required)")
	format := fs.String("format", "text", "text | json (one JSON document, for CI)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintf(stderr, "pgveil check: --format %q: want text or json\n", *format)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, code := openOps(ctx, "check", *cfgPath, 2, stdout, stderr)
	if e == nil {
		if code == exitProblem && *format == "json" {
			// Unreachable database: still one JSON document for CI.
			r := &ops.Report{Config: *cfgPath, Findings: []ops.Finding{{Severity: ops.SevProblem, Code: "connect", Message: "cannot connect to upstream.service_url (see stderr)"}}, Problems: 1}
			r.WriteJSON(stdout)
		}
		return code
	}
	defer e.Close()
	r := ops.Check(ctx, e)
	var err error
	if *format == "json" {
		err = r.WriteJSON(stdout)
	} else {
		err = r.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "pgveil check: %v\n", err)
		return exitProblem
	}
	if !r.OK {
		return exitProblem
	}
	return exitOK
}

// openOps loads the config, builds the logger and connects for one of the
// operator commands (check, migrate, rotate, shred). On failure it prints
// why and returns a nil Env with the exit code: 2 for the config, 1 for
// the database.
func openOps(ctx context.Context, verb, cfgPath string, conns int, stdout, stderr io.Writer) (*ops.Env, int) {
	if cfgPath == "" {
		fmt.Fprintf(stderr, "pgveil %s: -c config.yaml is required (or PGVEIL_CONFIG)\n", verb)
		return nil, exitUsage
	}
	cfg, err := policy.Load(cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "pgveil %s: %v\n", verb, err)
		return nil, exitUsage
	}
	if len(cfg.Tables) == 0 {
		fmt.Fprintf(stderr, "pgveil %s: %s configures no tables\n", verb, cfgPath)
		return nil, exitUsage
	}
	log, err := newLogger(cfg.Log, zap.NewAtomicLevel(), stderr)
	if err != nil {
		fmt.Fprintf(stderr, "pgveil %s: %v\n", verb, err)
		return nil, exitUsage
	}
	e, err := ops.NewEnv(ctx, cfg, "pgveil "+verb, conns, log.With(zap.String("command", verb)), stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "pgveil %s: %v\n", verb, err)
		if errors.Is(err, ops.ErrConfig) {
			return nil, exitUsage
		}
		return nil, exitProblem
	}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		e.Terminal = true
	}
	return e, exitOK
}

// exitInterrupted is the conventional status of a command stopped by SIGINT (128+2).
const exitInterrupted = 130

// opsExit prints err and maps it to an exit code.
func opsExit(verb string, err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var pe *ops.ProblemError
	switch {
	case errors.Is(err, ops.ErrInterrupted):
		fmt.Fprintf(stderr, "pgveil %s: interrupted; the batches in flight were committed. Run the same command again to continue.\n", verb)
		return exitInterrupted
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(stderr, "pgveil %s: stopped; the batches in flight were rolled back. Run the same command again to continue.\n", verb)
		return exitInterrupted
	case errors.Is(err, ops.ErrConfig):
		fmt.Fprintf(stderr, "pgveil %s: %v\n", verb, err)
		return exitUsage
	case errors.As(err, &pe):
		fmt.Fprintf(stderr, "pgveil %s: %s\n", verb, pe.Msg)
		return exitProblem
	}
	fmt.Fprintf(stderr, "pgveil %s: %v\n", verb, err)
	return exitProblem
}
