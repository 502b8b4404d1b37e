package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ambit-authz/ambit/internal/endpoints"
	"github.com/ambit-authz/ambit/raft"
)

// `ambit cluster`: raft membership.

func newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Inspect and change raft cluster membership"}
	var c clientFlags
	status := &cobra.Command{Use: "status", Short: "List the members (voters and read replicas) with their applied revision and lag", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.onMember(cmd.Context(), func(cl *raft.Client, addr string) error {
				ps, err := cl.Replication(cmd.Context(), addr)
				if err != nil {
					return err
				}
				if c.asJSON {
					return json.NewEncoder(cmd.OutOrStdout()).Encode(ps)
				}
				for _, p := range ps {
					progress := fmt.Sprintf("applied=%d\tlag=%d", p.Applied, p.Lag)
					if p.Err != "" {
						progress = "applied=?\tlag=?\terror=" + p.Err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\traft=%s\tgrpc=%s\tvoter=%v\t%s\n", p.ID, p.Role, p.RaftAddr, p.GRPCAddr, p.Voter, progress)
				}
				return nil
			})
		}}
	c.add(status, false)
	cmd.AddCommand(status,
		memberCmd("remove NODE_ID", "Remove a member from the cluster", "removed", (*raft.Client).Remove),
		memberCmd("promote NODE_ID", "Make a read replica a voter (promote one that has caught up: see status)", "promoted", (*raft.Client).Promote),
		memberCmd("demote NODE_ID", "Make a voter a read replica (a leader hands over first; the only voter is refused)", "demoted", (*raft.Client).Demote))
	return cmd
}

// memberCmd is a cluster command acting on one member id through the
// cluster service (forwarded to the leader).
func memberCmd(use, short, done string, call func(*raft.Client, context.Context, string, string) error) *cobra.Command {
	var c clientFlags
	cmd := &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			err := c.onMember(cmd.Context(), func(cl *raft.Client, addr string) error { return call(cl, cmd.Context(), addr, args[0]) })
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), done, args[0])
			return err
		}}
	c.add(cmd, false)
	return cmd
}

// onMember runs fn against the endpoints of --endpoint in turn until one
// is reachable: a member that is down does not stop a cluster command
// given the others.
func (c *clientFlags) onMember(ctx context.Context, fn func(cl *raft.Client, addr string) error) error {
	cl := c.clusterClient()
	defer cl.Close()
	addrs := endpoints.Split(c.endpoint)
	if len(addrs) == 0 {
		return fmt.Errorf("--endpoint %q names no member", c.endpoint)
	}
	var err error
	for _, addr := range addrs {
		if err = fn(cl, addr); !errors.Is(err, raft.ErrNoLeader) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// clusterClient calls the cluster service with the token, over TLS with
// the system roots when --tls.
func (c *clientFlags) clusterClient() *raft.Client {
	if c.tls {
		return raft.NewTLSClient(c.token, &tls.Config{MinVersion: tls.VersionTLS12})
	}
	return raft.NewClient(c.token)
}
