package main

import (
	"fmt"
	"io"
)

func runKeygen(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "pgveil keygen: waiting for keysource")
	return exitProblem
}
