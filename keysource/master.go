package keysource

import (
	"context"
	"fmt"

	"github.com/pgveil/pgveil/policy"
)

// Master wraps and unwraps data keys under the master key. Implementations
// are safe for concurrent use.
type Master interface {
	// ID names the master key version Wrap uses now: "local:<16 hex
	// digits>" (a fingerprint, never the key) or "vault:<mount>/<key>".
	ID() string
	// Wrap encrypts a data key; the result and masterID are stored in
	// pgveil.keys.
	Wrap(ctx context.Context, dataKey []byte) (wrapped []byte, masterID string, err error)
	// Unwrap decrypts a wrapped data key made under masterID (the current
	// master key or, for local keys, one of previous_key_files).
	Unwrap(ctx context.Context, wrapped []byte, masterID string) ([]byte, error)
}

// Rewrapper is implemented by masters that can move a wrapped key to their
// current version. RewrapAll uses it.
type Rewrapper interface {
	// NeedsRewrap reports whether wrapped is not yet under the current
	// master key version.
	NeedsRewrap(wrapped []byte, masterID string) bool
	// Rewrap re-encrypts wrapped under the current version. Vault does it
	// server-side (transit/rewrap), so the data key never leaves Vault.
	Rewrap(ctx context.Context, wrapped []byte, masterID string) (newWrapped []byte, newMasterID string, err error)
}

// NewMaster builds the master key source the config names. Masters that hold
// resources (Vault's token renewer) implement io.Closer; close them at
// shutdown.
func NewMaster(ctx context.Context, cfg policy.KeySource, opts ...Option) (Master, error) {
	o := defaultOptions()
	for _, f := range opts {
		f(&o)
	}
	switch cfg.Kind {
	case policy.KeySourceLocal, "":
		return newLocalMaster(cfg.Local)
	case policy.KeySourceVault:
		return newVaultMaster(ctx, cfg.Vault, o)
	}
	return nil, fmt.Errorf("keysource: unknown kind %q; want local or vault", cfg.Kind)
}
