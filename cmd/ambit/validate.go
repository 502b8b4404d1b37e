package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/validation"
	"github.com/ambit-authz/ambit/validation/runner"
)

// validateSummary is the --json output.
type validateSummary struct {
	Files      int              `json:"files"`
	Documents  int              `json:"documents"`
	Assertions int              `json:"assertions"`
	Oracle     int              `json:"oracle_comparisons"`
	Failures   []runner.Failure `json:"failures"`
	Errors     []string         `json:"errors"`
	OK         bool             `json:"ok"`
}

func newValidateCmd() *cobra.Command {
	var (
		asJSON  bool
		oracle  bool
		backend string
	)
	cmd := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Run SpiceDB-format validation files in-process; exit 1 on any failed assertion",
		Long: `validate loads each file's schema and relationships into a fresh embedded
store (badger, in a temporary directory), then checks every assertTrue,
assertFalse and assertCaveated and the validation: map. --oracle also
cross-checks Check against CheckBulk, LookupResources, LookupSubjects and
Expand for everything the file mentions.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			eng, err := engine.New(engine.Config{})
			if err != nil {
				return err
			}
			defer eng.Close()
			var b runner.Backend = runner.Memory{}
			switch backend {
			case "badger":
				bb, err := runner.NewBadger("")
				if err != nil {
					return err
				}
				defer bb.Close()
				b = bb
			case "memory":
			default:
				return fmt.Errorf("--backend must be badger or memory, not %q", backend)
			}
			sum := validateSummary{Failures: []runner.Failure{}, Errors: []string{}}
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			for _, path := range args {
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
					rep, err := runner.Run(cmd.Context(), eng, b, f, runner.Options{Oracle: oracle})
					if err != nil {
						sum.Errors = append(sum.Errors, err.Error())
						continue
					}
					sum.Assertions += rep.Assertions
					sum.Oracle += rep.Oracle
					sum.Failures = append(sum.Failures, rep.Failures...)
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
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a machine-readable summary")
	cmd.Flags().BoolVar(&oracle, "oracle", false, "also cross-check the APIs against each other")
	cmd.Flags().StringVar(&backend, "backend", "badger", "where relationships are loaded: badger (embedded store) or memory")
	return cmd
}
