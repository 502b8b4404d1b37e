package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/ambit-authz/ambit/api"
	"github.com/ambit-authz/ambit/api/scim"
)

// scimConfig is the SCIM provisioning endpoints' part of `ambit serve`.
type scimConfig struct {
	org     string
	mapping string
	keys    []string
	maxBody int64
	timeout time.Duration
	members int
	bulk    int
}

func addSCIMFlags(f *pflag.FlagSet, c *scimConfig) {
	f.StringVar(&c.org, "scim-org", "", "serve SCIM 2.0 provisioning under /scim/v2 on --http-addr, mapping users and groups into this organization (the default mapping fits schema/examples/collab.zed)")
	f.StringVar(&c.mapping, "scim-mapping", "", "YAML file of the relationships SCIM users and groups become (README \"SCIM provisioning\"); enables SCIM; --scim-org overrides its organization")
	f.StringArrayVar(&c.keys, "scim-key", nil, "bearer key that may call the SCIM endpoints and nothing else (repeatable); preshared keys and tokens with the scim scope work too")
	f.Int64Var(&c.maxBody, "scim-max-body", api.DefaultSCIMMaxBody, "largest SCIM request body in bytes")
	f.DurationVar(&c.timeout, "scim-timeout", api.DefaultSCIMTimeout, "budget of each SCIM request")
	f.IntVar(&c.bulk, "scim-max-bulk-operations", scim.DefaultMaxBulkOperations, "most operations of one SCIM bulk request (its size is bounded by --scim-max-body)")
	f.IntVar(&c.members, "scim-max-members", scim.DefaultMaxMembers, "most group members one SCIM request may list (a POST's or PUT's members, a PATCH's member values together)")
}

// check refuses bad SCIM flags before anything is opened.
func (c *scimConfig) check() error {
	for i, k := range c.keys {
		if strings.TrimSpace(k) == "" {
			return fmt.Errorf("--scim-key: key %d of %d is empty (check AMBIT_SCIM_KEY for a stray comma)", i+1, len(c.keys))
		}
	}
	if c.maxBody < 0 || c.timeout < 0 || c.members < 0 || c.bulk < 0 { // 0 takes the default
		return fmt.Errorf("--scim-max-body, --scim-timeout, --scim-max-members and --scim-max-bulk-operations must not be negative: every request has a budget")
	}
	_, _, err := c.scimMapping()
	return err
}

// scimMapping reads the mapping the flags name; ok is false when SCIM is
// off (neither --scim-org nor --scim-mapping).
func (c *scimConfig) scimMapping() (m scim.Mapping, ok bool, err error) {
	switch {
	case c.mapping != "":
		data, err := os.ReadFile(c.mapping)
		if err != nil {
			return m, false, fmt.Errorf("--scim-mapping: %w", err)
		}
		if m, err = scim.DecodeMapping(data); err != nil {
			return m, false, fmt.Errorf("--scim-mapping %s: %w", c.mapping, err)
		}
		if c.org != "" {
			m.Organization = c.org
		}
	case c.org != "":
		m = scim.DefaultMapping(c.org)
	default:
		return m, false, nil
	}
	if err := m.Validate(); err != nil {
		return m, false, fmt.Errorf("--scim-org/--scim-mapping: %w", err)
	}
	return m, true, nil
}

// mountSCIM serves SCIM under /scim/v2 on mux when the flags ask for it,
// authenticating with the server's Authenticator (preshared keys, tokens)
// and the --scim-key keys.
// Without any credential (no preshared key, no --scim-key) it serves only
// on a loopback address, as the API does, unless --insecure-no-auth.
func mountSCIM(mux *http.ServeMux, srv *api.Server, auth *api.Authenticator, c serveConfig, httpAddr string, log *slog.Logger) error {
	m, ok, err := c.scim.scimMapping()
	if err != nil || !ok {
		return err
	}
	if len(c.keys) == 0 && len(c.scim.keys) == 0 && !c.insecureNoAuth && !isLoopback(httpAddr) {
		log.Warn("SCIM endpoints off: --http-addr is not loopback and no --preshared-key or --scim-key is set", "http_addr", httpAddr)
		return nil
	}
	h, err := srv.SCIMHandler(api.SCIMOptions{Mapping: m, Auth: auth, Keys: c.scim.keys, MaxBodyBytes: c.scim.maxBody, Timeout: c.scim.timeout,
		MaxMembers: c.scim.members, MaxBulkOperations: c.scim.bulk})
	if err != nil {
		return err
	}
	mux.Handle(api.SCIMPrefix, h)
	mux.Handle(api.SCIMPrefix+"/", h)
	log.Info("SCIM provisioning on", "path", api.SCIMPrefix, "organization", m.Organization)
	return nil
}
