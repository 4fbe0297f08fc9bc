package main

import (
	"fmt"
	"path/filepath"
	"strings"
)

// setup is one arrangement of nodes that clients reach at entry.
type setup struct {
	name   string
	entry  *node // where the clients connect
	parent *node // the entry's parent; nil for a single node
	nodes  []*node
}

// The arrangements a scenario compares. Each starts cold, on drives of its
// own under dir.
const (
	single     = "single node"
	leafParent = "leaf -> parent"
)

// newSetup starts the nodes of kind, allowing o, with extra environment for
// every node and parentExtra for a parent only.
func newSetup(e env, kind string, o *origin, extra, parentExtra []string) (*setup, error) {
	dir := filepath.Join(e.work, strings.NewReplacer(" ", "", "->", "-").Replace(kind))
	s := &setup{name: kind}
	switch kind {
	case single:
		n, err := startNode(e.bin, dir, "single", o.addr, extra...)
		if err != nil {
			return nil, err
		}
		s.entry, s.nodes = n, []*node{n}
	case leafParent:
		p, err := startNode(e.bin, dir, "parent", o.addr, append(append([]string(nil), extra...), parentExtra...)...)
		if err != nil {
			return nil, err
		}
		l, err := startNode(e.bin, dir, "leaf", o.addr, append([]string{"UPSTREAM_HOST=" + p.content}, extra...)...)
		if err != nil {
			p.stop()
			return nil, err
		}
		s.entry, s.parent, s.nodes = l, p, []*node{l, p}
	default:
		return nil, fmt.Errorf("unknown setup %q", kind)
	}
	return s, nil
}

// stop ends every node, the entry first.
func (s *setup) stop() {
	for _, n := range s.nodes {
		n.stop()
	}
}
