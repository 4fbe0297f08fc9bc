package server

import (
	"crypto/sha256"
	"net/http"
	"sync"
	"time"

	"gatecache/internal/origin"
)

// negativeCache remembers, briefly, the requests upstream answered 404 or
// 410, so that a fleet asking for a missing file does not hammer the
// uplink.
//
// An entry is the whole upstream URL, query included, even where the query
// is not part of the cache key (KEEP_QUERY=false): the query goes upstream,
// and a 404 that depends on it (an expired signature, another client's
// token) must not answer a request with another query.
type negativeCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[negativeKey]time.Time
}

// negativeKey is a digest of the key and query: entries stay small however
// long the URL (up to MaxTargetLength).
type negativeKey [sha256.Size]byte

// negativeMaxEntries bounds the table (about 100 bytes an entry); when it
// is full of live entries it starts afresh, which only costs upstream
// requests.
const negativeMaxEntries = 4096

func newNegativeCache(ttl time.Duration) *negativeCache {
	return &negativeCache{ttl: ttl, m: map[negativeKey]time.Time{}}
}

func keyOf(t origin.Target) negativeKey {
	h := sha256.New()
	h.Write([]byte(t.Key))
	h.Write([]byte{0})
	h.Write([]byte(t.Query))
	var k negativeKey
	h.Sum(k[:0])
	return k
}

func (n *negativeCache) add(t origin.Target) {
	if n.ttl <= 0 {
		return
	}
	key := keyOf(t)
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.m) >= negativeMaxEntries {
		for k, exp := range n.m {
			if now.After(exp) {
				delete(n.m, k)
			}
		}
		if len(n.m) >= negativeMaxEntries {
			clear(n.m)
		}
	}
	n.m[key] = now.Add(n.ttl)
}

func (n *negativeCache) has(t origin.Target) bool {
	if n.ttl <= 0 {
		return false
	}
	key := keyOf(t)
	n.mu.Lock()
	defer n.mu.Unlock()
	exp, ok := n.m[key]
	if ok && time.Now().After(exp) {
		delete(n.m, key)
		return false
	}
	return ok
}

// servedNegative answers 404 when upstream said so moments ago for this
// very URL.
func (h *Handler) servedNegative(w http.ResponseWriter, t origin.Target) bool {
	if !h.negative.has(t) {
		return false
	}
	w.Header().Set("Cache-Status", statusNegative)
	http.Error(w, "not found upstream (remembered briefly)", http.StatusNotFound)
	return true
}
