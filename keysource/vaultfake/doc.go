// Package vaultfake is an in-process HTTP server that speaks the part of
// HashiCorp Vault's HTTP API that pgveil uses: the Transit secrets engine's
// encrypt, decrypt, rewrap, key read/create/rotate/config endpoints, and
// token lookup-self / renew-self.
//
// It is a FAKE, written because no Vault server can be installed or run in
// pgveil's build and test environment. It follows Vault's published API
// (https://developer.hashicorp.com/vault/api-docs/secret/transit and
// .../auth/token): request and response JSON, {"errors": [...]} error bodies
// with Vault's status codes, both PUT (what github.com/hashicorp/vault/api
// sends) and POST, the X-Vault-Token and X-Vault-Namespace headers, and
// ciphertexts of the form "vault:v<N>:<base64(nonce || AES-256-GCM)>" with
// real key versions, rotation and min_decryption_version. It does real
// AES-256-GCM, so a ciphertext cannot be forged or decrypted without the
// fake's keys. It is not a security boundary and keeps everything in memory.
//
// Tests can make it fail: SetUnavailable answers every request with 503
// "Vault is sealed", and FailNext fails the next n requests, to exercise
// pgveil's retries and its behaviour during an outage. It lives in a
// non-test file so that integration tests in other packages can start it
// alongside a real pgveil process.
package vaultfake
