package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/spf13/cobra"

	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/validation"
)

func newSchemaCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "schema", Short: "Check, format, read and write schemas"}
	cmd.AddCommand(newSchemaCheckCmd(), newSchemaFmtCmd(), newSchemaReadCmd(), newSchemaWriteCmd())
	return cmd
}

// readSchemaFile returns the schema text of FILE: a .zed schema, or the
// `schema:` of a YAML validation file.
func readSchemaFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		return validation.ExtractSchema(path, data)
	}
	return string(data), nil
}

func newSchemaCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check FILE...",
		Short: "Check schemas (.zed, or the schema of a validation .yaml); exit 1 on any error",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			failed := false
			for _, path := range args {
				src, err := readSchemaFile(path)
				var s *schema.Schema
				if err == nil {
					s, err = schema.Compile(path, src)
				}
				if err != nil {
					failed = true
					fmt.Fprintln(cmd.ErrOrStderr(), err)
					continue
				}
				for _, w := range s.Warnings {
					fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", path)
			}
			if failed {
				return exitError{1}
			}
			return nil
		},
	}
}

func newSchemaFmtCmd() *cobra.Command {
	var write bool
	cmd := &cobra.Command{
		Use:   "fmt FILE",
		Short: "Print a schema in canonical form (-w rewrites a .zed file in place)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			src, err := readSchemaFile(path)
			if err != nil {
				return err
			}
			out, err := schema.Format(path, src)
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return exitError{1}
			}
			if write {
				if ext := strings.ToLower(filepath.Ext(path)); ext == ".yaml" || ext == ".yml" {
					return fmt.Errorf("-w rewrites .zed files only; %s is a validation file", path)
				}
				return os.WriteFile(path, []byte(out), 0o644)
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), out)
			return err
		},
	}
	cmd.Flags().BoolVarP(&write, "write", "w", false, "rewrite the file in place")
	return cmd
}

// newSchemaReadCmd and newSchemaWriteCmd are `schema read` and `schema
// write`; they are meant to be added to the schema command.
func newSchemaReadCmd() *cobra.Command {
	var c clientFlags
	cmd := &cobra.Command{Use: "read", Short: "Print the server's schema", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.connect(cmd, func(s *session) error {
				return call(s, func(ctx context.Context) (*v1.ReadSchemaResponse, error) {
					return v1.NewSchemaServiceClient(s.conn).ReadSchema(ctx, &v1.ReadSchemaRequest{})
				}, func(r *v1.ReadSchemaResponse) string { return strings.TrimRight(r.GetSchemaText(), "\n") })
			})
		}}
	c.add(cmd, false)
	return cmd
}

func newSchemaWriteCmd() *cobra.Command {
	var c clientFlags
	cmd := &cobra.Command{Use: "write FILE", Short: "Write a schema (.zed, or the schema of a validation .yaml; - for stdin)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			text, err := readSchemaArg(cmd, args[0])
			if err != nil {
				return err
			}
			return c.connect(cmd, func(s *session) error {
				return call(s, func(ctx context.Context) (*v1.WriteSchemaResponse, error) {
					return v1.NewSchemaServiceClient(s.conn).WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: text})
				}, func(r *v1.WriteSchemaResponse) string { return r.GetWrittenAt().GetToken() })
			})
		}}
	c.add(cmd, false)
	return cmd
}

// readSchemaArg reads the schema text of a file argument; "-" is stdin.
func readSchemaArg(cmd *cobra.Command, path string) (string, error) {
	if path != "-" {
		return readSchemaFile(path)
	}
	b, err := io.ReadAll(cmd.InOrStdin())
	return string(b), err
}
