package ops

import (
	"context"
	"errors"
	"io"

	"github.com/pgveil/pgveil/policy"
)

// PlaintextInComplete is `pgveil check`'s plaintext_in_complete test for
// `pgveil serve`, at start and at each reload: it reads the first rows of
// each configured table that states (the proxy's verified migration
// states) leave complete, and returns a finding per encrypted column that
// holds values without an envelope there. Every read of such a value
// fails with PV003, so a serve started before `pgveil migrate --apply
// --prepare` (the likeliest adoption mistake) says so at once. It
// connects with upstream.service_url as "pgveil serve check" and closes
// the connection before it returns.
func PlaintextInComplete(ctx context.Context, cfg *policy.Config, states map[string]string) ([]Finding, error) {
	if !cfg.HasEncryption() {
		return nil, nil
	}
	// A start or a reload must not wait behind a lock (an ALTER TABLE
	// queued on a busy table): the sample is a hint, skipped then.
	e, err := newEnv(ctx, cfg, "pgveil serve check", 2, nil, io.Discard, io.Discard,
		map[string]string{"lock_timeout": "500ms", "statement_timeout": "5s"})
	if err != nil {
		return nil, err
	}
	defer e.Close()
	live, err := loadLive(ctx, e.Pool, cfg.Tables)
	if err != nil {
		return nil, err
	}
	r := &Report{}
	for _, t := range cfg.Tables {
		checkPlaintext(ctx, e, r, t, live[t.QualifiedName()], states[t.QualifiedName()])
	}
	var out []Finding
	for _, f := range r.Findings {
		switch f.Code {
		case "plaintext_in_complete":
			out = append(out, f)
		case "connect":
			err = errors.Join(err, errors.New(f.Message))
		}
	}
	return out, err
}
