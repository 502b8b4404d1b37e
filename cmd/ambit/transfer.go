package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/ambit-authz/ambit/internal/v1pb"
	"github.com/ambit-authz/ambit/tuple"
	"github.com/ambit-authz/ambit/validation"
	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
)

// `ambit import` and `ambit export`: relationships in bulk.

func newImportCmd() *cobra.Command {
	var c clientFlags
	cmd := &cobra.Command{Use: "import FILE", Short: "Bulk-load relationships: a validation .yaml (its relationships) or one relationship per line", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rels, err := readRelationshipsFile(args[0])
			if err != nil {
				return err
			}
			return c.connect(cmd, func(s *session) error {
				return importRelationships(s, rels, stderrProgress(s.errOut, "import", int64(len(rels))))
			})
		}}
	c.add(cmd, false)
	return cmd
}

// importRelationships streams rels to ImportBulkRelationships, 1000 to a
// message, reporting progress as they are sent.
func importRelationships(s *session, rels []tuple.Relationship, p *progress) error {
	stream, err := s.perms.ImportBulkRelationships(s.ctx)
	if err != nil {
		return err
	}
	for i := 0; i < len(rels); i += 1000 {
		msg := &v1.ImportBulkRelationshipsRequest{}
		for _, r := range rels[i:min(i+1000, len(rels))] {
			pb, err := v1pb.RelationshipToV1(r)
			if err != nil {
				return err
			}
			msg.Relationships = append(msg.Relationships, pb)
		}
		if err := stream.Send(msg); err != nil {
			break // the server's error comes with CloseAndRecv
		}
		p.add(len(msg.Relationships))
	}
	r, err := stream.CloseAndRecv()
	if err != nil {
		p.clear()
		return err
	}
	p.finish()
	return s.print(r, fmt.Sprintf("imported %d relationships", r.GetNumLoaded()))
}

func readRelationshipsFile(path string) ([]tuple.Relationship, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml") {
		docs, err := validation.Parse(path, data)
		if err != nil {
			return nil, err
		}
		var out []tuple.Relationship
		for _, d := range docs {
			for _, r := range d.Relationships {
				out = append(out, r.Relationship)
			}
		}
		return out, nil
	}
	var out []tuple.Relationship
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "//") || strings.HasPrefix(line, "#") {
			continue
		}
		r, err := tuple.Parse(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func newExportCmd() *cobra.Command {
	var c clientFlags
	cmd := &cobra.Command{Use: "export", Short: "Print every relationship, one per line (importable with `ambit import`)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.connect(cmd, func(s *session) error {
				p := stderrProgress(s.errOut, "export", 0)
				// Relationships printed to the same terminal would land on
				// the progress line.
				p.live = p.live && !writerIsTerminal(s.out)
				err := printStream(s, func(ctx context.Context) (grpc.ServerStreamingClient[v1.ExportBulkRelationshipsResponse], error) {
					return s.perms.ExportBulkRelationships(ctx, &v1.ExportBulkRelationshipsRequest{Consistency: s.cons})
				}, func(r *v1.ExportBulkRelationshipsResponse) ([]string, error) {
					lines := make([]string, len(r.GetRelationships()))
					for i, rel := range r.GetRelationships() {
						t, err := relText(rel)
						if err != nil {
							return nil, err
						}
						lines[i] = t
					}
					p.add(len(lines))
					return lines, nil
				})
				if err != nil {
					p.clear()
					return err
				}
				p.finish()
				return nil
			})
		}}
	c.add(cmd, true)
	return cmd
}
