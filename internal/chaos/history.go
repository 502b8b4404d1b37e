package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// outcome is what a client learned from one write attempt.
type outcome int

const (
	acked       outcome = iota // OK: the write is committed
	refused                    // a definite refusal: nothing was written
	notProposed                // Unavailable, and the server says nothing was proposed
	unknown                    // it may or may not have been (or still be) committed
)

func (o outcome) String() string {
	return [...]string{"acked", "refused", "not-proposed", "unknown"}[o]
}

// notProposedHints are, for a server without ErrorInfo reasons, the messages that say a write never reached raft:
// the client could not connect, or the node knew no leader / was not it
// when it would have proposed. Any other Unavailable is an unknown outcome.
var notProposedHints = []string{
	"connect: connection refused",
	"no raft leader",
	"not the raft leader",
}

// classify turns a write's error into its outcome. Refusals are codes the
// API returns only for writes that were not applied; everything that can
// follow a proposal (Unavailable, DeadlineExceeded, Canceled, Internal,
// Unknown, Aborted) is unknown unless the message says nothing was proposed.
func classify(err error) outcome {
	if err == nil {
		return acked
	}
	st, _ := status.FromError(err)
	// A server that says which it was (google.rpc.ErrorInfo) is taken at
	// its word; the not-proposed-applied check holds it to it.
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			switch info.GetReason() {
			case "NOT_PROPOSED":
				return notProposed
			case "OUTCOME_UNKNOWN":
				return unknown
			}
		}
	}
	switch st.Code() {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.AlreadyExists, codes.NotFound,
		codes.PermissionDenied, codes.Unauthenticated, codes.ResourceExhausted, codes.OutOfRange, codes.Unimplemented:
		return refused
	case codes.Unavailable:
		for _, h := range notProposedHints {
			if strings.Contains(st.Message(), h) {
				return notProposed
			}
		}
	}
	return unknown
}

// attempt is one write RPC.
type attempt struct {
	node       int
	start, end time.Time
	out        outcome
	err        string
	token      *v1.ZedToken
}

// keyRec is the life of one relationship doc:ID#viewer@user:USER. A key is
// touched (retried until acknowledged) and, only if its first touch was
// acknowledged, may later be deleted (retried likewise); it is never
// touched again. So no stray touch can land after an acknowledged delete,
// and every expectation at the end is exact.
type keyRec struct {
	id, user string
	probe    bool
	touches  []attempt
	deletes  []attempt
	deleting bool // a delete was invoked
}

func (k *keyRec) rel() string { return "doc:" + k.id + "#viewer@user:" + k.user }

func ackOf(as []attempt) *attempt {
	for i := range as {
		if as[i].out == acked {
			return &as[i]
		}
	}
	return nil
}

// clean: the first touch was acknowledged, so the key may be deleted.
func (k *keyRec) clean() bool { return len(k.touches) > 0 && k.touches[0].out == acked }

// window is a span during which no write invoked after from may be
// acknowledged before to (by node, or by any node when node < 0).
type window struct {
	node     int
	from, to time.Time
	why      string
	round    int
}

// Violation is one broken promise.
type Violation struct {
	Kind   string
	Round  int
	Detail string
}

// History records every write and read of a campaign.
type History struct {
	mu                 sync.Mutex
	keys               map[string]*keyRec
	order              []*keyRec
	pending            []ackRef // acknowledged operations not yet checked by a read, newest last
	latest             ackRef   // the newest acknowledged operation
	checked, unchecked int      // acknowledged operations read back; given up on
	windows            []window
	viol               []Violation
	round              int

	reads, readErrs, readsChecked int
	readErrKinds, writeErrKinds   map[string]int
	minorityFullReads             int
}

type ackRef struct {
	k      *keyRec
	delete bool
	at     *attempt
	tries  int // failed reads so far
}

func newHistory() *History {
	return &History{keys: map[string]*keyRec{}, readErrKinds: map[string]int{}, writeErrKinds: map[string]int{}}
}

// errKind shortens an error to its code and the start of its message, so
// that errors can be counted by kind.
func errKind(err error) string {
	st, _ := status.FromError(err)
	msg := st.Message()
	if i := strings.IndexAny(msg, ":(0123456789"); i > 0 {
		msg = msg[:i]
	}
	return st.Code().String() + ": " + strings.TrimSpace(msg)
}

func (h *History) setRound(r int) {
	h.mu.Lock()
	h.round = r
	h.mu.Unlock()
}

func (h *History) violate(kind, format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.viol = append(h.viol, Violation{Kind: kind, Round: h.round, Detail: fmt.Sprintf(format, args...)})
}

func (h *History) newKey(id, user string, probe bool) *keyRec {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := &keyRec{id: id, user: user, probe: probe}
	h.keys[k.rel()] = k
	h.order = append(h.order, k)
	return k
}

// record stores an attempt; an acknowledged one becomes readable.
func (h *History) record(k *keyRec, del bool, a attempt) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if del {
		k.deletes = append(k.deletes, a)
	} else {
		k.touches = append(k.touches, a)
	}
	if a.out == acked {
		list := &k.touches
		if del {
			list = &k.deletes
		}
		h.latest = ackRef{k: k, delete: del, at: &(*list)[len(*list)-1]}
		h.pending = append(h.pending, h.latest)
		if len(h.pending) > maxPending {
			h.unchecked += len(h.pending) - maxPending/2
			h.pending = append(h.pending[:0], h.pending[len(h.pending)-maxPending/2:]...)
		}
	}
}

func (h *History) markDeleting(k *keyRec) {
	h.mu.Lock()
	k.deleting = true
	h.mu.Unlock()
}

func (h *History) addWindow(w window) {
	h.mu.Lock()
	w.round = h.round
	h.windows = append(h.windows, w)
	h.mu.Unlock()
}

// Counts are the campaign's write figures: the writers' keys and attempts,
// and apart from them the failover probes (one attempt per key, many of them
// sent to a node that is down or cancelled once another was acknowledged).
type Counts struct {
	Keys, TouchAcked, TouchUnknown, TouchNotProposed, DeleteAcked, DeleteUnknown int
	Attempts                                                                     map[string]int
	Probes                                                                       map[string]int
}

func (h *History) counts() Counts {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := Counts{Attempts: map[string]int{}, Probes: map[string]int{}}
	for _, k := range h.order {
		if k.probe {
			for _, a := range k.touches {
				c.Probes[a.out.String()]++
			}
			continue
		}
		c.Keys++
		if ackOf(k.touches) != nil {
			c.TouchAcked++
		} else if len(k.touches) > 0 {
			if allNotProposed(k.touches) {
				c.TouchNotProposed++
			} else {
				c.TouchUnknown++
			}
		}
		if len(k.deletes) > 0 {
			if ackOf(k.deletes) != nil {
				c.DeleteAcked++
			} else {
				c.DeleteUnknown++
			}
		}
		for _, a := range append(append([]attempt(nil), k.touches...), k.deletes...) {
			c.Attempts[a.out.String()]++
		}
	}
	return c
}

func allNotProposed(as []attempt) bool {
	for _, a := range as {
		if a.out != notProposed && a.out != refused {
			return false
		}
	}
	return len(as) > 0
}

// checkWindows reports acknowledgements no quorum could have given.
func (h *History) checkWindows() {
	h.mu.Lock()
	var found []Violation
	for _, w := range h.windows {
		for _, k := range h.order {
			for _, as := range [][]attempt{k.touches, k.deletes} {
				for _, a := range as {
					if a.out == acked && a.start.After(w.from) && a.end.Before(w.to) && (w.node < 0 || w.node == a.node) {
						found = append(found, Violation{Kind: "acked-without-quorum", Round: w.round,
							Detail: fmt.Sprintf("%s acknowledged by n%d (invoked %s, acknowledged %s) while %s (%s..%s)",
								k.rel(), a.node+1, stamp(a.start), stamp(a.end), w.why, stamp(w.from), stamp(w.to))})
					}
				}
			}
		}
	}
	h.viol = append(h.viol, found...)
	h.mu.Unlock()
}

// checkFinal compares one node's relationships with the history: every
// acknowledged touch present unless a delete was invoked, every
// acknowledged delete absent, nothing the server said was never proposed,
// nothing nobody wrote.
func (h *History) checkFinal(node string, rels map[string]bool) (lost, resurrected, phantom int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var found []Violation
	for _, k := range h.order {
		rel := k.rel()
		present := rels[rel]
		switch {
		case ackOf(k.deletes) != nil:
			if present {
				resurrected++
				d := ackOf(k.deletes)
				found = append(found, Violation{Kind: "resurrected", Detail: fmt.Sprintf("%s on %s: delete acknowledged by n%d at %s (token %s)",
					rel, node, d.node+1, stamp(d.end), d.token.GetToken())})
			}
		case k.deleting:
			// a delete of unknown outcome: either state is right
		case ackOf(k.touches) != nil:
			if !present {
				lost++
				t := ackOf(k.touches)
				found = append(found, Violation{Kind: "lost", Detail: fmt.Sprintf("%s missing on %s: touch acknowledged by n%d at %s (token %s)",
					rel, node, t.node+1, stamp(t.end), t.token.GetToken())})
			}
		case allNotProposed(k.touches):
			if present {
				phantom++
				found = append(found, Violation{Kind: "not-proposed-applied", Detail: fmt.Sprintf("%s present on %s though every touch was refused or not proposed: %s",
					rel, node, describe(k.touches))})
			}
		}
	}
	var extra []string
	for rel := range rels {
		if _, ok := h.keys[rel]; !ok {
			extra = append(extra, rel)
		}
	}
	sort.Strings(extra)
	for _, rel := range extra {
		phantom++
		found = append(found, Violation{Kind: "phantom", Detail: fmt.Sprintf("%s on %s was never written", rel, node)})
	}
	h.viol = append(h.viol, found...)
	return lost, resurrected, phantom
}

func describe(as []attempt) string {
	var b strings.Builder
	for i, a := range as {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "n%d %s %s..%s %s", a.node+1, a.out, stamp(a.start), stamp(a.end), a.err)
	}
	return b.String()
}

func stamp(t time.Time) string { return t.UTC().Format("15:04:05.000") }

// maxPending bounds the operations waiting for their read; beyond it the
// oldest half is given up on (counted as unchecked).
const maxPending = 20000

// nextAck takes the newest acknowledged operation not yet read back: the
// newest are the ones a lagging node has not applied, so checking them
// first keeps the check sharp; older ones are read when readers keep up.
func (h *History) nextAck() (ackRef, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.pending)
	if n == 0 {
		return ackRef{}, false
	}
	ref := h.pending[n-1]
	h.pending = h.pending[:n-1]
	return ref, true
}

// nextAcks takes up to n of the newest operations not yet read back.
func (h *History) nextAcks(n int) []ackRef {
	h.mu.Lock()
	defer h.mu.Unlock()
	i := max(0, len(h.pending)-n)
	refs := slices.Clone(h.pending[i:])
	h.pending = h.pending[:i]
	return refs
}

// retryAck puts back an operation whose read failed (a node down or cut
// off), up to five tries.
func (h *History) retryAck(ref ackRef) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ref.tries++; ref.tries >= 5 {
		h.unchecked++
		return
	}
	h.pending = append(h.pending, ref)
}

// newestAck returns the newest acknowledged operation.
func (h *History) newestAck() (ackRef, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.latest, h.latest.k != nil
}

// deletingNow reports whether a delete of k has been invoked.
func (h *History) deletingNow(k *keyRec) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return k.deleting
}

// checkRead judges a read of ref.k's permission: it must show the
// acknowledged operation ref (or a later one).
func (h *History) checkRead(ref ackRef, has bool, node int, mode string, start, end time.Time, token string) {
	h.mu.Lock()
	h.readsChecked++
	h.mu.Unlock()
	if ref.delete {
		if has {
			h.violate("read-your-writes", "%s read on n%d (%s, invoked %s) shows a relationship whose delete n%d acknowledged at %s (token %s)",
				ref.k.rel(), node+1, mode, stamp(start), ref.at.node+1, stamp(ref.at.end), token)
		}
		return
	}
	if !has && !h.deletingNow(ref.k) {
		h.violate("read-your-writes", "%s read on n%d (%s, invoked %s, answered %s) misses a touch n%d acknowledged at %s (token %s)",
			ref.k.rel(), node+1, mode, stamp(start), stamp(end), ref.at.node+1, stamp(ref.at.end), token)
	}
}

// export reads every relationship of one node with fully_consistent.
func export(ctx context.Context, cl v1.PermissionsServiceClient) (map[string]bool, error) {
	st, err := cl.ExportBulkRelationships(ctx, &v1.ExportBulkRelationshipsRequest{
		Consistency: &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}})
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for {
		resp, err := st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		for _, r := range resp.GetRelationships() {
			s := r.GetSubject()
			rel := fmt.Sprintf("%s:%s#%s@%s:%s", r.GetResource().GetObjectType(), r.GetResource().GetObjectId(), r.GetRelation(),
				s.GetObject().GetObjectType(), s.GetObject().GetObjectId())
			if s.GetOptionalRelation() != "" {
				rel += "#" + s.GetOptionalRelation()
			}
			out[rel] = true
		}
	}
}
