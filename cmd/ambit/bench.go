package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"time"

	"github.com/spf13/cobra"

	"github.com/ambit-authz/ambit/bench/harness"
	"github.com/ambit-authz/ambit/bench/workload"
)

// benchOptions are the flags shared by the bench subcommands.
type benchOptions struct {
	cpuprofile      string
	endpoint, token string
	insecure        bool
	vs, vsToken     string
	rounds          int

	workload, size string
	seed           uint64
	querySeed      uint64

	concurrency      int
	duration, warmup time.Duration
	bulk             int
	batch            int
	writeRate        float64
	nestWrites       float64
	lookupLimit      uint32
	consistency      string
	load             bool
	asJSON           bool
	authzen          string
}

func newBenchCmd() *cobra.Command {
	o := &benchOptions{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load and benchmark an authzed v1 endpoint (ambit or SpiceDB) with a generated workload",
		Long: `bench drives any server speaking the authzed v1 gRPC API with a generated
workload (` + fmt.Sprint(workload.Names()) + `; sizes small, medium, large):

  ambit bench load  --endpoint localhost:50051 --insecure --workload collab
  ambit bench check --endpoint localhost:50051 --insecure -c 16 -d 30s
  ambit bench mixed --endpoint A --vs B --insecure --rounds 4
  ambit bench gen   --workload deep --size small > deep.yaml   (for ambit validate)

Runs report requests/s, latency quantiles (p50 to p99.9 and max, of successful
requests), errors and the fraction of checks allowed; checks whose answer the
workload knows by construction are verified. A run with errors or wrong
answers is flagged in every output and exits with status 1.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.endpoint, "endpoint", "localhost:50051", "gRPC endpoint (host:port), or several comma-separated, balanced round robin")
	pf.StringVar(&o.token, "token", "", "bearer token (SpiceDB's preshared key)")
	pf.BoolVar(&o.insecure, "insecure", false, "plaintext instead of TLS")
	pf.StringVar(&o.vs, "vs", "", "second endpoint: run the same workload against both, alternating rounds, and print the ratio")
	pf.StringVar(&o.vsToken, "vs-token", "", "bearer token for --vs (default: --token)")
	pf.IntVar(&o.rounds, "rounds", 4, "alternating rounds with --vs (each lasts duration/rounds)")
	pf.StringVar(&o.workload, "workload", "collab", fmt.Sprintf("workload: one of %v", workload.Names()))
	pf.StringVar(&o.size, "size", "small", "workload size: small, medium or large")
	pf.Uint64Var(&o.seed, "seed", 1, "workload seed (the data)")
	pf.Uint64Var(&o.querySeed, "query-seed", 0, "seed of the queries; 0 picks a new one per run (printed), so a second run does not replay the first one's queries into a warm cache")
	pf.IntVarP(&o.concurrency, "concurrency", "c", 8, "concurrent requests")
	pf.DurationVarP(&o.duration, "duration", "d", 10*time.Second, "measured duration")
	pf.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured warm-up before measuring")
	pf.IntVar(&o.bulk, "bulk", 10, "checks per CheckBulkPermissions request")
	pf.IntVar(&o.batch, "batch", 1, "distinct relationships TOUCHed per WriteRelationships request (write)")
	pf.Float64Var(&o.writeRate, "write-rate", 0, "also send the workload's writes at this many per second beside the run (one relationship each), reported apart")
	pf.Float64Var(&o.nestWrites, "nest-writes", 0, "fraction of the --write-rate writes that add or remove a nesting edge (a new group in a workload group; deep workload)")
	pf.Uint32Var(&o.lookupLimit, "lookup-limit", 0, "results per lookup (0: all)")
	pf.StringVar(&o.consistency, "consistency", "minimize_latency", "minimize_latency or full")
	pf.BoolVar(&o.load, "load", false, "load the workload (schema and relationships) before running")
	pf.BoolVar(&o.asJSON, "json", false, "print JSON instead of a table")
	pf.StringVar(&o.authzen, "authzen", "", "AuthZEN base URL of --endpoint's server for the authzen-* runs (e.g. http://127.0.0.1:8080)")
	pf.StringVar(&o.cpuprofile, "cpuprofile", "", "write the harness's own CPU profile to this file (to tell client cost from server cost)")

	cmd.AddCommand(&cobra.Command{
		Use:   "load",
		Short: "Write the workload's schema and bulk-import its relationships, timed",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return o.runLoad(cmd) },
	})
	for _, op := range harness.Ops {
		cmd.AddCommand(&cobra.Command{
			Use:   string(op),
			Short: opHelp[op],
			Args:  cobra.NoArgs,
			RunE:  func(cmd *cobra.Command, _ []string) error { return o.runOp(cmd, op) },
		})
	}
	cmd.AddCommand(newBenchGenCmd(o))
	return cmd
}

var opHelp = map[harness.Op]string{
	harness.OpCheck:                 "CheckPermission at concurrency -c for -d",
	harness.OpCheckBulk:             "CheckBulkPermissions of --bulk items at concurrency -c for -d",
	harness.OpLookupResources:       "LookupResources at concurrency -c for -d",
	harness.OpLookupSubjects:        "LookupSubjects at concurrency -c for -d",
	harness.OpWrite:                 "WriteRelationships (--batch TOUCHes each) at concurrency -c for -d",
	harness.OpMixed:                 "95% checks, 4% lookups, 1% writes at concurrency -c for -d",
	harness.OpAuthZENEvaluation:     "AuthZEN evaluation (HTTP, --authzen URL) at concurrency -c for -d",
	harness.OpAuthZENEvaluations:    "AuthZEN evaluations of --bulk items (HTTP, --authzen URL) at concurrency -c for -d",
	harness.OpAuthZENSearchResource: "AuthZEN resource search, every page (HTTP, --authzen URL) at concurrency -c for -d",
}

func newBenchGenCmd(o *benchOptions) *cobra.Command {
	var out string
	var assertions int
	cmd := &cobra.Command{
		Use:   "gen",
		Short: "Write the workload as a SpiceDB validation file (schema, relationships, assertions)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w, err := o.workloadOf()
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				return w.WriteValidationFile(cmd.OutOrStdout(), assertions)
			}
			f, err := os.Create(out)
			if err != nil {
				return err
			}
			if err := w.WriteValidationFile(f, assertions); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "output file (default standard output)")
	cmd.Flags().IntVar(&assertions, "assertions", 20, "assertTrue/assertFalse/assertCaveated entries of each kind")
	return cmd
}

func (o *benchOptions) workloadOf() (*workload.Workload, error) {
	size, err := workload.ParseSize(o.size)
	if err != nil {
		return nil, err
	}
	return workload.New(o.workload, size, o.seed)
}

// clients dials --endpoint and, with --vs, the second endpoint.
func (o *benchOptions) clients() ([]*harness.Client, error) {
	a, err := harness.Dial(o.endpoint, harness.DialOptions{Token: o.token, Insecure: o.insecure})
	if err != nil {
		return nil, err
	}
	if o.authzen != "" {
		a.AuthZEN = harness.NewAuthZENClient(o.authzen, o.token, max(o.concurrency, 2))
	}
	out := []*harness.Client{a}
	if o.vs != "" {
		tok := o.vsToken
		if tok == "" {
			tok = o.token
		}
		b, err := harness.Dial(o.vs, harness.DialOptions{Token: tok, Insecure: o.insecure})
		if err != nil {
			a.Close()
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// terminal returns w if it is a terminal (for the progress line), else nil.
func terminal(w io.Writer) io.Writer {
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return f
}

func (o *benchOptions) loadAll(ctx context.Context, cmd *cobra.Command, w *workload.Workload, cs []*harness.Client) ([]*harness.LoadResult, error) {
	var out []*harness.LoadResult
	for _, c := range cs {
		r, err := harness.Load(ctx, c, w, harness.LoadOptions{Progress: terminal(cmd.ErrOrStderr())})
		if err != nil {
			return nil, err
		}
		out = append(out, r)
		if !o.asJSON {
			if err := harness.WriteLoad(cmd.OutOrStdout(), r); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func (o *benchOptions) runLoad(cmd *cobra.Command) error {
	w, err := o.workloadOf()
	if err != nil {
		return err
	}
	cs, err := o.clients()
	if err != nil {
		return err
	}
	defer closeAll(cs)
	res, err := o.loadAll(cmd.Context(), cmd, w, cs)
	if err != nil {
		return err
	}
	if o.asJSON {
		return writeJSON(cmd.OutOrStdout(), res)
	}
	return nil
}

func (o *benchOptions) runOp(cmd *cobra.Command, op harness.Op) error {
	w, err := o.workloadOf()
	if err != nil {
		return err
	}
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	cs, err := o.clients()
	if err != nil {
		return err
	}
	defer closeAll(cs)
	ctx := cmd.Context()
	if o.load {
		if _, err := o.loadAll(ctx, cmd, w, cs); err != nil {
			return err
		}
	}
	qs := o.querySeed
	if qs == 0 {
		qs = uint64(time.Now().UnixNano())
		fmt.Fprintf(cmd.ErrOrStderr(), "query seed %d (--query-seed to replay)\n", qs)
	}
	cfg := harness.Config{Op: op, Concurrency: o.concurrency, Duration: o.duration, Warmup: o.warmup, Seed: qs,
		BulkSize: o.bulk, WriteBatch: o.batch, WriteRate: o.writeRate, NestFraction: o.nestWrites, LookupLimit: o.lookupLimit, Consistency: harness.Consistency(o.consistency),
		Progress: terminal(cmd.ErrOrStderr())}
	out := cmd.OutOrStdout()
	ok := false
	if len(cs) == 2 {
		cmp, err := harness.Compare(ctx, cs[0], cs[1], w, cfg, o.rounds)
		if err != nil {
			return err
		}
		ok = cmp.OK
		if o.asJSON {
			err = writeJSON(out, cmp)
		} else {
			err = harness.WriteComparison(out, cmp)
		}
		if err != nil {
			return err
		}
	} else {
		r, err := harness.Run(ctx, cs[0], w, cfg)
		if err != nil {
			return err
		}
		ok = r.OK
		if o.asJSON {
			err = writeJSON(out, r)
		} else {
			err = harness.WriteText(out, r)
		}
		if err != nil {
			return err
		}
	}
	if !ok {
		return exitError{1}
	}
	return nil
}

func closeAll(cs []*harness.Client) {
	for _, c := range cs {
		c.Close()
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
