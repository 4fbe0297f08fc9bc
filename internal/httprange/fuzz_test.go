package httprange

import (
	"errors"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, h := range crossCheckHeaders {
		f.Add(h, int64(10))
	}
	f.Add("bytes=0-", int64(0))
	f.Add("bytes=-5", int64(1<<63-1))
	f.Fuzz(func(t *testing.T, header string, size int64) {
		if size < 0 {
			size = -(size + 1)
		}
		ranges, err := Parse(header, size)
		switch {
		case err == nil && header != "" && len(ranges) == 0:
			t.Fatalf("Parse(%q, %d): no ranges and no error", header, size)
		case err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsatisfiable):
			t.Fatalf("Parse(%q, %d): unexpected error %v", header, size, err)
		case err != nil && ranges != nil:
			t.Fatalf("Parse(%q, %d): ranges %v with error %v", header, size, ranges, err)
		}
		for _, r := range ranges {
			if r.Start < 0 || r.Length <= 0 || r.Start > size-r.Length {
				t.Fatalf("Parse(%q, %d): range %+v outside the object", header, size, r)
			}
		}
		if sp, ok := Span(ranges); ok != (len(ranges) > 0) || (ok && (sp.Start < 0 || sp.Length <= 0 || sp.Start > size-sp.Length)) {
			t.Fatalf("Span(%v) = %+v, %v", ranges, sp, ok)
		}
		// Small objects are cheap to serve: check against net/http too.
		if size <= 4096 {
			checkAgainstServeContent(t, header, size)
		}
	})
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{
		"bytes 0-99/100", "bytes 5-9/*", "bytes */100", "BYTES 007-008/010", " bytes 0-1/2",
		"bytes 2-1/3", "bytes 0-2/2", "bytes */*", "bytes 0-1/9223372036854775808", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		start, end, total, err := ParseContentRange(v)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseContentRange(%q): error %v does not wrap ErrMalformed", v, err)
			}
			return
		}
		switch {
		case start == -1 && end == -1:
			if total < 0 {
				t.Fatalf("ParseContentRange(%q): unsatisfied range without a length", v)
			}
		case start < 0 || end < start || (total >= 0 && end >= total) || total < -1:
			t.Fatalf("ParseContentRange(%q) = %d, %d, %d: inconsistent", v, start, end, total)
		}
		s := formatContentRange(start, end, total)
		s2, e2, t2, err := ParseContentRange(s)
		if err != nil || s2 != start || e2 != end || t2 != total {
			t.Fatalf("ParseContentRange(%q) = %d, %d, %d; its format %q parses to %d, %d, %d, %v",
				v, start, end, total, s, s2, e2, t2, err)
		}
		// The canonical form differs from the input only by the case of the
		// unit, surrounding blanks and leading zeros.
		if n := normalize(v); n != s {
			t.Fatalf("ParseContentRange(%q): formats as %q, not as %q", v, s, n)
		}
	})
}

// normalize lowercases v, trims blanks around it and drops leading zeros
// from its numbers.
func normalize(v string) string {
	v = strings.ToLower(strings.Trim(v, " \t"))
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		startOfNumber := i == 0 || v[i-1] < '0' || v[i-1] > '9'
		if c == '0' && startOfNumber && i+1 < len(v) && v[i+1] >= '0' && v[i+1] <= '9' {
			// Drop this zero and go on with the next digit as the start.
			v = v[:i] + v[i+1:]
			i--
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
