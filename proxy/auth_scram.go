package proxy

// authenticateSCRAM is auth.mode scram: pgveil verifies the client against
// the role's verifier and logs in upstream with the recovered ClientKey.
func (s *session) authenticateSCRAM() error {
	return fatal(codeFeatureNotSupported, "auth.mode scram is not available in this build")
}
