package api

import (
	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/ambit-authz/ambit/tuple"
)

// The protoc-gen-validate rules of a CheckPermissionRequest are regular
// expressions over its names and ids; on fresh checks at tens of thousands
// a second, matching them took about 4% of the server's CPU. validCheck
// accepts the common shape of a valid request with byte loops instead, and
// says nothing about the rest: a request it does not accept goes through
// the generated validation as before, so every refusal and its message are
// the generated code's. It must never accept a request that the generated
// ValidateAll or HandwrittenValidate would refuse (TestValidCheckAgrees).

// validCheck reports whether r certainly passes r.ValidateAll() and
// r.HandwrittenValidate(). False means "not sure", not "invalid".
func validCheck(r *v1.CheckPermissionRequest) bool {
	if !plainConsistency(r.GetConsistency()) || !isName(r.GetPermission()) {
		return false
	}
	res, sub := r.GetResource(), r.GetSubject()
	if !plainObject(res) || sub == nil || !plainObject(sub.GetObject()) {
		return false
	}
	if rel := sub.GetOptionalRelation(); rel != "" && !isName(rel) {
		return false
	}
	// Context (a google.protobuf.Struct) and WithTracing have no rules.
	return true
}

// plainConsistency: none, or minimize_latency or fully_consistent set to
// true (the only value their rules allow).
func plainConsistency(c *v1.Consistency) bool {
	if c == nil {
		return true
	}
	switch req := c.GetRequirement().(type) {
	case *v1.Consistency_MinimizeLatency:
		return req != nil && req.MinimizeLatency
	case *v1.Consistency_FullyConsistent:
		return req != nil && req.FullyConsistent
	}
	return false
}

// plainObject: an object reference whose type has no namespace prefix and
// matches the name rule, and whose id is 1 to 1024 of the id characters (no
// wildcard: the rules of resource and subject differ on it). tuple's
// validators apply the same rules as the generated ones.
func plainObject(o *v1.ObjectReference) bool {
	return o != nil && isName(o.GetObjectType()) && tuple.ValidateID(o.GetObjectId()) == nil
}

// isName matches ^[a-z][a-z0-9_]{1,62}[a-z0-9]$, the rule of relations,
// permissions and (without a prefix) object types.
func isName(s string) bool { return tuple.ValidateRelation(s) == nil }
