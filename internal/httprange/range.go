// Package httprange parses Range and Content-Range header values and says
// which fixed-size blocks of the block store a byte range touches (Blocks).
//
// Parse follows net/http's ServeContent byte for byte wherever that gives a
// usable answer, so that the blocks the cache fetches for a request are
// exactly the bytes http.ServeContent later serves from them.
package httprange

import (
	"errors"
	"strconv"
	"strings"
)

// Range is a satisfiable byte range of an object: Length > 0 and
// Start+Length <= the object's size.
type Range struct{ Start, Length int64 }

// End is the offset just past the range.
func (r Range) End() int64 { return r.Start + r.Length }

var (
	// ErrUnsatisfiable means the Range header was well formed but none of
	// its ranges overlaps the object (RFC 9110 §14.1.1): answer 416 with
	// "Content-Range: bytes */size" (RFC 9110 §15.5.17).
	ErrUnsatisfiable = errors.New("httprange: range not satisfiable")
	// ErrMalformed means the header is not a byte-range set at all (other
	// unit, bad syntax, numbers that do not fit in an int64).
	ErrMalformed = errors.New("httprange: malformed range")
)

// Parse parses a Range header value against an object of the given size
// (RFC 9110 §14.1.2 and §14.2). An empty header gives nil, nil; a
// negative size gives ErrMalformed.
//
// The syntax accepted is net/http's: the unit must be exactly "bytes",
// whitespace around list elements and around the '-' is ignored, empty
// list elements are skipped (RFC 9110 §5.6.1), numbers are parsed with
// strconv.ParseInt (so "+5" is accepted and anything past int64 is
// malformed), and an int-range whose first-pos is past the end is dropped
// without its last-pos being checked. Ranges keep the client's order and
// are neither merged nor sorted, as ServeContent sends them.
//
// Two cases differ from net/http, which would produce a zero-length range
// and a nonsensical "Content-Range: bytes 10-9/10" for them:
//   - a suffix range of length 0 ("-0") is unsatisfiable, as RFC 9110
//     §14.1.1 says ("a suffix-range is satisfiable if it has a non-zero
//     suffix-length"), and any range of an empty object is unsatisfiable;
//   - a range set with no ranges at all ("bytes=", "bytes= ,") is
//     ErrMalformed, where net/http ignores the header (the grammar requires
//     at least one range-spec).
//
// Note that http.ServeContent also answers 200 with the whole object, not
// 206, when the ranges add up to more than the object (an overlap attack)
// and when a range is requested of an empty object.
func Parse(header string, size int64) ([]Range, error) {
	if header == "" {
		return nil, nil
	}
	const unit = "bytes="
	if !strings.HasPrefix(header, unit) || size < 0 {
		return nil, ErrMalformed
	}
	var ranges []Range
	unsatisfiable := false
	for spec := range strings.SplitSeq(header[len(unit):], ",") {
		spec = trim(spec)
		if spec == "" {
			continue
		}
		first, last, ok := strings.Cut(spec, "-")
		if !ok {
			return nil, ErrMalformed
		}
		first, last = trim(first), trim(last)
		if first == "" {
			// suffix-range: the last n bytes, n a non-negative integer.
			if last == "" || last[0] == '-' {
				return nil, ErrMalformed
			}
			n, err := strconv.ParseInt(last, 10, 64)
			if err != nil || n < 0 {
				return nil, ErrMalformed
			}
			if n == 0 || size == 0 {
				unsatisfiable = true
				continue
			}
			n = min(n, size)
			ranges = append(ranges, Range{Start: size - n, Length: n})
			continue
		}
		start, err := strconv.ParseInt(first, 10, 64)
		if err != nil || start < 0 {
			return nil, ErrMalformed
		}
		if start >= size {
			unsatisfiable = true
			continue
		}
		if last == "" {
			ranges = append(ranges, Range{Start: start, Length: size - start})
			continue
		}
		end, err := strconv.ParseInt(last, 10, 64)
		if err != nil || start > end {
			return nil, ErrMalformed
		}
		end = min(end, size-1)
		ranges = append(ranges, Range{Start: start, Length: end - start + 1})
	}
	if len(ranges) == 0 {
		if unsatisfiable {
			return nil, ErrUnsatisfiable
		}
		return nil, ErrMalformed
	}
	return ranges, nil
}

// trim removes the ASCII white space textproto.TrimString removes, which
// is what net/http strips around range specs.
func trim(s string) string {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

// Span returns the smallest single range covering all of rs: the bytes a
// response needs, and so the blocks that must be present or fetched before
// it can be served. ok is false when rs is empty.
func Span(rs []Range) (Range, bool) {
	if len(rs) == 0 {
		return Range{}, false
	}
	start, end := rs[0].Start, rs[0].End()
	for _, r := range rs[1:] {
		start = min(start, r.Start)
		end = max(end, r.End())
	}
	return Range{Start: start, Length: end - start}, true
}
