package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"gatecache/internal/origintest"
)

// accessSink is an slog.Handler that hands each access line to the test as
// it is logged: the event the test waits for.
type accessSink chan map[string]any

func (s accessSink) Enabled(context.Context, slog.Level) bool { return true }
func (s accessSink) WithAttrs([]slog.Attr) slog.Handler       { return s }
func (s accessSink) WithGroup(string) slog.Handler            { return s }
func (s accessSink) Handle(_ context.Context, rec slog.Record) error {
	m := map[string]any{}
	rec.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.Any(); return true })
	s <- m
	return nil
}

// Requests served by another request's fill forwarded nothing themselves:
// Cache-Status (and so the access log) says collapsed (RFC 9211 §2.4),
// whether they joined the discovery or the fill that followed it.
func TestRequestsReadingAnotherFillAreCollapsed(t *testing.T) {
	r := newRig(t)
	size := int64(8 * testBlock)
	stallAt := int64(3*testBlock + 500)
	r.origin.Set("/c", origintest.Object{Size: size, Fault: origintest.FaultStall, FaultAt: stallAt})
	want := r.origin.Want("/c")

	// Two join the discovery while the origin holds its answer.
	held := r.origin.Hold()
	leader := make(chan *http.Response)
	go func() { leader <- r.get("/c") }()
	<-held
	joined := make(chan *http.Response, 2)
	for range 2 {
		go func() { joined <- r.get("/c") }()
	}
	waitUntil(t, "two requests wait on the discovery", func() bool { return r.joined() == 2 })
	r.origin.Unhold()
	lead := <-leader
	// The leader reads up to the stall: blocks 0-2 are stored, the rest
	// is being filled.
	buf := make([]byte, stallAt)
	if _, err := io.ReadFull(lead.Body, buf); err != nil {
		t.Fatal(err)
	}
	// One more comes now: it finds the object part present, part filling.
	late := r.get("/c")
	r.origin.Release()
	r.expect(lead, 200, "gatecache; fwd=miss; stored", want[stallAt:])
	for range 2 {
		r.expect(<-joined, 200, statusCollapsed, want)
	}
	r.expect(late, 200, statusCollapsed, want)
	if n := r.origin.Stats().Requests; n != 1 {
		t.Fatalf("%d origin requests, want 1", n)
	}
}

// The access log tells what a client that left got: 499 when it left
// before any byte was written, never 200; an aborted flag whenever the
// response did not complete.
func TestAccessLogRecordsClientsThatLeft(t *testing.T) {
	sink := make(accessSink, 16)
	r := newRig(t, withAccessLog(slog.New(sink)))
	r.origin.Set("/g", origintest.Object{Size: 8 * testBlock})
	// A front that tells the test when the handler has seen its client
	// go.
	gone := make(chan struct{}, 4)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		go func() { <-req.Context().Done(); gone <- struct{}{} }()
		r.handler.ServeHTTP(w, req)
	}))
	defer front.Close()
	send := func(ctx context.Context) {
		req, _ := http.NewRequestWithContext(ctx, "GET", front.URL+"/g?cacheHostOrigin="+r.origin.Addr, nil)
		if resp, err := r.client.Do(req); err == nil {
			resp.Body.Close()
		}
	}

	held := r.origin.Hold()
	defer r.origin.Unhold() // before front.Close, also when the test fails
	leaderCtx, leaderLeaves := context.WithCancel(context.Background())
	go send(leaderCtx)
	<-held
	followerCtx, followerLeaves := context.WithCancel(context.Background())
	go send(followerCtx)
	waitUntil(t, "the follower waits on the discovery", func() bool { return r.joined() == 1 })

	// The follower leaves while it waits: nothing was sent to it.
	followerLeaves()
	line := <-sink
	if line["status"] != int64(499) || line["bytes"] != int64(0) || line["aborted"] != true {
		t.Fatalf("access line %v for a client that left while waiting, want status 499, 0 bytes, aborted", line)
	}

	// The leader leaves before upstream answers; its response then
	// finds nobody to read it.
	leaderLeaves()
	<-gone
	<-gone
	r.origin.Unhold()
	line = <-sink
	if line["status"] == int64(200) && line["aborted"] != true {
		t.Fatalf("access line %v for a client that left before its response: a complete 200", line)
	}
	if line["aborted"] != true || (line["status"] != int64(499) && line["status"] != int64(200)) {
		t.Fatalf("access line %v, want 499, or 200 with some bytes, and aborted", line)
	}
}
