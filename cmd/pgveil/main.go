// Command pgveil is a PostgreSQL wire-protocol proxy that encrypts chosen
// columns transparently. See README.md and `pgveil --help`.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"time"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

// Exit codes of every command (DESIGN.md "Commands").
const (
	exitOK      = 0
	exitProblem = 1 // a problem found or an operation failed
	exitUsage   = 2 // bad usage or config
)

// command is one verb of the CLI.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"serve", "run the proxy (the default when no verb is given)", runServe},
		{"demo", "start a throwaway Postgres with pgveil in front, until Ctrl-C", runDemo},
		{"keygen", "write a new random 256-bit master key", runKeygen},
		{"check", "compare the policy with the live database; print the DDL that fixes it", runCheck},
		{"migrate", "encrypt existing plaintext in place, online and resumable (--decrypt: reverse)", runMigrate},
		{"rotate", "new data-key versions and re-encryption, or --master: rewrap data keys", runRotate},
		{"shred", "crypto-shred one tenant: destroy its data keys, clear its blind indexes", runShred},
		{"healthcheck", "exit 0 when a pgveil's /healthz answers (for container HEALTHCHECKs)", runHealthcheck},
		{"version", "print the version", runVersion},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	verb := "serve"
	explicit := len(args) > 0 && !strings.HasPrefix(args[0], "-")
	if explicit {
		verb, args = args[0], args[1:]
	}
	// `pgveil --help` is the overview; `pgveil serve --help` the flags.
	if verb == "help" || (!explicit && len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help")) {
		usage(stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == verb {
			return c.run(args, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "pgveil: unknown command %q\n\n", verb)
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `pgveil: transparent column encryption for PostgreSQL.

Point your application's DATABASE_URL at pgveil instead of Postgres; pgveil
encrypts the columns your policy names on the way in and decrypts them on the
way out. Everything else passes through unchanged.

Usage:
  pgveil [command] [flags]

Commands:
`)
	width := 0
	for _, c := range commands() {
		width = max(width, len(c.name))
	}
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.name, c.summary)
	}
	fmt.Fprint(w, `
Run "pgveil <command> --help" for a command's flags. Every flag can also be set
with an environment variable: --log-level is PGVEIL_LOG_LEVEL, -c is PGVEIL_CONFIG.

Exit codes: 0 ok, 1 a problem found or an operation failed, 2 bad usage or config.

Quick start:
  go run ./cmd/pgveil demo          # a throwaway Postgres with pgveil in front
  pgveil keygen -o pgveil-master.key
  pgveil serve -c config.yaml       # see config.example.yaml
`)
}

func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", stderr, "Print the version of this binary.")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	fmt.Fprintf(stdout, "pgveil %s\n", fullVersion())
	return exitOK
}

func fullVersion() string {
	v := version
	if info, ok := debug.ReadBuildInfo(); ok {
		var rev, dirty string
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "+dirty"
				}
			}
		}
		if rev != "" {
			if len(rev) > 12 {
				rev = rev[:12]
			}
			v += " (" + rev + dirty + ")"
		}
		v += " " + info.GoVersion
	}
	return v
}

// newFlagSet makes a flag set whose usage explains the command and maps
// each flag to its PGVEIL_* environment variable.
func newFlagSet(name string, out io.Writer, about string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		var names []string
		fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
		sort.Strings(names)
		fmt.Fprintf(out, "Usage: pgveil %s [flags]\n\n%s\n", name, about)
		if len(names) > 0 {
			fmt.Fprint(out, "\nFlags (each also read from the environment variable shown):\n")
		}
		for _, n := range names {
			f := fs.Lookup(n)
			dash := "--"
			if len(n) == 1 {
				dash = "-"
			}
			def := ""
			if f.DefValue != "" && f.DefValue != "false" {
				def = fmt.Sprintf(" (default %s)", f.DefValue)
			}
			fmt.Fprintf(out, "  %s%s\t%s%s [%s]\n", dash, n, f.Usage, def, envName(n))
		}
	}
	return fs
}

// envName is the environment variable of a flag: --log-level → PGVEIL_LOG_LEVEL.
func envName(flagName string) string {
	if flagName == "c" {
		return "PGVEIL_CONFIG"
	}
	return "PGVEIL_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// wantValue says what a flag takes, for an environment variable's value
// it refused (the flag package says only "parse error").
func wantValue(f *flag.Flag) string {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return ""
	}
	switch g.Get().(type) {
	case bool:
		return ": want true or false (or 1, 0)"
	case int, int64, uint, uint64:
		return ": want an integer"
	case time.Duration:
		return ": want a duration such as 10s or 1m"
	}
	return ""
}

// parseFlags parses args, then fills every flag not given on the command
// line from its PGVEIL_* environment variable. It returns false with the
// exit code when the command should stop (help or bad usage).
func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var bad error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || bad != nil {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if err := fs.Set(f.Name, v); err != nil {
				bad = fmt.Errorf("%s=%q: %v%s", envName(f.Name), v, err, wantValue(f))
			}
		}
	})
	if bad != nil {
		fmt.Fprintf(fs.Output(), "pgveil %s: %v\n", fs.Name(), bad)
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "pgveil %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return exitUsage, false
	}
	return exitOK, true
}
