package origintest

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// DOUserAgent is the User-Agent the Delivery Optimization agent
// (client-lite) sends.
const DOUserAgent = "Microsoft-Delivery-Optimization-Lite/10.0.0.1"

// DOAgent downloads one URL into a device file the way the Delivery
// Optimization Linux agent (microsoft/do-client, client-lite) does, warts
// included, so that a cache can be tried against its real request shapes:
//
//   - The first request carries no Range. Each resume appends a new
//     "Range: bytes=<transferred>-<total-1>" line to the request's header
//     list without removing the earlier ones, so the n-th resume sends n
//     Range lines, oldest first. It never sends If-Range.
//   - Whatever body a 200 or 206 brings is appended to the device file at
//     its current end: neither the start of Content-Range nor 200 against
//     206 is checked.
//   - The total length comes from Content-Length on a 200 and from the
//     number after '/' in Content-Range on a 206.
//   - A body read to its end completes the download, whatever its length.
type DOAgent struct {
	Client *http.Client
	URL    string // the cache's URL (host swapped, ?cacheHostOrigin=...) or the origin's
	File   string // the device file

	ranges      []string // the Range lines so far, oldest first
	transferred int64
	total       int64
	complete    bool
}

// Transferred is how many body bytes the agent has written to its file.
func (a *DOAgent) Transferred() int64 { return a.transferred }

// Complete reports whether the last request's body was read to its end.
func (a *DOAgent) Complete() bool { return a.complete }

// RangeLines is the Range header list the next resume will extend.
func (a *DOAgent) RangeLines() []string { return append([]string(nil), a.ranges...) }

// Request sends the agent's next request and appends up to max body bytes
// (all of them when max < 0) to the file, then hangs up: a pause, as when
// the agent stops a transfer that makes no progress and resumes it later.
// It returns the response status.
func (a *DOAgent) Request(max int64) (int, error) {
	req, err := http.NewRequest(http.MethodGet, a.URL, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("User-Agent", DOUserAgent)
	if a.transferred == 0 {
		a.ranges = nil // client-lite frees the header list for a full request
	} else {
		a.ranges = append(a.ranges, fmt.Sprintf("bytes=%d-%d", a.transferred, a.total-1))
		req.Header["Range"] = append([]string(nil), a.ranges...)
	}
	a.complete = false
	resp, err := a.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		a.total = resp.ContentLength
	case http.StatusPartialContent:
		cr := resp.Header.Get("Content-Range")
		_, after, ok := strings.Cut(cr, "/")
		n, perr := strconv.ParseInt(after, 10, 64)
		if !ok || perr != nil {
			return resp.StatusCode, fmt.Errorf("206 with Content-Range %q", cr)
		}
		a.total = n
	default:
		return resp.StatusCode, nil // no body for a failure status
	}
	f, err := os.OpenFile(a.File, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return resp.StatusCode, err
	}
	defer f.Close()
	src := io.Reader(resp.Body)
	if max >= 0 {
		src = io.LimitReader(resp.Body, max)
	}
	n, err := io.Copy(f, src)
	a.transferred += n
	if err != nil {
		return resp.StatusCode, err
	}
	// The body ended before the agent hung up: done, whatever its length.
	a.complete = max < 0 || n < max
	return resp.StatusCode, nil
}
