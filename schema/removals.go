package schema

import "sort"

// String is the allowed type as schema source writes it: `user`,
// `group#member`, `user:*`, each optionally `with CAVEAT`, `with
// expiration` or `with CAVEAT and expiration`.
func (a AllowedType) String() string {
	s := a.Type
	switch {
	case a.Wildcard:
		s += ":*"
	case a.Relation != "":
		s += "#" + a.Relation
	}
	switch {
	case a.Caveat != "" && a.Expiration:
		s += " with " + a.Caveat + " and expiration"
	case a.Caveat != "":
		s += " with " + a.Caveat
	case a.Expiration:
		s += " with expiration"
	}
	return s
}

// RemovalKind is what a schema change takes from a relation.
type RemovalKind int

// The kinds of Removal.
const (
	// RemovedDefinition: the relation's definition is gone.
	RemovedDefinition RemovalKind = iota + 1
	// RemovedRelation: the definition stays, the relation is gone.
	RemovedRelation
	// BecamePermission: the name is now a permission, which stores nothing.
	BecamePermission
	// RemovedTypes: the relation stays but no longer allows Types.
	RemovedTypes
)

// Removal is one thing a schema change takes away that stored
// relationships may still use: the relation Definition#Relation is gone (or
// turned into a permission), or it no longer allows Types. Whether a
// relationship uses it is the caller's question (CheckChange asks the
// store, the web console the API).
type Removal struct {
	Kind       RemovalKind
	Definition string
	Relation   string
	Types      []AllowedType // RemovedTypes only
}

// What says what the change does, for an error message: "removes
// definition doc", "removes relation doc#viewer", "turns relation
// doc#viewer into a permission", "no longer allows user:* on doc#viewer".
func (r Removal) What() string {
	rel := r.Definition + "#" + r.Relation
	switch r.Kind {
	case RemovedDefinition:
		return "removes definition " + r.Definition
	case RemovedRelation:
		return "removes relation " + rel
	case BecamePermission:
		return "turns relation " + rel + " into a permission"
	}
	s := "no longer allows "
	for i, t := range r.Types {
		if i > 0 {
			s += ", "
		}
		s += t.String()
	}
	return s + " on " + rel
}

// Removals lists what next takes away from prev's relations (never
// permissions: they store nothing), in a fixed order: definitions by name,
// relations in declaration order. The order matters to callers that stop at
// the first problem, such as the schema guard inside the state machine,
// whose refusal every replica must word alike.
func Removals(prev, next *Schema) []Removal {
	names := make([]string, 0, len(prev.Definitions))
	for n := range prev.Definitions {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []Removal
	for _, name := range names {
		d := prev.Definitions[name]
		nd := next.Definitions[name]
		for _, relName := range d.Order {
			r := d.Relations[relName]
			if r.IsPermission {
				continue
			}
			var nr *Relation
			if nd != nil {
				nr = nd.Relations[relName]
			}
			rm := Removal{Definition: name, Relation: relName}
			switch {
			case nd == nil:
				rm.Kind = RemovedDefinition
			case nr == nil:
				rm.Kind = RemovedRelation
			case nr.IsPermission:
				rm.Kind = BecamePermission
			default:
				for _, p := range r.AllowedTypes {
					kept := false
					for _, n := range nr.AllowedTypes {
						if n == p {
							kept = true
							break
						}
					}
					if !kept {
						rm.Types = append(rm.Types, p)
					}
				}
				if len(rm.Types) == 0 {
					continue
				}
				rm.Kind = RemovedTypes
			}
			out = append(out, rm)
		}
	}
	return out
}
