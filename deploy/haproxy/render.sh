#!/bin/sh
# Prints an HAProxy 2.6 configuration (Debian's haproxy package) that puts
# gatecache nodes behind one address: each request goes to the node ranked
# first for the object it names (its origin and path, whatever request form
# the device uses) by a consistent hash, so that each object is fetched and
# stored on one node only, and a node that leaves costs only its own share.
#
#   deploy/haproxy/render.sh [-b BIND] [-s SOCKET] [-l LOG] [-u] NODE...
#
#   NODE       host:port[:summaryport] of a gatecache node: its content port
#              (LISTEN_ADDR) and its summary port (SUMMARY_ADDR, default
#              5001), where HAProxy checks /readyz; an IPv6 address in
#              brackets, [2001:db8::1]:8081:5001
#   -b BIND    address the front listens on (default ":8081", gatecache's
#              content port, so that devices keep their setting)
#   -s SOCKET  HAProxy's admin socket (default /run/haproxy/admin.sock)
#   -l LOG     log target (default /dev/log; "stderr" or "stdout" for a
#              foreground run)
#   -u         run as the invoking user: no chroot, user or daemon lines
#              (a foreground run for a test or a try; the default is
#              Debian's layout, started as root by haproxy.service)
#
# Typical use on Debian: render.sh gw-a:8081 gw-b:8081 gw-c:8081 \
#   > /etc/haproxy/haproxy.cfg && haproxy -c -f /etc/haproxy/haproxy.cfg \
#   && systemctl reload haproxy
set -eu

usage() {
	echo "usage: render.sh [-b BIND] [-s SOCKET] [-l LOG] [-u] host:port[:summaryport]..." >&2
	exit 2
}

bind=":8081"
socket="/run/haproxy/admin.sock"
log="/dev/log"
unprivileged=false
while getopts b:s:l:u opt; do
	case $opt in
	b) bind=$OPTARG ;;
	s) socket=$OPTARG ;;
	l) log=$OPTARG ;;
	u) unprivileged=true ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || usage

# port VALUE NODE: checks a decimal port 1-65535.
port() {
	case $1 in
	'' | *[!0-9]* | 0*) bad "$2" ;;
	esac
	if [ ${#1} -gt 5 ] || [ "$1" -gt 65535 ]; then
		bad "$2"
	fi
}

bad() {
	echo "render.sh: node \"$1\": want host:port[:summaryport] (ports 1-65535)" >&2
	exit 2
}

# servers collects the backend's server lines; ids the ids given so far.
servers=""
ids=" "
names=" "
for node in "$@"; do
	case $node in
	\[*\]:*)
		host=${node%%]*}]
		rest=${node#*]:}
		v6=${host#[}
		case ${v6%]} in '' | *[!0-9A-Fa-f:.]*) bad "$node" ;; esac
		;;
	*:*)
		host=${node%%:*}
		rest=${node#*:}
		case $host in '' | *[!0-9A-Za-z.-]*) bad "$node" ;; esac
		;;
	*) bad "$node" ;;
	esac
	case $rest in
	*:*:*) bad "$node" ;;
	*:*) content=${rest%:*} summary=${rest#*:} ;;
	*) content=$rest summary=5001 ;;
	esac
	port "$content" "$node"
	port "$summary" "$node"
	addr=$host:$content
	# The server's name is its address (without brackets, which HAProxy
	# names cannot hold): logs and the admin socket show which node
	# served a request.
	name=$(printf '%s' "$addr" | tr -d '[]')
	case $names in *" $name "*)
		echo "render.sh: node $addr named twice" >&2
		exit 2
		;;
	esac
	names="$names$name "
	# The consistent hash places a server on its ring by the server's id.
	# Deriving the id from the address keeps every node's place, and so
	# its objects, when nodes are added, removed or listed in another
	# order, and gives several HAProxy instances the same ring.
	sum=$(printf '%s' "$addr" | cksum | cut -d' ' -f1)
	id=$((sum % 2147483646 + 1))
	case $ids in *" $id "*)
		echo "render.sh: nodes $addr and another one hash to the same id $id: rename one" >&2
		exit 2
		;;
	esac
	ids="$ids$id "
	servers="$servers	server $name $addr id $id check port $summary
"
done

echo "# gatecache front tier for HAProxy 2.6, printed by"
echo "#   deploy/haproxy/render.sh $*"
echo "global"
case $log in
stdout | stderr) echo "	log $log format raw local0" ;;
*) echo "	log $log local0" ;;
esac
if [ "$unprivileged" = false ]; then
	echo "	chroot /var/lib/haproxy"
	echo "	user haproxy"
	echo "	group haproxy"
	echo "	daemon"
fi
cat <<CFG
	stats socket $socket mode 660 level admin
	stats timeout 30s
	# Concurrent device connections, as many as one node takes (gatecache
	# caps its content connections at 8,192). HAProxy raises its own
	# descriptor limit to about twice this when started as root.
	maxconn 8192

defaults
	mode http
	log global
	option httplog
	option dontlognull
	timeout connect 2s
	# Above the node's own bounds, so that its answers reach the device:
	# a node answers 504 after 15 s without upstream headers
	# (UPSTREAM_HEADER_TIMEOUT), under the Delivery Optimization agent's
	# 20 s; it drops a device that takes no byte for a minute.
	timeout server 30s
	timeout client 1m
	timeout http-request 10s
	timeout http-keep-alive 2m
	timeout queue 10s
	timeout check 1s
	# A node that refuses or drops a request before answering (stopped,
	# or stopping between two checks) gets it retried on the next node
	# of the ring; GET and HEAD of a cache are safe to replay.
	retries 2
	option redispatch 1
	retry-on conn-failure empty-response

frontend gatecache
	bind $bind
	# No X-Forwarded-For (option forwardfor): a node neither logs nor
	# trusts a client address on its content port, and would pass the
	# field on to the origins. The client's address is in this log.
	#
	# The hash key names the object: origin host[:port] + path, whatever
	# request form the device uses; each rule below overrides the one
	# before it when its form is present. The query string is left out (a
	# Windows Update URL carries per-device tokens there); so is the
	# scheme.
	acl gc_absolute url_reg -i ^https?://
	acl gc_query url_param(cacheHostOrigin) -m found
	# A dotted first segment names an origin only as the node reads it: a
	# dotted quad, or a name whose last label starts with a letter (no top
	# level domain is all digits): /22.04/ or /v1.2/ is a directory.
	acl gc_pathform path_reg ^/([0-9]+([.][0-9]+){3}|[A-Za-z0-9-]+([.][A-Za-z0-9-]+)*[.][A-Za-z][A-Za-z0-9-]*)(:[0-9]+)?/
	# The Host header (DNS sends the origin's name to the front) ...
	http-request set-var(txn.gc_host) req.hdr(host),lower
	http-request set-var(txn.gc_path) path
	# ... unless the first path segment is a dotted host name or address,
	# /deb.debian.org/debian/... (apt-cacher-ng style): then the Host
	# header names the front itself ...
	http-request set-var(txn.gc_host) path,field(2,/),lower if !gc_absolute !gc_query gc_pathform
	http-request set-var(txn.gc_path) 'path,regsub("^/[^/]*","")' if !gc_absolute !gc_query gc_pathform
	# ... an absolute-form target names it (a forward-proxy client: apt's
	# Acquire::http::Proxy, http_proxy, a child cache) ...
	http-request set-var(txn.gc_host) 'url,regsub("^[^:]*://([^/?#]*).*$","\1"),lower' if gc_absolute
	# ... and ?cacheHostOrigin= (Delivery Optimization) names it above all.
	http-request set-var(txn.gc_host) url_param(cacheHostOrigin),url_dec,lower if gc_query
	# repo.com, repo.com. and repo.com:80 are one origin.
	http-request set-var(txn.gc_key) 'var(txn.gc_host),regsub("[.]?(:80)?$",""),concat(,txn.gc_path)'
	# The key is logged with each request, beside the node that served it.
	http-request capture var(txn.gc_key) len 200
	default_backend gatecache

backend gatecache
	# Consistent hashing: a node that leaves or joins moves only its own
	# share of the keys (about 1/N), and the other nodes keep theirs.
	balance hash var(txn.gc_key)
	hash-type consistent sdbm avalanche
	# A node is in rotation while its summary port answers /readyz 200.
	# From SIGTERM on it answers 503 and finishes its responses; two
	# failed checks (every 1 s, then every 250 ms) take it out within
	# about 1.3 s, while it still accepts requests (for 2 s), so that none
	# is refused. The downloads it is serving go on.
	option httpchk
	http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host gatecache-check
	http-check expect status 200
	# A node that refuses a connection (it crashed, or was killed) is taken
	# out at once rather than at its next checks, so that its keys move
	# to one other node rather than, while retried, to another.
	# weight 100: 1,600 points per node on the ring, for an even spread.
	default-server inter 1s fastinter 250ms downinter 1s fall 2 rise 2 observe layer4 error-limit 1 on-error mark-down weight 100
CFG
printf '%s' "$servers"
