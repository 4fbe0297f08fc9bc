package httprange

import (
	"errors"
	"strconv"
	"strings"
)

// ServeHeader returns the Range value to hand http.ServeContent for an
// object of the given size so that it answers what Parse reads in header,
// also where net/http differs (see Parse): a suffix range of length 0, or
// any suffix range of an empty object, would give a zero-length range and a
// 206 such as "Content-Range: bytes 10-9/10".
//
//   - When no range is satisfiable, the value names the object's end, so
//     that ServeContent answers 416 with "Content-Range: bytes */size" (RFC
//     9110 §14.1.1, §15.5.17) after evaluating If-Range and the other
//     preconditions as usual; for an empty object it is "" (no Range), the
//     200 ServeContent gives for an empty object anyway.
//   - Otherwise the satisfiable ranges are written out, in order, without
//     the empty ones.
//
// Any other header is returned unchanged.
func ServeHeader(header string, size int64) string {
	if !emptySuffix(header, size) {
		return header
	}
	ranges, err := Parse(header, size)
	switch {
	case errors.Is(err, ErrUnsatisfiable) && size == 0:
		return ""
	case errors.Is(err, ErrUnsatisfiable):
		return "bytes=" + strconv.FormatInt(size, 10) + "-"
	case err != nil:
		return header // malformed: ServeContent refuses it too
	}
	b := []byte("bytes=")
	for i, r := range ranges {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, r.Start, 10)
		b = append(b, '-')
		b = strconv.AppendInt(b, r.End()-1, 10)
	}
	return string(b)
}

// emptySuffix reports a suffix-range net/http would turn into a zero-length
// range: "-0", or any suffix of an empty object.
func emptySuffix(header string, size int64) bool {
	specs, ok := strings.CutPrefix(header, "bytes=")
	if !ok {
		return false
	}
	for spec := range strings.SplitSeq(specs, ",") {
		first, last, ok := strings.Cut(trim(spec), "-")
		if !ok || trim(first) != "" {
			continue
		}
		last = trim(last)
		if n, err := strconv.ParseInt(last, 10, 64); err == nil && last[0] != '-' && (n == 0 || size == 0) {
			return true
		}
	}
	return false
}
