package keysource

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/pgveil/pgveil/policy"
)

// Local master keys: the 32-byte key is never used directly. HKDF-SHA-256
// (RFC 5869, no salt) derives from it a wrapping key and, separately, a
// fingerprint that names it in pgveil.keys; the fingerprint reveals nothing
// about the wrapping key.
const (
	localWrapInfo     = "pgveil/v1/local-master/wrap"
	localFingerInfo   = "pgveil/v1/local-master/fingerprint"
	localWrapAAD      = "pgveil/v1/data-key-wrap"
	localWrapVersion  = 0x01
	localWrappedLen   = 1 + 12 + dataKeyLen + 16
	localIDPrefix     = "local:"
	masterKeyLen      = 32
	fingerprintLength = 8
)

// localKey is one loaded master key version.
type localKey struct {
	id   string
	aead cipher.AEAD
}

// localMaster wraps with the current key and unwraps with any loaded one.
type localMaster struct {
	current *localKey
	byID    map[string]*localKey
}

func newLocalMaster(cfg policy.LocalKeySource) (*localMaster, error) {
	var raw []byte
	var err error
	switch {
	case cfg.KeyFile != "":
		raw, err = readKeyFile(cfg.KeyFile)
	case cfg.KeyEnv != "":
		raw, err = decodeMasterKey(os.Getenv(cfg.KeyEnv), "environment variable "+cfg.KeyEnv)
	default:
		err = errors.New("keysource: local master key needs key_file or key_env")
	}
	if err != nil {
		return nil, err
	}
	cur, err := newLocalKey(raw)
	clear(raw)
	if err != nil {
		return nil, err
	}
	m := &localMaster{current: cur, byID: map[string]*localKey{cur.id: cur}}
	for _, p := range cfg.PreviousKeyFiles {
		raw, err := readKeyFile(p)
		if err != nil {
			return nil, err
		}
		k, err := newLocalKey(raw)
		clear(raw)
		if err != nil {
			return nil, err
		}
		if _, dup := m.byID[k.id]; !dup {
			m.byID[k.id] = k
		}
	}
	return m, nil
}

// NewLocalMaster builds a local master from raw 32-byte keys: the first
// wraps, all unwrap. The CLI and tests use it; the config path is NewMaster.
func NewLocalMaster(current []byte, previous ...[]byte) (Master, error) {
	cur, err := newLocalKey(current)
	if err != nil {
		return nil, err
	}
	m := &localMaster{current: cur, byID: map[string]*localKey{cur.id: cur}}
	for _, p := range previous {
		k, err := newLocalKey(p)
		if err != nil {
			return nil, err
		}
		m.byID[k.id] = k
	}
	return m, nil
}

// LocalMasterID is the id a local master key is stored under.
func LocalMasterID(key []byte) (string, error) {
	k, err := newLocalKey(key)
	if err != nil {
		return "", err
	}
	return k.id, nil
}

func newLocalKey(raw []byte) (*localKey, error) {
	if len(raw) != masterKeyLen {
		return nil, fmt.Errorf("keysource: master key must be %d bytes, got %d", masterKeyLen, len(raw))
	}
	fp, err := hkdf.Key(sha256.New, raw, nil, localFingerInfo, fingerprintLength)
	if err != nil {
		return nil, err
	}
	wk, err := hkdf.Key(sha256.New, raw, nil, localWrapInfo, 32)
	if err != nil {
		return nil, err
	}
	defer clear(wk)
	block, err := aes.NewCipher(wk)
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &localKey{id: localIDPrefix + hex.EncodeToString(fp), aead: g}, nil
}

// readKeyFile reads a master key file that only pgveil's user can read
// (checkKeyFileMode).
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keysource: master key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keysource: master key file: %w", err)
	}
	if err := checkKeyFileMode(path, fi); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		clear(b)
		return nil, fmt.Errorf("keysource: master key file: %w", err)
	}
	defer clear(b)
	return decodeMasterKey(string(bytes.TrimSpace(b)), "file "+path)
}

// decodeMasterKey accepts standard base64, padded or not. The error names
// where the key came from, never what it holds.
func decodeMasterKey(s, from string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("keysource: master key in %s is empty", from)
	}
	enc := base64.StdEncoding
	if len(s)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	raw, err := enc.DecodeString(s)
	if err != nil || len(raw) != masterKeyLen {
		clear(raw)
		return nil, fmt.Errorf("keysource: master key in %s is not %d bytes of base64 (make one with `pgveil keygen`)", from, masterKeyLen)
	}
	return raw, nil
}

func (m *localMaster) ID() string { return m.current.id }

// Wrap: 0x01 || 12-byte random nonce || AES-256-GCM(wrapping key, data key,
// AAD "pgveil/v1/data-key-wrap").
func (m *localMaster) Wrap(_ context.Context, dataKey []byte) ([]byte, string, error) {
	nonce := make([]byte, 12)
	rand.Read(nonce)
	return m.current.wrap(nonce, dataKey), m.current.id, nil
}

func (k *localKey) wrap(nonce, dataKey []byte) []byte {
	out := make([]byte, 13, localWrappedLen)
	out[0] = localWrapVersion
	copy(out[1:13], nonce)
	return k.aead.Seal(out, out[1:13], dataKey, []byte(localWrapAAD))
}

func (m *localMaster) Unwrap(_ context.Context, wrapped []byte, masterID string) ([]byte, error) {
	k := m.byID[masterID]
	if k == nil {
		return nil, fmt.Errorf("keysource: data key is wrapped under master key %s, which is not loaded (configured: %s; add the old key to previous_key_files)", masterID, m.current.id)
	}
	if len(wrapped) < 13+16 || wrapped[0] != localWrapVersion {
		return nil, fmt.Errorf("%w: wrapped data key has a bad format", ErrTampered)
	}
	dk, err := k.aead.Open(nil, wrapped[1:13], wrapped[13:], []byte(localWrapAAD))
	if err != nil {
		return nil, fmt.Errorf("%w: wrapped data key does not authenticate under master key %s", ErrTampered, masterID)
	}
	return dk, nil
}

func (m *localMaster) NeedsRewrap(_ []byte, masterID string) bool { return masterID != m.current.id }

func (m *localMaster) Rewrap(ctx context.Context, wrapped []byte, masterID string) ([]byte, string, error) {
	dk, err := m.Unwrap(ctx, wrapped, masterID)
	if err != nil {
		return nil, "", err
	}
	defer clear(dk)
	return m.Wrap(ctx, dk)
}

// Close forgets nothing it can: Go's GCM keeps its expanded key internally.
// It exists so every master can be closed alike.
func (m *localMaster) Close() error { return nil }
