package proxy

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgveil/pgveil/keysource"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/rewrite"
)

// TestOpenFailedReasons: each way a value fails to open gets its own
// reason and SQLSTATE, and on_error: null turns into NULL only the
// failures that are the value's, never the key source's.
func TestOpenFailedReasons(t *testing.T) {
	s := &session{srv: &Server{metrics: NewMetrics(prometheus.NewRegistry(), func() rewrite.CacheStats { return rewrite.CacheStats{} })}}
	tbl := &policy.Table{Schema: "public", Name: "users"}
	for _, c := range []struct {
		err        error
		onError    policy.OnError
		wantNull   bool
		wantCode   string
		wantReason string
	}{
		{fmt.Errorf("open: %w", keysource.ErrShredded), policy.OnErrorError, true, "", ""},
		{fmt.Errorf("open: %w", keysource.ErrUnknownKey), policy.OnErrorError, false, codeValueUnknownKey, "unknown_key"},
		{fmt.Errorf("open: %w", keysource.ErrUnknownKey), policy.OnErrorNull, true, "", ""},
		{fmt.Errorf("vault: %w", keysource.ErrMasterMalformed), policy.OnErrorError, false, codeKeySourceDown, "key_source_malformed"},
		{fmt.Errorf("vault: %w", keysource.ErrMasterMalformed), policy.OnErrorNull, false, codeKeySourceDown, "key_source_malformed"},
		{errors.New("cipher: message authentication failed"), policy.OnErrorError, false, codeValueTampered, "tampered"},
	} {
		col := &policy.Column{Name: "email", Table: tbl, OnError: c.onError}
		_, null, err := s.openFailed(&resultCol{col: col}, c.err, nil)
		if null != c.wantNull {
			t.Errorf("%v (on_error %v): read as NULL %v, want %v", c.err, c.onError, null, c.wantNull)
			continue
		}
		if c.wantNull {
			continue
		}
		var pe *pgError
		if !errors.As(err, &pe) || pe.Code != c.wantCode || !strings.Contains(pe.Message, "("+c.wantReason+")") {
			t.Errorf("%v (on_error %v): %v, want %s with reason %s", c.err, c.onError, err, c.wantCode, c.wantReason)
		}
	}
}
