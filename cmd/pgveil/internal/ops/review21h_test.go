package ops

import (
	"testing"

	"github.com/pgveil/pgveil/keysource/envelope"
	"github.com/pgveil/pgveil/policy"
)

// Review 21h: the operator commands' envelope-shape predicate is
// envelope.SealedSQL with the text form for a text column and the bytea
// form for a bytea one, as before the predicate was shared (holds; the
// integration test TestReview21hSealedSQLMatchesGo runs it against
// envelope.IsText and IsBinary on PostgreSQL).
func TestReview21hSealedSQLForm(t *testing.T) {
	if got, want := sealedSQL(`"c"`, policy.OIDText), envelope.SealedSQL(`"c"`, true); got != want {
		t.Errorf("text: %s, want %s", got, want)
	}
	if got, want := sealedSQL(`"c"`, policy.OIDBytea), envelope.SealedSQL(`"c"`, false); got != want {
		t.Errorf("bytea: %s, want %s", got, want)
	}
}
