package vaultfake

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func do(t *testing.T, s *Server, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

// The fake answers as Vault's API docs describe: POST and PUT alike,
// {"errors": [...]} bodies, vault:vN: ciphertexts, min_decryption_version.
func TestTransitEndpoints(t *testing.T) {
	s := New()
	defer s.Close()
	code, out := do(t, s, "POST", "/v1/transit/encrypt/k", s.Token, `{"plaintext":"aGVsbG8="}`)
	ct, _ := out["data"].(map[string]any)["ciphertext"].(string)
	if code != 200 || !strings.HasPrefix(ct, "vault:v1:") {
		t.Fatalf("encrypt: %d %v", code, out)
	}
	code, out = do(t, s, "PUT", "/v1/transit/decrypt/k", s.Token, `{"ciphertext":"`+ct+`"}`)
	if code != 200 || out["data"].(map[string]any)["plaintext"] != "aGVsbG8=" {
		t.Fatalf("decrypt: %d %v", code, out)
	}
	if code, _ := do(t, s, "POST", "/v1/transit/keys/k/rotate", s.Token, ""); code != 200 {
		t.Fatalf("rotate: %d", code)
	}
	code, out = do(t, s, "POST", "/v1/transit/rewrap/k", s.Token, `{"ciphertext":"`+ct+`"}`)
	if code != 200 || !strings.HasPrefix(out["data"].(map[string]any)["ciphertext"].(string), "vault:v2:") {
		t.Fatalf("rewrap: %d %v", code, out)
	}
	if code, _ := do(t, s, "POST", "/v1/transit/keys/k/config", s.Token, `{"min_decryption_version":2}`); code != 200 {
		t.Fatalf("config: %d", code)
	}
	code, out = do(t, s, "POST", "/v1/transit/decrypt/k", s.Token, `{"ciphertext":"`+ct+`"}`)
	if code != 400 || !strings.Contains(out["errors"].([]any)[0].(string), "too old") {
		t.Fatalf("decrypt below min_decryption_version: %d %v", code, out)
	}
	if code, out := do(t, s, "GET", "/v1/transit/keys/k", s.Token, ""); code != 200 || out["data"].(map[string]any)["latest_version"].(float64) != 2 {
		t.Fatalf("read key: %d %v", code, out)
	}
	if code, out := do(t, s, "POST", "/v1/transit/encrypt/k", "bad", `{"plaintext":"aGVsbG8="}`); code != 403 || out["errors"] == nil {
		t.Fatalf("bad token: %d %v", code, out)
	}
	s.SetUnavailable(true)
	if code, out := do(t, s, "POST", "/v1/transit/encrypt/k", s.Token, `{"plaintext":"aGVsbG8="}`); code != 503 || out["errors"].([]any)[0] != "Vault is sealed" {
		t.Fatalf("unavailable: %d %v", code, out)
	}
}
