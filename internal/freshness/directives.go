package freshness

import (
	"strings"
	"time"
)

// directive is one element of a Cache-Control (or Pragma) list: a token,
// optionally "=" and a token or quoted-string argument (RFC 9111 §5.2,
// RFC 9110 §5.6.2, §5.6.4).
type directive struct {
	name   string // as sent: compare with strings.EqualFold (§5.2: case-insensitive)
	arg    string // the argument, unquoted; "" when there is none
	hasArg bool   // "=" was present
	quoted bool   // the argument was a quoted-string
	bad    bool   // malformed: empty or unterminated argument, or text after it
}

// is reports whether the directive is called name (given in lower case).
func (d directive) is(name string) bool { return strings.EqualFold(d.name, name) }

// scanDirectives calls fn for each named element of the comma-separated
// lists in values, in order. Empty list elements are skipped (RFC 9110
// §5.6.1); commas inside a quoted-string do not split it. An element that
// does not start with a token is ignored; one with text after its argument is
// reported as bad, so that a directive that can only restrict (no-store,
// private) still applies while a malformed freshness value is distrusted.
// Whitespace around "=" is tolerated although the grammar has none.
// scanDirectives allocates only to unescape a quoted-pair.
func scanDirectives(values []string, fn func(directive)) {
	for _, v := range values {
		scanList(v, fn)
	}
}

func scanList(v string, fn func(directive)) {
	i, n := 0, len(v)
	for i < n {
		for i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',') {
			i++
		}
		if i == n {
			return
		}
		start := i
		for i < n && isTchar(v[i]) {
			i++
		}
		d := directive{name: v[start:i]}
		i = skipOWS(v, i)
		if i < n && v[i] == '=' {
			d.hasArg = true
			i = skipOWS(v, i+1)
			if i < n && v[i] == '"' {
				var ok bool
				d.arg, i, ok = unquote(v, i)
				d.quoted, d.bad = true, !ok
			} else {
				s := i
				for i < n && isTchar(v[i]) {
					i++
				}
				d.arg, d.bad = v[s:i], i == s
			}
			i = skipOWS(v, i)
		}
		if i < n && v[i] != ',' {
			d.bad = true
			i = skipElement(v, i)
		}
		if d.name != "" {
			fn(d)
		}
	}
}

func skipOWS(v string, i int) int {
	for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
		i++
	}
	return i
}

// skipElement returns the index of the comma that ends the element at i (or
// len(v)), stepping over quoted-strings.
func skipElement(v string, i int) int {
	for i < len(v) && v[i] != ',' {
		if v[i] == '"' {
			_, i, _ = unquote(v, i)
			continue
		}
		i++
	}
	return i
}

// unquote reads the quoted-string starting at v[i] == '"' (RFC 9110 §5.6.4)
// and returns its content with quoted-pairs resolved, the index after the
// closing quote, and false when the string is not terminated.
func unquote(v string, i int) (string, int, bool) {
	start := i + 1
	escaped := false
	for j := start; j < len(v); j++ {
		switch v[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			if !escaped {
				return v[start:j], j + 1, true
			}
			return unescape(v[start:j]), j + 1, true
		}
	}
	if !escaped {
		return v[start:], len(v), false
	}
	return unescape(v[start:]), len(v), false
}

func unescape(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// isTchar reports a token character (RFC 9110 §5.6.2).
func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// maxSeconds is the greatest delta-seconds value kept: larger values, and
// overflowing ones, are taken as this (RFC 9111 §1.2.2 allows "the greatest
// positive integer it can conveniently represent"; 100 years is beyond any
// cache's horizon).
const maxSeconds = int64(forever / time.Second)

// deltaSeconds parses delta-seconds = 1*DIGIT (RFC 9111 §1.2.2): no sign, no
// fraction, no whitespace.
func deltaSeconds(s string) (time.Duration, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < maxSeconds {
			n = n*10 + int64(c-'0')
		}
	}
	return time.Duration(min(n, maxSeconds)) * time.Second, true
}

// Directives parses Cache-Control field values into lower-cased directive
// names and their (unquoted) arguments. A directive given more than once
// keeps its first argument (RFC 9111 §4.2.1 allows the first occurrence to be
// used). The decisions of this package use ParseResponse and ParseRequest,
// which also see malformed and conflicting values.
func Directives(values []string) map[string]string {
	d := map[string]string{}
	scanDirectives(values, func(e directive) {
		name := strings.ToLower(e.name)
		if _, seen := d[name]; !seen {
			d[name] = e.arg
		}
	})
	return d
}
