//go:build unix

package keysource

import (
	"fmt"
	"io/fs"
	"syscall"
)

// checkKeyFileMode refuses a master key file that other users may read or
// change, by PostgreSQL's rule for its server key file (check_ssl_key_file
// in src/backend/libpq/be-secure-common.c; OpenSSH refuses private keys
// alike): nothing for others, and nothing for the group unless root owns
// the file, which may then let its group read it (u=rw,g=r, 0640: a key
// root hands to a service's group, or a Kubernetes secret volume with an
// fsGroup). fi is the opened file's, so the check is of what is read.
func checkKeyFileMode(path string, fi fs.FileInfo) error {
	perm := fi.Mode().Perm()
	bad := fs.FileMode(0o077)
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid == 0 {
		bad = 0o037
	}
	if perm&bad == 0 {
		return nil
	}
	return fmt.Errorf("keysource: master key file %s has mode %04o: other users may read or change it; "+
		"make it readable by pgveil's user only: chmod 600 %s (or 0640 when root owns it and pgveil is in its group)", path, perm, path)
}
