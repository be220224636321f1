package pgtest

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// scramClient is the client side of SCRAM-SHA-256 (RFC 5802, RFC 7677)
// without channel binding, as Postgres uses it over a plain connection: the
// user name is empty in the SCRAM messages (the StartupMessage carries it)
// and the gs2 header is "n,,". Passwords are used as given, without SASLprep,
// which is the identity for the ASCII test fixtures.
type scramClient struct {
	password        string
	clientNonce     string
	clientFirstBare string
	authMessage     string
	saltedPassword  []byte
}

func newSCRAMClient(password string) *scramClient {
	return &scramClient{password: password, clientNonce: rand.Text()}
}

func (s *scramClient) clientFirst() []byte {
	s.clientFirstBare = "n=,r=" + s.clientNonce
	return []byte("n,," + s.clientFirstBare)
}

// clientFinal answers server-first-message "r=…,s=…,i=…" with the proof.
func (s *scramClient) clientFinal(serverFirst []byte) ([]byte, error) {
	attrs := scramAttrs(string(serverFirst))
	nonce, salt64, iter := attrs["r"], attrs["s"], attrs["i"]
	if !strings.HasPrefix(nonce, s.clientNonce) || len(nonce) == len(s.clientNonce) {
		return nil, errors.New("scram: server nonce does not extend ours")
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil {
		return nil, fmt.Errorf("scram: salt: %w", err)
	}
	n, err := strconv.Atoi(iter)
	if err != nil || n < 1 {
		return nil, fmt.Errorf("scram: iteration count %q", iter)
	}
	s.saltedPassword, err = pbkdf2.Key(sha256.New, s.password, salt, n, sha256.Size)
	if err != nil {
		return nil, err
	}
	withoutProof := "c=biws,r=" + nonce // biws = base64("n,,")
	s.authMessage = s.clientFirstBare + "," + string(serverFirst) + "," + withoutProof
	clientKey := hmacSHA256(s.saltedPassword, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	sig := hmacSHA256(storedKey[:], s.authMessage)
	proof := make([]byte, len(clientKey))
	for i := range clientKey {
		proof[i] = clientKey[i] ^ sig[i]
	}
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

// verifyServer checks server-final-message "v=…".
func (s *scramClient) verifyServer(serverFinal []byte) error {
	attrs := scramAttrs(string(serverFinal))
	if e, ok := attrs["e"]; ok {
		return fmt.Errorf("scram: server error %q", e)
	}
	got, err := base64.StdEncoding.DecodeString(attrs["v"])
	if err != nil {
		return fmt.Errorf("scram: server signature: %w", err)
	}
	want := hmacSHA256(hmacSHA256(s.saltedPassword, "Server Key"), s.authMessage)
	if !hmac.Equal(got, want) {
		return errors.New("scram: server signature does not match")
	}
	return nil
}

func scramAttrs(msg string) map[string]string {
	m := map[string]string{}
	for _, part := range strings.Split(msg, ",") {
		if k, v, ok := strings.Cut(part, "="); ok {
			m[k] = v
		}
	}
	return m
}

func hmacSHA256(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}
