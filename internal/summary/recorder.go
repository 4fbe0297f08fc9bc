package summary

import (
	"sort"
	"sync"
	"sync/atomic"
)

// maxAliases bounds the number of distinct origin labels. Aliases come from
// the allow list, so a real node stays far below it; the cap only keeps a
// caller bug from growing memory and Prometheus cardinality without limit.
const maxAliases = 1024

// Labels used in place of an alias that cannot be kept as given.
const (
	aliasUnknown = "(unknown)" // empty alias: Prometheus treats "" as no label
	aliasOther   = "(other)"   // past maxAliases
)

// counters are one alias's running totals. Padded to a cache line so that
// two aliases updated from different cores do not share one.
type counters struct {
	hit, miss, requests atomic.Int64
	_                   [40]byte
}

// Recorder counts served bytes per canonical origin alias. Record is on the
// content handler's hot path: a known alias costs one lock-free map read
// (the map is copy-on-write) and three atomic adds, with no allocation.
type Recorder struct {
	aliases atomic.Pointer[map[string]*counters]
	mu      sync.Mutex // serialises adding an alias only
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	r := &Recorder{}
	m := map[string]*counters{}
	r.aliases.Store(&m)
	return r
}

// Record adds one response for the canonical origin alias: hit = body bytes
// served from cache, miss = body bytes that came from upstream. Negative
// amounts are ignored so that a caller's error cannot make totals shrink.
func (r *Recorder) Record(alias string, hit, miss int64) {
	c := (*r.aliases.Load())[alias]
	if c == nil {
		c = r.add(alias)
	}
	if hit > 0 {
		c.hit.Add(hit)
	}
	if miss > 0 {
		c.miss.Add(miss)
	}
	c.requests.Add(1)
}

// add returns the counters for a new alias, copying the map so that
// readers never lock.
func (r *Recorder) add(alias string) *counters {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.aliases.Load()
	if c := old[alias]; c != nil {
		return c // another goroutine added it meanwhile
	}
	key := alias
	switch {
	case alias == "":
		key = aliasUnknown
	case len(old) >= maxAliases:
		key = aliasOther
	}
	if c := old[key]; c != nil && key != alias {
		return c
	}
	m := make(map[string]*counters, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	c := &counters{}
	m[key] = c
	if key != alias && alias == "" {
		m[alias] = c // later empty-alias calls find it without locking
	}
	r.aliases.Store(&m)
	return c
}

// originCount is one alias's totals at one instant.
type originCount struct {
	alias               string
	hit, miss, requests int64
}

// snapshot returns every alias's totals, sorted by alias. Each counter is
// read atomically but not all together: a response recorded during the
// snapshot may land partly in this period and partly in the next, which
// keeps every total exact over time.
func (r *Recorder) snapshot() []originCount {
	m := *r.aliases.Load()
	out := make([]originCount, 0, len(m))
	for alias, c := range m {
		if alias == "" {
			continue // the same counters are listed as aliasUnknown
		}
		out = append(out, originCount{alias, c.hit.Load(), c.miss.Load(), c.requests.Load()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].alias < out[j].alias })
	return out
}
