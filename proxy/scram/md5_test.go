package scram

import "testing"

func TestMD5(t *testing.T) {
	// Known values, computed independently (Python hashlib).
	if got := MD5Verifier("postgres", "postgres"); got != "md53175bce1d3201d16594cebf9d7eb3f9d" {
		t.Errorf("MD5Verifier(postgres, postgres) = %s", got)
	}
	const v = "md594f6dfa9ce48919dd181f96e6e406c5f" // md5_user / md5-secret
	if got := MD5Verifier("md5-secret", "md5_user"); got != v {
		t.Errorf("MD5Verifier = %s", got)
	}
	salt := [4]byte{1, 2, 3, 4}
	const resp = "md5de5f430725caf68ade3b51e052e13b54"
	if got := MD5Response(v, salt); got != resp {
		t.Errorf("MD5Response = %s", got)
	}
	if !MD5Check(v, resp, salt) {
		t.Error("MD5Check rejects the right response")
	}
	for _, tc := range []struct {
		verifier, response string
		salt               [4]byte
	}{
		{v, resp, [4]byte{1, 2, 3, 5}},                   // other salt
		{v, "md5de5f430725caf68ade3b51e052e13b55", salt}, // one digit off
		{v, "MD5DE5F430725CAF68ADE3B51E052E13B54", salt}, // PostgreSQL compares exactly
		{v, "", salt},        // empty
		{v, resp[:10], salt}, // truncated
		{MD5Verifier("other", "md5_user"), resp, salt},           // other password
		{"SCRAM-SHA-256$4096:c2FsdA==$x:y", resp, salt},          // not md5
		{"md5" + "94F6DFA9CE48919DD181F96E6E406C5F", resp, salt}, // uppercase verifier
		{"", "", salt},
	} {
		if MD5Check(tc.verifier, tc.response, tc.salt) {
			t.Errorf("MD5Check(%q, %q, %v) = true", tc.verifier, tc.response, tc.salt)
		}
	}
	if MD5Response("plain-password", salt) != "" {
		t.Error("MD5Response accepted a non-md5 verifier")
	}
}
