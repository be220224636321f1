// Package policy loads pgveil's YAML configuration: the proxy settings and the
// per-column encryption policy. Loading is strict: unknown keys, values of the
// wrong type and missing required fields are errors that name the file, the
// line and the key. ${VAR} and ${VAR:-default} expand from the environment.
// The package knows the config and nothing else: no sockets, keys or SQL.
package policy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Defaults for every optional setting; config.example.yaml states them too.
const (
	DefaultListen            = "127.0.0.1:6432"
	DefaultUpstreamAddress   = "127.0.0.1:5432"
	DefaultConnectTimeout    = 5 * time.Second
	DefaultAdminListen       = "127.0.0.1:9187"
	DefaultMaxStartupMessage = 10000 // PostgreSQL's own MAX_STARTUP_PACKET_LENGTH
	DefaultMaxMessage        = 1 << 30
	DefaultLogBuffer         = 1 << 20
	minLogBuffer             = 4096
	DefaultShutdownTimeout   = 30 * time.Second
	DefaultPlanCacheSize     = 4096
	DefaultEventLoops        = 1
	DefaultLoopSpin          = 50 * time.Microsecond
	maxLoopSpin              = time.Millisecond
	// DefaultMaxClientConnections bounds the client connections open at
	// once (docs/OPERATING.md, "Connection limits", says why 10000).
	DefaultMaxClientConnections = 10000
	maxClientConnections        = 1000000
	// DefaultMaxPendingStartups bounds the connections still in startup
	// or authentication at once.
	DefaultMaxPendingStartups = 1000
	// DefaultAuthenticationTimeout bounds startup and authentication, as
	// Postgres's authentication_timeout (same default and range).
	DefaultAuthenticationTimeout = time.Minute
	minAuthenticationTimeout     = time.Second
	maxAuthenticationTimeout     = 10 * time.Minute
	DefaultVaultMount            = "transit"
	DefaultVaultTokenEnv         = "VAULT_TOKEN"
	DefaultVaultTimeout          = 10 * time.Second
)

// Load reads and validates the config file at path, expanding variables from
// the process environment.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return LoadBytes(path, data, os.LookupEnv)
}

// LoadBytes parses a config held in memory. name is used in error messages.
// lookupEnv resolves ${VAR}; nil means the process environment.
func LoadBytes(name string, data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	w := &walker{file: name, unset: map[*yaml.Node][]string{}, nodes: map[string]*yaml.Node{}, keys: map[string]*yaml.Node{}}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			doc = yaml.Node{}
		} else {
			return nil, ErrorList{{File: name, Msg: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}}
		}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, ErrorList{{File: name, Line: extra.Line, Msg: "more than one YAML document; pgveil reads exactly one"}}
	}
	var root *yaml.Node
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		root = doc.Content[0]
	}
	if root != nil {
		w.expand(root, lookupEnv)
	}
	cfg := w.config(root)
	if len(w.errs) > 0 {
		return nil, w.errs
	}
	cfg.Path = name
	return cfg, nil
}

// expand substitutes environment variables in every scalar value (not in keys).
func (w *walker) expand(n *yaml.Node, lookupEnv func(string) (string, bool)) {
	switch n.Kind {
	case yaml.ScalarNode:
		out, unset, err := expandEnv(n.Value, lookupEnv)
		if err != nil {
			w.errorf(n, "", "%v", err)
			return
		}
		if out != n.Value {
			n.Value = out
			if n.Tag == "!!null" || out == "" {
				n.Tag = "!!str"
			}
		}
		if len(unset) > 0 {
			w.unset[n] = unset
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			w.expand(n.Content[i], lookupEnv)
		}
	case yaml.SequenceNode, yaml.DocumentNode:
		for _, c := range n.Content {
			w.expand(c, lookupEnv)
		}
	case yaml.AliasNode:
		w.errorf(n, "", "YAML aliases are not supported; write the value out")
	}
}

// config decodes the root mapping, applies defaults and validates.
func (w *walker) config(root *yaml.Node) *Config {
	w.root = root
	c := &Config{
		Listen: DefaultListen,
		Upstream: Upstream{
			Address:        DefaultUpstreamAddress,
			TLS:            UpstreamTLSPrefer,
			ConnectTimeout: DefaultConnectTimeout,
		},
		Auth:      Auth{Mode: AuthRelay, AuthQuery: DefaultAuthQuery},
		KeySource: KeySource{Kind: KeySourceLocal},
		Admin:     Admin{Listen: DefaultAdminListen},
		Log:       Log{Level: "info", Format: "json", Buffer: DefaultLogBuffer},
		Proxy: ProxyOptions{
			MaxStartupMessage: DefaultMaxStartupMessage,
			MaxMessage:        DefaultMaxMessage,
			ShutdownTimeout:   DefaultShutdownTimeout,
			PlanCacheSize:     DefaultPlanCacheSize,
			EventLoops:        DefaultEventLoops,
			LoopSpin:          DefaultLoopSpin,

			MaxClientConnections:  DefaultMaxClientConnections,
			MaxPendingStartups:    DefaultMaxPendingStartups,
			AuthenticationTimeout: DefaultAuthenticationTimeout,
		},
		tableIndex: map[string]*Table{},
	}
	c.KeySource.Vault = VaultKeySource{TransitMount: DefaultVaultMount, TokenEnv: DefaultVaultTokenEnv, Timeout: DefaultVaultTimeout}

	var tablesNode *yaml.Node
	upTLS, authMode, ksKind := string(c.Upstream.TLS), string(c.Auth.Mode), string(c.KeySource.Kind)
	w.mapping(root, "", fields{
		"listen": w.str(&c.Listen),
		"upstream": func(n *yaml.Node, k string) {
			w.mapping(n, k, fields{
				"address":         w.str(&c.Upstream.Address),
				"tls":             w.str(&upTLS),
				"ca_file":         w.str(&c.Upstream.CAFile),
				"server_name":     w.str(&c.Upstream.ServerName),
				"service_url":     w.str(&c.Upstream.ServiceURL),
				"connect_timeout": w.duration(&c.Upstream.ConnectTimeout),
			})
		},
		"tls": func(n *yaml.Node, k string) {
			if isNull(n) {
				return
			}
			c.TLS = &ServerTLS{MinVersion: "1.2", Mode: ClientTLSPrefer}
			w.mapping(n, k, fields{
				"cert_file":   w.str(&c.TLS.CertFile),
				"key_file":    w.str(&c.TLS.KeyFile),
				"min_version": w.str(&c.TLS.MinVersion),
				"mode":        w.str(&c.TLS.Mode),
			})
		},
		"auth": func(n *yaml.Node, k string) {
			w.mapping(n, k, fields{
				"mode":       w.str(&authMode),
				"auth_query": w.str(&c.Auth.AuthQuery),
			})
		},
		"keysource": func(n *yaml.Node, k string) {
			w.mapping(n, k, fields{
				"kind": w.str(&ksKind),
				"local": func(n *yaml.Node, k string) {
					w.mapping(n, k, fields{
						"key_file":           w.str(&c.KeySource.Local.KeyFile),
						"key_env":            w.str(&c.KeySource.Local.KeyEnv),
						"previous_key_files": w.strings(&c.KeySource.Local.PreviousKeyFiles),
					})
				},
				"vault": func(n *yaml.Node, k string) {
					v := &c.KeySource.Vault
					w.mapping(n, k, fields{
						"address":       w.str(&v.Address),
						"token_env":     w.str(&v.TokenEnv),
						"namespace":     w.str(&v.Namespace),
						"ca_file":       w.str(&v.CAFile),
						"transit_mount": w.str(&v.TransitMount),
						"key_name":      w.str(&v.KeyName),
						"timeout":       w.duration(&v.Timeout),
					})
				},
			})
		},
		"admin": func(n *yaml.Node, k string) {
			w.mapping(n, k, fields{"listen": w.str(&c.Admin.Listen)})
		},
		"log": func(n *yaml.Node, k string) {
			w.mapping(n, k, fields{
				"level":  w.str(&c.Log.Level),
				"format": w.str(&c.Log.Format),
				"buffer": w.size(&c.Log.Buffer),
			})
		},
		"proxy": func(n *yaml.Node, k string) {
			p := &c.Proxy
			w.mapping(n, k, fields{
				"max_startup_message": w.size(&p.MaxStartupMessage),
				"max_message":         w.size(&p.MaxMessage),
				"shutdown_timeout":    w.duration(&p.ShutdownTimeout),
				"plan_cache_size":     w.integer(&p.PlanCacheSize),
				"event_loops":         w.count(&p.EventLoops, 64),
				"loop_spin":           w.shortDuration(&p.LoopSpin, maxLoopSpin),

				"max_client_connections": w.intRange(&p.MaxClientConnections, 1, maxClientConnections),
				"max_pending_startups":   w.intRange(&p.MaxPendingStartups, 1, maxClientConnections),
				"authentication_timeout": w.durationRange(&p.AuthenticationTimeout, minAuthenticationTimeout, maxAuthenticationTimeout),
			})
		},
		"tables": func(n *yaml.Node, k string) { tablesNode = n },
	})

	// Settings.
	if w.required("listen", c.Listen) {
		w.hostPort("listen", c.Listen)
	}
	if w.required("upstream.address", c.Upstream.Address) {
		w.hostPort("upstream.address", c.Upstream.Address)
	}
	c.Upstream.TLS = UpstreamTLSMode(upTLS)
	switch c.Upstream.TLS {
	case UpstreamTLSDisable, UpstreamTLSPrefer, UpstreamTLSRequire:
	case UpstreamTLSVerifyFull:
		if c.Upstream.ServerName == "" {
			c.Upstream.ServerName, _, _ = net.SplitHostPort(c.Upstream.Address)
		}
	default:
		w.fail("upstream.tls", "unknown mode %q; want disable, prefer, require or verify-full", upTLS)
	}
	if c.TLS != nil {
		w.required("tls.cert_file", c.TLS.CertFile)
		w.required("tls.key_file", c.TLS.KeyFile)
		if c.TLS.MinVersion != "1.2" && c.TLS.MinVersion != "1.3" {
			w.fail("tls.min_version", "want \"1.2\" or \"1.3\", got %q", c.TLS.MinVersion)
		}
		if c.TLS.Mode != ClientTLSPrefer && c.TLS.Mode != ClientTLSRequire {
			w.fail("tls.mode", "want prefer or require, got %q", c.TLS.Mode)
		}
	}
	c.Auth.Mode = AuthMode(authMode)
	switch c.Auth.Mode {
	case AuthRelay:
	case AuthSCRAM:
		if c.Upstream.ServiceURL == "" {
			w.requiredFor("upstream.service_url", "auth.mode scram fetches password verifiers with it")
		}
		if c.TLS == nil {
			w.fail("auth.mode", "scram needs client-facing tls (cert_file, key_file): it exists to serve channel binding when both legs use TLS")
		}
		if !strings.Contains(c.Auth.AuthQuery, "$1") {
			w.fail("auth.auth_query", "must take the role name as $1")
		}
	default:
		w.fail("auth.mode", "unknown mode %q; want relay or scram", authMode)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		w.fail("log.level", "unknown level %q; want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "console":
	default:
		w.fail("log.format", "unknown format %q; want json or console", c.Log.Format)
	}
	if c.Admin.Listen != "" {
		w.hostPort("admin.listen", c.Admin.Listen)
	}
	if c.Log.Buffer < minLogBuffer {
		w.fail("log.buffer", "want at least %d bytes, got %d", minLogBuffer, c.Log.Buffer)
	}
	if c.Proxy.MaxStartupMessage > c.Proxy.MaxMessage {
		w.fail("proxy.max_startup_message", "must not exceed proxy.max_message (%d)", c.Proxy.MaxMessage)
	}
	if c.Proxy.MaxPendingStartups > c.Proxy.MaxClientConnections {
		// Connections in startup count among the client connections: a
		// larger bound could never be reached. Set, it is a mistake to
		// report; defaulted, it follows a small max_client_connections.
		if _, set := w.nodes["proxy.max_pending_startups"]; set {
			w.fail("proxy.max_pending_startups", "must not exceed proxy.max_client_connections (%d)", c.Proxy.MaxClientConnections)
		} else {
			c.Proxy.MaxPendingStartups = c.Proxy.MaxClientConnections
		}
	}

	// Encryption policy.
	c.KeySource.Kind = KeySourceKind(ksKind)
	w.tables(c, tablesNode)
	switch c.KeySource.Kind {
	case KeySourceLocal, KeySourceVault:
	default:
		w.fail("keysource.kind", "unknown kind %q; want local or vault", ksKind)
	}
	if len(c.Tables) > 0 {
		if c.Upstream.ServiceURL == "" {
			w.requiredFor("upstream.service_url", "encrypted tables need it for the key store and the catalog")
		}
		w.keySource(c)
	}
	return c
}

// requiredFor is required with the reason the value is needed.
func (w *walker) requiredFor(key, why string) {
	if !w.required(key, "") {
		w.errs[len(w.errs)-1].Msg += " (" + why + ")"
	}
}

// keySource validates the master key settings; it runs only when tables are
// configured, so a relay-only config needs no key.
func (w *walker) keySource(c *Config) {
	ks := &c.KeySource
	switch ks.Kind {
	case KeySourceLocal:
		if (ks.Local.KeyFile == "") == (ks.Local.KeyEnv == "") {
			w.fail("keysource.local", "set exactly one of key_file and key_env (make a key with `pgveil keygen`)")
		}
	case KeySourceVault:
		v := ks.Vault
		w.required("keysource.vault.address", v.Address)
		w.required("keysource.vault.key_name", v.KeyName)
		w.required("keysource.vault.token_env", v.TokenEnv)
		w.required("keysource.vault.transit_mount", v.TransitMount)
	}
}

func (w *walker) hostPort(key, v string) {
	if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
		w.fail(key, "want host:port such as 127.0.0.1:6432, got %q", v)
	}
}
