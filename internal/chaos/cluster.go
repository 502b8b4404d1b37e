package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// features are the optional `ambit serve` flags the campaign uses when the
// binary has them (found in `serve --help`), so the same campaign runs
// against older and newer binaries.
type features struct {
	// secretFlag authenticates raft traffic between nodes (the netauth
	// work: --cluster-secret-file or --cluster-secret).
	secretFlag string
	// grpcAdvertiseFlag sets the gRPC address peers dial for cluster calls
	// (forwarding, read index, join). Without it, cluster gRPC traffic goes
	// straight to a node's listener and partitions cut raft traffic only.
	grpcAdvertiseFlag string
}

func detectFeatures(bin string) (features, error) {
	out, err := exec.Command(bin, "serve", "--help").CombinedOutput()
	if err != nil {
		return features{}, fmt.Errorf("%s serve --help: %v\n%s", bin, err, out)
	}
	has := func(flag string) bool {
		return strings.Contains(string(out), flag+" ") || strings.Contains(string(out), flag+"\n")
	}
	var f features
	// the raft transport's secret: a flag naming a file is preferred
	for _, name := range secretFlags(string(out)) {
		if f.secretFlag == "" || strings.HasSuffix(name, "-file") {
			f.secretFlag = name
		}
	}
	for _, name := range []string{"--grpc-advertise", "--grpc-advertise-addr", "--advertise-grpc-addr"} {
		if has(name) {
			f.grpcAdvertiseFlag = name
			break
		}
	}
	return f, nil
}

// secretFlags lists the flags of a help text whose name mentions a secret
// (--cluster-secret, --cluster-secret-file, --raft-secret...).
func secretFlags(help string) []string {
	var out []string
	for _, f := range strings.Fields(help) {
		f = strings.TrimRight(f, ".,;:)")
		if strings.HasPrefix(f, "--") && strings.Contains(f, "secret") && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// node is one ambit server process and what it needs to be restarted with
// the same command line.
type node struct {
	idx                        int
	id                         string
	dir                        string
	grpcAddr, httpAddr, raftAt string // where the process listens
	raftProxy, grpcProxy       *Proxy // what peers dial (grpcProxy nil without grpcAdvertiseFlag)
	logPath                    string
	replica                    bool // a read replica (--read-replica); faults never pick one

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{} // closed when the process has exited
	starts int
	paused bool
}

// cluster runs the nodes of one campaign.
type cluster struct {
	bin        string
	work       string
	key        string
	secret     string // the cluster secret, when the binary takes one
	secretFile string // holding secret
	feat       features
	net        *Net
	nodes      []*node // the voters, which the faults pick from
	replicas   []*node // read replicas: they serve the workload and are checked like voters
	clusterID  string
	logf       func(format string, args ...any)
	http       *http.Client
}

// serveArgs is the one place that builds a node's command line; a restart
// uses the same one.
func (c *cluster) serveArgs(n *node) []string {
	args := []string{"serve",
		"--node-id", n.id,
		"--data-dir", n.dir,
		"--grpc-addr", n.grpcAddr,
		"--http-addr", n.httpAddr,
		"--raft-addr", n.raftAt,
		"--raft-advertise", n.raftProxy.Addr(),
		"--preshared-key", c.key,
		"--log-level", "info",
	}
	if c.feat.grpcAdvertiseFlag != "" && n.grpcProxy != nil {
		args = append(args, c.feat.grpcAdvertiseFlag, n.grpcProxy.Addr())
	}
	switch {
	case c.feat.secretFlag == "":
	case strings.HasSuffix(c.feat.secretFlag, "-file"):
		args = append(args, c.feat.secretFlag, c.secretFile)
	default:
		args = append(args, c.feat.secretFlag, c.secret)
	}
	if n.idx == 0 {
		args = append(args, "--bootstrap")
	} else {
		args = append(args, "--join", c.nodes[0].grpcAddr, "--cluster-id", c.clusterID)
	}
	if n.replica {
		args = append(args, "--read-replica")
	}
	return args
}

// all is the voters and then the read replicas; a node's index in it is its
// idx (the workload's clients and the network use it).
func (c *cluster) all() []*node { return append(slices.Clone(c.nodes), c.replicas...) }

// freeAddr picks a free loopback port below the kernel's ephemeral range
// (32768 and up on Linux), so that no process asking the kernel for a port
// (another test binary's listener, any outgoing connection) can take it
// between this check and a node's start or restart with it.
func freeAddr() (string, error) {
	for range 500 {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+mrand.IntN(12000)))
		if err != nil {
			continue
		}
		addr := l.Addr().String()
		l.Close()
		return addr, nil
	}
	return "", errors.New("chaos: no free loopback port between 20000 and 31999")
}

// logTail returns the last lines of a node's log, for an error message.
func logTail(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

// newCluster prepares n voters and replicas read replicas under work
// (ports, proxies), starting none.
func newCluster(bin, work string, n, replicas int, logf func(string, ...any)) (*cluster, error) {
	feat, err := detectFeatures(bin)
	if err != nil {
		return nil, err
	}
	c := &cluster{bin: bin, work: work, key: "chaos-key", feat: feat, logf: logf,
		http: &http.Client{Timeout: time.Second}}
	c.net = NewNet(n+replicas, c.pids)
	if feat.secretFlag != "" {
		c.secretFile = filepath.Join(work, "cluster-secret")
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		c.secret = hex.EncodeToString(b[:])
		if err := os.WriteFile(c.secretFile, []byte(c.secret+"\n"), 0o600); err != nil {
			return nil, err
		}
	}
	for i := range n + replicas {
		nd := &node{idx: i, id: fmt.Sprintf("n%d", i+1), dir: filepath.Join(work, fmt.Sprintf("n%d", i+1)),
			logPath: filepath.Join(work, fmt.Sprintf("n%d.log", i+1)), replica: i >= n}
		for _, p := range []*string{&nd.grpcAddr, &nd.httpAddr, &nd.raftAt} {
			if *p, err = freeAddr(); err != nil {
				return nil, err
			}
		}
		if nd.replica {
			c.replicas = append(c.replicas, nd)
		} else {
			c.nodes = append(c.nodes, nd)
		}
	}
	// The proxies start once the node lists are complete: a proxy's first
	// connection reads them (pids).
	for i, nd := range c.all() {
		if nd.raftProxy, err = c.net.Listen(i, nd.raftAt); err != nil {
			return nil, err
		}
		if feat.grpcAdvertiseFlag != "" {
			if nd.grpcProxy, err = c.net.Listen(i, nd.grpcAddr); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// pids maps the running processes to their nodes.
func (c *cluster) pids() map[int]int {
	all := c.all()
	m := make(map[int]int, len(all))
	for _, n := range all {
		n.mu.Lock()
		if n.cmd != nil && n.cmd.Process != nil {
			m[n.cmd.Process.Pid] = n.idx
		}
		n.mu.Unlock()
	}
	return m
}

// start launches the node's process (its log appended to n.logPath).
func (c *cluster) start(n *node) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		select {
		case <-n.done:
		default:
			return fmt.Errorf("%s is running", n.id)
		}
	}
	f, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := c.serveArgs(n)
	n.starts++
	fmt.Fprintf(f, "=== chaos: start %d of %s at %s: %s %s\n", n.starts, n.id, time.Now().UTC().Format(time.RFC3339Nano), c.bin, strings.Join(args, " "))
	cmd := exec.Command(c.bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return err
	}
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(f, "=== chaos: %s exited at %s: %v\n", n.id, time.Now().UTC().Format(time.RFC3339Nano), err)
		f.Close()
		close(done)
	}()
	n.cmd, n.done, n.paused = cmd, done, false
	return nil
}

// running reports whether the node's process is alive (paused or not).
func (n *node) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

func (n *node) signal(sig syscall.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return fmt.Errorf("%s not started", n.id)
	}
	switch sig {
	case syscall.SIGSTOP:
		n.paused = true
	case syscall.SIGCONT:
		n.paused = false
	}
	return n.cmd.Process.Signal(sig)
}

// stop sends sig (SIGKILL or SIGTERM) and waits for the process to exit;
// after grace it kills it.
func (n *node) stop(sig syscall.Signal, grace time.Duration) error {
	if !n.running() {
		return nil
	}
	if err := n.signal(sig); err != nil {
		return err
	}
	n.mu.Lock()
	done, paused := n.done, n.paused
	n.mu.Unlock()
	if paused && sig != syscall.SIGKILL {
		_ = n.signal(syscall.SIGCONT)
	}
	select {
	case <-done:
		return nil
	case <-time.After(grace):
	}
	_ = n.signal(syscall.SIGKILL)
	<-done
	return fmt.Errorf("%s did not exit within %s of %s; killed", n.id, grace, sig)
}

// nodeStatus is a node's /readyz answer.
type nodeStatus struct {
	ready   bool
	role    string
	leader  string
	applied uint64
}

// readyz asks a node for its raft role, its leader and its applied revision
// (the zero nodeStatus when it does not answer ready).
func (c *cluster) readyz(ctx context.Context, n *node) nodeStatus {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.httpAddr+"/readyz", nil)
	if err != nil {
		return nodeStatus{}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nodeStatus{}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return nodeStatus{}
	}
	return parseReadyz(string(body))
}

// parseReadyz reads "ready: ROLE, leader ID, applied revision N".
func parseReadyz(s string) nodeStatus {
	s = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s), "ready:"))
	parts := strings.Split(s, ",")
	if len(parts) < 2 {
		return nodeStatus{}
	}
	st := nodeStatus{ready: true, role: strings.TrimSpace(parts[0])}
	st.leader = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(parts[1]), "leader"))
	if len(parts) > 2 {
		v := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(parts[2]), "applied revision"))
		st.applied, _ = strconv.ParseUint(v, 10, 64)
	}
	return st
}

// leader returns the voter that every voter names as leader and that says
// it leads, or -1 (also when a voter does not answer ready). Read replicas
// are not asked.
func (c *cluster) leader(ctx context.Context) int {
	lead := -1
	for _, n := range c.nodes {
		st := c.readyz(ctx, n)
		if !st.ready {
			return -1
		}
		if st.role == "leader" {
			if lead >= 0 {
				return -1
			}
			lead = n.idx
		}
	}
	if lead < 0 {
		return -1
	}
	for _, n := range c.nodes {
		if c.readyz(ctx, n).leader != c.nodes[lead].id {
			return -1
		}
	}
	return lead
}

// waitLeader polls until all voters agree on a leader.
func (c *cluster) waitLeader(ctx context.Context, timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if l := c.leader(ctx); l >= 0 {
			return l, nil
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("no leader that every node agrees on within %s", timeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// boot starts node 0 with --bootstrap, learns the cluster id it generated,
// then starts the others with --join.
func (c *cluster) boot(ctx context.Context, timeout time.Duration) error {
	if err := c.start(c.nodes[0]); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		data, err := os.ReadFile(filepath.Join(c.nodes[0].dir, "cluster-id"))
		if err == nil && c.readyz(ctx, c.nodes[0]).ready {
			c.clusterID = strings.TrimSpace(string(data))
			break
		}
		if time.Now().After(deadline) || !c.nodes[0].running() {
			return fmt.Errorf("n1 did not become ready (log %s); its last lines:\n%s", c.nodes[0].logPath, logTail(c.nodes[0].logPath, 15))
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, n := range c.nodes[1:] {
		if err := c.start(n); err != nil {
			return err
		}
	}
	if _, err := c.waitLeader(ctx, time.Until(deadline)); err != nil {
		return err
	}
	for _, n := range c.replicas {
		if err := c.start(n); err != nil {
			return err
		}
		for !c.readyz(ctx, n).ready {
			if time.Now().After(deadline) || !n.running() {
				return fmt.Errorf("read replica %s did not become ready (log %s); its last lines:\n%s", n.id, n.logPath, logTail(n.logPath, 15))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// shutdown stops every process (SIGCONT, then SIGTERM, SIGKILL after 10s)
// and closes the proxies.
func (c *cluster) shutdown() {
	for _, n := range c.all() {
		if n.running() {
			_ = n.signal(syscall.SIGCONT)
			_ = n.stop(syscall.SIGTERM, 10*time.Second)
		}
	}
	for _, n := range c.all() {
		if n.raftProxy != nil {
			_ = n.raftProxy.Close()
		}
		if n.grpcProxy != nil {
			_ = n.grpcProxy.Close()
		}
	}
}

// scanLogs returns the lines of every node's log that show a crash.
func (c *cluster) scanLogs() ([]string, error) {
	var bad []string
	var errs []error
	for _, n := range c.all() {
		data, err := os.ReadFile(n.logPath)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for i, line := range strings.Split(string(data), "\n") {
			if strings.Contains(line, "panic:") || strings.Contains(line, "fatal error:") || strings.Contains(line, "WARNING: DATA RACE") {
				bad = append(bad, fmt.Sprintf("%s:%d: %s", n.logPath, i+1, line))
			}
		}
	}
	return bad, errors.Join(errs...)
}
