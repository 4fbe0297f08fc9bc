package httprange

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseContentRange parses a Content-Range response header value (RFC 9110
// §14.4):
//
//	Content-Range       = range-unit SP ( range-resp / unsatisfied-range )
//	range-resp          = incl-range "/" ( complete-length / "*" )
//	incl-range          = first-pos "-" last-pos
//	unsatisfied-range   = "*/" complete-length
//
// It returns the inclusive range [start, end] and the complete length,
// total = -1 for "*" (unknown), and start = end = -1 for an
// unsatisfied-range. Parsing is strict because the cache stores the bytes
// at the offsets this header claims: numbers are plain decimal digits that
// fit in an int64, there is exactly one SP after the unit, and a range
// with last-pos < first-pos or complete-length <= last-pos is invalid, as
// the RFC says. The unit is compared case-insensitively (RFC 9110 §14.1)
// and only "bytes" is accepted. Errors wrap ErrMalformed.
func ParseContentRange(v string) (start, end, total int64, err error) {
	bad := func(why string) (int64, int64, int64, error) {
		return 0, 0, 0, fmt.Errorf("%w: Content-Range %q: %s", ErrMalformed, v, why)
	}
	// A field value carries no leading or trailing OWS (RFC 9110 §5.5),
	// but a sloppy origin's extra blank is harmless to drop.
	s := strings.Trim(v, " \t")
	unit, rest, ok := strings.Cut(s, " ")
	if !ok || !strings.EqualFold(unit, "bytes") {
		return bad(`want the unit "bytes" and one space`)
	}
	if r, ok := strings.CutPrefix(rest, "*/"); ok {
		n, ok := parseDigits(r)
		if !ok {
			return bad("bad complete-length")
		}
		return -1, -1, n, nil
	}
	incl, length, ok := strings.Cut(rest, "/")
	if !ok {
		return bad(`want "first-last/length"`)
	}
	first, last, ok := strings.Cut(incl, "-")
	if !ok {
		return bad(`want "first-last"`)
	}
	if start, ok = parseDigits(first); !ok {
		return bad("bad first-pos")
	}
	if end, ok = parseDigits(last); !ok {
		return bad("bad last-pos")
	}
	if end < start {
		return bad("last-pos before first-pos")
	}
	if length == "*" {
		return start, end, -1, nil
	}
	if total, ok = parseDigits(length); !ok {
		return bad("bad complete-length")
	}
	if total <= end {
		return bad("last-pos not before complete-length")
	}
	return start, end, total, nil
}

// parseDigits parses 1*DIGIT into an int64; no sign, no blanks, no
// overflow.
func parseDigits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}
