package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
)

// The fault kinds. A campaign goes through Config.Kinds in passes, each pass
// in a new random order.
const (
	KillLeader    = "kill-leader"    // SIGKILL the leader, restart it with the same command line
	KillFollower  = "kill-follower"  // SIGKILL a follower, restart it
	KillTwo       = "kill-two"       // SIGKILL two nodes (quorum lost), restart both
	KillAll       = "kill-all"       // SIGKILL all three, restart them
	PauseLeader   = "pause-leader"   // SIGSTOP the leader, SIGCONT it
	PauseFollower = "pause-follower" // SIGSTOP a follower, SIGCONT it
	Restart       = "restart"        // SIGTERM a node and restart it at once
	PartitionNode = "partition-node" // cut a follower off from both peers
	IsolateLeader = "isolate-leader" // cut the leader off from both followers; clients still reach it
	OneWay        = "one-way"        // drop the bytes from the leader to a follower, or back
	Latency       = "latency"        // delay every link between the voters
)

// Kinds lists every fault kind.
var Kinds = []string{KillLeader, KillFollower, KillTwo, KillAll, PauseLeader, PauseFollower, Restart, PartitionNode, IsolateLeader, OneWay, Latency}

// leaderFaults are the kinds whose time to the next acknowledged write is a
// failover time.
var leaderFaults = map[string]bool{KillLeader: true, PauseLeader: true, IsolateLeader: true}

// Config configures a campaign.
type Config struct {
	Bin     string   // the ambit binary
	Work    string   // data dirs and logs (a new temporary dir if empty)
	Rounds  int      // faults to inject
	Kinds   []string // fault kinds to cycle through (default Kinds)
	Seed    uint64   // the campaign's random choices (0: from the clock)
	Hold    time.Duration
	Writers int
	Readers int
	// Replicas read replicas join the 3 voters: the workload writes through
	// and reads from them like any node (so every at_least_as_fresh and
	// fully_consistent read they answer is checked), the final export
	// compares them too, and no fault picks one.
	Replicas int
	// RPCTimeout bounds every write and read (default 3s).
	RPCTimeout time.Duration
	// Recover bounds the wait for a healthy cluster after a fault (default 60s).
	Recover time.Duration
	Log     io.Writer // progress (default io.Discard)
}

func (c *Config) defaults() {
	if len(c.Kinds) == 0 {
		c.Kinds = Kinds
	}
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
	if c.Hold <= 0 {
		c.Hold = 2 * time.Second
	}
	if c.Writers <= 0 {
		c.Writers = 4
	}
	if c.Readers <= 0 {
		c.Readers = 4
	}
	if c.RPCTimeout <= 0 {
		c.RPCTimeout = 3 * time.Second
	}
	if c.Recover <= 0 {
		c.Recover = 60 * time.Second
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
}

// Report is what a campaign found.
type Report struct {
	Seed   uint64
	Work   string
	Rounds int
	Faults map[string]int
	Counts Counts
	Reads  int // reads answered and checked
	// OpsChecked is how many acknowledged writes and deletes a reader read
	// back on another node; OpsUnchecked were given up on (reads failed
	// five times, or the readers fell behind) or still waiting at the end.
	OpsChecked, OpsUnchecked int
	ReadErrors               int
	// ReadErrKinds and WriteErrKinds count failed reads and writes by mode
	// or outcome, code and message.
	ReadErrKinds, WriteErrKinds map[string]int
	Lost                        int
	Resurrected                 int
	Phantom                     int
	RYW                         int
	Divergent                   int
	Crashes                     []string // log lines with panic: / fatal error: / WARNING: DATA RACE
	// FirstAck is, per fault kind, the time from injecting it (for kill-two
	// and kill-all: from restarting the nodes) to the first write acknowledged by a node
	// the fault left in the majority.
	FirstAck map[string][]time.Duration
	// Stalls are rounds in which no write was acknowledged within the probe
	// limit though a majority was up (liveness, not safety).
	Stalls            []string
	MinorityFullReads int  // fully_consistent reads of a write newer than the cut that a cut-off node answered
	ClusterGRPC       bool // cluster gRPC traffic went through the proxies too
	SecretFlag        string
	Unidentified      int64
	Violations        []Violation
	Elapsed           time.Duration
	Replicas          int // read replicas next to the 3 voters
	ReplicaReads      int // reads the replicas answered (each checked like any other)
}

// OK reports a campaign without violations.
func (r *Report) OK() bool { return len(r.Violations) == 0 }

// Failover is the first-ack times of the leader faults.
func (r *Report) Failover() []time.Duration {
	var ds []time.Duration
	for k, v := range r.FirstAck {
		if leaderFaults[k] {
			ds = append(ds, v...)
		}
	}
	slices.Sort(ds)
	return ds
}

type campaign struct {
	cfg   Config
	r     *rand.Rand
	c     *cluster
	h     *History
	w     *workload
	rep   *Report
	logf  func(string, ...any)
	probe time.Duration
}

// Run starts a 3-node cluster from cfg.Bin, runs the workload and
// cfg.Rounds faults, heals everything, and checks the history against every
// node. The error is for a campaign that could not run; what it found is in
// the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.defaults()
	start := time.Now()
	if cfg.Work == "" {
		dir, err := os.MkdirTemp("", "ambit-chaos-")
		if err != nil {
			return nil, err
		}
		cfg.Work = dir
	}
	if err := os.MkdirAll(cfg.Work, 0o750); err != nil {
		return nil, err
	}
	// The nodes' data dirs live in Work: a campaign over a previous one's
	// cluster would start from its state (and fail to form a new one).
	if entries, err := os.ReadDir(cfg.Work); err != nil {
		return nil, err
	} else if len(entries) > 0 {
		return nil, fmt.Errorf("chaos: work dir %s is not empty; give a new one (or none, for a temporary dir)", cfg.Work)
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(cfg.Log, "[%s] %s\n", time.Now().UTC().Format("15:04:05.000"), fmt.Sprintf(format, args...))
	}
	cl, err := newCluster(cfg.Bin, cfg.Work, 3, cfg.Replicas, logf)
	if err != nil {
		return nil, err
	}
	defer cl.shutdown()
	rep := &Report{Replicas: cfg.Replicas, Seed: cfg.Seed, Work: cfg.Work, Faults: map[string]int{}, FirstAck: map[string][]time.Duration{},
		ClusterGRPC: cl.feat.grpcAdvertiseFlag != "", SecretFlag: cl.feat.secretFlag}
	logf("seed %d, work dir %s, cluster gRPC proxied: %v, secret flag: %q", cfg.Seed, cfg.Work, rep.ClusterGRPC, cl.feat.secretFlag)
	if err := cl.boot(ctx, cfg.Recover); err != nil {
		return nil, err
	}
	clients, err := dialAll(cl)
	if err != nil {
		return nil, err
	}
	defer clients.close()
	if err := writeSchema(ctx, clients, cl); err != nil {
		return nil, err
	}
	logf("schema written")
	h := newHistory()
	k := &campaign{cfg: cfg, r: rand.New(rand.NewPCG(cfg.Seed, 17)), c: cl, h: h, rep: rep, logf: logf,
		w: &workload{h: h, cl: clients, n: len(cl.all()), voters: len(cl.nodes), timeout: cfg.RPCTimeout}, probe: 30 * time.Second}
	stop := k.w.run(ctx, cfg.Writers, cfg.Readers, cfg.Seed)
	// each pass through the kinds goes in a new random order
	var order []string
	for i := 1; i <= cfg.Rounds && ctx.Err() == nil; i++ {
		if len(order) == 0 {
			order = slices.Clone(cfg.Kinds)
			k.r.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		}
		kind := order[0]
		order = order[1:]
		if err := k.round(ctx, i, kind); err != nil {
			h.violate("no-recovery", "round %d (%s): %v", i, kind, err)
			logf("round %d: %v; stopping the campaign", i, err)
			break
		}
		rep.Rounds = i
	}
	stop()
	k.finish(ctx)
	rep.Elapsed = time.Since(start)
	return rep, nil
}

func writeSchema(ctx context.Context, cl *clients, c *cluster) error {
	lead, err := c.waitLeader(ctx, 30*time.Second)
	if err != nil {
		return err
	}
	var last error
	for range 50 {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, last = cl.schema[lead].WriteSchema(cctx, &v1.WriteSchemaRequest{Schema: Schema})
		cancel()
		if last == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("writing the schema: %w", last)
}

func (k *campaign) others(i int) []int {
	var o []int
	for j := range k.c.nodes {
		if j != i {
			o = append(o, j)
		}
	}
	return o
}

// firstAck probes writes through nodes from `from` on, in the background.
func (k *campaign) firstAck(ctx context.Context, round int, kind string, from time.Time, nodes []int) <-chan time.Duration {
	out := make(chan time.Duration, 1)
	go func() {
		pctx, cancel := context.WithTimeout(ctx, k.probe)
		defer cancel()
		at := k.w.probe(pctx, fmt.Sprintf("probe%d", round), nodes)
		if at.IsZero() {
			out <- -1
			return
		}
		out <- at.Sub(from)
	}()
	return out
}

// hold waits d and for the probe; it records the probe's figure.
func (k *campaign) hold(ctx context.Context, round int, kind string, d time.Duration, probe <-chan time.Duration) {
	deadline := time.After(d)
	var got bool
	for !got || deadline != nil {
		select {
		case <-ctx.Done():
			return
		case <-deadline:
			deadline = nil
		case fa := <-probe:
			got = true
			probe = nil
			if fa < 0 {
				k.rep.Stalls = append(k.rep.Stalls, fmt.Sprintf("round %d (%s): no write acknowledged within %s", round, kind, k.probe))
				k.logf("round %d: STALL: no write acknowledged within %s", round, k.probe)
			} else {
				k.rep.FirstAck[kind] = append(k.rep.FirstAck[kind], fa)
				k.logf("round %d: first write acknowledged %s after the fault", round, fa.Round(time.Millisecond))
			}
		}
	}
}

// minorityReads asks node, cut off since `cut`, for fully_consistent reads
// of the newest acknowledged write until ctx ends. Only writes invoked after
// the cut count: the node cannot have applied them (raft traffic reaches it
// only through the proxies), so every such read it answers is stale, whether
// or not cluster gRPC bypasses the proxies. When ctx ends, it sends on the
// returned channel how many it answered.
func (k *campaign) minorityReads(ctx context.Context, node int, cut time.Time) <-chan int {
	out := make(chan int, 1)
	go func() {
		served := 0
		full := &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}
		for ctx.Err() == nil {
			ref, ok := k.h.newestAck()
			if !ok || !ref.at.start.After(cut) {
				sleep(ctx, 20*time.Millisecond)
				continue
			}
			start := time.Now()
			if k.w.read(ctx, ref, node, "fully_consistent on a cut-off node", full) {
				served++
				k.logf("n%d answered a fully_consistent read of %s while cut off (invoked %s after the cut, took %s)",
					node+1, ref.k.rel(), start.Sub(cut).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
			}
			sleep(ctx, 100*time.Millisecond)
		}
		out <- served
	}()
	return out
}

// round injects one fault, heals it and waits for a healthy cluster.
func (k *campaign) round(ctx context.Context, round int, kind string) error {
	k.h.setRound(round)
	c := k.c
	lead, err := c.waitLeader(ctx, k.cfg.Recover)
	if err != nil {
		return fmt.Errorf("before the fault: %w", err)
	}
	k.rep.Faults[kind]++
	hold := k.cfg.Hold + time.Duration(k.r.Int64N(int64(k.cfg.Hold)))
	others := k.others(lead)
	follower := others[k.r.IntN(len(others))]
	k.logf("round %d: %s (leader %s, hold %s)", round, kind, c.nodes[lead].id, hold)
	t0 := time.Now()
	var restart []int
	var errs []error
	switch kind {
	case KillLeader, KillFollower:
		victim := lead
		if kind == KillFollower {
			victim = follower
		}
		errs = append(errs, c.nodes[victim].stop(syscall.SIGKILL, 10*time.Second))
		k.hold(ctx, round, kind, hold, k.firstAck(ctx, round, kind, t0, k.others(victim)))
		restart = []int{victim}
	case KillTwo:
		victims := []int{lead, follower}
		if k.r.IntN(2) == 0 {
			victims = others
		}
		for _, v := range victims {
			errs = append(errs, c.nodes[v].stop(syscall.SIGKILL, 10*time.Second))
		}
		from := time.Now()
		sleep(ctx, hold)
		k.h.addWindow(window{node: -1, from: from, to: time.Now(), why: "two of three nodes were down"})
		for _, v := range victims {
			errs = append(errs, c.start(c.nodes[v]))
		}
		k.hold(ctx, round, kind, 0, k.firstAck(ctx, round, kind, time.Now(), []int{0, 1, 2}))
	case KillAll:
		// every node at once: what was acknowledged must come back from the
		// raft logs and stores alone
		for _, n := range c.nodes {
			errs = append(errs, n.stop(syscall.SIGKILL, 10*time.Second))
		}
		sleep(ctx, hold/2)
		for _, n := range c.nodes {
			errs = append(errs, c.start(n))
		}
		k.hold(ctx, round, kind, 0, k.firstAck(ctx, round, kind, time.Now(), []int{0, 1, 2}))
	case PauseLeader, PauseFollower:
		victim := lead
		if kind == PauseFollower {
			victim = follower
		}
		errs = append(errs, c.nodes[victim].signal(syscall.SIGSTOP))
		k.hold(ctx, round, kind, hold, k.firstAck(ctx, round, kind, t0, k.others(victim)))
		errs = append(errs, c.nodes[victim].signal(syscall.SIGCONT))
	case Restart:
		victim := k.r.IntN(len(c.nodes))
		errs = append(errs, c.nodes[victim].stop(syscall.SIGTERM, 30*time.Second))
		errs = append(errs, c.start(c.nodes[victim]))
		k.hold(ctx, round, kind, 0, k.firstAck(ctx, round, kind, t0, k.others(victim)))
	case PartitionNode, IsolateLeader:
		victim := follower
		if kind == IsolateLeader {
			victim = lead
		}
		c.net.Isolate(victim)
		rctx, rcancel := context.WithCancel(ctx)
		served := k.minorityReads(rctx, victim, t0)
		k.hold(ctx, round, kind, hold, k.firstAck(ctx, round, kind, t0, k.others(victim)))
		// Writes to the cut-off node are acknowledged only through a quorum
		// it cannot reach, unless cluster gRPC bypasses the proxies (then
		// it may forward them to the new leader).
		if k.rep.ClusterGRPC {
			k.h.addWindow(window{node: victim, from: t0, to: time.Now(), why: fmt.Sprintf("n%d was cut off (%s)", victim+1, kind)})
		}
		rcancel()
		n := <-served
		k.rep.MinorityFullReads += n
		if n > 0 {
			k.h.violate("minority-read", "n%d answered %d fully_consistent reads while cut off from both peers (%s)", victim+1, n, kind)
		}
		c.net.Heal()
	case OneWay:
		if k.r.IntN(2) == 0 {
			c.net.Drop(lead, follower)
			k.logf("round %d: dropping n%d -> n%d", round, lead+1, follower+1)
		} else {
			c.net.Drop(follower, lead)
			k.logf("round %d: dropping n%d -> n%d", round, follower+1, lead+1)
		}
		k.hold(ctx, round, kind, hold, k.firstAck(ctx, round, kind, t0, []int{0, 1, 2}))
		c.net.Heal()
	case Latency:
		d := time.Duration(50+k.r.IntN(200)) * time.Millisecond
		for i := range c.nodes {
			for j := range c.nodes {
				if i != j {
					c.net.Delay(i, j, d)
				}
			}
		}
		k.logf("round %d: %s on every link", round, d)
		k.hold(ctx, round, kind, hold, k.firstAck(ctx, round, kind, t0, []int{0, 1, 2}))
		c.net.Heal()
	default:
		return fmt.Errorf("unknown fault kind %q", kind)
	}
	for _, v := range restart {
		errs = append(errs, c.start(c.nodes[v]))
	}
	if err := errors.Join(errs...); err != nil {
		k.logf("round %d: %v", round, err)
	}
	return k.recover(ctx)
}

// recover heals the network, resumes and restarts every node and waits for
// a leader all agree on.
func (k *campaign) recover(ctx context.Context) error {
	c := k.c
	c.net.Heal()
	for _, n := range c.nodes {
		if n.running() {
			_ = n.signal(syscall.SIGCONT)
		} else if err := c.start(n); err != nil {
			return err
		}
	}
	_, err := c.waitLeader(ctx, k.cfg.Recover)
	return err
}

// finish heals the cluster and compares every node with the history.
func (k *campaign) finish(ctx context.Context) {
	rep, h, c := k.rep, k.h, k.c
	h.setRound(0)
	if err := k.recover(ctx); err != nil {
		h.violate("no-recovery", "after the last round: %v", err)
	}
	// Exports are compared only at one revision: wait until every node has
	// applied the same index and it stays put (writes cancelled when the
	// workload stopped may still commit), and export again if it moved.
	var sets []map[string]bool
	for try := 0; try < 3; try++ {
		before, err := k.quiesce(ctx)
		if err != nil {
			h.violate("no-recovery", "before the final export: %v", err)
		}
		sets = k.exportAll(ctx)
		if after, _ := k.quiesce(ctx); after == before {
			break
		}
	}
	all := c.all()
	for i, n := range all {
		if sets[i] == nil {
			continue
		}
		l, r, p := h.checkFinal(n.id, sets[i])
		rep.Lost = max(rep.Lost, l)
		rep.Resurrected = max(rep.Resurrected, r)
		rep.Phantom = max(rep.Phantom, p)
	}
	for i := 1; i < len(sets); i++ {
		if sets[0] == nil || sets[i] == nil {
			continue
		}
		if d := diff(sets[0], sets[i]); len(d) > 0 {
			rep.Divergent += len(d)
			h.violate("divergence", "%s and %s differ in %d relationships, e.g. %s", all[0].id, all[i].id, len(d), strings.Join(d[:min(5, len(d))], ", "))
		}
	}
	h.checkWindows()
	bad, err := c.scanLogs()
	if err != nil {
		h.violate("logs", "%v", err)
	}
	for _, line := range bad {
		h.violate("crash", "%s", line)
	}
	rep.Crashes = bad
	rep.Counts = h.counts()
	h.mu.Lock()
	rep.Reads, rep.ReadErrors = h.readsChecked, h.readErrs
	rep.OpsChecked, rep.OpsUnchecked = h.checked, h.unchecked+len(h.pending)
	rep.ReadErrKinds, rep.WriteErrKinds = maps.Clone(h.readErrKinds), maps.Clone(h.writeErrKinds)
	rep.Violations = append(rep.Violations, h.viol...)
	h.mu.Unlock()
	for _, v := range rep.Violations {
		if v.Kind == "read-your-writes" {
			rep.RYW++
		}
	}
	rep.Unidentified = c.net.Unidentified()
	rep.ReplicaReads = int(k.w.replicaReads.Load())
}

// quiesce waits until every node reports the same applied revision for a
// second and returns it.
func (k *campaign) quiesce(ctx context.Context) (uint64, error) {
	deadline := time.Now().Add(k.cfg.Recover)
	var last uint64
	var since time.Time
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var revs []uint64
		for _, n := range k.c.all() {
			revs = append(revs, k.c.readyz(ctx, n).applied)
		}
		same := revs[0] != 0
		for _, r := range revs {
			same = same && r == revs[0]
		}
		switch {
		case !same:
			since = time.Time{}
		case revs[0] != last || since.IsZero():
			last, since = revs[0], time.Now()
		case time.Since(since) >= time.Second:
			return last, nil
		}
		sleep(ctx, 100*time.Millisecond)
	}
	return last, fmt.Errorf("the nodes' applied revisions did not settle within %s", k.cfg.Recover)
}

// exportAll reads every node's relationships with fully_consistent (nil for
// a node that could not be read, recorded as a violation).
func (k *campaign) exportAll(ctx context.Context) []map[string]bool {
	all := k.c.all()
	sets := make([]map[string]bool, len(all))
	for i, n := range all {
		var err error
		for try := 0; try < 20; try++ {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			sets[i], err = export(cctx, k.w.cl.perms[i])
			cancel()
			if err == nil {
				break
			}
			sleep(ctx, 500*time.Millisecond)
		}
		if err != nil {
			k.h.violate("unreadable", "fully_consistent export of %s: %v", n.id, err)
		}
	}
	return sets
}

func diff(a, b map[string]bool) []string {
	var d []string
	for r := range a {
		if !b[r] {
			d = append(d, "-"+r)
		}
	}
	for r := range b {
		if !a[r] {
			d = append(d, "+"+r)
		}
	}
	sort.Strings(d)
	return d
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// Print writes the report's figures and violations.
func (r *Report) Print(w io.Writer) {
	ms := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	fmt.Fprintf(w, "ambit chaos: %d rounds in %s, seed %d, work dir %s\n", r.Rounds, r.Elapsed.Round(time.Second), r.Seed, r.Work)
	fmt.Fprintf(w, "cluster gRPC through the proxies: %v; raft secret flag: %q; read replicas: %d (%d reads answered)\n", r.ClusterGRPC, r.SecretFlag, r.Replicas, r.ReplicaReads)
	kinds := make([]string, 0, len(r.Faults))
	for kind := range r.Faults {
		kinds = append(kinds, kind)
	}
	sort.Strings(kinds)
	fmt.Fprintf(w, "faults:")
	for _, kind := range kinds {
		fmt.Fprintf(w, " %s=%d", kind, r.Faults[kind])
	}
	fmt.Fprintln(w)
	c := r.Counts
	fmt.Fprintf(w, "writers: keys %d: touches acknowledged %d, unknown %d, refused/not proposed %d; deletes acknowledged %d, unknown %d\n",
		c.Keys, c.TouchAcked, c.TouchUnknown, c.TouchNotProposed, c.DeleteAcked, c.DeleteUnknown)
	fmt.Fprintf(w, "writers' attempts by outcome: acked=%d unknown=%d not-proposed=%d refused=%d\n",
		c.Attempts["acked"], c.Attempts["unknown"], c.Attempts["not-proposed"], c.Attempts["refused"])
	fmt.Fprintf(w, "failover probes: acked=%d unknown=%d not-proposed=%d refused=%d\n",
		c.Probes["acked"], c.Probes["unknown"], c.Probes["not-proposed"], c.Probes["refused"])
	fmt.Fprintf(w, "acknowledged operations read back on another node: %d of %d (%d not: reads failed five times or still queued; the final export checks every one)\n",
		r.OpsChecked, c.Attempts["acked"]+c.Probes["acked"], r.OpsUnchecked)
	fmt.Fprintf(w, "reads checked %d (errors %d); fully_consistent reads answered by a cut-off node %d\n", r.Reads, r.ReadErrors, r.MinorityFullReads)
	printTop(w, "failed writes", r.WriteErrKinds)
	printTop(w, "failed reads", r.ReadErrKinds)
	fo := r.Failover()
	fmt.Fprintf(w, "failover (leader faults, fault to first acknowledged write): n=%d p50=%s p99=%s max=%s\n",
		len(fo), ms(quantile(fo, .5)), ms(quantile(fo, .99)), ms(quantile(fo, 1)))
	for _, kind := range kinds {
		if ds := r.FirstAck[kind]; len(ds) > 0 {
			fmt.Fprintf(w, "  first ack after %-15s n=%d p50=%s max=%s\n", kind, len(ds), ms(quantile(ds, .5)), ms(quantile(ds, 1)))
		}
	}
	fmt.Fprintf(w, "stalls (no write acknowledged within the probe limit): %d\n", len(r.Stalls))
	for _, s := range r.Stalls {
		fmt.Fprintf(w, "  %s\n", s)
	}
	if r.Unidentified > 0 {
		fmt.Fprintf(w, "proxy connections whose dialer was not identified: %d\n", r.Unidentified)
	}
	fmt.Fprintf(w, "lost %d, resurrected %d, phantom %d, read-your-writes violations %d, divergent relationships %d, crashes %d\n",
		r.Lost, r.Resurrected, r.Phantom, r.RYW, r.Divergent, len(r.Crashes))
	byKind := map[string]int{}
	for _, v := range r.Violations {
		byKind[v.Kind]++
	}
	fmt.Fprintf(w, "violations: %d\n", len(r.Violations))
	// the first five and the last five of each kind
	seen := map[string]int{}
	for _, v := range r.Violations {
		seen[v.Kind]++
		i, n := seen[v.Kind], byKind[v.Kind]
		switch {
		case i <= 5 || i > n-5:
			fmt.Fprintf(w, "  [%s] round %d: %s\n", v.Kind, v.Round, v.Detail)
		case i == 6:
			fmt.Fprintf(w, "  [%s] ... %d more\n", v.Kind, n-10)
		}
	}
	fmt.Fprintf(w, "node logs: %s\n", filepath.Join(r.Work, "n*.log"))
}

func printTop(w io.Writer, what string, m map[string]int) {
	keys := slices.Collect(maps.Keys(m))
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	fmt.Fprintf(w, "%s by kind:\n", what)
	for i, key := range keys {
		if i == 8 {
			fmt.Fprintf(w, "  ... %d more kinds\n", len(keys)-8)
			break
		}
		fmt.Fprintf(w, "  %6d  %s\n", m[key], key)
	}
}
