package scram

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"
)

// selfSigned makes a certificate signed by key with the given algorithm.
func selfSigned(t *testing.T, key crypto.Signer, alg x509.SignatureAlgorithm) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:       big.NewInt(1),
		Subject:            pkix.Name{CommonName: "pgveil test"},
		NotBefore:          time.Now().Add(-time.Hour),
		NotAfter:           time.Now().Add(time.Hour),
		SignatureAlgorithm: alg,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestTLSServerEndPoint(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	for _, tc := range []struct {
		name string
		cert *x509.Certificate
		hash crypto.Hash
	}{
		{"ecdsa-sha256", selfSigned(t, p256, x509.ECDSAWithSHA256), crypto.SHA256},
		{"ecdsa-sha384", selfSigned(t, p384, x509.ECDSAWithSHA384), crypto.SHA384},
		{"ecdsa-sha512", selfSigned(t, p384, x509.ECDSAWithSHA512), crypto.SHA512},
		// RFC 5929 §4.1: MD5 and SHA-1 certificates are hashed with SHA-256.
		// Only the algorithm field is read, so a hand-made value will do.
		{"sha1-rsa", &x509.Certificate{Raw: []byte("der"), SignatureAlgorithm: x509.SHA1WithRSA}, crypto.SHA256},
		{"md5-rsa", &x509.Certificate{Raw: []byte("der"), SignatureAlgorithm: x509.MD5WithRSA}, crypto.SHA256},
		{"ecdsa-sha1", &x509.Certificate{Raw: []byte("der"), SignatureAlgorithm: x509.ECDSAWithSHA1}, crypto.SHA256},
		{"rsa-pss-sha384", &x509.Certificate{Raw: []byte("der"), SignatureAlgorithm: x509.SHA384WithRSAPSS}, crypto.SHA384},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := TLSServerEndPoint(tc.cert)
			if err != nil {
				t.Fatal(err)
			}
			hh := tc.hash.New()
			hh.Write(tc.cert.Raw)
			if !bytes.Equal(got, hh.Sum(nil)) {
				t.Fatalf("wrong hash")
			}
		})
	}

	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := TLSServerEndPoint(selfSigned(t, edKey, x509.PureEd25519)); err == nil {
		t.Error("Ed25519 certificate accepted")
	}
	if _, err := TLSServerEndPoint(nil); err == nil {
		t.Error("nil certificate accepted")
	}
}

// Binding to a real certificate's data end to end.
func TestPlusWithCertificate(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cb, err := TLSServerEndPoint(selfSigned(t, key, x509.ECDSAWithSHA256))
	if err != nil {
		t.Fatal(err)
	}
	if len(cb) != sha256.Size {
		t.Fatalf("len %d", len(cb))
	}
	v := NewVerifier("pw", []byte("saltsaltsaltsalt"), 4096)
	if _, err := exchange(NewServer(v, cb), NewClientFromPassword("pw"), MechanismSCRAMPlus, cb); err != nil {
		t.Fatal(err)
	}
	otherCB, _ := TLSServerEndPoint(selfSigned(t, key, x509.ECDSAWithSHA256))
	if _, err := exchange(NewServer(v, cb), NewClientFromPassword("pw"), MechanismSCRAMPlus, otherCB); sqlState(err) != CodeInvalidAuthorizationSpec {
		t.Fatalf("other certificate: %v", err)
	}
}
