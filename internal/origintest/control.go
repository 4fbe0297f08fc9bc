package origintest

import "net/http"

// Stats returns the counters over all paths.
func (o *Origin) Stats() Stats {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.total
}

// PathStats returns the counters of requests whose URL path was path.
func (o *Origin) PathStats(path string) Stats {
	o.mu.Lock()
	defer o.mu.Unlock()
	if s := o.paths[path]; s != nil {
		return *s
	}
	return Stats{}
}

// ResetStats zeroes all counters and forgets the recorded requests, so a
// test can assert on one phase at a time.
func (o *Origin) ResetStats() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.total = Stats{}
	o.paths = make(map[string]*Stats)
	o.reqs = nil
}

// Requests returns a copy of the recorded requests in arrival order.
func (o *Origin) Requests() []Request {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]Request, len(o.reqs))
	for i, r := range o.reqs {
		r.Header = r.Header.Clone()
		out[i] = r
	}
	return out
}

// record logs r and counts it on arrival, before any Hold, so a test can
// see parked requests in Stats.
func (o *Origin) record(r *http.Request) {
	h := r.Header
	var d Stats
	d.Requests = 1
	if h.Get("Range") != "" {
		d.RangeRequests = 1
	}
	if h.Get("If-None-Match") != "" || h.Get("If-Modified-Since") != "" {
		d.Conditional = 1
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reqs = append(o.reqs, Request{Method: r.Method, URI: r.URL.RequestURI(), Host: r.Host, Header: h.Clone()})
	o.addLocked(r.URL.Path, d)
}

func (o *Origin) add(path string, d Stats) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.addLocked(path, d)
}

func (o *Origin) addLocked(path string, d Stats) {
	s := o.paths[path]
	if s == nil {
		s = new(Stats)
		o.paths[path] = s
	}
	for _, t := range []*Stats{s, &o.total} {
		t.Requests += d.Requests
		t.RangeRequests += d.RangeRequests
		t.Conditional += d.Conditional
		t.NotModified += d.NotModified
		t.BodyBytes += d.BodyBytes
	}
}

// parkedBuffer bounds how many parked notifications can queue unread; a
// request beyond it still parks, it just waits to deliver its notification.
const parkedBuffer = 1024

// Hold makes every later request block before answering until Unhold. The
// returned channel receives once per parked request, so a test can wait for
// N requests to be parked without sleeping. Calling Hold while already
// holding returns the same channel.
func (o *Origin) Hold() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.gate == nil {
		o.gate = make(chan struct{})
		o.parked = make(chan struct{}, parkedBuffer)
	}
	return o.parked
}

// Unhold lets all parked requests proceed and stops holding new ones.
func (o *Origin) Unhold() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.gate != nil {
		close(o.gate)
		o.gate, o.parked = nil, nil
	}
}

// waitGate parks r while the origin is held. It reports false when the
// request should be abandoned (client gone or origin closing).
func (o *Origin) waitGate(r *http.Request) bool {
	o.mu.Lock()
	gate, parked := o.gate, o.parked
	o.mu.Unlock()
	if gate == nil {
		return true
	}
	// Two rounds at most: a nil parked is a send that never happens.
	ctx := r.Context()
	for {
		select {
		case parked <- struct{}{}:
			parked = nil // counted: from now on, wait for the gate only
		case <-gate:
			return true
		case <-ctx.Done():
			return false
		case <-o.done:
			return false
		}
	}
}

// Release unblocks every response currently stalled by FaultStall. Stalls
// that start later block again until the next Release.
func (o *Origin) Release() {
	o.mu.Lock()
	defer o.mu.Unlock()
	close(o.release)
	o.release = make(chan struct{})
}

func (o *Origin) releaseChan() chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.release
}
