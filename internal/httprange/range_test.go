package httprange

import (
	"errors"
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	const size = 10
	type rs = []Range
	tests := []struct {
		header string
		size   int64
		want   rs
		err    error
	}{
		{"", size, nil, nil},
		{"", 0, nil, nil},

		// The three forms of RFC 9110 §14.1.2.
		{"bytes=0-9", size, rs{{0, 10}}, nil},
		{"bytes=0-0", size, rs{{0, 1}}, nil},
		{"bytes=2-5", size, rs{{2, 4}}, nil},
		{"bytes=9-9", size, rs{{9, 1}}, nil},
		{"bytes=3-", size, rs{{3, 7}}, nil},
		{"bytes=9-", size, rs{{9, 1}}, nil},
		{"bytes=-1", size, rs{{9, 1}}, nil},
		{"bytes=-5", size, rs{{5, 5}}, nil},
		{"bytes=-10", size, rs{{0, 10}}, nil},

		// Clipping: an end past the object, a suffix longer than it.
		{"bytes=5-100", size, rs{{5, 5}}, nil},
		{"bytes=0-9223372036854775807", size, rs{{0, 10}}, nil},
		{"bytes=-11", size, rs{{0, 10}}, nil},
		{"bytes=-9223372036854775807", size, rs{{0, 10}}, nil},

		// Several ranges keep their order; unsatisfiable ones are dropped.
		{"bytes=0-1,5-6", size, rs{{0, 2}, {5, 2}}, nil},
		{"bytes=5-6,0-1", size, rs{{5, 2}, {0, 2}}, nil},
		{"bytes=0-1,0-1", size, rs{{0, 2}, {0, 2}}, nil},
		{"bytes=20-30,0-1", size, rs{{0, 2}}, nil},
		{"bytes=0-1,10-", size, rs{{0, 2}}, nil},
		{"bytes=-0,2-3", size, rs{{2, 2}}, nil},
		{"bytes=0-1,-2", size, rs{{0, 2}, {8, 2}}, nil},

		// List syntax (RFC 9110 §5.6.1): blanks and empty elements.
		{"bytes= 0-1 , 4-5 ", size, rs{{0, 2}, {4, 2}}, nil},
		{"bytes=0 - 1", size, rs{{0, 2}}, nil},
		{"bytes=\t0-1", size, rs{{0, 2}}, nil},
		{"bytes=,0-1,,", size, rs{{0, 2}}, nil},

		// net/http's number syntax: leading zeros and a '+' sign.
		{"bytes=007-008", size, rs{{7, 2}}, nil},
		{"bytes=+1-+2", size, rs{{1, 2}}, nil},
		{"bytes=-+3", size, rs{{7, 3}}, nil},

		// Unsatisfiable: every first-pos at or past the end, or suffix 0.
		{"bytes=10-", size, nil, ErrUnsatisfiable},
		{"bytes=10-20", size, nil, ErrUnsatisfiable},
		{"bytes=100-200,10-", size, nil, ErrUnsatisfiable},
		{"bytes=-0", size, nil, ErrUnsatisfiable},
		{"bytes=-000", size, nil, ErrUnsatisfiable},
		// net/http does not look at the last-pos of a range it drops.
		{"bytes=10-x", size, nil, ErrUnsatisfiable},

		// An empty object has no satisfiable range.
		{"bytes=0-", 0, nil, ErrUnsatisfiable},
		{"bytes=0-0", 0, nil, ErrUnsatisfiable},
		{"bytes=-1", 0, nil, ErrUnsatisfiable},
		{"bytes=-0", 0, nil, ErrUnsatisfiable},
		{"bytes=x", 0, nil, ErrMalformed},

		// Malformed.
		{"bytes", size, nil, ErrMalformed},
		{"bytes=", size, nil, ErrMalformed},
		{"bytes= , ,", size, nil, ErrMalformed},
		{"Bytes=0-1", size, nil, ErrMalformed},
		{"bytes =0-1", size, nil, ErrMalformed},
		{"items=0-1", size, nil, ErrMalformed},
		{"0-1", size, nil, ErrMalformed},
		{"bytes=1", size, nil, ErrMalformed},
		{"bytes=-", size, nil, ErrMalformed},
		{"bytes=--1", size, nil, ErrMalformed},
		{"bytes=a-b", size, nil, ErrMalformed},
		{"bytes=1-a", size, nil, ErrMalformed},
		{"bytes=5-4", size, nil, ErrMalformed},
		{"bytes=1--2", size, nil, ErrMalformed},
		{"bytes=-1-2", size, nil, ErrMalformed},
		{"bytes=0x1-2", size, nil, ErrMalformed},
		{"bytes=1_0-20", size, nil, ErrMalformed},
		{"bytes=9223372036854775808-", size, nil, ErrMalformed},
		{"bytes=0-99999999999999999999", size, nil, ErrMalformed},
		{"bytes=-99999999999999999999", size, nil, ErrMalformed},
		// One malformed spec spoils the whole header.
		{"bytes=0-1,x", size, nil, ErrMalformed},
		{"bytes=0-1,3-2", size, nil, ErrMalformed},
	}
	for _, tt := range tests {
		got, err := Parse(tt.header, tt.size)
		if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
			t.Errorf("Parse(%q, %d) error = %v, want %v", tt.header, tt.size, err, tt.err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Parse(%q, %d) = %v, want %v", tt.header, tt.size, got, tt.want)
		}
	}
}

func TestParseHugeObject(t *testing.T) {
	const max = 1<<63 - 1
	got, err := Parse("bytes=0-,-1,9223372036854775806-", max)
	want := []Range{{0, max}, {max - 1, 1}, {max - 1, 1}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Parse = %v, %v; want %v", got, err, want)
	}
}

func TestSpan(t *testing.T) {
	tests := []struct {
		in   []Range
		want Range
		ok   bool
	}{
		{nil, Range{}, false},
		{[]Range{}, Range{}, false},
		{[]Range{{3, 4}}, Range{3, 4}, true},
		{[]Range{{5, 2}, {0, 2}}, Range{0, 7}, true},
		{[]Range{{0, 10}, {2, 2}}, Range{0, 10}, true},
		{[]Range{{8, 2}, {0, 1}, {4, 1}}, Range{0, 10}, true},
	}
	for _, tt := range tests {
		got, ok := Span(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Span(%v) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
