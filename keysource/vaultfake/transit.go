package vaultfake

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// transitKey is a named Transit key: versions 1..latest, each a random
// AES-256-GCM key, and the policy knobs pgveil's tests touch.
type transitKey struct {
	name          string
	versions      map[int]cipher.AEAD
	created       map[int]int64
	latest        int
	minDecryption int
	minEncryption int
}

func newTransitKey(name string) *transitKey {
	k := &transitKey{name: name, versions: map[int]cipher.AEAD{}, created: map[int]int64{}, minDecryption: 1}
	k.rotate()
	return k
}

func (k *transitKey) rotate() {
	raw := make([]byte, 32)
	rand.Read(raw)
	block, _ := aes.NewCipher(raw)
	g, _ := cipher.NewGCM(block)
	k.latest++
	k.versions[k.latest] = g
	k.created[k.latest] = time.Now().Unix()
}

func (k *transitKey) info() map[string]any {
	keys := map[string]any{}
	for v, t := range k.created {
		keys[strconv.Itoa(v)] = t
	}
	return map[string]any{
		"name": k.name, "type": "aes256-gcm96", "keys": keys,
		"latest_version": k.latest, "min_available_version": 0,
		"min_decryption_version": k.minDecryption, "min_encryption_version": k.minEncryption,
		"deletion_allowed": false, "derived": false, "exportable": false, "allow_plaintext_backup": false,
		"supports_encryption": true, "supports_decryption": true, "supports_derivation": true, "supports_signing": false,
		"imported": false,
	}
}

// seal makes "vault:vN:" + base64(nonce || ciphertext || tag).
func (k *transitKey) seal(version int, plaintext []byte) string {
	g := k.versions[version]
	nonce := make([]byte, g.NonceSize())
	rand.Read(nonce)
	out := g.Seal(nonce, nonce, plaintext, nil)
	return "vault:v" + strconv.Itoa(version) + ":" + base64.StdEncoding.EncodeToString(out)
}

// open reverses seal, with Vault's error messages.
func (k *transitKey) open(ct string) ([]byte, string) {
	rest, ok := strings.CutPrefix(ct, "vault:v")
	if !ok {
		return nil, "invalid ciphertext: no prefix"
	}
	num, b64, ok := strings.Cut(rest, ":")
	if !ok {
		return nil, "invalid ciphertext: wrong number of fields"
	}
	v, err := strconv.Atoi(num)
	if err != nil {
		return nil, "invalid ciphertext: version number could not be decoded"
	}
	if v < k.minDecryption {
		return nil, "ciphertext or signature version is disallowed by policy (too old)"
	}
	g := k.versions[v]
	if g == nil {
		return nil, "invalid ciphertext: version is too new"
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) < g.NonceSize() {
		return nil, "invalid ciphertext: could not decode"
	}
	pt, err := g.Open(nil, raw[:g.NonceSize()], raw[g.NonceSize():], nil)
	if err != nil {
		return nil, "cipher: message authentication failed"
	}
	return pt, ""
}

func (s *Server) key(mount, name string) *transitKey { return s.keys[mount+"/"+name] }

func (s *Server) readKey(w http.ResponseWriter, mount, name string) {
	k := s.key(mount, name)
	if k == nil {
		writeErrors(w, http.StatusNotFound)
		return
	}
	writeData(w, k.info(), nil)
}

func (s *Server) createKey(w http.ResponseWriter, mount, name string) {
	if s.key(mount, name) == nil {
		s.keys[mount+"/"+name] = newTransitKey(name)
	}
	writeData(w, s.key(mount, name).info(), nil)
}

func (s *Server) rotateKey(w http.ResponseWriter, mount, name string) {
	k := s.key(mount, name)
	if k == nil {
		writeErrors(w, http.StatusBadRequest, "key not found")
		return
	}
	k.rotate()
	writeData(w, k.info(), nil)
}

func (s *Server) configKey(w http.ResponseWriter, mount, name string, body map[string]json.RawMessage) {
	k := s.key(mount, name)
	if k == nil {
		writeErrors(w, http.StatusBadRequest, "no existing key named "+name+" could be found")
		return
	}
	if raw, ok := body["min_decryption_version"]; ok {
		v, err := intParam(raw)
		if err != nil {
			writeErrors(w, http.StatusBadRequest, "invalid min_decryption_version")
			return
		}
		if v > k.latest {
			writeErrors(w, http.StatusBadRequest, "cannot set min decryption version to a version greater than the latest version")
			return
		}
		if v > 0 {
			k.minDecryption = v
		}
	}
	if raw, ok := body["min_encryption_version"]; ok {
		v, err := intParam(raw)
		if err != nil || (v != 0 && v < k.minDecryption) {
			writeErrors(w, http.StatusBadRequest, "min encryption version should not be less than min decryption version")
			return
		}
		k.minEncryption = v
	}
	writeData(w, k.info(), nil)
}

// encryptVersion picks key_version (0 = latest) within policy.
func (k *transitKey) encryptVersion(body map[string]json.RawMessage) (int, string) {
	v := 0
	if raw, ok := body["key_version"]; ok {
		var err error
		if v, err = intParam(raw); err != nil {
			return 0, "invalid key_version"
		}
	}
	if v == 0 {
		v = k.latest
	}
	if v > k.latest || v < k.minEncryption || v < k.minDecryption {
		return 0, "requested version for encryption is invalid"
	}
	return v, ""
}

func (s *Server) encrypt(w http.ResponseWriter, mount, name string, body map[string]json.RawMessage) {
	if _, batch := body["batch_input"]; batch {
		writeErrors(w, http.StatusBadRequest, "batch_input is not supported by this fake")
		return
	}
	pt64, ok := stringParam(body, "plaintext")
	if !ok {
		writeErrors(w, http.StatusBadRequest, "missing plaintext to encrypt")
		return
	}
	pt, err := base64.StdEncoding.DecodeString(pt64)
	if err != nil {
		writeErrors(w, http.StatusBadRequest, "failed to base64-decode plaintext")
		return
	}
	k := s.key(mount, name)
	if k == nil { // upsert, as Vault does for a token with create capability
		k = newTransitKey(name)
		s.keys[mount+"/"+name] = k
	}
	v, msg := k.encryptVersion(body)
	if msg != "" {
		writeErrors(w, http.StatusBadRequest, msg)
		return
	}
	writeData(w, map[string]any{"ciphertext": k.seal(v, pt), "key_version": v}, nil)
}

func (s *Server) decrypt(w http.ResponseWriter, mount, name string, body map[string]json.RawMessage) {
	ct, ok := stringParam(body, "ciphertext")
	if !ok {
		writeErrors(w, http.StatusBadRequest, "missing ciphertext to decrypt")
		return
	}
	k := s.key(mount, name)
	if k == nil {
		writeErrors(w, http.StatusBadRequest, "encryption key not found")
		return
	}
	pt, msg := k.open(ct)
	if msg != "" {
		writeErrors(w, http.StatusBadRequest, msg)
		return
	}
	writeData(w, map[string]any{"plaintext": base64.StdEncoding.EncodeToString(pt)}, nil)
}

func (s *Server) rewrap(w http.ResponseWriter, mount, name string, body map[string]json.RawMessage) {
	ct, ok := stringParam(body, "ciphertext")
	if !ok {
		writeErrors(w, http.StatusBadRequest, "missing ciphertext to decrypt")
		return
	}
	k := s.key(mount, name)
	if k == nil {
		writeErrors(w, http.StatusBadRequest, "encryption key not found")
		return
	}
	pt, msg := k.open(ct)
	if msg != "" {
		writeErrors(w, http.StatusBadRequest, msg)
		return
	}
	v, msg := k.encryptVersion(body)
	if msg != "" {
		writeErrors(w, http.StatusBadRequest, msg)
		return
	}
	writeData(w, map[string]any{"ciphertext": k.seal(v, pt), "key_version": v}, nil)
}

// Vault accepts numbers as JSON numbers or strings.
func intParam(raw json.RawMessage) (int, error) {
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, err
		}
		n = json.Number(s)
	}
	i, err := n.Int64()
	return int(i), err
}

func stringParam(body map[string]json.RawMessage, name string) (string, bool) {
	raw, ok := body[name]
	if !ok {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil || s == "" {
		return "", false
	}
	return s, true
}
