package keysource

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"

	vault "github.com/hashicorp/vault/api"

	"github.com/pgveil/pgveil/policy"
)

// maxVaultResponse bounds the body of one Vault response. A Transit answer
// is about 100 bytes, a token lookup a few hundred; a key read grows by
// some 20 bytes per key version. Anything larger is not Vault's answer.
// vault/api holds a body twice while it parses it, in buffers that double
// as they grow, so a response at the limit costs up to 8 times as much.
const maxVaultResponse = 256 << 10

// newVaultClient builds the vault/api client from pgveil's config alone.
//
// vault.DefaultConfig and vault.NewClient read the environment: VAULT_ADDR
// and VAULT_AGENT_ADDR (where requests go; the agent address even wins over
// the configured one), VAULT_SKIP_VERIFY, VAULT_CACERT, VAULT_CAPATH,
// VAULT_TLS_SERVER_NAME and VAULT_CLIENT_CERT (how Vault's certificate is
// checked), VAULT_PROXY_ADDR, VAULT_SRV_LOOKUP, VAULT_NAMESPACE,
// VAULT_HEADERS, VAULT_WRAP_TTL, VAULT_MAX_RETRIES, VAULT_CLIENT_TIMEOUT,
// VAULT_RATE_LIMIT. Each would silently send the token and data keys
// elsewhere, or accept any certificate, in a shell that talks to a dev
// Vault. So the config is built here instead of from DefaultConfig, and
// what NewClient takes from the environment is replaced after it. Only the
// standard HTTPS_PROXY / NO_PROXY apply, as to any Go program; through
// them Vault's certificate is still verified. (NewClient still parses the
// variables: one it cannot parse, say VAULT_SKIP_VERIFY=maybe, fails
// startup with an error naming it.)
func newVaultClient(cfg policy.VaultKeySource, token string) (*vault.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	vc := &vault.Config{
		Address: cfg.Address,
		HttpClient: &http.Client{
			Transport: tr,
			// vault/api follows one redirect itself (a standby's 307 to
			// the active node), never to plain http from https.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		// Retries and timeouts are ours (vaultMaster.call): per-attempt
		// timeouts and a retryable error type the proxy can act on.
		MaxRetries: 0,
		Timeout:    0,
	}
	if cfg.CAFile != "" {
		if err := vc.ConfigureTLS(&vault.TLSConfig{CACert: cfg.CAFile}); err != nil {
			return nil, fmt.Errorf("keysource: vault ca_file: %w", err)
		}
	}
	client, err := vault.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("keysource: vault client: %w", err)
	}
	// NewClient took VAULT_TOKEN, VAULT_NAMESPACE and VAULT_HEADERS: keep
	// only its own request marker, then set what the config says.
	client.SetHeaders(http.Header{vault.RequestHeaderName: []string{"true"}})
	client.SetToken(token)
	if cfg.Namespace != "" {
		client.SetNamespace(cfg.Namespace)
	}
	// The default lookup reads VAULT_WRAP_TTL on every request: a wrapped
	// answer holds a wrapping token, not the ciphertext or data key.
	client.SetWrappingLookupFunc(func(string, string) string { return "" })
	return client.WithResponseCallbacks(boundVaultResponse), nil
}

// boundVaultResponse limits the body of every response before vault/api
// reads it (whole, twice over, to parse it).
func boundVaultResponse(r *vault.Response) {
	if r != nil && r.Response != nil && r.Body != nil {
		r.Body = &boundedBody{ReadCloser: r.Body, left: maxVaultResponse + 1}
	}
}

// errVaultResponseTooLarge ends the read of a response past
// maxVaultResponse.
var errVaultResponseTooLarge = fmt.Errorf("%w: body larger than %d bytes", ErrMasterMalformed, maxVaultResponse)

// boundedBody fails a read past its limit instead of returning more.
type boundedBody struct {
	io.ReadCloser
	left int64 // bytes still allowed, plus one to tell "exactly the limit" from "more"
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errVaultResponseTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	if b.left <= 0 {
		return n, errVaultResponseTooLarge
	}
	return n, err
}
