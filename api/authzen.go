package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
)

// The AuthZEN 1.0 request vocabulary and its translation to the authzed v1
// messages the gRPC handlers take (see authzen_http.go for the endpoints).
//
// Mapping (README, "AuthZEN"):
//   - subject {type, id} is the subject object; subject.properties.relation
//     names a subject set (group:eng#member is {type: group, id: eng,
//     properties: {relation: member}}).
//   - action.name is a permission or relation of the resource's type.
//   - resource {type, id} is the resource object.
//   - ids: an id ambit accepts as it is, with no "=" followed by two
//     upper-case hex digits, is used unchanged. Any other id is escaped:
//     every byte outside a-z A-Z 0-9 / _ | - + (and every "=") becomes "=XX",
//     so "rick@the-citadel.com" is stored as "rick=40the-citadel=2Ecom". The
//     mapping is one-to-one; search results are unescaped. Ids must be valid
//     UTF-8 without control characters and at most 1024 bytes once escaped.
//   - caveat context: the request's context object, plus every property of
//     subject, resource and action under "<entity>_<name>" (resource
//     property ownerID is context key resource_ownerID); a key set twice is
//     refused. Members of an entity other than type, id, name and properties
//     count as properties (draft 00 of the interop put them there). The
//     context key "zedtoken" is not caveat context: it is a ZedToken the
//     answer must be at least as fresh as (the ZedToken header does the same).
//     The key "explain" (true or false) is not caveat context either: true
//     asks a deny for its why-not reasons (authzen_explain.go).

// azEntity is an AuthZEN subject, resource or action as sent. Shape errors
// are kept in err and reported with the entity's path by the caller, so that
// the message names the field (subject.type, evaluations[2].resource.id).
type azEntity struct {
	Type, ID, Name string
	hasID          bool
	Properties     map[string]any
	err            error
}

func (e *azEntity) UnmarshalJSON(b []byte) error {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		e.err = errors.New(": must be an object")
		return nil
	}
	str := func(k string) string {
		v, ok := m[k]
		if !ok {
			return ""
		}
		delete(m, k)
		s, ok := v.(string)
		if !ok && e.err == nil {
			e.err = fmt.Errorf(".%s: must be a string", k)
		}
		return s
	}
	_, e.hasID = m["id"]
	e.Type, e.ID = str("type"), str("id")
	if n, ok := m["name"].(string); ok {
		e.Name = n
		delete(m, "name")
	}
	if p, ok := m["properties"]; ok {
		delete(m, "properties")
		switch p := p.(type) {
		case map[string]any:
			e.Properties = p
		case nil:
		default:
			if e.err == nil {
				e.err = errors.New(".properties: must be an object")
			}
		}
	}
	for k, v := range m {
		if _, dup := e.Properties[k]; dup {
			if e.err == nil {
				e.err = fmt.Errorf(".%s: given both as a member and in properties", k)
			}
			continue
		}
		if e.Properties == nil {
			e.Properties = map[string]any{}
		}
		e.Properties[k] = v
	}
	return nil
}

func (e *azEntity) MarshalJSON() ([]byte, error) {
	m := map[string]any{"type": e.Type, "id": e.ID, "name": e.Name, "properties": e.Properties}
	return json.Marshal(m)
}

// azEvaluation is one evaluation: the body of /evaluation, an item of
// /evaluations, and the common part of the searches.
type azEvaluation struct {
	Subject  *azEntity      `json:"subject,omitempty"`
	Action   *azEntity      `json:"action,omitempty"`
	Resource *azEntity      `json:"resource,omitempty"`
	Context  map[string]any `json:"context,omitempty"`
}

type azEvaluationsRequest struct {
	azEvaluation
	Evaluations []azEvaluation `json:"evaluations"`
	Options     struct {
		EvaluationsSemantic string `json:"evaluations_semantic"`
	} `json:"options"`
}

type azPage struct {
	Token string `json:"token,omitempty"`
	Limit *int   `json:"limit,omitempty"`
}

type azSearchRequest struct {
	azEvaluation
	Page *azPage `json:"page,omitempty"`
}

// zedTokenKey is the context key of a ZedToken (see the mapping above).
const zedTokenKey = "zedtoken"

// azDecision is one decision of the responses.
type azDecision struct {
	Decision bool           `json:"decision"`
	Context  map[string]any `json:"context,omitempty"`
}

// azIDByte reports whether c is kept as it is in an escaped id.
func azIDByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '/' || c == '_' || c == '|' || c == '-' || c == '+'
}

func isUpperHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }

// hasEscape reports whether s contains "=" followed by two upper-case hex digits.
func hasEscape(s string) bool {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == '=' && isUpperHex(s[i+1]) && isUpperHex(s[i+2]) {
			return true
		}
	}
	return false
}

// azIDToAmbit maps an AuthZEN id to the ambit id it names (see the mapping
// above). Distinct AuthZEN ids map to distinct ambit ids: an id used as it is
// contains no escape, an escaped one always does, and escaping is reversible.
func azIDToAmbit(id string) (string, error) {
	if id == "" {
		return "", errors.New("is required")
	}
	if !utf8.ValidString(id) {
		return "", errors.New("is not valid UTF-8")
	}
	for i, r := range id {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return "", fmt.Errorf("has control character %q at byte %d, which ambit refuses in ids", r, i)
		}
	}
	if tuple.ValidateID(id) == nil && !hasEscape(id) {
		return id, nil
	}
	var b strings.Builder
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(id); i++ {
		c := id[i]
		if azIDByte(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('=')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	out := b.String()
	if len(out) > tuple.MaxIDLength {
		return "", fmt.Errorf("is %d bytes once escaped for ambit, more than the limit of %d", len(out), tuple.MaxIDLength)
	}
	return out, nil
}

// ambitIDToAZ is the inverse of azIDToAmbit for ids it produced; other ids
// (written over gRPC with "=" in them) are returned as they are.
func ambitIDToAZ(id string) string {
	if !hasEscape(id) {
		return id
	}
	b := make([]byte, 0, len(id))
	for i := 0; i < len(id); i++ {
		if id[i] == '=' && i+2 < len(id) && isUpperHex(id[i+1]) && isUpperHex(id[i+2]) {
			b = append(b, unhex(id[i+1])<<4|unhex(id[i+2]))
			i += 2
			continue
		}
		if id[i] == '=' {
			return id // not an escaped id
		}
		b = append(b, id[i])
	}
	if !utf8.Valid(b) {
		return id
	}
	return string(b)
}

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}

// azError is a client mistake in an AuthZEN request: 400 with its message.
type azError struct{ msg string }

func (e *azError) Error() string { return e.msg }

func azErrorf(format string, args ...any) error { return &azError{msg: fmt.Sprintf(format, args...)} }

// azTranslator turns AuthZEN entities into v1 references, checking names
// against the schema so that errors name the AuthZEN field.
type azTranslator struct {
	sch *schema.Schema
	// maxContext bounds the caveat context's protobuf size (0: no bound);
	// the gRPC handlers enforce the same limit with v1 field names.
	maxContext int
}

func (t azTranslator) entity(e *azEntity, path string, needID bool) (typ, id string, err error) {
	if e == nil {
		return "", "", azErrorf("%s is required", path)
	}
	if e.err != nil {
		return "", "", azErrorf("%s%v", path, e.err)
	}
	if e.Type == "" {
		return "", "", azErrorf("%s.type is required", path)
	}
	if err := tuple.ValidateType(e.Type); err != nil {
		return "", "", azErrorf("%s.type: %v", path, err)
	}
	if t.sch.Definitions[e.Type] == nil {
		return "", "", azErrorf("%s.type: type %q is not defined in the schema", path, e.Type)
	}
	if !needID {
		if e.hasID {
			return "", "", azErrorf("%s.id: must not be given in a search for %ss", path, path)
		}
		return e.Type, "", nil
	}
	if !e.hasID {
		return "", "", azErrorf("%s.id is required", path)
	}
	id, err = azIDToAmbit(e.ID)
	if err != nil {
		return "", "", azErrorf("%s.id: %v", path, err)
	}
	return e.Type, id, nil
}

// subject translates a subject (needID false: a subject search's filter).
func (t azTranslator) subject(e *azEntity, path string, needID bool) (*v1.SubjectReference, error) {
	typ, id, err := t.entity(e, path, needID)
	if err != nil {
		return nil, err
	}
	ref := &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: typ, ObjectId: id}}
	if r, ok := e.Properties["relation"]; ok {
		rel, _ := r.(string)
		if err := tuple.ValidateRelation(rel); err != nil {
			return nil, azErrorf("%s.properties.relation: %v", path, err)
		}
		if t.sch.Relation(typ, rel) == nil {
			return nil, azErrorf("%s.properties.relation: type %q has no relation or permission %q", path, typ, rel)
		}
		ref.OptionalRelation = rel
	}
	return ref, nil
}

func (t azTranslator) action(e *azEntity, resourceType, path string) (string, error) {
	if e == nil {
		return "", azErrorf("%s is required", path)
	}
	if e.err != nil {
		return "", azErrorf("%s%v", path, e.err)
	}
	if e.Name == "" {
		return "", azErrorf("%s.name is required", path)
	}
	if err := tuple.ValidateRelation(e.Name); err != nil {
		return "", azErrorf("%s.name: %v", path, err)
	}
	if t.sch.Relation(resourceType, e.Name) == nil {
		return "", azErrorf("%s.name: type %q has no permission or relation %q", path, resourceType, e.Name)
	}
	return e.Name, nil
}

// caveatContext builds the caveat context of an evaluation: its context
// (without the zedtoken and explain keys), the subject's and resource's
// names as subject_name and resource_name, and the flattened properties.
func (t azTranslator) caveatContext(ev *azEvaluation, path string) (*structpb.Struct, error) {
	n := len(ev.Context)
	for _, e := range []*azEntity{ev.Subject, ev.Resource, ev.Action} {
		if e != nil {
			n += len(e.Properties)
			if e != ev.Action && e.Name != "" {
				n++
			}
		}
	}
	if n == 0 {
		return nil, nil
	}
	m := make(map[string]any, n)
	from := make(map[string]string, n)
	for k, v := range ev.Context {
		if k == zedTokenKey {
			continue
		}
		if k == explainKey {
			if _, ok := v.(bool); !ok {
				return nil, azErrorf("%scontext.%s: must be true or false", path, explainKey)
			}
			continue
		}
		m[k] = v
		from[k] = path + "context." + k
	}
	for _, p := range []struct {
		name string
		e    *azEntity
	}{{"subject", ev.Subject}, {"resource", ev.Resource}, {"action", ev.Action}} {
		if p.e == nil {
			continue
		}
		if p.name != "action" && p.e.Name != "" {
			key := p.name + "_name"
			if prev, dup := from[key]; dup {
				return nil, azErrorf("%s%s.name: is caveat context key %q, which %s also sets", path, p.name, key, prev)
			}
			m[key] = p.e.Name
			from[key] = path + p.name + ".name"
		}
		for _, k := range slices.Sorted(maps.Keys(p.e.Properties)) {
			if p.name == "subject" && k == "relation" {
				continue
			}
			key := p.name + "_" + k
			field := path + p.name + ".properties." + k
			if prev, dup := from[key]; dup {
				return nil, azErrorf("%s: is caveat context key %q, which %s also sets", field, key, prev)
			}
			m[key] = p.e.Properties[k]
			from[key] = field
		}
	}
	if len(m) == 0 {
		return nil, nil
	}
	s, err := structpb.NewStruct(m)
	if err != nil {
		return nil, azErrorf("%scontext: %v", path, err)
	}
	if n := proto.Size(s); t.maxContext > 0 && n > t.maxContext {
		return nil, azErrorf("%scontext: the caveat context (context and properties) is %d bytes, more than the limit of %d", path, n, t.maxContext)
	}
	return s, nil
}

// checkItem translates one evaluation to a v1 check.
func (t azTranslator) checkItem(ev *azEvaluation, path string) (*v1.CheckBulkPermissionsRequestItem, error) {
	subj, err := t.subject(ev.Subject, path+"subject", true)
	if err != nil {
		return nil, err
	}
	rtyp, rid, err := t.entity(ev.Resource, path+"resource", true)
	if err != nil {
		return nil, err
	}
	perm, err := t.action(ev.Action, rtyp, path+"action")
	if err != nil {
		return nil, err
	}
	c, err := t.caveatContext(ev, path)
	if err != nil {
		return nil, err
	}
	return &v1.CheckBulkPermissionsRequestItem{
		Resource:   &v1.ObjectReference{ObjectType: rtyp, ObjectId: rid},
		Permission: perm,
		Subject:    subj,
		Context:    c,
	}, nil
}

// merged returns item with the request's defaults filled in: each of
// subject, action, resource and context the item omits is the default.
func merged(def, item azEvaluation) azEvaluation {
	if item.Subject == nil {
		item.Subject = def.Subject
	}
	if item.Action == nil {
		item.Action = def.Action
	}
	if item.Resource == nil {
		item.Resource = def.Resource
	}
	if item.Context == nil {
		item.Context = def.Context
	}
	return item
}

// decisionOf turns a v1 permissionship into an AuthZEN decision: only
// HAS_PERMISSION is true; a conditional answer is false with the caveat
// parameters the context lacked.
func decisionOf(p v1.CheckPermissionResponse_Permissionship, partial *v1.PartialCaveatInfo) azDecision {
	switch p {
	case v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION:
		return azDecision{Decision: true}
	case v1.CheckPermissionResponse_PERMISSIONSHIP_CONDITIONAL_PERMISSION:
		return azDecision{Context: map[string]any{
			"reason":          "conditional: the caveat context lacks parameters",
			"missing_context": partial.GetMissingRequiredContext(),
		}}
	}
	return azDecision{}
}
