// Command ambit is ambit's single binary: `ambit serve` runs the
// authorization server on an embedded store; every other subcommand is the
// CLI (schema, validate, ...).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal starts a graceful shutdown; stop restores the
	// default action, so a second one ends the process at once.
	context.AfterFunc(ctx, stop)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var ex exitError
		if asExit(err, &ex) {
			os.Exit(ex.code)
		}
		var ce codedError
		if errors.As(err, &ce) {
			fmt.Fprintln(os.Stderr, "ambit:", err)
			os.Exit(ce.code)
		}
		fmt.Fprintln(os.Stderr, "ambit:", err)
		os.Exit(1)
	}
}

// run builds the command tree and executes args. It is what tests call.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "ambit",
		Short:         "ambit: a Zanzibar-style authorization server (SpiceDB-compatible)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	// Every flag not given on the command line is read from AMBIT_<NAME>
	// (dashes as underscores), for every command alike.
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error { return flagsFromEnv(cmd.Flags()) }
	// Every command, one file (or group of files) each.
	root.AddCommand(
		newServeCmd(),           // serve.go
		newSchemaCmd(),          // schema.go
		newValidateCmd(),        // validate.go
		newRelCmd(),             // rel.go
		newCheckCmd(),           // check.go
		newExpandCmd(),          // check.go
		newLookupResourcesCmd(), // lookup.go
		newLookupSubjectsCmd(),  // lookup.go
		newImportCmd(),          // transfer.go
		newExportCmd(),          // transfer.go
		newWatchCmd(),           // watch.go
		newClusterCmd(),         // cluster.go
		newAccessCmd(),          // access.go
		newWhyCmd(),             // access.go
		newTokenCmd(),           // token.go
		newAuditCmd(),           // audit.go
		newBenchCmd(),           // bench.go
		newVersionCmd(),         // main.go
	)
	return root
}

// exitError carries an exit code for failures already reported to the user
// (a failed validation, an invalid schema).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// codedError is an error main prints and exits with code for (serve's exit
// codes; it may be joined with other errors).
type codedError struct {
	code int
	err  error
}

func (e codedError) Error() string { return e.err.Error() }
func (e codedError) Unwrap() error { return e.err }

func asExit(err error, target *exitError) bool {
	e, ok := err.(exitError)
	if ok {
		*target = e
	}
	return ok
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "ambit", version)
			return err
		},
	}
}
