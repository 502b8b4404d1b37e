package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	ambitv1 "github.com/ambit-authz/ambit/proto/ambit/v1"
)

// `ambit token`: managed API tokens (ambit.v1.TokenService; admin scope).
//
//	ambit token create --name ci --scope check,read --expires 90d
//	ambit token list
//	ambit token revoke ID

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Create, list and revoke managed API tokens (needs an admin credential)"}
	var cc clientFlags
	var name, scopes, expires string
	create := &cobra.Command{Use: "create --name NAME --scope check,read [--expires 90d]", Short: "Issue a token and print its secret (shown this once)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return errors.New("--name is required: who holds the token (e.g. ci, billing-app, alice)")
			}
			req := &ambitv1.CreateTokenRequest{Name: name}
			for _, s := range strings.Split(scopes, ",") {
				if s = strings.TrimSpace(s); s != "" {
					req.Scopes = append(req.Scopes, s)
				}
			}
			if expires != "" {
				d, err := parseLifetime(expires)
				if err != nil {
					return fmt.Errorf("--expires: %w", err)
				}
				req.OptionalExpiresAt = timestamppb.New(time.Now().Add(d))
			}
			return cc.connect(cmd, func(s *session) error {
				resp, err := ambitv1.NewTokenServiceClient(s.conn).CreateToken(s.ctx, req)
				if err != nil {
					return err
				}
				if s.asJSON {
					return s.print(resp, "")
				}
				// The secret alone on stdout (TOKEN=$(ambit token create ...)),
				// what it is on stderr.
				info := resp.GetInfo()
				fmt.Fprintf(s.errOut, "token %s %q, scopes %s, expires %s; the secret below is shown once and cannot be recovered\n",
					info.GetId(), info.GetName(), strings.Join(info.GetScopes(), ","), tsText(info.GetExpiresAt(), "never"))
				_, err = fmt.Fprintln(s.out, resp.GetToken())
				return err
			})
		}}
	create.Flags().StringVar(&name, "name", "", "who holds the token: shown in listings, metrics and the audit log")
	create.Flags().StringVar(&scopes, "scope", "", "comma-separated scopes: check, read, write, schema, scim, admin")
	create.Flags().StringVar(&expires, "expires", "", "lifetime, e.g. 90d, 12h or 30m (default: never expires)")
	cc.add(create, false)

	var lc clientFlags
	list := &cobra.Command{Use: "list", Short: "List tokens: id, name, scopes, created, expires, last used (on the node asked), revoked", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return lc.connect(cmd, func(s *session) error {
				resp, err := ambitv1.NewTokenServiceClient(s.conn).ListTokens(s.ctx, &ambitv1.ListTokensRequest{})
				if err != nil {
					return err
				}
				if s.asJSON {
					for _, t := range resp.GetTokens() {
						if err := s.print(t, ""); err != nil {
							return err
						}
					}
					return nil
				}
				return tokenTable(s.out, resp.GetTokens())
			})
		}}
	lc.add(list, false)

	var rc clientFlags
	revoke := &cobra.Command{Use: "revoke ID", Short: "Revoke a token; every node refuses it within a second", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return rc.connect(cmd, func(s *session) error {
				resp, err := ambitv1.NewTokenServiceClient(s.conn).RevokeToken(s.ctx, &ambitv1.RevokeTokenRequest{Id: args[0]})
				if err != nil {
					return err
				}
				info := resp.GetInfo()
				return s.print(resp, fmt.Sprintf("revoked %s %q at %s", info.GetId(), info.GetName(), tsText(info.GetRevokedAt(), "-")))
			})
		}}
	rc.add(revoke, false)
	cmd.AddCommand(create, list, revoke)
	return cmd
}

// parseLifetime reads a token lifetime: a Go duration (12h, 30m) or a
// number of days (90d).
func parseLifetime(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > 100*365 {
			return 0, fmt.Errorf("%q: want a whole number of days from 1 to 36500, e.g. 90d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q: want a positive lifetime such as 90d, 12h or 30m", s)
	}
	return d, nil
}

func tsText(ts *timestamppb.Timestamp, none string) string {
	if ts == nil {
		return none
	}
	return ts.AsTime().UTC().Format(time.RFC3339)
}

func tokenTable(w io.Writer, tokens []*ambitv1.TokenInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSCOPES\tCREATED\tEXPIRES\tLAST USED\tREVOKED")
	for _, t := range tokens {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.GetId(), t.GetName(), strings.Join(t.GetScopes(), ","), tsText(t.GetCreatedAt(), "-"),
			tsText(t.GetExpiresAt(), "never"), tsText(t.GetLastUsedAt(), "-"), tsText(t.GetRevokedAt(), "-"))
	}
	return tw.Flush()
}
