package proxy

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/goleak"

	"github.com/pgveil/pgveil/integration/harness"
)

// TestReplicationCopyBoth streams physical WAL through pgveil: a
// replication connection, IDENTIFY_SYSTEM, START_REPLICATION (CopyBoth),
// WAL records arriving as CopyData while the client sends standby status
// updates, CopyDone from the client, and the session usable afterwards.
func TestReplicationCopyBoth(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startProxy(t, "")
	defer p.stop(t, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := harness.BuildURL(p.addr, harness.SuperUser, harness.Passwords[harness.SuperUser], "postgres", "sslmode=disable", "replication=true")
	conn, err := pgconn.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	res, err := conn.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll()
	if err != nil || len(res) != 1 || len(res[0].Rows) != 1 {
		t.Fatalf("IDENTIFY_SYSTEM: %v %v", res, err)
	}
	xlogpos := string(res[0].Rows[0][2])

	fe := conn.Frontend()
	fe.Send(&pgproto3.Query{String: "START_REPLICATION PHYSICAL " + xlogpos})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	for {
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			t.Fatalf("waiting for CopyBothResponse: %v", err)
		}
		if _, ok := msg.(*pgproto3.CopyBothResponse); ok {
			break
		}
		if e, ok := msg.(*pgproto3.ErrorResponse); ok {
			t.Fatalf("START_REPLICATION: %s", e.Message)
		}
	}
	// Make WAL on a direct connection.
	admin, err := cluster.Connect(ctx, harness.SuperUser, harness.Database)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "CREATE TEMP TABLE wal_maker AS SELECT generate_series(1, 1000) AS n"); err != nil {
		t.Fatal(err)
	}
	gotWAL := false
	for !gotWAL {
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			t.Fatalf("streaming: %v", err)
		}
		cd, ok := msg.(*pgproto3.CopyData)
		if !ok {
			t.Fatalf("unexpected %T while streaming", msg)
		}
		switch cd.Data[0] {
		case 'w': // XLogData
			gotWAL = true
		case 'k': // keepalive: answer with a standby status update
			fe.Send(&pgproto3.CopyData{Data: standbyStatus()})
			fe.Flush()
		}
	}
	// End the stream from our side; the server answers CopyDone, then
	// the command completes and the session is ready again.
	fe.Send(&pgproto3.CopyDone{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	for {
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			t.Fatalf("after CopyDone: %v", err)
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	if _, err := conn.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll(); err != nil {
		t.Fatalf("after streaming: %v", err)
	}
}

// standbyStatus is a Standby Status Update reporting nothing applied.
func standbyStatus() []byte {
	b := []byte{'r'}
	b = append(b, make([]byte, 8*3+8+1)...)
	return b
}
