package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestUpstreamPolicyAndWeights(t *testing.T) {
	c := mustFromEnv(t, map[string]string{"UPSTREAM_HOST": "gw-a=2, gw-b ,gw-c:8080 = 3,[::1]:81=1", "UPSTREAM_POLICY": "Hash"})
	if !c.UpstreamHash {
		t.Error("UPSTREAM_POLICY=Hash: hash policy not set")
	}
	if want := []string{"gw-a:80", "gw-b:80", "gw-c:8080", "[::1]:81"}; !reflect.DeepEqual(c.Upstreams, want) {
		t.Errorf("upstreams %q, want %q", c.Upstreams, want)
	}
	if want := []int{2, 1, 3, 1}; !reflect.DeepEqual(c.UpstreamWeights, want) {
		t.Errorf("weights %v, want %v", c.UpstreamWeights, want)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings %q, want none", c.Warnings)
	}

	c = mustFromEnv(t, map[string]string{"UPSTREAM_HOST": "gw-a,gw-b", "UPSTREAM_POLICY": "failover"})
	if c.UpstreamHash || !reflect.DeepEqual(c.UpstreamWeights, []int{1, 1}) {
		t.Errorf("failover: hash %v, weights %v", c.UpstreamHash, c.UpstreamWeights)
	}
	if c := mustFromEnv(t, map[string]string{"UPSTREAM_HOST": "gw-a"}); c.UpstreamHash {
		t.Error("failover is not the default")
	}
	// Failover tries the same parent twice in a row as before.
	mustFromEnv(t, map[string]string{"UPSTREAM_HOST": "gw-a,gw-a"})
}

func TestUpstreamPolicyWarnings(t *testing.T) {
	for _, tt := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"UPSTREAM_HOST": "gw-a=2,gw-b"}, "only UPSTREAM_POLICY=hash uses"},
		{map[string]string{"UPSTREAM_POLICY": "hash"}, "UPSTREAM_POLICY=hash has no effect without UPSTREAM_HOST"},
	} {
		c := mustFromEnv(t, tt.env)
		if all := strings.Join(c.Warnings, "\n"); !strings.Contains(all, tt.want) {
			t.Errorf("FromEnv(%v) warnings %q, want one mentioning %q", tt.env, c.Warnings, tt.want)
		}
	}
}

func TestBadUpstreamPolicyOrWeightStopsStartup(t *testing.T) {
	for _, tt := range []struct {
		env     map[string]string
		wantMsg string
	}{
		{map[string]string{"UPSTREAM_POLICY": "carp"}, `UPSTREAM_POLICY="carp": want failover`},
		{map[string]string{"UPSTREAM_POLICY": "round-robin", "UPSTREAM_HOST": "a,b"}, `UPSTREAM_POLICY="round-robin": want`},
		{map[string]string{"UPSTREAM_HOST": "gw-a=0,gw-b"}, `UPSTREAM_HOST="gw-a=0,gw-b": want a weight from 1 to 1000`},
		{map[string]string{"UPSTREAM_HOST": "gw-a=-1"}, `UPSTREAM_HOST="gw-a=-1": want a weight`},
		{map[string]string{"UPSTREAM_HOST": "gw-a=1.5"}, `UPSTREAM_HOST="gw-a=1.5": want a weight`},
		{map[string]string{"UPSTREAM_HOST": "gw-a="}, `UPSTREAM_HOST="gw-a=": want a weight`},
		{map[string]string{"UPSTREAM_HOST": "gw-a=1001"}, `UPSTREAM_HOST="gw-a=1001": want a weight`},
		{map[string]string{"UPSTREAM_HOST": "gw-a=x"}, `UPSTREAM_HOST="gw-a=x": want a weight`},
		{map[string]string{"UPSTREAM_HOST": "gw-a=2=3"}, `UPSTREAM_HOST="gw-a=2=3": want a weight`},
		{map[string]string{"UPSTREAM_HOST": "=2"}, `UPSTREAM_HOST="=2": want a comma-separated list`},
		{map[string]string{"IOTEDGE_PARENTHOSTNAME": "gw4=0"}, `IOTEDGE_PARENTHOSTNAME="gw4=0": want a weight`},
		{map[string]string{"UPSTREAM_HOST": "gw-a,GW-A:80=2", "UPSTREAM_POLICY": "hash"}, `UPSTREAM_HOST="gw-a,GW-A:80=2": want each parent once under UPSTREAM_POLICY=hash (gw-a:80 is listed twice)`},
	} {
		t.Run(fmt.Sprint(tt.env), func(t *testing.T) {
			c, err := FromEnv(env(tt.env))
			var e *Error
			if !errors.As(err, &e) || !strings.HasPrefix(err.Error(), tt.wantMsg) {
				t.Fatalf("err = %v, want one starting %s", err, tt.wantMsg)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q is not one line", err)
			}
			if !reflect.DeepEqual(c, Config{}) {
				t.Errorf("config returned with an error: %+v", c)
			}
		})
	}
}

// UPSTREAM_POLICY is checked after UPSTREAM_FALLBACK_DIRECT and before
// UPSTREAM_PROXY, as the package documentation lists.
func TestUpstreamPolicyErrorOrder(t *testing.T) {
	m := map[string]string{"UPSTREAM_PROXY": "x", "UPSTREAM_POLICY": "x", "UPSTREAM_FALLBACK_DIRECT": "x"}
	for _, name := range []string{"UPSTREAM_FALLBACK_DIRECT", "UPSTREAM_POLICY", "UPSTREAM_PROXY"} {
		_, err := FromEnv(env(m))
		var e *Error
		if !errors.As(err, &e) || e.Var != name {
			t.Fatalf("error = %v, want one about %s", err, name)
		}
		delete(m, name)
	}
}
