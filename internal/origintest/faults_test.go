package origintest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
)

func TestFaultTruncate(t *testing.T) {
	for _, tc := range []struct {
		name string
		obj  Object
	}{
		{"length", Object{Size: 10_000, Fault: FaultTruncate, FaultAt: 3000}},
		{"chunked", Object{Size: 10_000, Fault: FaultTruncate, FaultAt: 3000, Chunked: true}},
		{"wronglength", Object{Size: 10_000, Fault: FaultWrongLength, FaultAt: 3000}},
		{"wronglength-chunked-object", Object{Size: 10_000, Fault: FaultWrongLength, FaultAt: 3000, Chunked: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, o := range []*Origin{New(t), NewTLS(t)} {
				o.Set("/f", tc.obj)
				resp, body, err := do(t, o, "GET", "/f")
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
				}
				if resp.StatusCode != 200 || !bytes.Equal(body, o.Want("/f")[:3000]) {
					t.Fatalf("status %d, %d body bytes; want 200 and the first 3000", resp.StatusCode, len(body))
				}
				if s := o.Stats(); s.BodyBytes != 3000 {
					t.Errorf("BodyBytes = %d, want 3000", s.BodyBytes)
				}
			}
		})
	}
}

func TestFaultTruncateRange(t *testing.T) {
	o := New(t)
	o.Set("/f", Object{Size: 10_000, Fault: FaultWrongLength, FaultAt: 50})
	resp, body, err := do(t, o, "GET", "/f", "Range", "bytes=1000-1999")
	if !errors.Is(err, io.ErrUnexpectedEOF) || resp.StatusCode != 206 {
		t.Fatalf("status %v, err %v", resp.StatusCode, err)
	}
	if resp.Header.Get("Content-Range") != "bytes 1000-1999/10000" || resp.ContentLength != 1000 {
		t.Errorf("Content-Range %q, length %d", resp.Header.Get("Content-Range"), resp.ContentLength)
	}
	if !bytes.Equal(body, o.Want("/f")[1000:1050]) {
		t.Errorf("got %d bytes, want bytes 1000-1049", len(body))
	}
}

func TestFaultReset(t *testing.T) {
	for _, o := range []*Origin{New(t), NewTLS(t)} {
		o.Set("/f", Object{Size: 1 << 20, Fault: FaultReset, FaultAt: 1000})
		_, body, err := do(t, o, "GET", "/f")
		// A RST may discard data the client had not read yet, so the error
		// can come from Do or from reading; what matters is that there is
		// one and nothing wrong was delivered.
		if err == nil {
			t.Fatal("no error after RST")
		}
		if len(body) > 1000 || !bytes.Equal(body, o.Want("/f")[:len(body)]) {
			t.Fatalf("got %d bytes that are not a prefix of the first 1000", len(body))
		}
	}
}

func TestFaultStatus(t *testing.T) {
	o := New(t)
	for _, tc := range []struct {
		f    Fault
		code int
	}{{FaultStatus500, 500}, {FaultStatus503, 503}} {
		o.Set("/f", Object{Size: 100, Fault: tc.f, FaultTimes: 2})
		mustDo(t, o, tc.code, "GET", "/f")
		mustDo(t, o, tc.code, "HEAD", "/f")
		if _, body := mustDo(t, o, 200, "GET", "/f"); !bytes.Equal(body, o.Want("/f")) {
			t.Fatalf("%v: body after the faults differs", tc.f)
		}
	}
}

func TestFaultWrongRange(t *testing.T) {
	o := New(t)
	want := Bytes("/f", 0, 0, 1000)
	for _, tc := range []struct{ rh, honest string }{
		{"bytes=100-199", "bytes 100-199/1000"},
		{"bytes=0-99", "bytes 0-99/1000"},
		{"bytes=-100", "bytes 900-999/1000"},
		{"bytes=0-", "bytes 0-999/1000"},
	} {
		o.Set("/f", Object{Size: 1000, Fault: FaultWrongRange})
		resp, body := mustDo(t, o, 206, "GET", "/f", "Range", tc.rh)
		cr := resp.Header.Get("Content-Range")
		var a, b, total int64
		if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &a, &b, &total); err != nil {
			t.Fatalf("%s: bad Content-Range %q", tc.rh, cr)
		}
		if cr == tc.honest {
			t.Errorf("%s: got the asked-for range", tc.rh)
		}
		// The lie is consistent: the bytes are those Content-Range names.
		if b >= 1000 || int64(len(body)) != b-a+1 || !bytes.Equal(body, want[a:b+1]) {
			t.Errorf("%s: body does not match its Content-Range %s", tc.rh, cr)
		}
	}
	// Requests without Range are unaffected and do not use up the fault.
	o.Set("/f", Object{Size: 1000, Fault: FaultWrongRange, FaultTimes: 1})
	mustDo(t, o, 200, "GET", "/f")
	resp, _ := mustDo(t, o, 206, "GET", "/f", "Range", "bytes=10-19")
	if resp.Header.Get("Content-Range") == "bytes 10-19/1000" {
		t.Error("FaultTimes budget used by a non-range request")
	}
	resp, _ = mustDo(t, o, 206, "GET", "/f", "Range", "bytes=10-19")
	if resp.Header.Get("Content-Range") != "bytes 10-19/1000" {
		t.Error("fault outlived FaultTimes")
	}
}

func TestFaultStall(t *testing.T) {
	o := New(t)
	o.Set("/f", Object{Size: 100_000, Fault: FaultStall, FaultAt: 500})
	resp, err := o.Client().Get(o.URL + "/f")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, 500)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	if s := o.Stats(); s.BodyBytes != 500 {
		t.Fatalf("BodyBytes while stalled = %d, want 500", s.BodyBytes)
	}
	o.Release()
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(first, rest...), o.Want("/f")) {
		t.Fatal("body after Release differs")
	}

	// A client giving up ends the stall too (the origin's Close would hang
	// otherwise, since httptest waits for handlers).
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", o.URL+"/f", nil)
	resp, err = o.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("cancelled stalled read returned no error")
	}
	resp.Body.Close()

	// A stall still parked when the test ends is freed by Close.
	resp, err = o.Client().Get(o.URL + "/f")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
}

func TestFaultTimes(t *testing.T) {
	o := New(t)
	o.Set("/f", Object{Size: 2000, Fault: FaultTruncate, FaultAt: 10, FaultTimes: 2})
	// HEAD has no body to cut, so it must not use up the budget.
	mustDo(t, o, 200, "HEAD", "/f")
	for i := range 2 {
		if _, _, err := do(t, o, "GET", "/f"); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("request %d: err %v, want truncation", i, err)
		}
	}
	for i := range 2 {
		if _, body := mustDo(t, o, 200, "GET", "/f"); !bytes.Equal(body, o.Want("/f")) {
			t.Fatalf("request %d after the budget: body differs", i)
		}
	}
	// Set starts a fresh budget.
	o.Set("/f", Object{Size: 2000, Fault: FaultTruncate, FaultAt: 10, FaultTimes: 1})
	if _, _, err := do(t, o, "GET", "/f"); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("after Set: err %v, want truncation", err)
	}
}
