package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"gatecache/internal/haproxytest"
)

// setup is one arrangement of nodes that clients reach at addr.
type setup struct {
	name   string
	addr   string             // where the clients connect
	addrs  []string           // where client i connects: addrs[i%len(addrs)], addr first
	entry  *node              // the node at addr; nil behind a front or a pool
	parent *node              // the entry's parent; nil for none
	front  *haproxytest.Front // haproxy at addr; nil for none
	pool   []*node            // the nodes that share the objects: each should hold its own
	nodes  []*node
}

// The arrangements scenarios compare. Each starts cold, on drives of its
// own.
const (
	single     = "single node"
	leafParent = "leaf -> parent"
	haproxy3   = "haproxy -> 3 nodes"
	// Two leaves, each with UPSTREAM_HOST=a,b,c and UPSTREAM_POLICY=hash,
	// clients split between them.
	hashPool = "2 leaves -> hashed pool of 3"
)

// errNoHashPolicy: the binary does not know UPSTREAM_POLICY=hash.
var errNoHashPolicy = errors.New("this gatecache has no UPSTREAM_POLICY=hash")

// setups counts the setups made: each gets drives of its own.
var setups int

// newSetup starts the nodes of kind, allowing o, with extra environment for
// every node and parentExtra for a parent only.
func newSetup(e env, kind string, o *origin, extra, parentExtra []string) (*setup, error) {
	setups++
	dir := filepath.Join(e.work, fmt.Sprintf("%d-%s", setups, strings.NewReplacer(" ", "", "->", "-").Replace(kind)))
	s := &setup{name: kind}
	start := func(name string, env ...string) (*node, error) {
		n, err := startNode(e.bin, dir, name, o.addr, env...)
		if err == nil {
			s.nodes = append(s.nodes, n)
		}
		return n, err
	}
	var err error
	switch kind {
	case single:
		s.entry, err = start("single", extra...)
		s.pool = []*node{s.entry}
	case leafParent:
		s.parent, err = start("parent", append(append([]string(nil), extra...), parentExtra...)...)
		if err == nil {
			s.entry, err = start("leaf", append([]string{"UPSTREAM_HOST=" + s.parent.content}, extra...)...)
		}
	case haproxy3:
		if e.haproxy == "" {
			return nil, errors.New("haproxy not installed (apt-get install haproxy)")
		}
		for _, name := range []string{"gw-a", "gw-b", "gw-c"} {
			if _, err = start(name, extra...); err != nil {
				break
			}
		}
		if err == nil {
			s.pool = s.nodes
			s.front, err = startFront(e.haproxy, dir, s.nodes)
		}
	case hashPool:
		var parents []string
		for _, name := range []string{"pool-a", "pool-b", "pool-c"} {
			var p *node
			if p, err = start(name, extra...); err != nil {
				break
			}
			s.pool, parents = append(s.pool, p), append(parents, p.content)
		}
		for _, name := range []string{"leaf-1", "leaf-2"} {
			if err != nil {
				break
			}
			var l *node
			l, err = start(name, append([]string{"UPSTREAM_HOST=" + strings.Join(parents, ","), "UPSTREAM_POLICY=hash"}, extra...)...)
			if err == nil {
				s.addrs = append(s.addrs, l.content)
				if !strings.Contains(l.startLine(), `"upstream_policy":"hash"`) {
					err = errNoHashPolicy
				}
			}
		}
	default:
		err = fmt.Errorf("unknown setup %q", kind)
	}
	if err != nil {
		s.stop()
		return nil, err
	}
	switch {
	case s.addrs != nil: // the hashed pool's leaves
	case s.front != nil:
		s.addrs = []string{s.front.Addr}
	default:
		s.addrs = []string{s.entry.content}
	}
	s.addr = s.addrs[0]
	return s, nil
}

// stop ends the front, then every node that still runs.
func (s *setup) stop() {
	if s.front != nil {
		s.front.Stop()
	}
	for i := len(s.nodes) - 1; i >= 0; i-- {
		s.nodes[i].stop()
	}
}
