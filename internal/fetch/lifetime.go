package fetch

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// ErrClosed is the error of every upstream request cut off, or refused, by
// Client.Close.
var ErrClosed = errors.New("upstream client closed: gatecache is stopping")

// timeoutError is a timeout of ours (headers, idle body); as a net.Error it
// makes Error.Timeout true, so that the client gets 504.
type timeoutError struct{ msg string }

func (e *timeoutError) Error() string   { return e.msg }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }

// parentKey marks the context of a request for a parent, for the dialer.
type parentKey struct{}

// lifetime is the context one upstream request runs under, from its first
// byte to its body's Close: its caller's, cut off by the client's Close, by
// the header deadline and by the idle timeout of its body.
type lifetime struct {
	ctx      context.Context
	cancel   context.CancelCauseFunc
	detach   func() bool // from the client's base
	deadline *time.Timer
}

// begin gives req its lifetime.
func (c *Client) begin(req *http.Request, parent bool) (*http.Request, *lifetime) {
	ctx, cancel := context.WithCancelCause(req.Context())
	lt := &lifetime{ctx: ctx, cancel: cancel}
	if parent {
		lt.ctx = context.WithValue(ctx, parentKey{}, true)
	}
	lt.detach = context.AfterFunc(c.base, func() { cancel(context.Cause(c.base)) })
	return req.WithContext(lt.ctx), lt
}

// timeout cancels the request after d with a timeout error saying msg.
func (l *lifetime) timeout(d time.Duration, msg string) {
	l.deadline = time.AfterFunc(d, func() { l.cancel(&timeoutError{msg}) })
}

// stopTimeout stops the header deadline and reports whether it had fired.
func (l *lifetime) stopTimeout() bool {
	return l.deadline != nil && !l.deadline.Stop()
}

// end releases the request's context; it must not be used afterwards.
func (l *lifetime) end() {
	l.detach()
	l.cancel(nil)
}
