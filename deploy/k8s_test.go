// Package deploy holds the container image build (../Dockerfile) and the
// Kubernetes manifests (k8s/). No cluster runs in tests, so this test
// decodes every manifest strictly into the typed objects of k8s.io/api
// (an unknown or misspelled field fails) and checks what ambit needs of
// them. Those dependencies live only in this test package: the ambit
// binary does not link them.
package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// manifests are the decoded objects of deploy/k8s by kind.
type manifests struct {
	statefulSets []*appsv1.StatefulSet
	deployments  []*appsv1.Deployment
	services     []*corev1.Service
	pdbs         []*policyv1.PodDisruptionBudget
}

// decodeStrict decodes one YAML document into out, failing on any field
// the type does not have.
func decodeStrict(doc []byte, out any) error {
	return yaml.UnmarshalStrict(doc, out)
}

func loadManifests(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("k8s", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/k8s (%v)", err)
	}
	var m manifests
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			where := fmt.Sprintf("%s document %d", f, i+1)
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			var obj any
			switch tm.APIVersion + " " + tm.Kind {
			case "apps/v1 StatefulSet":
				o := new(appsv1.StatefulSet)
				m.statefulSets, obj = append(m.statefulSets, o), o
			case "apps/v1 Deployment":
				o := new(appsv1.Deployment)
				m.deployments, obj = append(m.deployments, o), o
			case "v1 Service":
				o := new(corev1.Service)
				m.services, obj = append(m.services, o), o
			case "policy/v1 PodDisruptionBudget":
				o := new(policyv1.PodDisruptionBudget)
				m.pdbs, obj = append(m.pdbs, o), o
			default:
				t.Fatalf("%s: unexpected kind %q %q (add it to this test)", where, tm.APIVersion, tm.Kind)
			}
			if err := decodeStrict([]byte(doc), obj); err != nil {
				t.Fatalf("%s (%s): %v", where, tm.Kind, err)
			}
		}
	}
	return m
}

func stripComments(doc string) string {
	var out []string
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// The strict decoder is strict: a misspelled field fails.
func TestStrictDecodingRefusesUnknownFields(t *testing.T) {
	for _, doc := range []string{
		"apiVersion: apps/v1\nkind: StatefulSet\nspec:\n  replica: 3\n",
		"apiVersion: v1\nkind: Service\nspec:\n  ports:\n    - name: grpc\n      prot: 50051\n",
		"apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: a\n          readinesProbe: {}\n",
	} {
		var tm metav1.TypeMeta
		_ = yaml.Unmarshal([]byte(doc), &tm)
		var obj any = new(appsv1.StatefulSet)
		switch tm.Kind {
		case "Service":
			obj = new(corev1.Service)
		case "Deployment":
			obj = new(appsv1.Deployment)
		}
		if err := decodeStrict([]byte(doc), obj); err == nil {
			t.Errorf("decoded a manifest with a misspelled field:\n%s", doc)
		}
	}
}

// serveFlags are the flags `ambit serve` has, from its help.
func serveFlags(t *testing.T) map[string]bool {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ambit")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/ambit").CombinedOutput(); err != nil {
		t.Fatalf("building ambit: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "serve", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("ambit serve --help: %v\n%s", err, out)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`--([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if !flags["data-dir"] || !flags["join"] {
		t.Fatalf("no flags found in `ambit serve --help`:\n%s", out)
	}
	return flags
}

// args parses a container's arguments as `serve --flag=value...` into
// flag -> values.
func args(t *testing.T, c corev1.Container, flags map[string]bool) map[string][]string {
	t.Helper()
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Fatalf("container %s: args %q do not start with serve", c.Name, c.Args)
	}
	out := map[string][]string{}
	for _, a := range c.Args[1:] {
		name, val, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") || !flags[name] {
			t.Errorf("container %s: %q is not a flag of `ambit serve`", c.Name, a)
		}
		out[name] = append(out[name], val)
	}
	for _, e := range c.Env {
		if name, ok := strings.CutPrefix(e.Name, "AMBIT_"); ok {
			flag := strings.ReplaceAll(strings.ToLower(name), "_", "-")
			if !flags[flag] {
				t.Errorf("container %s: env %s names no flag of `ambit serve`", c.Name, e.Name)
			}
			out[flag] = append(out[flag], "$env")
		}
	}
	return out
}

func port(t *testing.T, addr string) int32 {
	t.Helper()
	i := strings.LastIndex(addr, ":")
	p, err := strconv.Atoi(addr[i+1:])
	if i < 0 || err != nil {
		t.Fatalf("address %q has no port", addr)
	}
	return int32(p)
}

// checkPod checks what every ambit pod needs: its flags exist, the ports
// it listens on are the ones declared, probes on /healthz and /readyz, a
// non-root security context matching the image's user, the secrets, and
// the data dir on the data volume.
func checkPod(t *testing.T, what string, spec corev1.PodSpec, flags map[string]bool) map[string][]string {
	t.Helper()
	if len(spec.Containers) != 1 {
		t.Fatalf("%s: %d containers, want 1", what, len(spec.Containers))
	}
	c := spec.Containers[0]
	a := args(t, c, flags)
	named := map[string]int32{}
	for _, p := range c.Ports {
		named[p.Name] = p.ContainerPort
	}
	for flag, name := range map[string]string{"grpc-addr": "grpc", "http-addr": "http", "raft-addr": "raft"} {
		if len(a[flag]) != 1 || port(t, a[flag][0]) != named[name] || strings.HasPrefix(a[flag][0], "127.") {
			t.Errorf("%s: --%s %q does not listen on the container port %q (%d) on every interface", what, flag, a[flag], name, named[name])
		}
	}
	for _, probe := range []struct {
		p    *corev1.Probe
		path string
	}{{c.LivenessProbe, "/healthz"}, {c.ReadinessProbe, "/readyz"}, {c.StartupProbe, "/healthz"}} {
		if probe.p == nil || probe.p.HTTPGet == nil || probe.p.HTTPGet.Path != probe.path {
			t.Errorf("%s: want an HTTP probe on %s, got %+v", what, probe.path, probe.p)
			continue
		}
		if pt := probe.p.HTTPGet.Port; pt.StrVal != "http" && pt.IntVal != named["http"] {
			t.Errorf("%s: probe %s on port %v, not the http port", what, probe.path, pt.String())
		}
	}
	psc, csc := spec.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("%s: the pod must run as a non-root user: %+v", what, psc)
	} else if want := imageUser(t); *psc.RunAsUser != want {
		t.Errorf("%s: runAsUser %d, but the image's user is %d", what, *psc.RunAsUser, want)
	}
	if csc == nil || csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation ||
		csc.Capabilities == nil || !slices.Contains(csc.Capabilities.Drop, "ALL") {
		t.Errorf("%s: the container must drop every capability and privilege escalation: %+v", what, csc)
	}
	if len(a["preshared-key"]) == 0 || len(a["cluster-secret"])+len(a["cluster-secret-file"]) == 0 {
		t.Errorf("%s: ambit listening on every interface needs a preshared key and a cluster secret", what)
	}
	if len(a["data-dir"]) != 1 {
		t.Fatalf("%s: no --data-dir", what)
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		mounted = mounted || (m.MountPath == a["data-dir"][0] && m.Name == "data")
	}
	if !mounted {
		t.Errorf("%s: --data-dir %s is not the mount of the data volume", what, a["data-dir"][0])
	}
	if len(a["node-id"]) != 1 || a["node-id"][0] != "$(POD_NAME)" {
		t.Errorf("%s: --node-id %q, want the pod name", what, a["node-id"])
	}
	return a
}

// imageUser is the numeric USER of the Dockerfile's final stage.
func imageUser(t *testing.T) int64 {
	t.Helper()
	data, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	stages := bytes.Count(data, []byte("\nFROM "))
	if stages < 1 {
		t.Fatal("Dockerfile: not multi-stage")
	}
	final := data[bytes.LastIndex(data, []byte("\nFROM ")):]
	m := regexp.MustCompile(`(?m)^USER (\d+)`).FindSubmatch(final)
	if m == nil {
		t.Fatal("Dockerfile: the final stage sets no numeric USER")
	}
	uid, _ := strconv.ParseInt(string(m[1]), 10, 64)
	if uid == 0 {
		t.Fatal("Dockerfile: the final stage runs as root")
	}
	if !bytes.Contains(data, []byte("CGO_ENABLED=0")) {
		t.Error("Dockerfile: the binary is not built static (CGO_ENABLED=0)")
	}
	return uid
}

func TestManifests(t *testing.T) {
	m := loadManifests(t)
	flags := serveFlags(t)
	if len(m.statefulSets) != 1 || len(m.deployments) != 1 {
		t.Fatalf("want one StatefulSet of voters and one Deployment of replicas, got %d and %d", len(m.statefulSets), len(m.deployments))
	}
	services := map[string]*corev1.Service{}
	for _, s := range m.services {
		services[s.Name] = s
	}

	// Voters: 3, stable identities through a headless service that
	// publishes addresses before readiness, a volume each, started in
	// parallel (a voter is ready only with a quorum).
	ss := m.statefulSets[0]
	if ss.Spec.Replicas == nil || *ss.Spec.Replicas != 3 {
		t.Errorf("StatefulSet %s: replicas %v, want 3 voters", ss.Name, ss.Spec.Replicas)
	}
	if ss.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("StatefulSet %s: podManagementPolicy %q: voters wait for a quorum to be ready, so they must start in parallel", ss.Name, ss.Spec.PodManagementPolicy)
	}
	hs := services[ss.Spec.ServiceName]
	if hs == nil || hs.Spec.ClusterIP != corev1.ClusterIPNone || !hs.Spec.PublishNotReadyAddresses {
		t.Errorf("StatefulSet %s: serviceName %q is not a headless service publishing not-ready addresses", ss.Name, ss.Spec.ServiceName)
	}
	if len(ss.Spec.VolumeClaimTemplates) != 1 || ss.Spec.VolumeClaimTemplates[0].Name != "data" {
		t.Errorf("StatefulSet %s: want one volume claim template named data", ss.Name)
	}
	va := checkPod(t, "voters", ss.Spec.Template.Spec, flags)
	stable := "$(POD_NAME)." + ss.Spec.ServiceName + "."
	for _, f := range []string{"grpc-advertise", "raft-advertise"} {
		if len(va[f]) != 1 || !strings.HasPrefix(va[f][0], stable) {
			t.Errorf("voters: --%s %q is not the pod's stable name %s...", f, va[f], stable)
		}
	}
	// The first --join is the first pod's own advertised address, so it
	// forms the cluster (selfJoin in cmd/ambit) and the others join it.
	first := strings.Replace(va["grpc-advertise"][0], "$(POD_NAME)", ss.Name+"-0", 1)
	if len(va["join"]) == 0 || va["join"][0] != first {
		t.Errorf("voters: first --join %q, want %s (pod 0's advertised address)", va["join"], first)
	}
	if va["read-replica"] != nil {
		t.Error("voters: --read-replica on a voter")
	}

	// Replicas: join the voters as read replicas.
	d := m.deployments[0]
	ra := checkPod(t, "replicas", d.Spec.Template.Spec, flags)
	if ra["read-replica"] == nil || len(ra["join"]) == 0 {
		t.Errorf("replicas: want --read-replica and --join, got %v", ra)
	}
	for _, j := range ra["join"] {
		if !strings.HasPrefix(j, ss.Name+"-") || !strings.Contains(j, "."+ss.Spec.ServiceName+".") {
			t.Errorf("replicas: --join %q is not a voter's stable address", j)
		}
	}

	// Selectors select what they mean to.
	voterLabels := ss.Spec.Template.Labels
	replicaLabels := d.Spec.Template.Labels
	matches := func(sel, labels map[string]string) bool {
		for k, v := range sel {
			if labels[k] != v {
				return false
			}
		}
		return len(sel) > 0
	}
	if !matches(ss.Spec.Selector.MatchLabels, voterLabels) || matches(ss.Spec.Selector.MatchLabels, replicaLabels) {
		t.Error("the StatefulSet's selector must select its voters and not the replicas")
	}
	if !matches(d.Spec.Selector.MatchLabels, replicaLabels) || matches(d.Spec.Selector.MatchLabels, voterLabels) {
		t.Error("the Deployment's selector must select its replicas and not the voters")
	}
	for name, s := range services {
		for _, p := range s.Spec.Ports {
			if p.TargetPort.StrVal == "" {
				t.Errorf("service %s: port %s targets a number, not a named container port", name, p.Name)
			}
		}
	}
	if c := services["ambit"]; c == nil || !matches(c.Spec.Selector, voterLabels) || !matches(c.Spec.Selector, replicaLabels) {
		t.Error("service ambit must select voters and replicas (clients read from both)")
	}
	for _, p := range m.pdbs {
		if p.Spec.Selector == nil || !matches(p.Spec.Selector.MatchLabels, voterLabels) || p.Spec.MaxUnavailable == nil || p.Spec.MaxUnavailable.IntValue() != 1 {
			t.Errorf("PodDisruptionBudget %s: want at most one voter down", p.Name)
		}
	}
}
