package main

import (
	"fmt"

	"github.com/spf13/cobra"

	ambitv1 "github.com/ambit-authz/ambit/proto/ambit/v1"
)

// `ambit audit tail`: the audit log of the node asked (ambit.v1.AuditService;
// admin scope), one JSON line per change, resumable from a revision.

func newAuditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read the audit log of a node (needs an admin credential)"}
	var c clientFlags
	var after uint64
	var follow bool
	tail := &cobra.Command{Use: "tail [--after REVISION] [--follow]", Short: "Print the audit log's entries after a revision, as JSON lines; --follow waits for new ones", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.connect(cmd, func(s *session) error {
				stream, err := ambitv1.NewAuditServiceClient(s.conn).TailAudit(s.ctx, &ambitv1.TailAuditRequest{AfterRevision: after, Follow: follow})
				if err != nil {
					return err
				}
				return recvAll(stream.Recv, func(m *ambitv1.TailAuditResponse) error {
					_, err := fmt.Fprintln(s.out, m.GetJson())
					return err
				})
			})
		}}
	tail.Flags().Uint64Var(&after, "after", 0, "print entries after this revision (the last one you have, to resume)")
	tail.Flags().BoolVarP(&follow, "follow", "f", false, "keep waiting for new entries")
	c.add(tail, false)
	cmd.AddCommand(tail)
	return cmd
}
