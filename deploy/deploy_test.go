package deploy

import (
	"bufio"
	"encoding/json"
	"maps"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gatecache/internal/config"
)

// manifests are the IoT Edge deployment templates.
var manifests = []string{
	"iotedge/deployment.template.json",
	"iotedge/deployment.child.template.json",
}

const (
	unitFile     = "systemd/gatecache.service"
	socketFile   = "systemd/gatecache.socket"
	envExample   = "systemd/gatecache.env.example"
	dockerfile   = "Dockerfile"
	moduleName   = "gatecache"
	mccBind      = "/MicrosoftConnectedCache1/:/nginx/cache1/"
	imageRoot    = "/nginx"
	contentPort  = "8081"
	summaryPort  = "5001"
	containerUID = "10001"
)

// directVars are read outside the config package: by the Go runtime and
// crypto/x509 (SSL_CERT_FILE) or by cmd/gatecache itself.
var directVars = []string{"IOTEDGE_PARENTHOSTNAME", "SSL_CERT_FILE", "GATECACHE_DEBUG", "GATECACHE_PPROF"}

// representative settings make config.FromEnv ask for the variables it
// reads only in some configurations (a custom host's alias and flags, a
// drive's other settings).
var representative = map[string]string{
	"CACHEABLE_CUSTOM_1_HOST": "deb.debian.org",
	"STORAGE_1_SIZE_GB":       "10",
}

// understood reports whether gatecache reads the variable: config.FromEnv
// asks for it, or it is one of directVars, and FromEnv does not warn that
// it ignores it (STORAGE_10_SIZE_GB is asked for only to say so).
func understood(t *testing.T) func(name string) bool {
	t.Helper()
	asked := map[string]bool{}
	for _, v := range directVars {
		asked[v] = true
	}
	if _, err := config.FromEnv(func(name string) (string, bool) {
		asked[name] = true
		v, ok := representative[name]
		return v, ok
	}); err != nil {
		t.Fatalf("representative settings are invalid: %v", err)
	}
	for _, must := range []string{"CUSTOMER_ID", "CACHEABLE_CUSTOM_1_CANONICAL", "STORAGE_1_PATH", "UPSTREAM_HOST"} {
		if !asked[must] {
			t.Fatalf("config.FromEnv never asked for %s: the recording lookup is broken", must)
		}
	}
	return func(name string) bool {
		if !asked[name] {
			return false
		}
		env := maps.Clone(representative)
		env[name] = "1"
		c, _ := config.FromEnv(mapLookup(env)) // an error names the variable: understood
		for _, w := range c.Warnings {
			if strings.Contains(w, name+" is ignored") {
				return false
			}
		}
		return true
	}
}

func mapLookup(env map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
}

// manifest is the part of an IoT Edge deployment manifest checked here.
type manifest struct {
	ModulesContent struct {
		EdgeAgent struct {
			Desired struct {
				SchemaVersion string `json:"schemaVersion"`
				Runtime       struct {
					Type string `json:"type"`
				} `json:"runtime"`
				SystemModules map[string]module `json:"systemModules"`
				Modules       map[string]module `json:"modules"`
			} `json:"properties.desired"`
		} `json:"$edgeAgent"`
		EdgeHub struct {
			Desired struct {
				SchemaVersion string          `json:"schemaVersion"`
				Routes        json.RawMessage `json:"routes"`
			} `json:"properties.desired"`
		} `json:"$edgeHub"`
	} `json:"modulesContent"`
}

type module struct {
	Type          string `json:"type"`
	Status        string `json:"status"`
	RestartPolicy string `json:"restartPolicy"`
	Settings      struct {
		Image         string `json:"image"`
		CreateOptions string `json:"createOptions"` // JSON in a string
	} `json:"settings"`
	Env map[string]struct {
		Value *string `json:"value"`
	} `json:"env"`
}

func readManifest(t *testing.T, file string) manifest {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("%s: not valid JSON for a deployment manifest: %v", file, err)
	}
	if dec.More() {
		t.Fatalf("%s: data after the manifest", file)
	}
	return m
}

func TestManifestStructure(t *testing.T) {
	for _, file := range manifests {
		m := readManifest(t, file)
		agent, hub := m.ModulesContent.EdgeAgent.Desired, m.ModulesContent.EdgeHub.Desired
		if agent.SchemaVersion == "" || hub.SchemaVersion == "" || agent.Runtime.Type != "docker" {
			t.Errorf("%s: $edgeAgent/$edgeHub desired properties incomplete (schemaVersion, runtime.type)", file)
		}
		if len(hub.Routes) == 0 {
			t.Errorf("%s: $edgeHub has no routes object", file)
		}
		for _, name := range []string{"edgeAgent", "edgeHub"} {
			if sm, ok := agent.SystemModules[name]; !ok || sm.Settings.Image == "" {
				t.Errorf("%s: system module %s missing or without an image", file, name)
			}
		}
		mod, ok := agent.Modules[moduleName]
		if !ok {
			t.Fatalf("%s: no module %q", file, moduleName)
		}
		if mod.Type != "docker" || mod.Status != "running" || mod.RestartPolicy != "always" || mod.Settings.Image == "" {
			t.Errorf("%s: module %s: type %q status %q restartPolicy %q image %q", file, moduleName,
				mod.Type, mod.Status, mod.RestartPolicy, mod.Settings.Image)
		}
		for name, v := range mod.Env {
			if v.Value == nil {
				t.Errorf("%s: env %s has no string value", file, name)
			}
		}
	}
}

// TestManifestCreateOptions: the createOptions are Microsoft Connected
// Cache's current sample, unchanged (manifest_test.go checks that the image
// answers on its ports).
func TestManifestCreateOptions(t *testing.T) {
	want := readCreateOptions(t, sampleCreateOptions)
	for _, file := range manifests {
		mod := readManifest(t, file).ModulesContent.EdgeAgent.Desired.Modules[moduleName]
		var got map[string]any
		if err := json.Unmarshal([]byte(mod.Settings.CreateOptions), &got); err != nil {
			t.Errorf("%s: createOptions %q is not JSON: %v", file, mod.Settings.CreateOptions, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: createOptions\n%s\nwant Microsoft's sample\n%s", file, mod.Settings.CreateOptions, mustJSON(t, want))
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// placeholder matches "<SOMETHING>" values that an operator replaces.
var placeholder = regexp.MustCompile(`<[A-Z0-9_:]+>`)

// placeholderSamples are values that an operator could put in place of the
// manifests' placeholders.
var placeholderSamples = map[string]string{
	"CUSTOMER_ID":    "8e33e2b8-8a8c-4f70-9b0b-0d2f1c5a3e11",
	"CACHE_NODE_ID":  "{5D1F6A2E-0B9C-4C8E-A0B4-2F9E7D3C1B55}",
	"CUSTOMER_KEY":   "0b7a2d9c-3e4f-4a1b-8c6d-9e0f1a2b3c4d",
	"UPSTREAM_HOST":  "gw-l4.plant.example",
	"UPSTREAM_PROXY": "otproxy.plant.example:3128",
}

func TestManifestEnvIsUnderstood(t *testing.T) {
	ok := understood(t)
	for _, file := range manifests {
		agent := readManifest(t, file).ModulesContent.EdgeAgent.Desired
		env := map[string]string{}
		for modName, mod := range agent.Modules {
			for name, v := range mod.Env {
				if !ok(name) {
					t.Errorf("%s: module %s: gatecache does not read %s", file, modName, name)
				}
				if v.Value == nil {
					continue
				}
				env[name] = *v.Value
				if placeholder.MatchString(*v.Value) {
					sample, known := placeholderSamples[name]
					if !known {
						t.Errorf("%s: %s=%q: a placeholder this test has no sample value for", file, name, *v.Value)
					}
					env[name] = sample
				}
			}
		}
		// With its placeholders filled in, the manifest configures a
		// node without error or warning.
		c, err := config.FromEnv(mapLookup(env))
		if err != nil {
			t.Errorf("%s with placeholders filled in: %v", file, err)
			continue
		}
		if len(c.Warnings) > 0 {
			t.Errorf("%s with placeholders filled in: warnings %q", file, c.Warnings)
		}
	}
}

// unit is a parsed systemd unit: section -> key -> values in order.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, file string) unit {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section, pending := "", ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if pending != "" {
			line, pending = pending+" "+line, ""
		}
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			pending = strings.TrimSuffix(line, `\`)
			continue
		}
		if strings.HasPrefix(line, "[") {
			if !strings.HasSuffix(line, "]") {
				t.Fatalf("%s:%d: bad section header %q", file, n, line)
			}
			section = line[1 : len(line)-1]
			if u[section] != nil {
				t.Fatalf("%s:%d: section [%s] twice", file, n, section)
			}
			u[section] = map[string][]string{}
			continue
		}
		key, value, found := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if !found || section == "" || !regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*$`).MatchString(key) {
			t.Fatalf("%s:%d: want Key=value inside a section, got %q", file, n, line)
		}
		u[section][key] = append(u[section][key], strings.TrimSpace(value))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// last is the effective value of a single-valued key.
func (u unit) last(section, key string) (string, bool) {
	vs := u[section][key]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

// environment returns the variables set by Environment= lines.
func (u unit) environment(t *testing.T) map[string]string {
	env := map[string]string{}
	for _, line := range u["Service"]["Environment"] {
		for _, a := range strings.Fields(line) {
			name, value, ok := strings.Cut(strings.Trim(a, `"`), "=")
			if !ok {
				t.Errorf("Environment=%s: %q is not NAME=value", line, a)
			}
			env[name] = value
		}
	}
	return env
}

func TestSystemdUnit(t *testing.T) {
	u := parseUnit(t, unitFile)
	for _, s := range []string{"Unit", "Service", "Install"} {
		if u[s] == nil {
			t.Errorf("no [%s] section", s)
		}
	}
	want := map[string]string{
		"Type":                    "simple",
		"ExecStart":               "/usr/local/bin/gatecache",
		"DynamicUser":             "yes",
		"StateDirectory":          "gatecache",
		"Restart":                 "on-failure",
		"LimitNOFILE":             "65536",
		"TimeoutStopSec":          "15",
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectKernelLogs":       "yes",
		"ProtectControlGroups":    "yes",
		"RestrictNamespaces":      "yes",
		"LockPersonality":         "yes",
		"MemoryDenyWriteExecute":  "yes",
		"SystemCallArchitectures": "native",
	}
	for _, key := range slices.Sorted(maps.Keys(want)) {
		if got, ok := u.last("Service", key); got != want[key] {
			t.Errorf("[Service] %s=%q (set: %v), want %q", key, got, ok, want[key])
		}
	}
	if got, _ := u.last("Service", "RestrictAddressFamilies"); !slices.Equal(slices.Sorted(slices.Values(strings.Fields(got))), []string{"AF_INET", "AF_INET6", "AF_UNIX"}) {
		t.Errorf("RestrictAddressFamilies=%q, want AF_INET AF_INET6 AF_UNIX", got)
	}
	if !slices.Contains(u["Service"]["SystemCallFilter"], "@system-service") {
		t.Errorf("SystemCallFilter=%q, want @system-service among them", u["Service"]["SystemCallFilter"])
	}
	if got, _ := u.last("Install", "WantedBy"); got != "multi-user.target" {
		t.Errorf("WantedBy=%q, want multi-user.target", got)
	}

	// The cache lives in the state directory.
	env := u.environment(t)
	state, _ := u.last("Service", "StateDirectory")
	if env["CACHE_ROOT"] != "/var/lib/"+state {
		t.Errorf("Environment CACHE_ROOT=%q, want /var/lib/%s (StateDirectory=%s)", env["CACHE_ROOT"], state, state)
	}

	// The ports are the socket unit's, so the service binds nothing and
	// needs no capability, and sets no listener address that would not be
	// used.
	if bounding, set := u.last("Service", "CapabilityBoundingSet"); !set || bounding != "" {
		t.Errorf("CapabilityBoundingSet=%q (set: %v), want it empty: systemd binds the ports", bounding, set)
	}
	if ambient, _ := u.last("Service", "AmbientCapabilities"); ambient != "" {
		t.Errorf("AmbientCapabilities=%q, want none", ambient)
	}
	for _, v := range []string{"LISTEN_ADDR", "SUMMARY_ADDR"} {
		if _, set := env[v]; set {
			t.Errorf("Environment= sets %s, which is not used under %s", v, socketFile)
		}
		if _, set := readEnvFile(t, envExample, false)[v]; set {
			t.Errorf("%s sets %s, which is not used under %s", envExample, v, socketFile)
		}
	}
	socket := path.Base(socketFile)
	for _, key := range []string{"Requires", "After"} {
		if !slices.Contains(strings.Fields(strings.Join(u["Unit"][key], " ")), socket) {
			t.Errorf("[Unit] %s=%q lacks %s", key, u["Unit"][key], socket)
		}
	}
	if !slices.Contains(u["Install"]["Also"], socket) {
		t.Errorf("[Install] Also=%q lacks %s: enabling the service must enable its sockets", u["Install"]["Also"], socket)
	}

	// The environment file has its example in the repository.
	ef, _ := u.last("Service", "EnvironmentFile")
	ef = strings.TrimPrefix(ef, "-")
	if !strings.HasPrefix(ef, "/etc/gatecache/") {
		t.Errorf("EnvironmentFile=%q, want it under /etc/gatecache", ef)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(unitFile), path.Base(ef)+".example")); err != nil {
		t.Errorf("EnvironmentFile=%s has no example in the repository: %v", ef, err)
	}
}

// TestSystemdSocket: the socket unit passes the content port (80, where
// devices ask) and then the summary port to the service, which accepts on
// them itself (Accept=no), as gatecache matches unnamed sockets by order.
func TestSystemdSocket(t *testing.T) {
	u := parseUnit(t, socketFile)
	for _, s := range []string{"Unit", "Socket", "Install"} {
		if u[s] == nil {
			t.Errorf("%s: no [%s] section", socketFile, s)
		}
	}
	defaults, err := config.FromEnv(func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	summary := defaults.SummaryAddr
	want := []string{"80", summary[strings.LastIndex(summary, ":")+1:]}
	if got := u["Socket"]["ListenStream"]; !slices.Equal(got, want) {
		t.Errorf("ListenStream=%q, want %q in this order (content, then summary)", got, want)
	}
	for key, value := range map[string]string{"Accept": "no", "Service": path.Base(unitFile)} {
		if got, _ := u.last("Socket", key); got != value {
			t.Errorf("[Socket] %s=%q, want %q", key, got, value)
		}
	}
	// One name for all of a unit's sockets would not tell them apart
	// any better than their order does.
	if names := u["Socket"]["FileDescriptorName"]; len(names) > 0 {
		t.Errorf("FileDescriptorName=%q names both sockets alike", names)
	}
	if got, _ := u.last("Install", "WantedBy"); got != "sockets.target" {
		t.Errorf("WantedBy=%q, want sockets.target", got)
	}
}

// envAssignment matches "NAME=value" and, with the comment marker,
// "#NAME=value": a documented setting left at its default.
var envAssignment = regexp.MustCompile(`^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$`)

// readEnvFile returns the assignments of a systemd environment file;
// withCommented adds the commented-out example settings.
func readEnvFile(t *testing.T, file string, withCommented bool) map[string]string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for line := range strings.Lines(string(b)) {
		m := envAssignment.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil || (m[1] != "" && !withCommented) {
			continue
		}
		env[m[2]] = m[3]
	}
	return env
}

func TestSystemdEnvExample(t *testing.T) {
	ok := understood(t)
	all := readEnvFile(t, envExample, true)
	if len(all) < 10 {
		t.Fatalf("%s: only %d settings found", envExample, len(all))
	}
	for _, name := range slices.Sorted(maps.Keys(all)) {
		if !ok(name) {
			t.Errorf("%s: gatecache does not read %s", envExample, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(parseUnit(t, unitFile).environment(t))) {
		if !ok(name) {
			t.Errorf("%s: Environment= sets %s, which gatecache does not read", unitFile, name)
		}
	}
	// Every example value is valid, even with every line uncommented, on
	// top of the unit's Environment=.
	env := parseUnit(t, unitFile).environment(t)
	maps.Copy(env, all)
	if _, err := config.FromEnv(mapLookup(env)); err != nil {
		t.Errorf("%s with every setting uncommented: %v", envExample, err)
	}
}
