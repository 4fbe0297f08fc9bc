package server

import (
	"net/http"
	"strconv"
	"strings"
)

// MaxTargetLength bounds the request-target (the URI of the request line)
// the content port serves: RFC 9110 §4.1 asks for at least 8000 octets;
// longer targets get 414 before anything else, so that no such key reaches
// upstream or the store (whose index cannot hold keys past 32 KiB).
const MaxTargetLength = 8 << 10

// targetTooLong answers 414 (RFC 9110 §15.5.15) for an over-long target.
func targetTooLong(w http.ResponseWriter, r *http.Request) bool {
	if len(r.RequestURI) <= MaxTargetLength {
		return false
	}
	http.Error(w, "request target is "+strconv.Itoa(len(r.RequestURI))+" bytes long; gatecache serves at most "+
		strconv.Itoa(MaxTargetLength), http.StatusRequestURITooLong)
	return true
}

// lastRange leaves a request with one Range value: its last. The Delivery
// Optimization agent (client-lite) adds a Range line on every resume without
// removing the earlier ones, oldest first, and writes whatever body arrives
// at its newest offset; the first line would hand it bytes from an old
// offset. Several lines are invalid anyway (Range is not a list field, RFC
// 9110 §5.3, §14.2), so taking the newest serves every other client as
// before. Lines an intermediary folded into one value ("bytes=a-b,
// bytes=c-d", RFC 9110 §5.3) are taken the same way: the last byte-range
// set wins.
func lastRange(h http.Header) {
	v := h["Range"]
	if len(v) == 0 {
		return
	}
	last := v[len(v)-1]
	if i := strings.LastIndex(last, "bytes="); i > 0 {
		last = last[i:]
	}
	if len(v) > 1 || last != v[0] {
		h["Range"] = []string{last}
	}
}

// shortURI is a request-target cut for a log line.
func shortURI(uri string) string {
	const max = 1 << 10
	if len(uri) <= max {
		return uri
	}
	return uri[:max] + "...(" + strconv.Itoa(len(uri)) + " bytes)"
}
