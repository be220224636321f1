package pgtest

import (
	"fmt"
	"os"
	"strings"
)

// Script is a parsed .pgt file. Its Lines are kept verbatim so that Rewrite
// can replace only the expected output blocks and leave comments and layout
// alone.
type Script struct {
	Name       string
	Lines      []string
	Directives []*Directive
}

// Directive is one step of a script.
type Directive struct {
	Line     int      // 1-based line of the directive's command
	Cmd      string   // startup, send, until, closed
	Args     []string // the words after Cmd
	Input    []string // input lines, comments removed
	Expected []string // the expected output block

	outStart, outEnd int // Lines[outStart:outEnd] is the output block
}

// ParseFile reads and parses the script at path.
func ParseFile(path string) (*Script, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, string(b))
}

// Parse parses a script's text; name is used in error messages.
func Parse(name, text string) (*Script, error) {
	text = strings.TrimSuffix(text, "\n")
	s := &Script{Name: name}
	if text != "" {
		s.Lines = strings.Split(text, "\n")
	}
	for i := 0; i < len(s.Lines); {
		line := strings.TrimSpace(s.Lines[i])
		if line == "" || strings.HasPrefix(line, "#") {
			i++
			continue
		}
		fields := strings.Fields(line)
		d := &Directive{Line: i + 1, Cmd: fields[0], Args: fields[1:]}
		i++
		for ; i < len(s.Lines) && s.Lines[i] != "----"; i++ {
			if in := s.Lines[i]; !strings.HasPrefix(strings.TrimSpace(in), "#") && strings.TrimSpace(in) != "" {
				d.Input = append(d.Input, in)
			}
		}
		if i == len(s.Lines) {
			return nil, fmt.Errorf("%s:%d: %s: no ---- line", name, d.Line, d.Cmd)
		}
		i++
		d.outStart = i
		for ; i < len(s.Lines) && s.Lines[i] != ""; i++ {
			d.Expected = append(d.Expected, s.Lines[i])
		}
		d.outEnd = i
		if err := d.check(len(s.Directives)); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, d.Line, err)
		}
		s.Directives = append(s.Directives, d)
	}
	return s, nil
}

// check validates a directive's shape before anything is sent; n is its index.
func (d *Directive) check(n int) error {
	switch d.Cmd {
	case "startup":
		if n != 0 {
			return fmt.Errorf("startup must be the first directive")
		}
		for _, a := range d.Args {
			if !strings.HasPrefix(a, "protocol=") {
				return fmt.Errorf("startup: unknown argument %q", a)
			}
		}
		for _, in := range d.Input {
			k, _, ok := strings.Cut(in, "=")
			if !ok || k == "" {
				return fmt.Errorf("startup: want name=value, got %q", in)
			}
			if k == "user" || k == "database" {
				return fmt.Errorf("startup: %s is set by the runner", k)
			}
		}
	case "send":
		if len(d.Args) != 0 {
			return fmt.Errorf("send takes no arguments")
		}
		for _, in := range d.Input {
			if _, err := encodeFrontend(in); err != nil {
				return fmt.Errorf("send: %w", err)
			}
		}
	case "until":
		if len(d.Input) == 0 {
			return fmt.Errorf("until: no message types")
		}
		for _, a := range d.Args {
			list, ok := strings.CutPrefix(a, "ignore=")
			if !ok {
				return fmt.Errorf("until: unknown argument %q", a)
			}
			for _, t := range strings.Split(list, ",") {
				if !knownBackendType(t) {
					return fmt.Errorf("until: unknown message type %q", t)
				}
			}
		}
		for _, t := range d.Input {
			if !knownBackendType(strings.TrimSpace(t)) {
				return fmt.Errorf("until: unknown message type %q", t)
			}
		}
	case "closed":
		if len(d.Args) != 0 || len(d.Input) != 0 {
			return fmt.Errorf("closed takes no arguments and no input")
		}
	default:
		return fmt.Errorf("unknown directive %q", d.Cmd)
	}
	return nil
}

// ignored is the set of types named by until's ignore= arguments.
func (d *Directive) ignored() map[string]bool {
	m := map[string]bool{}
	for _, a := range d.Args {
		if list, ok := strings.CutPrefix(a, "ignore="); ok {
			for _, t := range strings.Split(list, ",") {
				m[t] = true
			}
		}
	}
	return m
}

// Rewrite returns the script's text with each directive's expected output
// replaced by outputs[i] (directives beyond len(outputs) keep theirs).
func (s *Script) Rewrite(outputs [][]string) string {
	var b strings.Builder
	next := 0
	for i, d := range s.Directives {
		if i >= len(outputs) {
			break
		}
		for _, l := range s.Lines[next:d.outStart] {
			b.WriteString(l + "\n")
		}
		for _, l := range outputs[i] {
			b.WriteString(l + "\n")
		}
		next = d.outEnd
	}
	for _, l := range s.Lines[next:] {
		b.WriteString(l + "\n")
	}
	return b.String()
}
