//go:build !unix

package keysource

import "io/fs"

// checkKeyFileMode checks nothing where files have ACLs rather than modes
// (Windows): the file's ACL is the operator's to set.
func checkKeyFileMode(string, fs.FileInfo) error { return nil }
