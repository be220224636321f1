package rewrite

import (
	"sync"
	"sync/atomic"
)

// CacheStats are the plan cache's counters, for metrics.
type CacheStats struct {
	Hits, Misses uint64
	Size         int
}

// cacheKey identifies a plan: the statement text and the session state it
// was planned under. The search path is hashed so a lookup allocates
// nothing; the entry keeps the path itself and a hit compares it, so a hash
// collision is a miss, never a wrong plan.
type cacheKey struct {
	text    string
	session uint64
}

type cacheEntry struct {
	key        cacheKey
	path       []string
	backslash  bool
	plan       *Plan
	prev, next *cacheEntry
}

// planCache is a bounded LRU of plans. Plans are immutable once cached and
// shared by every session that sends the same text under the same path.
type planCache struct {
	mu         sync.Mutex
	max        int
	m          map[cacheKey]*cacheEntry
	head, tail *cacheEntry // head is the most recently used
	gen        uint64      // bumped by clear; a put from an older generation is dropped

	hits, misses atomic.Uint64
}

func newPlanCache(max int) *planCache {
	if max < 0 {
		max = 0
	}
	return &planCache{max: max, m: make(map[cacheKey]*cacheEntry, min(max, 1024))}
}

func sessionHash(s *Session) uint64 {
	// FNV-1a over the path elements, each terminated by a 0 byte.
	h := uint64(14695981039346656037)
	for _, p := range s.SearchPath {
		for i := 0; i < len(p); i++ {
			h ^= uint64(p[i])
			h *= 1099511628211
		}
		h = (h ^ 0xff) * 1099511628211 // separator: ["ab"] and ["a","b"] differ
	}
	if s.BackslashStrings {
		h ^= 1
		h *= 1099511628211
	}
	return h
}

func samePath(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// get returns the cached plan and the generation to pass to put on a miss.
func (c *planCache) get(k cacheKey, s *Session) (*Plan, uint64) {
	c.mu.Lock()
	e := c.m[k]
	if e != nil && samePath(e.path, s.SearchPath) && e.backslash == s.BackslashStrings {
		c.moveToFront(e)
		p := e.plan
		c.mu.Unlock()
		c.hits.Add(1)
		return p, 0
	}
	gen := c.gen
	c.mu.Unlock()
	c.misses.Add(1)
	return nil, gen
}

func (c *planCache) put(k cacheKey, s *Session, p *Plan, gen uint64) {
	if c.max == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return // planned against a catalog that has since been replaced
	}
	if e := c.m[k]; e != nil {
		e.path, e.backslash, e.plan = append([]string(nil), s.SearchPath...), s.BackslashStrings, p
		c.moveToFront(e)
		return
	}
	e := &cacheEntry{key: k, path: append([]string(nil), s.SearchPath...), backslash: s.BackslashStrings, plan: p}
	c.m[k] = e
	c.pushFront(e)
	for len(c.m) > c.max {
		old := c.tail
		c.unlink(old)
		delete(c.m, old.key)
	}
}

func (c *planCache) clear() {
	c.mu.Lock()
	c.m = make(map[cacheKey]*cacheEntry, min(c.max, 1024))
	c.head, c.tail = nil, nil
	c.gen++
	c.mu.Unlock()
}

func (c *planCache) stats() CacheStats {
	c.mu.Lock()
	n := len(c.m)
	c.mu.Unlock()
	return CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Size: n}
}

func (c *planCache) moveToFront(e *cacheEntry) {
	if c.head == e {
		return
	}
	c.unlink(e)
	c.pushFront(e)
}

func (c *planCache) pushFront(e *cacheEntry) {
	e.prev, e.next = nil, c.head
	if c.head != nil {
		c.head.prev = e
	}
	c.head = e
	if c.tail == nil {
		c.tail = e
	}
}

func (c *planCache) unlink(e *cacheEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		c.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		c.tail = e.prev
	}
	e.prev, e.next = nil, nil
}
