package httprange

import (
	"errors"
	"strconv"
	"testing"
)

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in                string
		start, end, total int64
		ok                bool
	}{
		{"bytes 0-99/100", 0, 99, 100, true},
		{"bytes 0-0/1", 0, 0, 1, true},
		{"bytes 42-1233/1234", 42, 1233, 1234, true},
		{"bytes 5-9/*", 5, 9, -1, true},
		{"bytes */100", -1, -1, 100, true},
		{"bytes */0", -1, -1, 0, true},
		{"BYTES 0-1/2", 0, 1, 2, true},
		{" bytes 0-1/2 ", 0, 1, 2, true},
		{"bytes 007-008/010", 7, 8, 10, true},
		{"bytes 9223372036854775805-9223372036854775806/9223372036854775807",
			1<<63 - 3, 1<<63 - 2, 1<<63 - 1, true},

		{"", 0, 0, 0, false},
		{"bytes", 0, 0, 0, false},
		{"bytes ", 0, 0, 0, false},
		{"bytes=0-1/2", 0, 0, 0, false},
		{"items 0-1/2", 0, 0, 0, false},
		{"bytes  0-1/2", 0, 0, 0, false},
		{"bytes 0 -1/2", 0, 0, 0, false},
		{"bytes 0- 1/2", 0, 0, 0, false},
		{"bytes 0-1 /2", 0, 0, 0, false},
		{"bytes 0-1/ 2", 0, 0, 0, false},
		{"bytes 1 0-20/30", 0, 0, 0, false},
		{"bytes 0-1", 0, 0, 0, false},
		{"bytes 0/2", 0, 0, 0, false},
		{"bytes -1/2", 0, 0, 0, false},
		{"bytes 0-/2", 0, 0, 0, false},
		{"bytes +0-1/2", 0, 0, 0, false},
		{"bytes 0-+1/2", 0, 0, 0, false},
		{"bytes 0-1/+2", 0, 0, 0, false},
		{"bytes -0-1/2", 0, 0, 0, false},
		{"bytes 2-1/3", 0, 0, 0, false}, // last-pos < first-pos
		{"bytes 0-2/2", 0, 0, 0, false}, // complete-length <= last-pos
		{"bytes 0-0/0", 0, 0, 0, false}, // complete-length <= last-pos
		{"bytes */*", 0, 0, 0, false},   // unsatisfied needs a length
		{"bytes */", 0, 0, 0, false},
		{"bytes *-1/2", 0, 0, 0, false},
		{"bytes 0-1/2/3", 0, 0, 0, false},
		{"bytes 0-1-2/3", 0, 0, 0, false},
		{"bytes 0x0-1/2", 0, 0, 0, false},
		{"bytes 0-1/9223372036854775808", 0, 0, 0, false},
		{"bytes 0-9223372036854775808/*", 0, 0, 0, false},
	}
	for _, tt := range tests {
		start, end, total, err := ParseContentRange(tt.in)
		if !tt.ok {
			if err == nil || !errors.Is(err, ErrMalformed) {
				t.Errorf("ParseContentRange(%q) = %d, %d, %d, %v; want ErrMalformed", tt.in, start, end, total, err)
			}
			continue
		}
		if err != nil || start != tt.start || end != tt.end || total != tt.total {
			t.Errorf("ParseContentRange(%q) = %d, %d, %d, %v; want %d, %d, %d",
				tt.in, start, end, total, err, tt.start, tt.end, tt.total)
		}
	}
}

// formatContentRange writes "bytes start-end/total" (end inclusive), the
// inverse of ParseContentRange: a negative total gives "bytes start-end/*"
// and a negative start the unsatisfied form "bytes */total". The tests
// write expected header values with it; the cache itself never writes
// Content-Range (net/http's ServeContent does).
func formatContentRange(start, end, total int64) string {
	switch {
	case start < 0:
		return "bytes */" + strconv.FormatInt(total, 10)
	case total < 0:
		return "bytes " + strconv.FormatInt(start, 10) + "-" + strconv.FormatInt(end, 10) + "/*"
	}
	return "bytes " + strconv.FormatInt(start, 10) + "-" + strconv.FormatInt(end, 10) + "/" + strconv.FormatInt(total, 10)
}
