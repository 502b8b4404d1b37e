package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/validation"
	"github.com/ambit-authz/ambit/validation/remote"
	"github.com/ambit-authz/ambit/validation/runner"
)

// validateSummary is the --json output.
type validateSummary struct {
	Files      int                  `json:"files"`
	Documents  int                  `json:"documents"`
	Assertions int                  `json:"assertions"`
	Oracle     int                  `json:"oracle_comparisons"`
	Failures   []validation.Failure `json:"failures"`
	Errors     []string             `json:"errors"`
	OK         bool                 `json:"ok"`
}

// runDoc runs one document of a validation file, in-process or remotely.
type runDoc func(ctx context.Context, f *validation.File) (*validation.Report, error)

// validateFlags are validate's flags.
type validateFlags struct {
	asJSON   bool
	oracle   bool
	backend  string
	endpoint string
	token    string
	insecure bool
}

func newValidateCmd() *cobra.Command {
	var v validateFlags
	cmd := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Run SpiceDB-format validation files, in-process or against a server; exit 1 on any failed assertion",
		Long: `validate loads each file's schema and relationships into a fresh embedded
store (badger, in a temporary directory), then checks every assertTrue,
assertFalse and assertCaveated and the validation: map. --oracle also
cross-checks Check against CheckBulk, LookupResources, LookupSubjects and
Expand for everything the file mentions.

With --endpoint ADDR the files run against a live server over the authzed v1
API instead (ambit, or another server of that API): for each document the
server is reset, its schema written and its relationships imported, then
the same checks run (the oracle without Expand), every read
at_least_as_fresh with the ZedToken of the last write. The connection uses TLS with the system roots unless
--insecure; --token (or AMBIT_TOKEN) is sent as a bearer token.

WARNING: with --endpoint, validate DELETES EVERY RELATIONSHIP on the server
and replaces its schema. Use a scratch server.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			run, done, err := v.runner(cmd)
			if err != nil {
				return err
			}
			defer done()
			return validateFiles(cmd.Context(), args, run, v.asJSON, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.BoolVar(&v.asJSON, "json", false, "print a machine-readable summary")
	f.BoolVar(&v.oracle, "oracle", false, "also cross-check the APIs against each other")
	f.StringVar(&v.backend, "backend", "badger", "where relationships are loaded in-process: badger (embedded store) or memory")
	f.StringVar(&v.endpoint, "endpoint", "", "run against the server at this gRPC address (DELETES ALL ITS RELATIONSHIPS)")
	f.StringVar(&v.token, "token", "", "with --endpoint: preshared key sent as a bearer token (AMBIT_TOKEN)")
	f.BoolVar(&v.insecure, "insecure", false, "with --endpoint: plaintext gRPC instead of TLS")
	return cmd
}

// runner returns how documents are run, and what to call when done.
func (v *validateFlags) runner(cmd *cobra.Command) (runDoc, func(), error) {
	if v.endpoint == "" {
		for _, name := range []string{"token", "insecure"} {
			if cmd.Flags().Changed(name) {
				return nil, nil, fmt.Errorf("--%s needs --endpoint", name)
			}
		}
		return v.localRunner()
	}
	if cmd.Flags().Changed("backend") {
		return nil, nil, fmt.Errorf("--backend chooses the in-process store; it cannot be combined with --endpoint")
	}
	if !cmd.Flags().Changed("token") {
		v.token = os.Getenv("AMBIT_TOKEN")
	}
	conn, err := dialEndpoint(v.endpoint, v.token, !v.insecure)
	if err != nil {
		return nil, nil, fmt.Errorf("--endpoint %s: %w", v.endpoint, err)
	}
	r := remote.New(remote.NewClient(conn), remote.Options{Oracle: v.oracle})
	run := func(ctx context.Context, f *validation.File) (*validation.Report, error) {
		rep, err := r.Run(ctx, f)
		if err != nil && !v.insecure && status.Code(err) == codes.Unavailable && strings.Contains(err.Error(), "handshake") {
			err = fmt.Errorf("%w (if the server speaks plaintext gRPC, add --insecure)", err)
		}
		return rep, err
	}
	return run, func() { conn.Close() }, nil
}

// localRunner runs documents in-process on the chosen backend.
func (v *validateFlags) localRunner() (runDoc, func(), error) {
	var b runner.Backend = runner.Memory{}
	switch v.backend {
	case "badger":
		bb, err := runner.NewBadger("")
		if err != nil {
			return nil, nil, err
		}
		b = bb
	case "memory":
	default:
		return nil, nil, fmt.Errorf("--backend must be badger or memory, not %q", v.backend)
	}
	eng, err := engine.New(engine.Config{})
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	run := func(ctx context.Context, f *validation.File) (*validation.Report, error) {
		return runner.Run(ctx, eng, b, f, runner.Options{Oracle: v.oracle})
	}
	return run, func() { eng.Close(); b.Close() }, nil
}

// validateFiles runs every document of every file and prints the failures
// and a summary; it returns exitError{1} if anything failed.
func validateFiles(ctx context.Context, paths []string, run runDoc, asJSON bool, out, errOut io.Writer) error {
	sum := validateSummary{Failures: []validation.Failure{}, Errors: []string{}}
	for _, path := range paths {
		sum.Files++
		data, err := os.ReadFile(path)
		if err != nil {
			sum.Errors = append(sum.Errors, err.Error())
			continue
		}
		docs, err := validation.Parse(path, data)
		if err != nil {
			sum.Errors = append(sum.Errors, err.Error())
			continue
		}
		for _, f := range docs {
			sum.Documents++
			res, err := run(ctx, f)
			if err != nil {
				sum.Errors = append(sum.Errors, err.Error())
				continue
			}
			sum.Assertions += res.Assertions
			sum.Oracle += res.Oracle
			sum.Failures = append(sum.Failures, res.Failures...)
		}
	}
	sum.OK = len(sum.Failures) == 0 && len(sum.Errors) == 0
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(sum); err != nil {
			return err
		}
	} else {
		for _, e := range sum.Errors {
			fmt.Fprintln(errOut, "error:", e)
		}
		for _, f := range sum.Failures {
			fmt.Fprintln(errOut, "FAIL", f)
		}
		status := "ok"
		if !sum.OK {
			status = "FAILED"
		}
		fmt.Fprintf(out, "%s: %d files, %d documents, %d assertions, %d oracle comparisons, %d failures, %d errors\n",
			status, sum.Files, sum.Documents, sum.Assertions, sum.Oracle, len(sum.Failures), len(sum.Errors))
	}
	if !sum.OK {
		return exitError{1}
	}
	return nil
}
