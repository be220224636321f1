package rewrite

import (
	"fmt"
	"strings"
	"testing"
)

// TestLead21ParamLimit: a statement whose rewrite needs more parameters
// than a Bind can carry (65535: an int16 count) is refused with a clear
// error; before, the count was written as int16 and wrapped, and the
// server saw another number of parameters than the statement has.
func TestLead21ParamLimit(t *testing.T) {
	p := newTestPlanner(t)
	var b strings.Builder
	b.WriteString("INSERT INTO users (org_id, email) VALUES ")
	// 2 client parameters per row, and pgveil adds one blind index each:
	// 22000 rows make 44000 client parameters and 66000 in all.
	for i := 0; i < 22000; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "($%d, $%d)", 2*i+1, 2*i+2)
	}
	_, err := p.Plan(b.String(), publicPath)
	if err == nil || !strings.Contains(err.Error(), "65535") {
		t.Fatalf("a rewrite of 66000 parameters: %v, want a refusal naming the limit", err)
	}
	// Within the limit: planned.
	b.Reset()
	b.WriteString("INSERT INTO users (org_id, email) VALUES ")
	for i := 0; i < 1000; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "($%d, $%d)", 2*i+1, 2*i+2)
	}
	if _, err := p.Plan(b.String(), publicPath); err != nil {
		t.Fatal(err)
	}
}
