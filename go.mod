module gatecache

go 1.26.0

require (
	go.etcd.io/bbolt v1.5.0
	golang.org/x/sys v0.50.0
)

require golang.org/x/time v0.16.0

require github.com/prometheus/client_golang v1.25.0 // indirect
