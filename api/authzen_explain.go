package api

import (
	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	ambitv1 "github.com/ambit-authz/ambit/proto/ambit/v1"
)

// explainKey is the context key that asks for why-not reasons: with
// "explain": true, a deny of /evaluation or of an item of /evaluations
// carries context.reasons, the reasons Explain gives (engine.Why.Reasons)
// at the revision the decision was read at. Like zedtoken it is not caveat
// context.
const explainKey = "explain"

// MaxAuthZENReasons bounds the reasons of one decision; past it the
// decision's context has reasons_truncated: true.
const MaxAuthZENReasons = 50

// wantsExplain reports whether an evaluation's context asks for reasons
// (caveatContext has refused a value other than true or false).
func wantsExplain(ev *azEvaluation) bool {
	b, _ := ev.Context[explainKey].(bool)
	return b
}

// explainDeny adds to d, the deny of item read at revision at, the reasons
// Explain gives. Explain walks every route without the result cache, so it
// passes the heavy-call gate as the gRPC Explain does.
func (h *azHandler) explainDeny(c *azCall, item *v1.CheckBulkPermissionsRequestItem, at *v1.ZedToken, d *azDecision) error {
	rev, err := h.s.tokens.revision(at, "checked_at")
	if err != nil {
		return err
	}
	creq, err := h.s.checkRequest(item.GetResource(), item.GetPermission(), item.GetSubject(), item.GetContext(), "")
	if err != nil {
		return err
	}
	release, err := h.s.admit(c.ctx, ambitv1.AccessService_Explain_FullMethodName, nil)
	if err != nil {
		return err
	}
	defer release()
	ex, err := h.s.explainAt(c.ctx, creq, rev)
	if err != nil {
		return err
	}
	reasons := ex.Root.Reasons()
	if d.Context == nil {
		d.Context = map[string]any{}
	}
	if len(reasons) > MaxAuthZENReasons {
		reasons = reasons[:MaxAuthZENReasons]
		d.Context["reasons_truncated"] = true
	}
	if reasons == nil {
		reasons = []string{}
	}
	d.Context["reasons"] = reasons
	return nil
}
