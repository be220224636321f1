package rewrite

import (
	"sync"
	"sync/atomic"
)

// CacheStats are the plan cache's counters, for metrics. Hits include
// ShapeHits: texts planned from the plan of another text of their shape.
type CacheStats struct {
	Hits, Misses uint64
	ShapeHits    uint64
	Size         int
}

// planCache is a bounded cache of plans keyed by statement text and the
// session state the plan depends on (search path, standard_conforming_strings).
//
// A hit takes no lock: the index is a sync.Map from text to an immutable
// list of entries (usually one; more when sessions with different search
// paths send the same text), and recency is an atomic "referenced" bit.
// Eviction is CLOCK (second chance), the usual lock-free approximation of
// LRU: an entry used since the hand last passed survives one more round.
// Plans are immutable once cached and shared by every session.
type planCache struct {
	max   int
	index sync.Map // text → *cacheBucket

	mu   sync.Mutex    // guards ring, hand and inserts/evictions
	ring []*cacheEntry // the CLOCK ring, len ≤ max
	hand int
	gen  atomic.Uint64 // bumped by clear; a put planned under an older catalog is dropped

	hits, misses, shapeHits atomic.Uint64
}

type cacheBucket struct {
	entries []*cacheEntry // immutable: replaced, never modified
}

type cacheEntry struct {
	text       string
	path       []string
	backslash  bool
	unknown    bool // Session.PathUnknown
	noPins     bool // Session.NoPins
	plan       *Plan
	referenced atomic.Bool
}

func newPlanCache(max int) *planCache {
	if max < 0 {
		max = 0
	}
	return &planCache{max: max}
}

func (e *cacheEntry) matches(s *Session) bool {
	if e.backslash != s.BackslashStrings || e.unknown != s.PathUnknown || e.noPins != s.NoPins || len(e.path) != len(s.SearchPath) {
		return false
	}
	for i := range e.path {
		if e.path[i] != s.SearchPath[i] {
			return false
		}
	}
	return true
}

// generation is what to pass to put for a plan made from now on.
func (c *planCache) generation() uint64 { return c.gen.Load() }

// lookup returns the cached plan or nil; the caller counts the outcome
// (one lookup of a text may try its exact text and then its shape).
func (c *planCache) lookup(text string, s *Session) *Plan {
	if v, ok := c.index.Load(text); ok {
		for _, e := range v.(*cacheBucket).entries {
			if e.matches(s) {
				if !e.referenced.Load() {
					e.referenced.Store(true)
				}
				return e.plan
			}
		}
	}
	return nil
}

// put caches p for (text, s) unless the cache was cleared since gen.
func (c *planCache) put(text string, s *Session, p *Plan, gen uint64) {
	if c.max == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen.Load() {
		return // planned against a catalog that has since been replaced
	}
	var old []*cacheEntry
	if v, ok := c.index.Load(text); ok {
		old = v.(*cacheBucket).entries
		for _, e := range old {
			if e.matches(s) {
				return // another session planned it concurrently
			}
		}
	}
	e := &cacheEntry{text: text, path: append([]string(nil), s.SearchPath...), backslash: s.BackslashStrings, unknown: s.PathUnknown, noPins: s.NoPins, plan: p}
	if len(c.ring) < c.max {
		c.ring = append(c.ring, e)
	} else {
		c.evictAt(c.victim())
		c.ring[c.hand] = e
		c.hand = (c.hand + 1) % len(c.ring)
		if v, ok := c.index.Load(text); ok { // the victim may have shared our bucket
			old = v.(*cacheBucket).entries
		} else {
			old = nil
		}
	}
	c.index.Store(text, &cacheBucket{entries: append(append([]*cacheEntry(nil), old...), e)})
}

// victim advances the hand past referenced entries, clearing their bit.
func (c *planCache) victim() int {
	for {
		e := c.ring[c.hand]
		if !e.referenced.Load() {
			return c.hand
		}
		e.referenced.Store(false)
		c.hand = (c.hand + 1) % len(c.ring)
	}
}

// evictAt removes ring[i] from the index.
func (c *planCache) evictAt(i int) {
	e := c.ring[i]
	v, ok := c.index.Load(e.text)
	if !ok {
		return
	}
	var keep []*cacheEntry
	for _, x := range v.(*cacheBucket).entries {
		if x != e {
			keep = append(keep, x)
		}
	}
	if len(keep) == 0 {
		c.index.Delete(e.text)
	} else {
		c.index.Store(e.text, &cacheBucket{entries: keep})
	}
}

// clear drops every plan; plans being made concurrently are not cached.
func (c *planCache) clear() {
	c.mu.Lock()
	c.gen.Add(1)
	c.index.Clear()
	c.ring, c.hand = nil, 0
	c.mu.Unlock()
}

func (c *planCache) stats() CacheStats {
	c.mu.Lock()
	n := len(c.ring)
	c.mu.Unlock()
	return CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), ShapeHits: c.shapeHits.Load(), Size: n}
}
