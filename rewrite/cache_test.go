package rewrite

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestCacheHitMiss(t *testing.T) {
	p := newTestPlanner(t)
	sql := "SELECT id FROM users WHERE email = $1"
	a, err := p.Plan(sql, publicPath)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Plan(sql, publicPath)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatal("second plan of the same text is not the cached one")
	}
	if s := p.Stats(); s.Hits != 1 || s.Misses != 1 || s.Size != 1 {
		t.Fatalf("stats %+v", s)
	}
	// Another search path is another plan.
	c, err := p.Plan(sql, Session{SearchPath: []string{"app", "public"}})
	if err != nil {
		t.Fatal(err)
	}
	if c == a || len(c.Stmts[0].Slots) != 0 || !strings.Contains(strings.Join(c.Stmts[0].Text, ""), "FROM app.users") {
		t.Fatal("plan under app,public must differ (app.users shadows public.users, and is sent qualified)")
	}
	if s := p.Stats(); s.Misses != 2 || s.Size != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestCacheBound(t *testing.T) {
	p := NewPlanner(testConfig(t), 8)
	p.SetCatalog(testCatalog())
	for i := 0; i < 50; i++ {
		if _, err := p.Plan(fmt.Sprintf("SELECT id AS c%d FROM users WHERE email = $1", i), publicPath); err != nil {
			t.Fatal(err)
		}
	}
	if s := p.Stats(); s.Size != 8 || s.Misses != 50 {
		t.Fatalf("stats %+v", s)
	}
	// The most recent entries survive, the oldest are gone (LRU).
	if _, err := p.Plan("SELECT id AS c49 FROM users WHERE email = $1", publicPath); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Plan("SELECT id AS c0 FROM users WHERE email = $1", publicPath); err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.Hits != 1 || s.Misses != 51 {
		t.Fatalf("stats %+v", s)
	}
}

// TestCacheRecency: an entry used since the CLOCK hand last passed
// survives the next eviction; one never used again goes first.
func TestCacheRecency(t *testing.T) {
	c := newPlanCache(3)
	s := &Session{}
	put := func(k string) {
		_, gen := c.get(k, s)
		c.put(k, s, &Plan{}, gen)
	}
	put("a")
	put("b")
	put("c")
	c.get("a", s) // a and c are used again, b is not
	c.get("c", s)
	put("d") // evicts b
	if p, _ := c.get("b", s); p != nil {
		t.Fatal("b should have been evicted")
	}
	for _, k := range []string{"a", "c", "d"} {
		if p, _ := c.get(k, s); p == nil {
			t.Fatalf("%s should have survived", k)
		}
	}
	if st := c.stats(); st.Size != 3 {
		t.Fatalf("size %d", st.Size)
	}
}

func TestCacheSessionsShareText(t *testing.T) {
	c := newPlanCache(2)
	s1, s2 := &Session{SearchPath: []string{"a"}}, &Session{SearchPath: []string{"b"}}
	p1, p2 := &Plan{}, &Plan{}
	c.put("q", s1, p1, 0)
	c.put("q", s2, p2, 0)
	if got, _ := c.get("q", s1); got != p1 {
		t.Fatal("s1")
	}
	if got, _ := c.get("q", s2); got != p2 {
		t.Fatal("s2")
	}
	c.put("r", s1, &Plan{}, 0) // evicts one variant of q, keeps the other
	n := 0
	for _, s := range []*Session{s1, s2} {
		if got, _ := c.get("q", s); got != nil {
			n++
		}
	}
	if n != 1 || c.stats().Size != 2 {
		t.Fatalf("%d variants of q left, size %d", n, c.stats().Size)
	}
	if got, _ := c.get("q", &Session{SearchPath: []string{"a"}, BackslashStrings: true}); got != nil {
		t.Fatal("standard_conforming_strings is part of the key")
	}
}

// TestLiteralPlansAreNotCached: a text that carries a value of an
// encrypted column is not cached as it is (the cache would keep the
// plaintext); its shape is, and holds neither that value nor any other
// literal of the text.
func TestLiteralPlansAreNotCached(t *testing.T) {
	p := newTestPlanner(t)
	texts := []string{
		"INSERT INTO users (org_id, email, name) VALUES (41, 'first-secret@x.org', 'Ann')",
		"INSERT INTO users (org_id, email, name) VALUES (42, 'second-secret@x.org', 'Bob')",
		"INSERT INTO users (org_id, email, name) VALUES (43, 'third@x.org', 'Cy')",
	}
	for _, sql := range texts {
		plan, err := p.Plan(sql, publicPath)
		if err != nil {
			t.Fatal(err)
		}
		if lit := plan.Stmts[0].Literals; len(lit) == 0 || sql[lit[len(lit)-1].Start:lit[len(lit)-1].End] == "" {
			t.Fatalf("%s: literals %v", sql, lit)
		}
	}
	if s := p.Stats(); s.Size != 1 || s.Misses != 1 || s.ShapeHits != 2 {
		t.Fatalf("stats %+v", s)
	}
	for _, e := range p.cache.ring {
		var held []string
		held = append(held, e.text)
		if e.plan.shape == nil {
			t.Fatalf("cached by text: %q", e.text)
		}
		for _, ss := range e.plan.shape.stmts {
			held = append(held, ss.st.Original)
			held = append(held, ss.st.Text...)
			for _, seg := range ss.pieces {
				for _, pc := range seg {
					held = append(held, pc.text)
				}
			}
		}
		for _, h := range held {
			for _, v := range []string{"secret", "Ann", "41"} {
				if strings.Contains(h, v) {
					t.Fatalf("the cache holds %q: %q", v, h)
				}
			}
		}
	}
}

func TestPrecheckPassThroughBypassesCache(t *testing.T) {
	p := newTestPlanner(t)
	plan, err := p.Plan("SELECT * FROM orders WHERE id = $1", publicPath)
	if err != nil || plan.Rewritten || len(plan.Stmts) != 1 || plan.Stmts[0].Kind != KindSelect {
		t.Fatalf("%+v %v", plan, err)
	}
	if s := p.Stats(); s.Hits+s.Misses != 0 {
		t.Fatalf("pre-checked text touched the cache: %+v", s)
	}
}

func TestSetCatalogInvalidates(t *testing.T) {
	p := NewPlanner(testConfig(t), 16)
	sql := "SELECT * FROM users"
	before, err := p.Plan(sql, publicPath)
	if err != nil {
		t.Fatal(err)
	}
	if !before.Stmts[0].OutputsByOrigin {
		t.Fatal("without a catalog, * over users maps by origin")
	}
	p.SetCatalog(testCatalog())
	if s := p.Stats(); s.Size != 0 {
		t.Fatalf("SetCatalog kept %d plans", s.Size)
	}
	after, err := p.Plan(sql, publicPath)
	if err != nil {
		t.Fatal(err)
	}
	if after.Stmts[0].OutputsByOrigin || len(after.Stmts[0].Outputs) != 13 {
		t.Fatalf("with the catalog, * expands: %+v", after.Stmts[0])
	}
}

func TestCacheDisabled(t *testing.T) {
	p := NewPlanner(testConfig(t), 0)
	for i := 0; i < 2; i++ {
		if _, err := p.Plan("SELECT id FROM users WHERE email = $1", publicPath); err != nil {
			t.Fatal(err)
		}
	}
	if s := p.Stats(); s.Size != 0 || s.Misses != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// TestConcurrentPlans runs the planner from many goroutines while the
// catalog is swapped (run with -race).
func TestConcurrentPlans(t *testing.T) {
	p := newTestPlanner(t)
	stmts := []string{
		"SELECT id FROM users WHERE email = $1",
		"INSERT INTO users (email, org_id) VALUES ($1, $2)",
		"SELECT email FROM users WHERE id = $1",
		"UPDATE users SET email = $1 WHERE org_id = $2",
		"SELECT * FROM orders",
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				sql := stmts[(g+i)%len(stmts)]
				plan, err := p.Plan(sql, publicPath)
				if err != nil {
					t.Error(err)
					return
				}
				if sql != "SELECT * FROM orders" && !plan.Rewritten {
					t.Errorf("%s not rewritten", sql)
					return
				}
				if g == 0 && i%50 == 0 {
					p.SetCatalog(testCatalog())
				}
			}
		}(g)
	}
	wg.Wait()
}

// get is lookup with the generation, as the planner uses them.
func (c *planCache) get(text string, s *Session) (*Plan, uint64) {
	gen := c.generation()
	return c.lookup(text, s), gen
}
