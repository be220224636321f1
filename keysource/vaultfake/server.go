package vaultfake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Server is a running fake Vault. Its zero value is not usable; call New.
type Server struct {
	// URL is the address to give the Vault client (http://127.0.0.1:port).
	URL string
	// Token is the only token the server accepts.
	Token string

	srv *httptest.Server

	mu          sync.Mutex
	namespace   string
	mounts      map[string]bool
	keys        map[string]*transitKey // "mount/name"
	unavailable bool
	failNext    int
	requests    map[string]int // "METHOD path" → count
	tokenTTL    time.Duration
	renewable   bool
	expires     time.Time
}

// Option configures New.
type Option func(*Server)

// WithToken sets the accepted token (default: a random "hvs." token).
func WithToken(t string) Option { return func(s *Server) { s.Token = t } }

// WithNamespace makes the server require X-Vault-Namespace: ns.
func WithNamespace(ns string) Option { return func(s *Server) { s.namespace = strings.Trim(ns, "/") } }

// WithMount adds a Transit mount path (default: "transit").
func WithMount(m string) Option { return func(s *Server) { s.mounts[strings.Trim(m, "/")] = true } }

// WithRenewableToken makes the token renewable with the given TTL; each
// renew-self extends it by ttl. The default token is a non-expiring,
// non-renewable root-like token.
func WithRenewableToken(ttl time.Duration) Option {
	return func(s *Server) { s.tokenTTL, s.renewable = ttl, true }
}

// New starts a fake Vault on a loopback port. Close it when done.
func New(opts ...Option) *Server {
	s := &Server{
		mounts:   map[string]bool{},
		keys:     map[string]*transitKey{},
		requests: map[string]int{},
	}
	for _, o := range opts {
		o(s)
	}
	if len(s.mounts) == 0 {
		s.mounts["transit"] = true
	}
	if s.Token == "" {
		b := make([]byte, 12)
		rand.Read(b)
		s.Token = "hvs." + hex.EncodeToString(b)
	}
	if s.renewable {
		s.expires = time.Now().Add(s.tokenTTL)
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// SetUnavailable makes every request fail with 503 {"errors":["Vault is
// sealed"]} until called with false.
func (s *Server) SetUnavailable(down bool) {
	s.mu.Lock()
	s.unavailable = down
	s.mu.Unlock()
}

// FailNext makes the next n requests fail with 503.
func (s *Server) FailNext(n int) {
	s.mu.Lock()
	s.failNext = n
	s.mu.Unlock()
}

// Requests counts the requests received for method and path (path as in
// the URL, e.g. "/v1/transit/decrypt/pgveil"); method "" counts every method.
func (s *Server) Requests(method, path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if method != "" {
		return s.requests[method+" "+path]
	}
	n := 0
	for k, c := range s.requests {
		if strings.HasSuffix(k, " "+path) {
			n += c
		}
	}
	return n
}

// TokenExpires is when the token stops working (zero: never).
func (s *Server) TokenExpires() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.expires
}

// serve checks the cross-cutting parts of a request (outage, token,
// namespace, method) and routes it.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[r.Method+" "+r.URL.Path]++
	if s.unavailable || s.failNext > 0 {
		if s.failNext > 0 {
			s.failNext--
		}
		writeErrors(w, http.StatusServiceUnavailable, "Vault is sealed")
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	if !ok {
		writeErrors(w, http.StatusNotFound)
		return
	}
	if s.namespace != "" && strings.Trim(r.Header.Get("X-Vault-Namespace"), "/") != s.namespace {
		// Outside its namespace a path does not exist for the token.
		writeErrors(w, http.StatusForbidden, "permission denied")
		return
	}
	if r.Header.Get("X-Vault-Token") != s.Token || (!s.expires.IsZero() && time.Now().After(s.expires)) {
		writeErrors(w, http.StatusForbidden, "permission denied")
		return
	}
	var body map[string]json.RawMessage
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		if r.ContentLength != 0 {
			dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 32<<20))
			if err := dec.Decode(&body); err != nil && err.Error() != "EOF" {
				writeErrors(w, http.StatusBadRequest, "failed to parse JSON input: "+err.Error())
				return
			}
		}
	}
	s.route(w, r.Method, path, body)
}

func (s *Server) route(w http.ResponseWriter, method, path string, body map[string]json.RawMessage) {
	write := method == http.MethodPost || method == http.MethodPut
	switch path {
	case "auth/token/lookup-self":
		if method != http.MethodGet && !write {
			writeErrors(w, http.StatusMethodNotAllowed)
			return
		}
		s.lookupSelf(w)
		return
	case "auth/token/renew-self":
		if !write {
			writeErrors(w, http.StatusMethodNotAllowed)
			return
		}
		s.renewSelf(w)
		return
	}
	mount, rest, op, name := s.splitTransit(path)
	if mount == "" {
		writeErrors(w, http.StatusNotFound, "1 error occurred:\n\t* unsupported path\n\n")
		return
	}
	_ = rest
	switch {
	case op == "keys" && method == http.MethodGet:
		s.readKey(w, mount, name)
	case op == "keys" && write:
		s.createKey(w, mount, name)
	case op == "rotate" && write:
		s.rotateKey(w, mount, name)
	case op == "config" && write:
		s.configKey(w, mount, name, body)
	case op == "encrypt" && write:
		s.encrypt(w, mount, name, body)
	case op == "decrypt" && write:
		s.decrypt(w, mount, name, body)
	case op == "rewrap" && write:
		s.rewrap(w, mount, name, body)
	default:
		writeErrors(w, http.StatusMethodNotAllowed)
	}
}

// splitTransit parses "<mount>/encrypt/<name>", ".../keys/<name>[/rotate|/config]".
func (s *Server) splitTransit(path string) (mount, rest, op, name string) {
	for m := range s.mounts {
		r, ok := strings.CutPrefix(path, m+"/")
		if !ok {
			continue
		}
		parts := strings.Split(r, "/")
		switch {
		case len(parts) == 2 && parts[1] != "" && (parts[0] == "encrypt" || parts[0] == "decrypt" || parts[0] == "rewrap" || parts[0] == "keys"):
			return m, r, parts[0], parts[1]
		case len(parts) == 3 && parts[0] == "keys" && parts[1] != "" && (parts[2] == "rotate" || parts[2] == "config"):
			return m, r, parts[2], parts[1]
		}
	}
	return "", "", "", ""
}

// writeErrors writes Vault's error body: {"errors": [...]}.
func writeErrors(w http.ResponseWriter, status int, msgs ...string) {
	if msgs == nil {
		msgs = []string{}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": msgs})
}

// writeData writes a successful response in Vault's envelope.
func writeData(w http.ResponseWriter, data map[string]any, auth map[string]any) {
	b := make([]byte, 16)
	rand.Read(b)
	id := hex.EncodeToString(b)
	resp := map[string]any{
		"request_id":     id[0:8] + "-" + id[8:12] + "-" + id[12:16] + "-" + id[16:20] + "-" + id[20:32],
		"lease_id":       "",
		"renewable":      false,
		"lease_duration": 0,
		"data":           data,
		"wrap_info":      nil,
		"warnings":       nil,
		"auth":           auth,
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}
