package scram

import (
	"bytes"
	"testing"
)

// FuzzServer feeds arbitrary mechanisms and client messages to Server.Start
// and Server.Finish, with and without channel binding. It must never panic,
// every error must carry an SQLSTATE, and a successful Finish must return a
// ClientKey that hashes to StoredKey.
func FuzzServer(f *testing.F) {
	nonce := rfcClientNonce + rfcServerNonce
	seeds := []struct {
		mech         string
		first, final string
	}{
		{MechanismSCRAM, rfcClientFirst, rfcClientFinal},
		{MechanismSCRAM, "n,,n=,r=abc", "c=biws,r=abc" + rfcServerNonce + ",p=" + rfcClientFinal[len(rfcClientFinal)-44:]},
		{MechanismSCRAM, "y,,n=,r=abc,x=1,", "c=eSws,r=abc,x=1,p=AAAA"},
		{MechanismSCRAMPlus, "p=tls-server-end-point,,n=,r=abc", "c=" + b64.EncodeToString(append([]byte(gs2Plus), testCB...)) + ",r=abc,p="},
		{MechanismSCRAMPlus, "p=tls-server-end-point", ""},
		{MechanismSCRAM, "n,a=x,n=,r=", "c=,r=,p="},
		{MechanismSCRAM, "n,,m=x", "c=biws,r=" + nonce + ",p=" + rfcClientFinal[len(rfcClientFinal)-44:] + ",x"},
		{"", "", ""},
		{MechanismSCRAM, "\x00", "\xff,\x00"},
	}
	for _, s := range seeds {
		f.Add(s.mech, []byte(s.first), []byte(s.final), false)
		f.Add(s.mech, []byte(s.first), []byte(s.final), true)
	}
	v := rfcVerifier(f)
	f.Fuzz(func(t *testing.T, mech string, first, final []byte, tls bool) {
		var cb []byte
		if tls {
			cb = testCB
		}
		srv := NewServer(v, cb)
		srv.fixedNonce = rfcServerNonce
		sf, err := srv.Start(mech, first)
		if err != nil {
			if sqlState(err) == "" || sf != nil {
				t.Fatalf("Start: %v %q", err, sf)
			}
		}
		out, key, err := srv.Finish(final)
		if err != nil {
			if sqlState(err) == "" || out != nil || key != nil {
				t.Fatalf("Finish: %v %q", err, out)
			}
			return
		}
		if !bytes.Equal(h(key), v.StoredKey) {
			t.Fatal("Finish succeeded with a key that does not match StoredKey")
		}
	})
}

// FuzzClient feeds arbitrary server messages to Client.Final and
// Client.Verify. It must never panic.
func FuzzClient(f *testing.F) {
	f.Add([]byte(rfcServerFirst), []byte(rfcServerFinal))
	f.Add([]byte("m=x,"+rfcServerFirst), []byte("e=other-error"))
	f.Add([]byte(rfcServerFirst+",x=1,"), []byte("v=,x"))
	f.Add([]byte("r=,s=,i="), []byte(""))
	v := rfcVerifier(f)
	key, _ := keysFromPassword("pencil", v.Salt, v.Iterations)
	f.Fuzz(func(t *testing.T, serverFirst, serverFinal []byte) {
		c := NewClientFromKey(key, v)
		c.user, c.fixedNonce = "user", rfcClientNonce
		c.First(MechanismSCRAM, nil)
		if _, err := c.Final(serverFirst); err != nil {
			if sqlState(err) == "" {
				t.Fatalf("Final: %v", err)
			}
			return
		}
		if err := c.Verify(serverFinal); err != nil && sqlState(err) == "" {
			t.Fatalf("Verify: %v", err)
		}
	})
}
