package keysource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	vault "github.com/hashicorp/vault/api"
	"go.uber.org/zap"
)

// call runs one Vault request with a timeout per attempt and exponential
// backoff with jitter between attempts. Failures that can pass (network
// errors, timeouts, 429, 412, 5xx: sealed, standby, overloaded) are retried
// and, when attempts run out, returned as a *RetryableError wrapping
// ErrMasterUnavailable. Others (403 bad token, 400 bad ciphertext) return at
// once, and so does an answer that is not Vault's (ErrMasterMalformed).
// Vault's error text names the path and Vault's messages; request bodies
// (the base64 data key) never appear in it.
func (m *vaultMaster) call(ctx context.Context, op string, fn func(context.Context) (*vault.Secret, error)) (*vault.Secret, error) {
	var last error
	wait := m.opts.vaultMinWait
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, m.opts.timeout)
		sec, err := fn(actx)
		cancel()
		if err == nil {
			return sec, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("keysource: %s: %w", op, ctx.Err())
		}
		if vaultMalformed(err) {
			if !errors.Is(err, ErrMasterMalformed) {
				err = fmt.Errorf("%w: %v", ErrMasterMalformed, err)
			}
			return nil, fmt.Errorf("keysource: %s: %w (does vault.address name Vault's API?)", op, err)
		}
		if !vaultRetryable(err) {
			return nil, fmt.Errorf("keysource: %s: %w", op, err)
		}
		last = err
		if attempt >= m.opts.vaultAttempts {
			break
		}
		d := wait/2 + rand.N(wait/2+1)
		m.logger().Warn("keysource: vault request failed; retrying", zap.String("op", op), zap.Int("attempt", attempt), zap.Duration("wait", d), zap.Error(err))
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, fmt.Errorf("keysource: %s: %w", op, ctx.Err())
		}
		wait = min(wait*2, m.opts.vaultMaxWait)
	}
	return nil, &RetryableError{Op: op, Err: fmt.Errorf("%w: %v", ErrMasterUnavailable, last)}
}

// vaultMalformed reports whether err is an answer that is not Vault's: a
// body that is not JSON (vault/api's ParseSecret returns the decoder's
// error as is) or one past maxVaultResponse. Another try would get the
// same: it is not retried, nor reported as Vault being unavailable.
func vaultMalformed(err error) bool {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	return errors.Is(err, errVaultResponseTooLarge) || errors.As(err, &se) || errors.As(err, &te)
}

// vaultRetryable classifies a Vault client error.
func vaultRetryable(err error) bool {
	var re *vault.ResponseError
	if errors.As(err, &re) {
		switch c := re.StatusCode; {
		case c == http.StatusTooManyRequests, c == http.StatusPreconditionFailed:
			return true
		case c >= 500 && c != http.StatusNotImplemented:
			return true
		}
		return false
	}
	// Transport errors, per-attempt timeouts, connection refused/reset.
	return true
}

// jsonInt reads a JSON number that vault/api decoded as json.Number.
func jsonInt(v any) (int64, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	case float64:
		return int64(n), true
	case int:
		return int64(n), true
	case int64:
		return n, true
	}
	return 0, false
}
