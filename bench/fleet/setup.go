package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// setup is one arrangement of nodes that clients reach at addr.
type setup struct {
	name   string
	addr   string // where the clients connect
	entry  *node  // the node at addr; nil behind a front
	parent *node  // the entry's parent; nil for none
	front  *front // haproxy at addr; nil for none
	nodes  []*node
}

// The arrangements scenarios compare. Each starts cold, on drives of its
// own. A hashed parent pool (a leaf with UPSTREAM_HOST=a,b,c and
// UPSTREAM_POLICY=hash) fits here as one more kind.
const (
	single     = "single node"
	leafParent = "leaf -> parent"
	haproxy3   = "haproxy -> 3 nodes"
)

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
			s.front, err = startFront(e.haproxy, dir, s.nodes)
		}
	default:
		err = fmt.Errorf("unknown setup %q", kind)
	}
	if err != nil {
		s.stop()
		return nil, err
	}
	s.addr = s.nodes[len(s.nodes)-1].content
	if s.entry != nil {
		s.addr = s.entry.content
	}
	if s.front != nil {
		s.addr = s.front.addr
	}
	return s, nil
}

// stop ends the front, then every node that still runs.
func (s *setup) stop() {
	if s.front != nil {
		s.front.stop()
	}
	for i := len(s.nodes) - 1; i >= 0; i-- {
		s.nodes[i].stop()
	}
}
