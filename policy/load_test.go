package policy

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestExampleConfigLoads(t *testing.T) {
	cfg, err := Load("../config.example.yaml")
	if err != nil {
		t.Fatalf("config.example.yaml: %v", err)
	}
	u := cfg.Table("public", "users")
	if u == nil {
		t.Fatal("public.users missing")
	}
	if u.KeyContext != "org_id" || len(u.Columns) != 3 {
		t.Fatalf("users: key_context %q, %d columns", u.KeyContext, len(u.Columns))
	}
	email := u.Column("email")
	if email.Type != TypeText || email.BlindIndex == nil || email.BlindIndex.Column != "email_bidx" ||
		email.BlindIndex.Key != "email" || !email.BlindIndex.Unique {
		t.Fatalf("email: %+v %+v", email, email.BlindIndex)
	}
	if got := email.BlindIndex.Normalize; len(got) != 2 || got[0] != NormLowercase || got[1] != NormTrim {
		t.Fatalf("normalize: %v", got)
	}
	if !email.CanRead("app") || email.CanRead("intern") {
		t.Fatal("readers not applied")
	}
	if !u.Column("phone").CanRead("anyone") {
		t.Fatal("omitted readers must mean every role")
	}
	if b := u.Column("birth_date"); b.Type != TypeDate || b.BlindIndex != nil || b.OnError != OnErrorError {
		t.Fatalf("birth_date: %+v", b)
	}
	if u.BlindIndexColumn("email_bidx") != email || u.BlindIndexColumn("email") != nil {
		t.Fatal("BlindIndexColumn")
	}
	if cfg.Proxy.MaxMessage != 1<<30 || cfg.Proxy.MaxStartupMessage != 10000 {
		t.Fatalf("sizes: %+v", cfg.Proxy)
	}
	if p := cfg.Proxy; p.MaxClientConnections != DefaultMaxClientConnections || p.MaxPendingStartups != DefaultMaxPendingStartups || p.AuthenticationTimeout != DefaultAuthenticationTimeout {
		t.Fatalf("connection limits (the example states the defaults): %+v", p)
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := LoadBytes("min.yaml", []byte("listen: 127.0.0.1:7000\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Listen:   "127.0.0.1:7000",
		Upstream: Upstream{Address: DefaultUpstreamAddress, TLS: UpstreamTLSPrefer, ConnectTimeout: 5 * time.Second},
		Auth:     Auth{Mode: AuthRelay, AuthQuery: DefaultAuthQuery},
		Admin:    Admin{Listen: DefaultAdminListen},
		Log:      Log{Level: "info", Format: "json", Buffer: 1 << 20},
		Proxy: ProxyOptions{MaxStartupMessage: 10000, MaxMessage: 1 << 30, ShutdownTimeout: 30 * time.Second, PlanCacheSize: 4096, EventLoops: 1, LoopSpin: 50 * time.Microsecond,
			MaxClientConnections: 10000, MaxPendingStartups: 1000, AuthenticationTimeout: time.Minute},
	}
	if cfg.Listen != want.Listen || cfg.Upstream != want.Upstream || cfg.Auth != want.Auth ||
		cfg.Admin != want.Admin || cfg.Log != want.Log || cfg.Proxy != want.Proxy || cfg.TLS != nil {
		t.Fatalf("defaults:\n got %+v\nwant %+v", cfg, want)
	}
	if cfg.KeySource.Kind != KeySourceLocal || cfg.KeySource.Vault.TransitMount != "transit" || cfg.KeySource.Vault.TokenEnv != "VAULT_TOKEN" {
		t.Fatalf("keysource defaults: %+v", cfg.KeySource)
	}
	if cfg.HasEncryption() {
		t.Fatal("no tables configured")
	}
	// An empty file is a valid relay-only config.
	if _, err := LoadBytes("empty.yaml", nil, env(nil)); err != nil {
		t.Fatalf("empty file: %v", err)
	}
}

func TestEnvExpansion(t *testing.T) {
	src := `
listen: ${HOST}:${PORT:-6432}
upstream:
  service_url: postgres://u:pa$$word@${DBHOST}/db
  address: 127.0.0.1:$PORT
`
	cfg, err := LoadBytes("e.yaml", []byte(src), env(map[string]string{"HOST": "0.0.0.0", "DBHOST": "db"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "0.0.0.0:6432" {
		t.Errorf("listen %q", cfg.Listen)
	}
	if cfg.Upstream.ServiceURL != "postgres://u:pa$word@db/db" {
		t.Errorf("service_url %q", cfg.Upstream.ServiceURL)
	}
	if cfg.Upstream.Address != "127.0.0.1:$PORT" {
		t.Errorf("a bare $ must stay: %q", cfg.Upstream.Address)
	}
}

const tablesPreamble = `upstream:
  service_url: postgres://x@127.0.0.1/db
keysource:
  local:
    key_env: K
`

// TestErrors checks that each mistake is reported with file, line and key.
func TestErrors(t *testing.T) {
	cases := []struct {
		name, src string
		env       map[string]string
		want      []string // substrings of the error, in order: "file:line: key: msg"
	}{
		{"unknown top key", "listen: 127.0.0.1:1\nlisten_addr: x\n", nil,
			[]string{"c.yaml:2: listen_addr: unknown key; allowed here: admin, auth, keysource, listen, log, proxy, tables, tls, upstream"}},
		{"unknown nested key", "upstream:\n  adress: x\n", nil,
			[]string{"c.yaml:2: upstream.adress: unknown key"}},
		{"duplicate key", "listen: a:1\nlisten: b:2\n", nil, []string{"c.yaml:2: listen: duplicate key"}},
		{"bad type mapping", "upstream: 5\n", nil, []string{"c.yaml:1: upstream: want a mapping, got the value \"5\""}},
		{"bad type list", "listen: [a, b]\n", nil, []string{"c.yaml:1: listen: want a single value, got a list"}},
		{"bad tls mode", "upstream:\n  tls: maybe\n", nil, []string{"c.yaml:2: upstream.tls: unknown mode \"maybe\""}},
		{"bad client tls mode", "tls:\n  cert_file: a\n  key_file: b\n  mode: always\n", nil, []string{"c.yaml:4: tls.mode: want prefer or require, got \"always\""}},
		{"bad duration", "upstream:\n  connect_timeout: soon\n", nil, []string{"c.yaml:2: upstream.connect_timeout: want a positive duration"}},
		{"bad size", "proxy:\n  max_message: 2GiB\n", nil, []string{"c.yaml:2: proxy.max_message: want a size between"}},
		{"bad int", "proxy:\n  plan_cache_size: -1\n", nil, []string{"c.yaml:2: proxy.plan_cache_size: want a positive integer"}},
		{"bad count", "proxy:\n  event_loops: 65\n", nil, []string{"c.yaml:2: proxy.event_loops: want an integer from 0 to 64, got \"65\""}},
		{"spin too long", "proxy:\n  loop_spin: 2ms\n", nil, []string{"c.yaml:2: proxy.loop_spin: want 0 or a duration up to 1ms such as 50us, got \"2ms\""}},
		{"spin negative", "proxy:\n  loop_spin: -5us\n", nil, []string{"c.yaml:2: proxy.loop_spin: want 0 or a duration up to 1ms"}},
		{"max clients zero", "proxy:\n  max_client_connections: 0\n", nil, []string{"c.yaml:2: proxy.max_client_connections: want an integer from 1 to 1000000, got \"0\""}},
		{"max clients negative", "proxy:\n  max_client_connections: -1\n", nil, []string{"c.yaml:2: proxy.max_client_connections: want an integer from 1 to 1000000, got \"-1\""}},
		{"max clients too many", "proxy:\n  max_client_connections: 1000001\n", nil, []string{"c.yaml:2: proxy.max_client_connections: want an integer from 1 to 1000000"}},
		{"max clients not a number", "proxy:\n  max_client_connections: lots\n", nil, []string{"c.yaml:2: proxy.max_client_connections: want an integer from 1 to 1000000, got \"lots\""}},
		{"max clients a list", "proxy:\n  max_client_connections: [1]\n", nil, []string{"c.yaml:2: proxy.max_client_connections: want a single value, got a list"}},
		{"pending zero", "proxy:\n  max_pending_startups: 0\n", nil, []string{"c.yaml:2: proxy.max_pending_startups: want an integer from 1 to 1000000, got \"0\""}},
		{"pending above clients", "proxy:\n  max_client_connections: 50\n  max_pending_startups: 51\n", nil,
			[]string{"c.yaml:3: proxy.max_pending_startups: must not exceed proxy.max_client_connections (50)"}},
		{"auth timeout too short", "proxy:\n  authentication_timeout: 500ms\n", nil, []string{"c.yaml:2: proxy.authentication_timeout: want a duration from 1s to 10m0s such as 30s, got \"500ms\""}},
		{"auth timeout too long", "proxy:\n  authentication_timeout: 11m\n", nil, []string{"c.yaml:2: proxy.authentication_timeout: want a duration from 1s to 10m0s"}},
		{"auth timeout not a duration", "proxy:\n  authentication_timeout: 60\n", nil, []string{"c.yaml:2: proxy.authentication_timeout: want a duration from 1s to 10m0s such as 30s, got \"60\""}},
		{"limit key misspelt", "proxy:\n  max_client_connection: 5\n", nil, []string{"c.yaml:2: proxy.max_client_connection: unknown key; allowed here:", "max_client_connections"}},
		{"log buffer too small", "log:\n  buffer: 100\n", nil, []string{"c.yaml:2: log.buffer: want at least 4096 bytes, got 100"}},
		{"log buffer not a size", "log:\n  buffer: lots\n", nil, []string{"c.yaml:2: log.buffer:"}},
		{"bad listen", "listen: nowhere\n", nil, []string{"c.yaml:1: listen: want host:port"}},
		{"log level", "log:\n  level: loud\n", nil, []string{"c.yaml:2: log.level: unknown level \"loud\""}},
		{"tls missing cert", "tls:\n  key_file: k\n", nil, []string{"c.yaml:1: tls.cert_file: is required"}},
		{"scram without service url", "tls:\n  cert_file: c\n  key_file: k\nauth:\n  mode: scram\n", nil,
			[]string{"upstream.service_url: is required (auth.mode scram"}},
		{"scram without tls", "upstream:\n  service_url: postgres://x@y/z\nauth:\n  mode: scram\n", nil,
			[]string{"c.yaml:4: auth.mode: scram needs client-facing tls"}},
		{"unset env required", "upstream:\n  service_url: ${NOPE}\ntables:\n  t:\n    columns:\n      c: {type: text}\nkeysource:\n  local: {key_env: K}\n", nil,
			[]string{"c.yaml:2: upstream.service_url: is empty: environment variable NOPE is not set"}},
		{"bad env syntax", "listen: ${OOPS\n", nil, []string{"c.yaml:1: unclosed \"${\""}},
		{"unknown logical type", tablesPreamble + "tables:\n  users:\n    columns:\n      email:\n        type: txt\n", nil,
			[]string{"c.yaml:10: tables.users.columns.email.type: unknown logical type \"txt\"; want one of text, varchar"}},
		{"missing type", tablesPreamble + "tables:\n  users:\n    columns:\n      email:\n        on_error: null\n", nil,
			[]string{"c.yaml:9: tables.users.columns.email.type: is required"}},
		{"bad on_error", tablesPreamble + "tables:\n  users:\n    columns:\n      email:\n        type: text\n        on_error: ignore\n", nil,
			[]string{"c.yaml:11: tables.users.columns.email.on_error: unknown choice \"ignore\""}},
		{"bad normalize", tablesPreamble + "tables:\n  users:\n    columns:\n      email:\n        type: text\n        blind_index:\n          column: b\n          normalize: [upper]\n", nil,
			[]string{"tables.users.columns.email.blind_index.normalize: item 0: unknown normalization \"upper\""}},
		{"reserved index key name", tablesPreamble + "tables:\n  users:\n    columns:\n      email:\n        type: text\n        blind_index:\n          column: b\n          key: \"pgveil:tables\"\n", nil,
			[]string{"c.yaml:13: tables.users.columns.email.blind_index.key: names starting with \"pgveil:\" are reserved"}},
		{"bidx column required", tablesPreamble + "tables:\n  users:\n    columns:\n      email:\n        type: text\n        blind_index:\n          normalize: [trim]\n", nil,
			[]string{"c.yaml:11: tables.users.columns.email.blind_index.column: is required"}},
		{"bidx is encrypted column", tablesPreamble + "tables:\n  users:\n    columns:\n      email:\n        type: text\n        blind_index: {column: phone}\n      phone: {type: text}\n", nil,
			[]string{"blind_index.column: \"phone\" is an encrypted column"}},
		{"key_context encrypted", tablesPreamble + "tables:\n  users:\n    key_context: email\n    columns:\n      email: {type: text}\n", nil,
			[]string{"c.yaml:8: tables.users.key_context: column \"email\" is encrypted"}},
		{"no columns", tablesPreamble + "tables:\n  users:\n    key_context: org\n", nil,
			[]string{"c.yaml:7: tables.users.columns: a configured table needs at least one encrypted column"}},
		{"duplicate table", tablesPreamble + "tables:\n  users:\n    columns: {a: {type: text}}\n  public.users:\n    columns: {a: {type: text}}\n", nil,
			[]string{"c.yaml:9: tables.public.users: table public.users is configured twice"}},
		{"shared key type mismatch", tablesPreamble + "tables:\n  a:\n    columns:\n      x: {type: text, blind_index: {column: xb, key: k}}\n  b:\n    columns:\n      y: {type: int4, blind_index: {column: yb, key: k}}\n", nil,
			[]string{"tables.public.b.columns.y.blind_index.key: shares index key \"k\" with public.a.x but has type int4, not text"}},
		{"next index same key", tablesPreamble + "tables:\n  users:\n    columns:\n      email:\n        type: text\n        blind_index:\n          column: b\n          key: k\n          next: {column: b2, key: k}\n", nil,
			[]string{"c.yaml:14: tables.users.columns.email.blind_index.next.key: is the current index key \"k\""}},
		{"next index without key", tablesPreamble + "tables:\n  users:\n    columns:\n      email:\n        type: text\n        blind_index:\n          column: b\n          next:\n            column: b2\n", nil,
			[]string{"c.yaml:13: tables.users.columns.email.blind_index.next.key: is required"}},
		{"next index same column", tablesPreamble + "tables:\n  users:\n    columns:\n      email:\n        type: text\n        blind_index: {column: b, next: {column: b, key: k2}}\n", nil,
			[]string{"blind_index.next.column: is the current blind-index column \"b\""}},
		{"next index column taken", tablesPreamble + "tables:\n  users:\n    columns:\n      email: {type: text, blind_index: {column: b, next: {column: pb, key: k2}}}\n      phone: {type: text, blind_index: {column: pb}}\n", nil,
			[]string{"\"pb\" is already the blind index of email"}},
		{"next index no nesting", tablesPreamble + "tables:\n  users:\n    columns:\n      email: {type: text, blind_index: {column: b, next: {column: b2, key: k2, next: {column: b3, key: k3}}}}\n", nil,
			[]string{"blind_index.next.next: unknown key"}},
		{"next index shared key", tablesPreamble + "tables:\n  a:\n    columns:\n      x: {type: text, blind_index: {column: xb, key: k}}\n  b:\n    columns:\n      y: {type: text, blind_index: {column: yb, key: j, next: {column: yb2, key: k, normalize: [trim]}}}\n", nil,
			[]string{"tables.public.b.columns.y.blind_index.next.normalize: shares index key \"k\" with public.a.x but normalizes differently"}},
		{"no master key", "upstream:\n  service_url: postgres://x@y/z\ntables:\n  t:\n    columns: {c: {type: text}}\n", nil,
			[]string{"keysource.local: set exactly one of key_file and key_env"}},
		{"vault missing key name", "upstream:\n  service_url: postgres://x@y/z\nkeysource:\n  kind: vault\n  vault:\n    address: http://v\ntables:\n  t:\n    columns: {c: {type: text}}\n", nil,
			[]string{"keysource.vault.key_name: is required"}},
		{"bad keysource kind", "keysource:\n  kind: kms\n", nil, []string{"c.yaml:2: keysource.kind: unknown kind \"kms\""}},
		{"two documents", "listen: a:1\n---\nlisten: b:2\n", nil, []string{"more than one YAML document"}},
		{"not yaml", "listen: [\n", nil, []string{"c.yaml: not valid YAML"}},
		{"every error at once", "listen: x\nlog:\n  level: loud\n  format: xml\n", nil,
			[]string{"c.yaml:1: listen", "c.yaml:3: log.level", "c.yaml:4: log.format"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadBytes("c.yaml", []byte(tc.src), env(tc.env))
			if err == nil {
				t.Fatalf("no error; want %q", tc.want)
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error %T is not an ErrorList", err)
			}
			msg := err.Error()
			pos := 0
			for _, w := range tc.want {
				i := strings.Index(msg[pos:], w)
				if i < 0 {
					t.Fatalf("error\n%s\ndoes not contain (in order) %q", msg, w)
				}
				pos += i + len(w)
			}
		})
	}
}

// TestNextBlindIndex: blind_index.next names the index a rotation moves
// to; it inherits normalisation and uniqueness unless it says otherwise,
// and both columns are blind-index columns of the encrypted column.
func TestNextBlindIndex(t *testing.T) {
	src := tablesPreamble + `tables:
  users:
    columns:
      email:
        type: text
        blind_index:
          column: email_bidx
          normalize: [lowercase, trim]
          unique: true
          next: {column: email_bidx2, key: email_v2}
      phone:
        type: text
        blind_index:
          column: phone_bidx
          normalize: [trim]
          next: {column: phone_bidx2, key: phone_v2, normalize: [trim, nfc]}
`
	cfg, err := LoadBytes("c.yaml", []byte(src), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	users := cfg.Table("public", "users")
	email, phone := users.Column("email"), users.Column("phone")
	next := email.BlindIndex.Next
	if next == nil || next.Column != "email_bidx2" || next.Key != "email_v2" || !next.Unique ||
		!sameNorms(next.Normalize, []Normalization{NormLowercase, NormTrim}) || next.Next != nil {
		t.Fatalf("email next: %+v", next)
	}
	if got := phone.BlindIndex.Next; got == nil || got.Unique || !sameNorms(got.Normalize, []Normalization{NormTrim, NormNFC}) {
		t.Fatalf("phone next: %+v", got)
	}
	if ts := email.IndexTargets(); len(ts) != 2 || ts[0] != email.BlindIndex || ts[1] != next {
		t.Fatalf("index targets: %v", ts)
	}
	for name, want := range map[string]*Column{"email_bidx": email, "email_bidx2": email, "phone_bidx2": phone, "email": nil} {
		if got := users.BlindIndexColumn(name); got != want {
			t.Errorf("BlindIndexColumn(%s) = %v, want %v", name, got, want)
		}
	}
}

func TestTableNamesAndAliases(t *testing.T) {
	src := tablesPreamble + `tables:
  Sales.Orders:
    columns:
      card: {type: bigint}
  users:
    columns:
      ssn: {type: "character varying"}
`
	cfg, err := LoadBytes("c.yaml", []byte(src), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if o := cfg.Table("Sales", "Orders"); o == nil || o.Column("card").Type != TypeInt8 {
		t.Fatal("case-sensitive schema-qualified table or bigint alias")
	}
	if cfg.Table("sales", "orders") != nil {
		t.Fatal("names are exact, as stored in the catalog")
	}
	if u := cfg.Table("public", "users"); u.Column("ssn").Type != TypeVarchar || u.Column("ssn").BlindIndex != nil {
		t.Fatal("varchar alias")
	}
	if got := strings.Join(cfg.TableNames(), ","); got != "orders,users" {
		t.Fatalf("TableNames %q", got)
	}
	if cfg.Table("public", "users").Column("ssn").QualifiedName() != "public.users.ssn" {
		t.Fatal("QualifiedName")
	}
}

func TestLogicalTypeOIDs(t *testing.T) {
	seen := map[uint32]bool{}
	for _, lt := range LogicalTypes {
		if lt.OID() == 0 || lt.ArrayOID() == 0 {
			t.Fatalf("%s has no OID", lt)
		}
		if seen[lt.OID()] {
			t.Fatalf("%s: duplicate OID", lt)
		}
		seen[lt.OID()] = true
		if p, ok := ParseLogicalType(string(lt)); !ok || p != lt {
			t.Fatalf("%s does not parse as itself", lt)
		}
	}
}

func FuzzLoadBytes(f *testing.F) {
	f.Add([]byte("listen: 127.0.0.1:1\n"))
	f.Add([]byte(tablesPreamble + "tables:\n  users:\n    columns:\n      email: {type: text, blind_index: {column: b}}\n"))
	f.Add([]byte("listen: ${A:-b}:${C}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := LoadBytes("f.yaml", data, env(nil))
		if (cfg == nil) == (err == nil) {
			t.Fatalf("cfg %v err %v", cfg, err)
		}
	})
}

// TestLoopSpin checks proxy.loop_spin: 0 turns polling off, and units
// below a millisecond are accepted.
func TestLoopSpin(t *testing.T) {
	for src, want := range map[string]time.Duration{"0": 0, "0s": 0, "100us": 100 * time.Microsecond, "1ms": time.Millisecond} {
		cfg, err := LoadBytes("c.yaml", []byte("proxy:\n  loop_spin: "+src+"\n"), env(nil))
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if cfg.Proxy.LoopSpin != want {
			t.Errorf("loop_spin %s = %v, want %v", src, cfg.Proxy.LoopSpin, want)
		}
	}
}

// TestConnectionLimits checks proxy.max_client_connections,
// max_pending_startups and authentication_timeout: values are taken, and
// a defaulted max_pending_startups follows a smaller
// max_client_connections (a set one above it is an error, TestErrors).
func TestConnectionLimits(t *testing.T) {
	for _, tc := range []struct {
		src              string
		clients, pending int
		auth             time.Duration
	}{
		{"", 10000, 1000, time.Minute},
		{"proxy:\n  max_client_connections: 2\n", 2, 2, time.Minute},
		{"proxy:\n  max_client_connections: 2000\n", 2000, 1000, time.Minute},
		{"proxy:\n  max_client_connections: 5\n  max_pending_startups: 5\n", 5, 5, time.Minute},
		{"proxy:\n  max_pending_startups: 1\n  authentication_timeout: 1s\n", 10000, 1, time.Second},
		{"proxy:\n  max_client_connections: 1000000\n  max_pending_startups: 1000000\n  authentication_timeout: 10m\n", 1000000, 1000000, 10 * time.Minute},
	} {
		cfg, err := LoadBytes("c.yaml", []byte(tc.src), env(nil))
		if err != nil {
			t.Fatalf("%q: %v", tc.src, err)
		}
		if p := cfg.Proxy; p.MaxClientConnections != tc.clients || p.MaxPendingStartups != tc.pending || p.AuthenticationTimeout != tc.auth {
			t.Errorf("%q: max_client_connections %d, max_pending_startups %d, authentication_timeout %v; want %d, %d, %v",
				tc.src, p.MaxClientConnections, p.MaxPendingStartups, p.AuthenticationTimeout, tc.clients, tc.pending, tc.auth)
		}
	}
}

// TestLogBuffer checks log.buffer's units.
func TestLogBuffer(t *testing.T) {
	for src, want := range map[string]int{"4096": 4096, "64kB": 64000, "8MiB": 8 << 20} {
		cfg, err := LoadBytes("c.yaml", []byte("log:\n  buffer: "+src+"\n"), env(nil))
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if cfg.Log.Buffer != want {
			t.Errorf("log.buffer %s = %d, want %d", src, cfg.Log.Buffer, want)
		}
	}
}
