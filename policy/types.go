package policy

import (
	"strings"
	"time"
)

// Config is a loaded, validated and defaulted pgveil configuration. It is
// immutable once Load returns it: a reload builds a new Config.
type Config struct {
	// Path is the file the config was read from ("" for LoadBytes with no name).
	Path string

	Listen    string
	Upstream  Upstream
	TLS       *ServerTLS // nil: client-facing TLS is off and SSLRequest is answered 'N'
	Auth      Auth
	KeySource KeySource
	Admin     Admin
	Log       Log
	Proxy     ProxyOptions

	// Tables in the order they appear in the file.
	Tables []*Table

	tableIndex map[string]*Table // "schema.name" → table
}

// Upstream is the real PostgreSQL server behind pgveil.
type Upstream struct {
	Address        string
	TLS            UpstreamTLSMode
	CAFile         string
	ServerName     string // for verify-full; defaults to the host of Address
	ServiceURL     string // pgveil's own connection: key store, catalog, auth_query, migrate
	ConnectTimeout time.Duration
}

// UpstreamTLSMode says how pgveil speaks TLS to the upstream server, with the
// meaning libpq gives the sslmode of the same name.
type UpstreamTLSMode string

// Upstream TLS modes.
const (
	UpstreamTLSDisable    UpstreamTLSMode = "disable"
	UpstreamTLSPrefer     UpstreamTLSMode = "prefer"
	UpstreamTLSRequire    UpstreamTLSMode = "require"
	UpstreamTLSVerifyFull UpstreamTLSMode = "verify-full"
)

// ServerTLS is the certificate pgveil presents to clients.
type ServerTLS struct {
	CertFile string
	KeyFile  string
	// MinVersion is "1.2" or "1.3".
	MinVersion string
	// Mode is "prefer" (TLS when the client asks for it) or "require" (a
	// client that does not is refused, as pg_hba.conf's hostssl does).
	Mode string
}

// Client TLS modes (tls.mode).
const (
	ClientTLSPrefer  = "prefer"
	ClientTLSRequire = "require"
)

// AuthMode selects how clients authenticate; see DESIGN.md "Authentication and TLS".
type AuthMode string

// Authentication modes.
const (
	AuthRelay AuthMode = "relay"
	AuthSCRAM AuthMode = "scram"
)

// Auth configures client authentication.
type Auth struct {
	Mode      AuthMode
	AuthQuery string
}

// DefaultAuthQuery fetches a role's password verifier, as PgBouncer does.
const DefaultAuthQuery = "SELECT rolname, rolpassword FROM pg_authid WHERE rolname = $1"

// KeySourceKind names a master key provider.
type KeySourceKind string

// Master key providers.
const (
	KeySourceLocal KeySourceKind = "local"
	KeySourceVault KeySourceKind = "vault"
)

// KeySource configures where the master key lives.
type KeySource struct {
	Kind  KeySourceKind
	Local LocalKeySource
	Vault VaultKeySource
}

// LocalKeySource is a 32-byte master key, base64, in a file or an environment variable.
type LocalKeySource struct {
	KeyFile string
	KeyEnv  string
	// PreviousKeyFiles hold older master keys that can still unwrap data
	// keys until `pgveil rotate --master` has rewrapped them.
	PreviousKeyFiles []string
}

// VaultKeySource is a HashiCorp Vault Transit key.
type VaultKeySource struct {
	Address      string
	TokenEnv     string
	Namespace    string
	CAFile       string
	TransitMount string
	KeyName      string
	Timeout      time.Duration
}

// Admin is the HTTP endpoint for /metrics, /healthz and /readyz.
type Admin struct {
	Listen string // "" disables it
}

// Log configures zap.
type Log struct {
	Level  string // debug | info | warn | error
	Format string // json | console
	// Buffer bounds the bytes of log lines waiting for stderr; lines that
	// do not fit are dropped and counted rather than stall a session.
	Buffer int
}

// ProxyOptions are limits and tunables of the proxy core.
type ProxyOptions struct {
	// MaxStartupMessage bounds the startup packet and every message before
	// authentication completes.
	MaxStartupMessage int
	// MaxMessage bounds every message after authentication.
	MaxMessage int
	// ShutdownTimeout is how long SIGTERM waits for sessions to finish.
	ShutdownTimeout time.Duration
	// PlanCacheSize is the number of statement plans kept, by statement text.
	PlanCacheSize int
	// EventLoops is the number of event-loop threads that relay plain-TCP
	// sessions (0: every session relays on its own goroutines). See
	// proxy/evloop_linux.go and proxy/loopengine.go.
	EventLoops int
	// LoopSpin is how long an event loop polls for the next message before
	// it sleeps, when CPUs are free (0: never). See proxy/evloop_spin_linux.go.
	LoopSpin time.Duration
	// MaxClientConnections bounds the client connections open at once,
	// from accept to close; a CancelRequest's connection leaves the count
	// once it is recognised. Beyond it a client gets FATAL 53300.
	MaxClientConnections int
	// MaxPendingStartups bounds the connections still in startup or
	// authentication at once (at most MaxClientConnections). Beyond it a
	// client gets FATAL 53300 rather than waiting.
	MaxPendingStartups int
	// AuthenticationTimeout bounds startup and authentication, on both
	// connections (Postgres's authentication_timeout).
	AuthenticationTimeout time.Duration
}

// Table is one configured table.
type Table struct {
	Schema string
	Name   string
	// KeyContext is the column whose value selects the data key (tenant), or "".
	KeyContext string
	// Columns in the order they appear in the file.
	Columns []*Column
	// Line is where the table's key appears in the config file.
	Line int

	colIndex map[string]*Column
}

// QualifiedName is "schema.name", the form used in AAD, metrics and the key store.
func (t *Table) QualifiedName() string { return t.Schema + "." + t.Name }

// Column returns the configured encrypted column of that name, or nil.
func (t *Table) Column(name string) *Column { return t.colIndex[name] }

// BlindIndexColumn returns the encrypted column whose blind index (current
// or next) is stored in the named physical column, or nil.
func (t *Table) BlindIndexColumn(name string) *Column {
	c, _ := t.IndexByColumn(name)
	return c
}

// IndexByColumn returns the blind index stored in the named physical
// column (a current one or, during a rotation, a next one) and its
// encrypted column, or nils.
func (t *Table) IndexByColumn(name string) (*Column, *BlindIndex) {
	for _, c := range t.Columns {
		bi := c.BlindIndex
		switch {
		case bi == nil:
		case bi.Column == name:
			return c, bi
		case bi.Next != nil && bi.Next.Column == name:
			return c, bi.Next
		}
	}
	return nil, nil
}

// Column is one encrypted column.
type Column struct {
	Table *Table
	Name  string
	// Type is the logical type the application sees.
	Type       LogicalType
	BlindIndex *BlindIndex // nil: no equality lookups
	// Readers are the roles that see plaintext; nil means every role.
	Readers []string
	OnError OnError
	Line    int
}

// IndexTargets are the blind indexes every write of the column fills: none,
// the current one, or the current one and the next one while an index key
// is being rotated (blind_index.next). Lookups use only the current one.
func (c *Column) IndexTargets() []*BlindIndex {
	switch {
	case c.BlindIndex == nil:
		return nil
	case c.BlindIndex.Next == nil:
		return []*BlindIndex{c.BlindIndex}
	}
	return []*BlindIndex{c.BlindIndex, c.BlindIndex.Next}
}

// QualifiedName is "schema.table.column".
func (c *Column) QualifiedName() string { return c.Table.QualifiedName() + "." + c.Name }

// CanRead reports whether role may see this column's plaintext.
func (c *Column) CanRead(role string) bool {
	if c.Readers == nil {
		return true
	}
	for _, r := range c.Readers {
		if r == role {
			return true
		}
	}
	return false
}

// BlindIndex configures the HMAC column kept beside an encrypted column.
type BlindIndex struct {
	// Column is the bytea column pgveil fills.
	Column string
	// Normalize is applied, in order, to the canonical text before the HMAC.
	Normalize []Normalization
	// Key names the index key; columns naming the same key share it, so
	// JOIN ON between them works. Defaults to the column's qualified name.
	Key string
	// Unique asks `pgveil check` for a UNIQUE index on Column (ON CONFLICT).
	Unique bool
	// Next is the index that replaces this one during an index-key
	// rotation: writes fill both columns, lookups still use this one, and
	// `pgveil migrate` backfills Next.Column. Its Next is always nil.
	Next *BlindIndex
}

// Normalization is a step applied to a value before its blind index is computed.
type Normalization string

// Normalizations.
const (
	NormLowercase Normalization = "lowercase"
	NormTrim      Normalization = "trim"
	NormNFC       Normalization = "nfc"
)

// OnError says what a value that fails to open becomes.
type OnError string

// OnError choices.
const (
	OnErrorError OnError = "error"
	OnErrorNull  OnError = "null"
)

// Table looks up a configured table by schema and name (exact, case-sensitive,
// as stored in the catalog).
func (c *Config) Table(schema, name string) *Table {
	return c.tableIndex[schema+"."+name]
}

// TableNames lists every configured table name (without schema), lowercased,
// for cheap pre-checks on statement text.
func (c *Config) TableNames() []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range c.Tables {
		n := strings.ToLower(t.Name)
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// HasEncryption reports whether any table is configured.
func (c *Config) HasEncryption() bool { return len(c.Tables) > 0 }
