package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"

	"github.com/ambit-authz/ambit/raft"
	"github.com/spf13/cobra"
)

// `ambit cluster`: raft membership.

func newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Inspect and change raft cluster membership"}
	var c clientFlags
	status := &cobra.Command{Use: "status", Short: "List the members as the endpoint sees them", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl := c.clusterClient()
			defer cl.Close()
			ms, err := cl.Status(cmd.Context(), c.endpoint)
			if err != nil {
				return err
			}
			if c.asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				return enc.Encode(ms)
			}
			for _, m := range ms {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\traft=%s\tgrpc=%s\tvoter=%v\n", m.ID, m.Role, m.RaftAddr, m.GRPCAddr, m.Voter)
			}
			return nil
		}}
	c.add(status, false)
	var rc clientFlags
	remove := &cobra.Command{Use: "remove NODE_ID", Short: "Remove a member from the cluster", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl := rc.clusterClient()
			defer cl.Close()
			if err := cl.Remove(cmd.Context(), rc.endpoint, args[0]); err != nil {
				return err
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "removed", args[0])
			return err
		}}
	rc.add(remove, false)
	cmd.AddCommand(status, remove)
	return cmd
}

// clusterClient calls the cluster service of --endpoint with the token,
// over TLS with the system roots when --tls.
func (c *clientFlags) clusterClient() *raft.Client {
	if c.tls {
		return raft.NewTLSClient(c.token, &tls.Config{MinVersion: tls.VersionTLS12})
	}
	return raft.NewClient(c.token)
}
