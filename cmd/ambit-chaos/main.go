// Command ambit-chaos runs the fault campaign of internal/chaos against a
// built ambit binary: a 3-node cluster on loopback, concurrent writers and
// readers, SIGKILL/SIGSTOP/restart and network faults, then a comparison of
// every node with the history. It exits 1 on any violation.
//
//	ambit-chaos --bin bin/ambit --rounds 100 [--seed N] [--kinds kill-leader,one-way]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ambit-authz/ambit/internal/chaos"
)

// errViolations makes main exit 1 after the report is printed.
var errViolations = errors.New("violations found")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, errViolations) {
			fmt.Fprintln(os.Stderr, "ambit-chaos:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ambit-chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg chaos.Config
	var kinds string
	fs.StringVar(&cfg.Bin, "bin", "bin/ambit", "the ambit binary to run")
	fs.StringVar(&cfg.Work, "work", "", "directory for the data dirs and node logs (default: a new temporary one, kept)")
	fs.IntVar(&cfg.Rounds, "rounds", 20, "faults to inject")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "seed of the campaign's choices (0: from the clock; printed)")
	fs.StringVar(&kinds, "kinds", strings.Join(chaos.Kinds, ","), "fault kinds to cycle through, comma-separated")
	fs.DurationVar(&cfg.Hold, "hold", 2*time.Second, "how long a fault lasts at least (up to twice this)")
	fs.IntVar(&cfg.Writers, "writers", 4, "concurrent writers")
	fs.IntVar(&cfg.Readers, "readers", 4, "concurrent readers")
	fs.IntVar(&cfg.Replicas, "replicas", 0, "read replicas next to the 3 voters (--read-replica): the workload writes through and reads from them too, faults never pick them")
	fs.DurationVar(&cfg.RPCTimeout, "rpc-timeout", 3*time.Second, "deadline of every write and read")
	fs.DurationVar(&cfg.Recover, "recover", 60*time.Second, "how long the cluster may take to recover after a fault")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, k := range strings.Split(kinds, ",") {
		if k = strings.TrimSpace(k); k == "" {
			continue
		}
		found := false
		for _, known := range chaos.Kinds {
			found = found || k == known
		}
		if !found {
			return fmt.Errorf("--kinds: unknown fault kind %q (known: %s)", k, strings.Join(chaos.Kinds, ", "))
		}
		cfg.Kinds = append(cfg.Kinds, k)
	}
	cfg.Log = stderr
	rep, err := chaos.Run(ctx, cfg)
	if err != nil {
		return err
	}
	rep.Print(stdout)
	if !rep.OK() {
		return errViolations
	}
	return nil
}
