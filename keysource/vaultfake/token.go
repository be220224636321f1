package vaultfake

import (
	"math"
	"net/http"
	"time"
)

// lookupSelf answers GET auth/token/lookup-self like Vault: the token's
// properties under "data", ttl in seconds (0 for a non-expiring token).
func (s *Server) lookupSelf(w http.ResponseWriter) {
	ttl := 0
	expire := any(nil)
	if !s.expires.IsZero() {
		ttl = int(math.Ceil(time.Until(s.expires).Seconds()))
		expire = s.expires.UTC().Format(time.RFC3339Nano)
	}
	writeData(w, map[string]any{
		"accessor": "fake-accessor", "creation_ttl": int(s.tokenTTL.Seconds()), "display_name": "token",
		"entity_id": "", "expire_time": expire, "explicit_max_ttl": 0, "id": s.Token,
		"meta": nil, "num_uses": 0, "orphan": true, "path": "auth/token/create",
		"policies": []string{"default", "pgveil"}, "renewable": s.renewable, "ttl": ttl, "type": "service",
	}, nil)
}

// renewSelf answers auth/token/renew-self: the lease starts again; the
// response carries "auth" with the new lease_duration.
func (s *Server) renewSelf(w http.ResponseWriter) {
	if !s.renewable {
		writeErrors(w, http.StatusBadRequest, "lease is not renewable")
		return
	}
	s.expires = time.Now().Add(s.tokenTTL)
	writeData(w, nil, map[string]any{
		"client_token": s.Token, "accessor": "fake-accessor", "policies": []string{"default", "pgveil"},
		"token_policies": []string{"default", "pgveil"}, "metadata": nil,
		"lease_duration": int(s.tokenTTL.Seconds()), "renewable": true, "entity_id": "",
		"token_type": "service", "orphan": true,
	})
}

// Rotate rotates a Transit key directly (as transit/keys/<name>/rotate would).
func (s *Server) Rotate(mount, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.key(mount, name)
	if k == nil {
		k = newTransitKey(name)
		s.keys[mount+"/"+name] = k
		return
	}
	k.rotate()
}

// LatestVersion is a Transit key's newest version (0 if absent).
func (s *Server) LatestVersion(mount, name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := s.key(mount, name); k != nil {
		return k.latest
	}
	return 0
}
