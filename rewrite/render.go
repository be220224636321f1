package rewrite

import (
	"errors"
	"strings"
)

// Render builds the text to send upstream for a Rewritten plan: each
// statement's Original when it is not rewritten, else its Text with the
// slots filled by fill (which returns an SQL literal such as
// ByteaLiteral(envelope)), joined with the original text between the
// statements so a multi-statement string keeps its shape. orig must be the
// text the plan was made from; a plan that is not Rewritten renders as orig.
func (p *Plan) Render(orig string, fill func(st *Stmt, slot *Slot) (string, error)) (string, error) {
	if !p.Rewritten {
		return orig, nil
	}
	var b strings.Builder
	b.Grow(len(orig) + 64*len(p.Stmts))
	cur := 0
	for _, st := range p.Stmts {
		end := st.OriginalStart + len(st.Original)
		if st.OriginalStart < cur || end > len(orig) || orig[st.OriginalStart:end] != st.Original {
			return "", errors.New("rewrite: Render called with a text that is not the one the plan was made from")
		}
		b.WriteString(orig[cur:st.OriginalStart])
		if !st.Rewritten {
			b.WriteString(st.Original)
		} else {
			if len(st.Text) != len(st.Slots)+1 {
				return "", errors.New("rewrite: malformed statement plan")
			}
			for i, t := range st.Text {
				b.WriteString(t)
				if i < len(st.Slots) {
					v, err := fill(st, &st.Slots[i])
					if err != nil {
						return "", err
					}
					b.WriteString(v)
				}
			}
		}
		cur = end
	}
	b.WriteString(orig[cur:])
	return b.String(), nil
}
