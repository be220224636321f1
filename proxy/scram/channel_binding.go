package scram

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"errors"

	_ "crypto/sha512" // SHA-384 and SHA-512 for crypto.Hash.New
)

// Mechanism names, as PostgreSQL lists them in AuthenticationSASL.
const (
	MechanismSCRAM     = "SCRAM-SHA-256"
	MechanismSCRAMPlus = "SCRAM-SHA-256-PLUS"
)

// cbType is the only channel-binding type PostgreSQL supports (RFC 5929 §4).
const cbType = "tls-server-end-point"

// GS2 headers (RFC 5802 §7, "gs2-header"). PostgreSQL supports no authzid,
// so the part between the two commas is always empty.
const (
	gs2None = "n,,"                // client does not support channel binding
	gs2Yes  = "y,,"                // client supports it but thinks the server does not
	gs2Plus = "p=" + cbType + ",," // client requires channel binding
)

// TLSServerEndPoint returns the tls-server-end-point channel-binding data of
// cert (RFC 5929 §4.1): the hash of its DER encoding, with the hash function
// of the certificate's signatureAlgorithm, except that MD5 and SHA-1 are
// replaced by SHA-256. This is what PostgreSQL's
// be_tls_get_certificate_hash computes for its own certificate and libpq for
// the server's. RSA-PSS uses the hash of its parameters (as PostgreSQL does
// with OpenSSL's X509_get_signature_info). Algorithms without a single hash
// (Ed25519) have no defined binding and are an error, as in PostgreSQL.
//
// For pgveil's own certificate pass the leaf of its tls.Certificate; for an
// upstream server, tls.ConnectionState.PeerCertificates[0].
func TLSServerEndPoint(cert *x509.Certificate) ([]byte, error) {
	if cert == nil || len(cert.Raw) == 0 {
		return nil, errors.New("scram: no certificate for tls-server-end-point channel binding")
	}
	var hash crypto.Hash
	switch cert.SignatureAlgorithm {
	case x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1:
		hash = crypto.SHA256 // RFC 5929 §4.1: MD5 and SHA-1 are upgraded
	case x509.SHA256WithRSA, x509.SHA256WithRSAPSS, x509.DSAWithSHA256, x509.ECDSAWithSHA256:
		hash = crypto.SHA256
	case x509.SHA384WithRSA, x509.SHA384WithRSAPSS, x509.ECDSAWithSHA384:
		hash = crypto.SHA384
	case x509.SHA512WithRSA, x509.SHA512WithRSAPSS, x509.ECDSAWithSHA512:
		hash = crypto.SHA512
	default:
		return nil, errors.New("scram: certificate signature algorithm " + cert.SignatureAlgorithm.String() +
			" has no tls-server-end-point hash (RFC 5929 §4.1); use an RSA or ECDSA certificate for SCRAM-SHA-256-PLUS")
	}
	if hash == crypto.SHA256 {
		sum := sha256.Sum256(cert.Raw)
		return sum[:], nil
	}
	hh := hash.New()
	hh.Write(cert.Raw)
	return hh.Sum(nil), nil
}
