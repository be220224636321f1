package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/pgveil/pgveil/cmd/pgveil/internal/ops"
)

func runHealthcheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("healthcheck", stderr, `GET a pgveil admin endpoint and exit 0 if it answers 200, else 1. The
Dockerfile's HEALTHCHECK runs it, so the runtime image needs no curl or shell.`)
	url := fs.String("url", "http://127.0.0.1:9187/healthz", "URL to GET (/healthz: alive; /readyz: ready for new sessions)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := ops.Healthcheck(ctx, *url); err != nil {
		fmt.Fprintf(stderr, "pgveil healthcheck: %v\n", err)
		return exitProblem
	}
	return exitOK
}
