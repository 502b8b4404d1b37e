package main

import (
	"context"
	"fmt"
	"strings"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
)

// `ambit watch`: the server's change feed.

func newWatchCmd() *cobra.Command {
	var c clientFlags
	var from string
	var types []string
	cmd := &cobra.Command{Use: "watch", Short: "Stream relationship changes (Ctrl-C to stop)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.connect(cmd, func(s *session) error {
				req := &v1.WatchRequest{OptionalObjectTypes: types}
				if from != "" {
					req.OptionalStartCursor = &v1.ZedToken{Token: from}
				}
				err := printStream(s, func(ctx context.Context) (grpc.ServerStreamingClient[v1.WatchResponse], error) {
					return v1.NewWatchServiceClient(s.conn).Watch(ctx, req)
				}, func(r *v1.WatchResponse) ([]string, error) {
					var lines []string
					for _, u := range r.GetUpdates() {
						op := strings.TrimPrefix(u.GetOperation().String(), "OPERATION_")
						t, err := relText(u.GetRelationship())
						if err != nil {
							return nil, err
						}
						lines = append(lines, fmt.Sprintf("%s %s %s", r.GetChangesThrough().GetToken(), op, t))
					}
					return lines, nil
				})
				if s.ctx.Err() != nil {
					return nil
				}
				return err
			})
		}}
	cmd.Flags().StringVar(&from, "from", "", "ZedToken to resume after")
	cmd.Flags().StringArrayVar(&types, "type", nil, "only changes to resources of this type (repeatable)")
	c.add(cmd, false)
	return cmd
}
