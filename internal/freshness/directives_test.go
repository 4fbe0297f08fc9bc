package freshness

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func scanned(values ...string) string {
	var out []string
	scanDirectives(values, func(d directive) {
		s := d.name
		if d.hasArg {
			s += "=" + fmt.Sprintf("%q", d.arg)
		}
		if d.bad {
			s += "!"
		}
		out = append(out, s)
	})
	return strings.Join(out, " ")
}

// RFC 9110 §5.6.1 (lists, empty elements), §5.6.2 (tokens), §5.6.4
// (quoted-string, quoted-pair); RFC 9111 §5.2 (directive = token [ "="
// ( token / quoted-string ) ]).
func TestRFC9110_5_6_DirectiveListSyntax(t *testing.T) {
	cases := []struct{ in, want string }{
		{"max-age=60", `max-age="60"`},
		{"Max-Age=60, PUBLIC", `Max-Age="60" PUBLIC`},
		{`no-cache="Set-Cookie, X-Foo", max-age=5`, `no-cache="Set-Cookie, X-Foo" max-age="5"`},
		{`private="a\"b,c"`, `private="a\"b,c"`},
		{`, ,no-store,, `, `no-store`},
		{"max-age = 5", `max-age="5"`},
		{"max-age=", `max-age=""!`},
		{"max-age=5 6, public", `max-age="5"! public`},
		{`no-cache="unterminated, max-age=5`, `no-cache="unterminated, max-age=5"!`},
		{`"quoted", =5, public`, `public`},
		{`ext="x, y" junk, no-store`, `ext="x, y"! no-store`},
		{"no-store junk", `no-store!`},
		{"\tpublic\t,\tmax-age=1", `public max-age="1"`},
	}
	for _, c := range cases {
		if got := scanned(c.in); got != c.want {
			t.Errorf("%q: scanned %s, want %s", c.in, got, c.want)
		}
	}
	if got := scanned("public", "max-age=5, no-cache"); got != `public max-age="5" no-cache` {
		t.Errorf("several field lines: %s", got)
	}
}

// RFC 9111 §1.2.2: delta-seconds = 1*DIGIT; an overflowing value is taken
// as the greatest the cache can represent.
func TestRFC9111_1_2_2_DeltaSeconds(t *testing.T) {
	cases := []struct {
		in    string
		want  time.Duration
		valid bool
	}{
		{"0", 0, true},
		{"60", time.Minute, true},
		{"0060", time.Minute, true},
		{"99999999999999999999999", forever, true},
		{"", 0, false},
		{"-1", 0, false},
		{"+5", 0, false},
		{"5.0", 0, false},
		{" 5", 0, false},
		{"0x10", 0, false},
	}
	for _, c := range cases {
		d, ok := deltaSeconds(c.in)
		if d != c.want || ok != c.valid {
			t.Errorf("%q: %v %v, want %v %v", c.in, d, ok, c.want, c.valid)
		}
	}
}

// Directives keeps its map form, now with quoted commas and the first of
// duplicated directives.
func TestRFC9111_5_2_DirectivesMap(t *testing.T) {
	d := Directives([]string{`No-Cache="Set-Cookie, X-Foo", max-age=5`, "max-age=7"})
	if len(d) != 2 || d["no-cache"] != "Set-Cookie, X-Foo" || d["max-age"] != "5" {
		t.Fatalf("directives %q", d)
	}
}

// The parsers take whatever an origin or client sends: they must end, never
// panic, and report each directive's name as a non-empty token.
func FuzzDirectives(f *testing.F) {
	for _, s := range []string{"max-age=60", `no-cache="a, b", private`, `x="\"`, `"`, "=,=", `a=b"c`, "max-stale", `\`, "\x00,\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		scanDirectives([]string{v}, func(d directive) {
			if d.name == "" {
				t.Fatalf("%q: empty name", v)
			}
			for i := 0; i < len(d.name); i++ {
				if !isTchar(d.name[i]) {
					t.Fatalf("%q: name %q is not a token", v, d.name)
				}
			}
		})
		h := map[string][]string{"Cache-Control": {v}, "Pragma": {v}, "Expires": {v}, "Age": {v}, "Date": {v}}
		ParseResponse(h)
		ParseRequest(h)
		Storable("GET", h, 200, h)
		DefaultPolicy().Expiry(Other, 200, h, t0)
	})
}
