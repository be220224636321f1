package pgtest

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Result is what one run of a script printed.
type Result struct {
	Script *Script
	// Outputs holds each directive's output in the portable form that
	// script files hold; Raw keeps the server's source locations and
	// version (see the package doc). Directives not reached have none.
	Outputs [][]string
	Raw     [][]string
}

// Run executes s on a new connection to cfg.Addr and returns what every
// directive printed. When the script does not end with "closed", Run sends
// Terminate and requires the server to close the connection with nothing
// more to say. An error means the run could not go on (a read timed out, the
// connection broke, a message would not decode); the Result then holds the
// directives run so far, the failing one included.
func Run(ctx context.Context, cfg Config, s *Script) (*Result, error) {
	res := &Result{Script: s}
	c, err := dial(ctx, cfg)
	if err != nil {
		return res, err
	}
	defer c.nc.Close()
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	dirs := s.Directives
	if len(dirs) == 0 || dirs[0].Cmd != "startup" {
		out, err := c.startup(nil)
		if err == nil && (len(out.portable) == 0 || !strings.Contains(out.portable[len(out.portable)-1], `"ReadyForQuery"`)) {
			err = fmt.Errorf("default startup failed: %s", strings.Join(out.portable, "\n"))
		}
		if err != nil {
			return res, err
		}
	}
	for _, d := range dirs {
		var out output
		var err error
		switch d.Cmd {
		case "startup":
			out, err = c.startup(d)
		case "send":
			if c.eof {
				err = fmt.Errorf("the server has closed the connection")
			} else {
				err = c.send(d)
			}
		case "until":
			out, err = c.until(d)
		case "closed":
			out, err = c.closed()
		}
		res.Outputs = append(res.Outputs, out.portable)
		res.Raw = append(res.Raw, out.raw)
		if err != nil {
			return res, fmt.Errorf("%s:%d: %s: %w\nread:\n%s", s.Name, d.Line, d.Cmd, err, strings.Join(out.portable, "\n"))
		}
	}
	if c.eof {
		return res, nil
	}
	if err := c.send(&Directive{Input: []string{`{"Type":"Terminate"}`}}); err != nil {
		return res, fmt.Errorf("%s: sending the final Terminate: %w", s.Name, err)
	}
	out, err := c.closed()
	if err != nil {
		return res, fmt.Errorf("%s: after the final Terminate: %w", s.Name, err)
	}
	if len(out.portable) > 0 {
		return res, fmt.Errorf("%s: messages after the last directive:\n%s", s.Name, strings.Join(out.portable, "\n"))
	}
	return res, nil
}

// Mismatch is a directive whose output differs from the script's.
type Mismatch struct {
	Directive *Directive
	Want, Got []string
}

func (m Mismatch) String() string {
	return fmt.Sprintf("line %d: %s %s\n%s", m.Directive.Line, m.Directive.Cmd, strings.Join(m.Directive.Args, " "), LineDiff(m.Want, m.Got))
}

// Mismatches compares each directive's output with the script's expected
// block.
func (r *Result) Mismatches() []Mismatch {
	var ms []Mismatch
	for i, d := range r.Script.Directives {
		var got []string
		if i < len(r.Outputs) {
			got = r.Outputs[i]
		}
		if !equalLines(d.Expected, got) {
			ms = append(ms, Mismatch{Directive: d, Want: d.Expected, Got: got})
		}
	}
	return ms
}

// Rewrite returns the script's text with the run's outputs as the expected
// blocks.
func (r *Result) Rewrite() string { return r.Script.Rewrite(r.Outputs) }

func equalLines(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// LineDiff shows want and got line by line: "  " for lines both have at the
// same place, "- " for want only, "+ " for got only. It aligns on the longest
// common subsequence, which is plenty for blocks of a few dozen lines.
func LineDiff(want, got []string) string {
	n, m := len(want), len(got)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if want[i] == got[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var b strings.Builder
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && want[i] == got[j]:
			b.WriteString("  " + want[i] + "\n")
			i++
			j++
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			b.WriteString("+ " + got[j] + "\n")
			j++
		default:
			b.WriteString("- " + want[i] + "\n")
			i++
		}
	}
	return b.String()
}
