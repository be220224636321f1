package integration

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/integration/harness"
)

// dockerfileInstructions reads a Dockerfile into instructions, joining
// continuation lines and dropping comments.
func dockerfileInstructions(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cur.WriteString(line)
		out = append(out, strings.Join(strings.Fields(cur.String()), " "))
		cur.Reset()
	}
	return out
}

// TestOpsDockerfile checks what can be checked without a Docker engine:
// the image builds pgveil with exactly the Makefile's command, from a Go
// matching go.mod, with cgo; it runs as a non-root user, exposes the SQL
// and admin ports, health-checks /healthz with the binary's own
// healthcheck command, and reads the config at /etc/pgveil/config.yaml;
// and .dockerignore keeps every package the build needs. hadolint runs
// when it is installed (no registry reachable here packages it).
func TestOpsDockerfile(t *testing.T) {
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	ins := dockerfileInstructions(t, filepath.Join(root, "Dockerfile"))

	// The build command is the Makefile's, with the version as a build arg.
	out, err := exec.Command("make", "-s", "-n", "-C", root, "build", "GO=go", "VERSION=@VERSION@").Output()
	if err != nil {
		t.Fatalf("make -n build: %v", err)
	}
	makeCmd := strings.Join(strings.Fields(string(out)), " ")
	var runs []string
	for _, in := range ins {
		if strings.HasPrefix(in, "RUN ") && strings.Contains(in, "go build") {
			runs = append(runs, strings.ReplaceAll(strings.TrimPrefix(in, "RUN "), "${VERSION}", "@VERSION@"))
		}
	}
	if len(runs) != 1 || runs[0] != makeCmd {
		t.Errorf("the Dockerfile's build command differs from the Makefile's:\n  Dockerfile: %q\n  Makefile:   %q", runs, makeCmd)
	}

	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVer := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(string(gomod))
	has := func(re string) bool {
		for _, in := range ins {
			if regexp.MustCompile(re).MatchString(in) {
				return true
			}
		}
		return false
	}
	checks := map[string]string{
		"a Go build stage as new as go.mod (" + goVer[1] + ")": `^ARG GO_VERSION=` + regexp.QuoteMeta(goVer[1]) + `$`,
		"the build stage on golang":                            `^FROM golang:\$\{GO_VERSION\}-\S+ AS build$`,
		"a runtime stage copying only the binary":              `^COPY --from=build /src/bin/pgveil /usr/local/bin/pgveil$`,
		"a non-root user":                                      `^USER (65532|nonroot)`,
		"the SQL and admin ports":                              `^EXPOSE 6432 9187$`,
		"a HEALTHCHECK on /healthz by the binary itself":       `^HEALTHCHECK .*CMD \["/usr/local/bin/pgveil", "healthcheck", "--url", "http://127\.0\.0\.1:9187/healthz"\]$`,
		"the config at /etc/pgveil/config.yaml":                `^CMD \["serve", "-c", "/etc/pgveil/config\.yaml"\]$`,
	}
	for what, re := range checks {
		if !has(re) {
			t.Errorf("Dockerfile lacks %s (%s)", what, re)
		}
	}
	var last string
	for _, in := range ins {
		if strings.HasPrefix(in, "USER ") {
			last = in
		}
	}
	if last == "USER root" || last == "USER 0" {
		t.Error("the image runs as root")
	}

	// The health check's command exists in this binary.
	bin, err := harness.BuildPgveil()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "healthcheck", "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "--url") {
		t.Errorf("pgveil healthcheck --help: %v\n%s", err, out)
	}

	// .dockerignore excludes no source the build needs.
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(ignore), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	list := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}|{{join .GoFiles \",\"}}|{{join .CgoFiles \",\"}},{{join .EmbedFiles \",\"}}{{end}}", "./cmd/pgveil")
	list.Dir = root
	deps, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(deps)), "\n") {
		parts := strings.Split(line, "|")
		rel, err := filepath.Rel(root, parts[0])
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // a module dependency, fetched by go mod download
		}
		for _, f := range append(strings.Split(parts[1], ","), strings.Split(parts[2], ",")...) {
			if f == "" {
				continue
			}
			p := filepath.ToSlash(filepath.Join(rel, f))
			if pat := dockerIgnored(patterns, p); pat != "" {
				t.Errorf(".dockerignore pattern %q excludes %s, which the build needs", pat, p)
			}
		}
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		if pat := dockerIgnored(patterns, f); pat != "" {
			t.Errorf(".dockerignore pattern %q excludes %s", pat, f)
		}
	}

	if lint, err := exec.LookPath("hadolint"); err == nil {
		if out, err := exec.Command(lint, filepath.Join(root, "Dockerfile")).CombinedOutput(); err != nil {
			t.Errorf("hadolint: %v\n%s", err, out)
		}
	} else {
		t.Log("hadolint is not installed (Debian 12, npm and the Go module proxy do not package it); checked by this test only")
	}
}

// dockerIgnored returns the .dockerignore pattern that excludes path (a
// slash-separated path relative to the context), or "". It follows Docker's
// rules for the patterns used here: a pattern matches the path or any of its
// parent directories; "**/" matches any number of leading directories.
func dockerIgnored(patterns []string, path string) string {
	match := ""
	for _, pat := range patterns {
		neg := strings.HasPrefix(pat, "!")
		p := strings.TrimPrefix(pat, "!")
		if matchDocker(p, path) {
			if neg {
				match = ""
			} else {
				match = pat
			}
		}
	}
	return match
}

func matchDocker(pat, path string) bool {
	parts := strings.Split(path, "/")
	for i := 1; i <= len(parts); i++ {
		prefix := strings.Join(parts[:i], "/")
		if ok, _ := filepath.Match(pat, prefix); ok {
			return true
		}
		if rest, found := strings.CutPrefix(pat, "**/"); found {
			for j := 0; j < i; j++ {
				if ok, _ := filepath.Match(rest, strings.Join(parts[j:i], "/")); ok {
					return true
				}
			}
		}
	}
	return false
}
