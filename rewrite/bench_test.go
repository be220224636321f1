package rewrite

import (
	"fmt"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v5"
)

// A typical 200-byte statement that names no configured table: the
// pre-check clears it without parsing.
const benchOther = `SELECT o.id, o.total, o.status, o.created_at FROM orders o JOIN order_items i ON i.order_id = o.id WHERE o.customer_id = $1 AND o.status = 'open' AND i.sku = $2 ORDER BY o.created_at DESC LIMIT 50`

// A typical 200-byte ORM statement on an encrypted column.
const benchEncrypted = `SELECT "users"."id", "users"."email", "users"."name", "users"."org_id", "users"."created_at" FROM "users" WHERE "users"."email" = $1 AND "users"."deleted_at" IS NULL ORDER BY "users"."id" LIMIT $2`

func BenchmarkPrecheck(b *testing.B) {
	pc := newPrecheck(testConfig(b).TableNames())
	b.SetBytes(int64(len(benchOther)))
	for i := 0; i < b.N; i++ {
		if pc.mayReference(benchOther) {
			b.Fatal("false positive")
		}
	}
}

func BenchmarkPlanPassThrough(b *testing.B) {
	p := newTestPlanner(b)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := p.Plan(benchOther, publicPath); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPlanCacheHit(b *testing.B) {
	p := newTestPlanner(b)
	if _, err := p.Plan(benchEncrypted, publicPath); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := p.Plan(benchEncrypted, publicPath); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPlanCacheMiss(b *testing.B) {
	p := NewPlanner(testConfig(b), 0) // no cache: every call parses and plans
	p.SetCatalog(testCatalog())
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := p.Plan(benchEncrypted, publicPath); err != nil {
			b.Fatal(err)
		}
	}
}

const benchInsertLiterals = `INSERT INTO "users" ("email", "org_id", "phone", "created_at") VALUES ('alice%d@example.com', %d, '+1 555 %04d', '2024-01-02 03:04:05') RETURNING "id"`

// BenchmarkPlanMissInsertLiterals: an INSERT with its values inline, as
// psycopg2 sends it, planned from scratch (no cache).
func BenchmarkPlanMissInsertLiterals(b *testing.B) {
	p := NewPlanner(testConfig(b), 0)
	p.SetCatalog(testCatalog())
	sql := fmt.Sprintf(benchInsertLiterals, 1, 42, 100)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := p.Plan(sql, publicPath); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlanShapeHit: the same INSERT with other values each time, as
// an interpolating driver sends it: planned from its shape's plan.
func BenchmarkPlanShapeHit(b *testing.B) {
	p := newTestPlanner(b)
	texts := make([]string, 1024)
	for i := range texts {
		texts[i] = fmt.Sprintf(benchInsertLiterals, i*7919, i%100, i)
	}
	if _, err := p.Plan(texts[0], publicPath); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := p.Plan(texts[i%len(texts)], publicPath); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if s := p.Stats(); s.ShapeHits < uint64(b.N) {
		b.Fatalf("stats %+v after %d plans", s, b.N)
	}
}

func BenchmarkRender(b *testing.B) {
	p := newTestPlanner(b)
	sql := `INSERT INTO "users" ("email", "org_id") VALUES ('alice@example.com', 42) RETURNING "id"`
	plan, err := p.Plan(sql, publicPath)
	if err != nil {
		b.Fatal(err)
	}
	lit := ByteaLiteral(make([]byte, 64))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := plan.Render(sql, func(*Stmt, *Slot) (string, error) { return lit, nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseOnly is pg_query's parse of the same statement, the floor
// under BenchmarkPlanCacheMiss.
func BenchmarkParseOnly(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := pg.Parse(benchEncrypted); err != nil {
			b.Fatal(err)
		}
	}
}
