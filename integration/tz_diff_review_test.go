package integration

// FIXED in the commit after the review: a statement that may change
// TimeZone (its text names a zone, a function, set_config) makes the zone
// unknown until the server's ReadyForQuery answers it (effTZ, tzFrom,
// tracker.restedSince): a pipelined timestamptz parameter into a timestamp
// or date column is refused (42804) until then.

// Review of this session's TimeZone tracking (proxy/searchpath.go
// noteParameterStatus -> session.utcSession; proxy/encrypt.go convertBind
// canon.ZoneDependent check).
//
// Failing (defects):
//
//   TestDiffReviewFoundPipelinedTimeZoneChange  MEDIUM (wrong value
//       stored, silently). The session starts in UTC. A pgx pipeline (or
//       batch) sends `SET TimeZone TO 'America/New_York'` and then an
//       INSERT whose parameter is declared timestamptz into an encrypted
//       timestamp column, before one Sync. PostgreSQL reports the new
//       TimeZone (ParameterStatus) only with the ReadyForQuery that answers
//       the Sync, so when pgveil converts the Bind, utcSession still says
//       UTC: pgveil stores 15:00:00 where PostgreSQL (the plain mirror, same
//       pipeline) stores 10:00:00. pgveil should refuse (42804) a
//       zone-dependent conversion while a statement that may change
//       TimeZone is still unanswered (or treat the zone as unknown until the
//       ReadyForQuery comes). Cause: proxy/encrypt.go convertBind reads
//       s.utcSession, which is the server's last report, not the zone the
//       server will use when it runs this Bind.

import (
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// tzPipeline runs SET TimeZone and an INSERT of a timestamptz-declared
// parameter into table's c_ts in one pipeline (one Sync).
func tzPipeline(t *testing.T, r *trEnv, c *pgconn.PgConn, table string, id string) error {
	t.Helper()
	pl := c.StartPipeline(r.ctx)
	pl.SendQueryParams(`SET TimeZone TO 'America/New_York'`, nil, nil, nil, nil)
	pl.SendQueryParams("INSERT INTO "+table+" (id, c_ts) VALUES ($1, $2)",
		[][]byte{[]byte(id), []byte("2024-01-02 15:00:00+00")}, []uint32{20, 1184}, []int16{0, 0}, nil)
	if err := pl.Sync(); err != nil {
		t.Fatal(err)
	}
	var first error
	for {
		res, err := pl.GetResults()
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		if res == nil {
			break
		}
		switch v := res.(type) {
		case *pgconn.ResultReader:
			if _, err := v.Close(); err != nil && first == nil {
				first = err
			}
		case *pgconn.PipelineSync:
			if err := pl.Close(); err != nil && first == nil {
				first = err
			}
			return first
		}
	}
	if err := pl.Close(); err != nil && first == nil {
		first = err
	}
	return first
}

func TestDiffReviewFoundPipelinedTimeZoneChange(t *testing.T) {
	r := newTrEnv(t, "ops_diffrev_tzpipe")
	if err := tzPipeline(t, r, r.su, "pt", "42"); err != nil {
		t.Fatalf("plain mirror: %v", err)
	}
	errP := tzPipeline(t, r, r.px, "et", "42")
	if deliberate(errP) {
		return // refused: fail closed, the fix
	}
	if errP != nil {
		t.Fatalf("through pgveil: %v", errP)
	}
	want, _, err := r.value(r.su, "pt", "c_ts", 42, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := r.value(r.px, "et", "c_ts", 42, 0)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("pipelined SET TimeZone 'America/New_York' + INSERT c_ts <- timestamptz '2024-01-02 15:00:00+00': pgveil stores %q, PostgreSQL %q (pgveil converted the Bind under the UTC it last heard of)", got, want)
	}
}

// TestDiffReviewHoldsTimeZoneTrackedAfterSet pins the sequential case:
// after a SET TimeZone that has been answered, the timestamptz parameter
// into a timestamp column is refused (42804), and after SET back to UTC
// it is stored as PostgreSQL stores it.
func TestDiffReviewHoldsTimeZoneTrackedAfterSet(t *testing.T) {
	r := newTrEnv(t, "ops_diffrev_tzseq")
	for _, c := range []*pgconn.PgConn{r.px, r.su} {
		if _, err := c.Exec(r.ctx, `SET TimeZone = 'Europe/Paris'`).ReadAll(); err != nil {
			t.Fatal(err)
		}
	}
	c := t2decl{"c_ts", 1184, 0, []byte("2024-01-02 15:00:00+00"), "timestamptz text"}
	_, errP := trExec(r.ctx, r.px, "INSERT INTO et (id, c_ts) VALUES ($1, $2)", [][]byte{[]byte("50"), c.val}, []uint32{20, c.oid}, []int16{0, 0}, 0)
	if !deliberate(errP) {
		t.Fatalf("Europe/Paris session: want pgveil's 42804 refusal, got %v", errP)
	}
	for _, c := range []*pgconn.PgConn{r.px, r.su} {
		if _, err := c.Exec(r.ctx, `SET TimeZone = 'Etc/UTC'`).ReadAll(); err != nil {
			t.Fatal(err)
		}
	}
	if p := r.t2write(51, c); len(p) > 0 {
		t.Error(p)
	}
}
