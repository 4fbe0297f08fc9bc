package config

import (
	"errors"
	"os"
	"reflect"
	"testing"
)

// TestCustomHostAnyN: MCC sets no limit to the number of custom hosts, so an
// N past the probed 1..999 is read too, from the process environment, in
// increasing order of N.
func TestCustomHostAnyN(t *testing.T) {
	t.Setenv("CACHEABLE_CUSTOM_123456789_HOST", "b.example")
	t.Setenv("CACHEABLE_CUSTOM_1000_HOST", "a.example:8080")
	t.Setenv("CACHEABLE_CUSTOM_1000_CANONICAL", "A")
	t.Setenv("CACHEABLE_CUSTOM_1000_KEEP_QUERY", "true")
	t.Setenv("CACHEABLE_CUSTOM_2_HOST", "c.example")
	c, err := FromEnv(os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := []CustomHost{
		{Index: 2, Host: "c.example", Canonical: "c.example"},
		{Index: 1000, Host: "a.example", Port: "8080", Canonical: "a", KeepQuery: true},
		{Index: 123456789, Host: "b.example", Canonical: "b.example"},
	}
	if !reflect.DeepEqual(c.CustomHosts, want) {
		t.Errorf("CustomHosts = %+v\nwant %+v", c.CustomHosts, want)
	}
}

// TestCustomHostLargeNValueFromLookup: the environment only names the
// variables; their values come from lookup, as every other value does.
func TestCustomHostLargeNValueFromLookup(t *testing.T) {
	t.Setenv("CACHEABLE_CUSTOM_5000_HOST", "from-environ.example")
	c, err := FromEnv(env(map[string]string{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.CustomHosts) != 0 {
		t.Errorf("CustomHosts = %+v, want none: lookup does not have the variable", c.CustomHosts)
	}
	c, err = FromEnv(env(map[string]string{"CACHEABLE_CUSTOM_5000_HOST": "from-lookup.example"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.CustomHosts) != 1 || c.CustomHosts[0].Host != "from-lookup.example" || c.CustomHosts[0].Index != 5000 {
		t.Errorf("CustomHosts = %+v, want from-lookup.example as N=5000", c.CustomHosts)
	}
}

// TestCustomHostBadN: an N that cannot be a custom host's number stops
// startup naming the variable, instead of being ignored.
func TestCustomHostBadN(t *testing.T) {
	for _, tt := range []struct{ name, msg string }{
		{"CACHEABLE_CUSTOM_1000000000_HOST", `CACHEABLE_CUSTOM_1000000000_HOST="x.example": want N from 1 to 999999999, without leading zeros`},
		{"CACHEABLE_CUSTOM_99999999999999999999_HOST", `CACHEABLE_CUSTOM_99999999999999999999_HOST="x.example": want N from 1 to 999999999, without leading zeros`},
		{"CACHEABLE_CUSTOM_007_HOST", `CACHEABLE_CUSTOM_007_HOST="x.example": want N from 1 to 999999999, without leading zeros`},
		{"CACHEABLE_CUSTOM_0_CANONICAL", `CACHEABLE_CUSTOM_0_CANONICAL="x.example": want N from 1 to 999999999, without leading zeros`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(tt.name, "x.example")
			c, err := FromEnv(os.LookupEnv)
			var e *Error
			if !errors.As(err, &e) || e.Var != tt.name || err.Error() != tt.msg {
				t.Fatalf("err = %v, want %s", err, tt.msg)
			}
			if !reflect.DeepEqual(c, Config{}) {
				t.Errorf("config returned with an error: %+v", c)
			}
		})
	}
	// A lone alias past 999 is a typo in N, as below it.
	t.Run("lone alias", func(t *testing.T) {
		t.Setenv("CACHEABLE_CUSTOM_4242_CANONICAL", "x")
		_, err := FromEnv(os.LookupEnv)
		if want := `CACHEABLE_CUSTOM_4242_CANONICAL="x": want CACHEABLE_CUSTOM_4242_HOST to be set as well`; err == nil || err.Error() != want {
			t.Fatalf("err = %v, want %s", err, want)
		}
	})
}
