package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/spf13/pflag"

	"github.com/ambit-authz/ambit/api"
	"github.com/ambit-authz/ambit/raft"
)

// The managed API tokens, the audit log and the decision log of `ambit
// serve` (README "API tokens and the audit log"): their flags, and the steps
// serve runs to open the logs and to teach the Authenticator the tokens.

// logsConfig are the flags of the audit and decision logs.
type logsConfig struct {
	auditLog       string
	auditMaxMiB    int64
	auditKeep      int
	auditNoSync    bool
	auditQueueMiB  int64
	decisionLog    string
	decisionSample float64
	decisionQueue  int
	decisionMaxMiB int64
}

func (c *logsConfig) flags(f *pflag.FlagSet) {
	f.StringVar(&c.auditLog, "audit-log", "", "append every change this node applies (writes, deletes, imports, schema, tokens, cluster, SCIM) to this file as JSON lines; empty disables")
	f.Int64Var(&c.auditMaxMiB, "audit-log-max-mib", 100, "rotate the audit log at this size (FILE.1, FILE.2, ...)")
	f.IntVar(&c.auditKeep, "audit-log-keep", 10, "rotated audit log files to keep")
	f.BoolVar(&c.auditNoSync, "audit-log-no-sync", false, "do not fsync the audit log after each batch of lines (a crash can lose the last lines)")
	f.Int64Var(&c.auditQueueMiB, "audit-log-queue-mib", 64, "applied changes the audit log holds in memory while its disk catches up; past this it keeps only their indexes and reads them back from the raft log")
	f.StringVar(&c.decisionLog, "decision-log", "", "record a sample of check, bulk check, lookup and AuthZEN decisions in this file as JSON lines; empty disables")
	f.Float64Var(&c.decisionSample, "decision-sample", 0.01, "fraction of decisions the decision log records, in (0, 1]")
	f.IntVar(&c.decisionQueue, "decision-queue", 16384, "decisions waiting to be written; more are dropped (ambit_decision_log_dropped_total) rather than slowing checks")
	f.Int64Var(&c.decisionMaxMiB, "decision-log-max-mib", 100, "rotate the decision log at this size (5 rotated files are kept)")
}

// serveLogs is what openLogs and startTokens opened.
type serveLogs struct {
	audit     *api.AuditLog
	decisions *api.DecisionLog
	tokens    atomic.Pointer[api.TokenRecords] // set by startTokens
}

// openLogs opens the audit and decision logs, before raft starts (so that
// entries replayed at start reach the audit log).
func (s *server) openLogs(context.Context) error {
	c := s.c.logs
	if c.decisionLog != "" {
		if !(c.decisionSample > 0 && c.decisionSample <= 1) {
			return fmt.Errorf("--decision-sample %v is outside (0, 1]", c.decisionSample)
		}
		if c.decisionQueue <= 0 || c.decisionMaxMiB <= 0 {
			return errors.New("--decision-queue and --decision-log-max-mib must be positive")
		}
		d, err := api.OpenDecisionLog(api.DecisionLogOptions{Path: c.decisionLog, Sample: c.decisionSample, Queue: c.decisionQueue,
			MaxBytes: c.decisionMaxMiB << 20, Logger: s.log})
		if err != nil {
			return fmt.Errorf("--decision-log: %w", err)
		}
		s.logs.decisions = d
		s.onClose("the decision log", d.Close)
	}
	if c.auditLog != "" {
		if c.auditMaxMiB <= 0 || c.auditKeep <= 0 || c.auditQueueMiB < 0 {
			return errors.New("--audit-log-max-mib and --audit-log-keep must be positive, --audit-log-queue-mib not negative (0: the default)")
		}
		a, err := api.OpenAuditLog(api.AuditOptions{Path: c.auditLog, MaxBytes: c.auditMaxMiB << 20, Keep: c.auditKeep, NoSync: c.auditNoSync,
			MaxQueueBytes: c.auditQueueMiB << 20, TokenName: s.tokenName, Logger: s.log})
		if err != nil {
			return fmt.Errorf("--audit-log: %w", err)
		}
		s.logs.audit = a
		s.onClose("the audit log", a.Close)
	}
	return nil
}

// onApplied is raft's OnApplied hook: the memory returner's (memory.go) and
// the audit log's.
func (s *server) onApplied() raft.OnApplied {
	mem := s.memReturn.Applied
	if s.logs.audit == nil {
		return mem
	}
	audit := s.logs.audit.Applied
	return func(e raft.AppliedEntry) { mem(e); audit(e) }
}

// tokenName names a token for the audit log (called on its goroutine; the
// server may not be built yet during replay at start).
func (s *server) tokenName(id string) string {
	recs := s.logs.tokens.Load()
	if recs == nil {
		return ""
	}
	rec, ok, err := (*recs).Token((*recs).Revision(), id)
	if err != nil || !ok {
		return ""
	}
	return rec.Name
}

// startTokens teaches the Authenticator the managed tokens, registers
// ambit.v1.TokenService and AuditService and the metrics of authentication
// and the logs. startAPI calls it before the gRPC server serves.
func (s *server) startTokens() error {
	recs := s.srv.Tokens()
	am, err := api.NewAuthMetrics(s.reg)
	if err != nil {
		return err
	}
	s.auth.SetTokens(recs, am)
	s.logs.tokens.Store(&recs)
	s.srv.RegisterTokens(s.g, recs, s.auth)
	s.srv.RegisterAudit(s.g, s.logs.audit)
	if a := s.logs.audit; a != nil {
		if err := a.Register(s.reg); err != nil {
			return err
		}
	}
	if d := s.logs.decisions; d != nil {
		if err := d.Register(s.reg); err != nil {
			return err
		}
	}
	return nil
}
