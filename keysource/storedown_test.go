package keysource

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// TestOpenStoreUnreadable: a key the keyring has not loaded yet, while
// pgveil.keys cannot be read (the service pool closed, the database down),
// fails as retryable, never as one of the verdicts on the value (tampered,
// unknown key): the proxy reads those as NULL under on_error: null.
func TestOpenStoreUnreadable(t *testing.T) {
	pool := testPool(t)
	k := testKeyring(t, pool, testMaster(t))
	col := testTable(false, "email").Columns[0]
	dk, err := k.EncryptionKey(ctx(), col, "", false)
	if err != nil {
		t.Fatal(err)
	}
	env := dk.Seal(nil, []byte("alice@example.com"))

	down, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	fresh := testKeyring(t, down, k.Master())
	down.Close()
	_, _, err = fresh.Open(ctx(), col, env, nil)
	if err == nil || !IsRetryable(err) {
		t.Fatalf("Open with the key store unreadable: %v, want a RetryableError", err)
	}
	for _, verdict := range []error{ErrTampered, ErrUnknownKey, ErrShredded, ErrWrongScope} {
		if errors.Is(err, verdict) {
			t.Fatalf("Open with the key store unreadable: %v, is %v", err, verdict)
		}
	}
}
