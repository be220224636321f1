package main

import (
	"fmt"
	"io"

	"github.com/pgveil/pgveil/keysource"
)

func runKeygen(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("keygen", stderr, `Write a new random 256-bit master key (base64) to a file with mode 0600.
An existing file is never overwritten: losing a master key makes every value
encrypted under it unreadable. Point keysource.local.key_file at the file.`)
	out := fs.String("o", "pgveil-master.key", "file to write")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if err := keysource.GenerateKeyFile(*out); err != nil {
		fmt.Fprintf(stderr, "pgveil keygen: %v\n", err)
		return exitProblem
	}
	fmt.Fprintf(stdout, "wrote a new master key to %s (mode 0600); keep a copy somewhere safe\n", *out)
	return exitOK
}
