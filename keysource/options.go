package keysource

import (
	"time"

	"go.uber.org/zap"
)

// Option tunes NewMaster.
type Option func(*options)

type options struct {
	log *zap.Logger
	// Vault: attempts per request (1 = no retry), backoff between them.
	vaultAttempts int
	vaultMinWait  time.Duration
	vaultMaxWait  time.Duration
	// renewFloor is the shortest wait between token renewals.
	renewFloor time.Duration
	// timeout bounds one Vault request attempt (VaultKeySource.Timeout).
	timeout time.Duration
}

func defaultOptions() options {
	return options{
		log:           zap.NewNop(),
		vaultAttempts: 4,
		vaultMinWait:  100 * time.Millisecond,
		vaultMaxWait:  2 * time.Second,
		renewFloor:    time.Second,
	}
}

// WithLogger gives the master a logger (token renewal, retries). Default: none.
func WithLogger(l *zap.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// WithVaultRetry sets how many times one Vault request is attempted and the
// exponential backoff bounds between attempts. Defaults: 4, 100ms, 2s.
func WithVaultRetry(attempts int, minWait, maxWait time.Duration) Option {
	return func(o *options) {
		if attempts < 1 {
			attempts = 1
		}
		o.vaultAttempts, o.vaultMinWait, o.vaultMaxWait = attempts, minWait, maxWait
	}
}

// WithRenewFloor sets the shortest wait between Vault token renewals
// (default 1s); tests use short-lived tokens.
func WithRenewFloor(d time.Duration) Option {
	return func(o *options) { o.renewFloor = d }
}
