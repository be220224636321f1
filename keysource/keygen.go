package keysource

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
)

// GenerateKeyFile writes a new random 256-bit master key, base64 and a
// newline, to path with mode 0600 (`pgveil keygen`). It refuses to replace an
// existing file: overwriting a master key makes every data key wrapped under
// it, and so every encrypted value, unreadable.
func GenerateKeyFile(path string) error {
	key := make([]byte, masterKeyLen)
	rand.Read(key)
	defer clear(key)
	text := make([]byte, base64.StdEncoding.EncodedLen(len(key))+1)
	base64.StdEncoding.Encode(text, key)
	text[len(text)-1] = '\n'
	defer clear(text)

	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("keysource: %s already exists; refusing to overwrite a master key", path)
		}
		return fmt.Errorf("keysource: create key file: %w", err)
	}
	// O_CREATE honours the umask; make sure of 0600 whatever it is.
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(text)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("keysource: write key file %s: %w", path, err)
	}
	return nil
}
