package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"gatecache/internal/haproxytest"
)

// renderScript prints the front's configuration (run from the repository's
// root, as go run ./bench/fleet is).
const renderScript = "deploy/haproxy/render.sh"

// startFront runs haproxy with deploy/haproxy's configuration in front of
// nodes, its output in dir/haproxy.log, and waits until every node is in
// rotation.
func startFront(haproxy, dir string, nodes []*node) (*haproxytest.Front, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "haproxy.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close() // haproxy has its own descriptor
	var hn []haproxytest.Node
	for _, n := range nodes {
		_, port, _ := net.SplitHostPort(n.summary)
		hn = append(hn, haproxytest.Node{Addr: n.content, CheckPort: port})
	}
	f, err := haproxytest.Start(haproxytest.Options{HAProxy: haproxy, Render: renderScript, Log: logf}, hn)
	if err != nil {
		return nil, fmt.Errorf("%w (haproxy's log: %s)", err, logf.Name())
	}
	return f, nil
}
