package oracle_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/engine/enginetest"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
	"github.com/ambit-authz/ambit/validation"
	"github.com/ambit-authz/ambit/validation/oracle"
	"github.com/ambit-authz/ambit/validation/runner"
)

const doc = `
schema: |-
  definition user {}
  definition group {
    relation member: user
  }
  definition doc {
    relation viewer: user | user:* | group#member
    relation banned: user
    permission view = viewer - banned
  }
relationships: |-
  doc:1#viewer@user:ana
  doc:1#viewer@group:eng#member
  group:eng#member@user:bob
  doc:2#viewer@user:*
  doc:2#banned@user:mal
assertions:
  assertTrue:
    - doc:1#view@user:bob
  assertFalse:
    - doc:2#view@user:mal
validation:
  doc:1#view:
    - "[group:eng#member] is <doc:1#viewer>"
    - "[user:ana] is <doc:1#viewer>"
    - "[user:bob] is <group:eng#member>"
`

// liar is the engine adapter with one method's answers corrupted.
type liar struct {
	runner.View
	lie string // the method that lies
}

func (l liar) CheckBulk(ctx context.Context, qs []oracle.Query) ([]oracle.Answer, error) {
	out, err := l.View.CheckBulk(ctx, qs)
	if l.lie == "CheckBulk" && err == nil {
		for i := range out {
			if qs[i].Resource.ID == "1" && qs[i].Subject.ID == "ana" {
				out[i].Permissionship = engine.NoPermission
			}
		}
	}
	return out, err
}

func (l liar) LookupResources(ctx context.Context, typ, perm string, subj tuple.SubjectRef, page int) ([]engine.LookupResult, error) {
	out, err := l.View.LookupResources(ctx, typ, perm, subj, page)
	if l.lie == "LookupResources" && page == 1 && len(out) > 0 {
		out = out[1:]
	}
	return out, err
}

func (l liar) LookupSubjects(ctx context.Context, res tuple.ObjectRef, perm string, kind tuple.SubjectRef) ([]engine.LookupResult, error) {
	out, err := l.View.LookupSubjects(ctx, res, perm, kind)
	if l.lie == "LookupSubjects" && res.ID == "2" {
		for i := range out {
			out[i].Excluded = nil // mal is no longer excluded from user:*
		}
	}
	return out, err
}

func (l liar) Expand(ctx context.Context, res tuple.ObjectRef, perm string) (*engine.ExpandNode, error) {
	switch l.lie {
	case "Expand":
		return &engine.ExpandNode{Kind: engine.ExpandLeaf, Object: res, Relation: perm}, nil
	case "no Expand":
		return nil, errors.ErrUnsupported
	}
	return l.View.Expand(ctx, res, perm)
}

func (l liar) SubjectPermissions(ctx context.Context, res tuple.ObjectRef, subj tuple.SubjectRef) ([]engine.PermissionResult, error) {
	switch l.lie {
	case "no access":
		return nil, errors.ErrUnsupported
	}
	out, err := l.View.SubjectPermissions(ctx, res, subj)
	if l.lie == "SubjectPermissions" && res.ID == "1" && subj.ID == "ana" && len(out) > 0 {
		out = out[1:]
	}
	return out, err
}

func (l liar) ResourceAccess(ctx context.Context, res tuple.ObjectRef, ranks []string, subjType string) ([]engine.Access, error) {
	switch l.lie {
	case "no access":
		return nil, errors.ErrUnsupported
	}
	out, err := l.View.ResourceAccess(ctx, res, ranks, subjType)
	if l.lie == "ResourceAccess" && res.ID == "2" {
		// Only the wildcard, excluding nobody: mal (banned, so listed
		// apart) now holds the wildcard's rank.
		out = slices.DeleteFunc(out, func(a engine.Access) bool { return a.Subject.ID != tuple.Wildcard })
		for i := range out {
			out[i].Excluded = nil
		}
	}
	return out, err
}

func (l liar) GaveUp(err error) bool {
	if l.lie == "gives up" {
		return true
	}
	return l.View.GaveUp(err)
}

func (l liar) Check(ctx context.Context, q oracle.Query) oracle.Answer {
	if l.lie == "gives up" && q.Resource.Type == "doc" && q.Subject.Type == "user" && q.Context == nil {
		return oracle.Answer{Err: fmt.Errorf("%w: gave up", engine.ErrMaxDepth)}
	}
	return l.View.Check(ctx, q)
}

func load(t *testing.T) (*validation.File, *schema.Schema, runner.View) {
	t.Helper()
	files, err := validation.Parse("doc.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	f := files[0]
	s, err := schema.Compile(f.Name, f.Schema)
	if err != nil {
		t.Fatal(err)
	}
	var rels []tuple.Relationship
	for _, r := range f.Relationships {
		rels = append(rels, r.Relationship)
	}
	eng, err := engine.New(engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	m := enginetest.NewMemory(rels...)
	return f, s, runner.View{V: eng.View(s, m, m.Snapshot(1))}
}

// Each comparison of the oracle catches its API disagreeing with Check, and
// nothing else fails.
func TestOracleCatchesEachDisagreement(t *testing.T) {
	f, s, v := load(t)
	for _, c := range []struct {
		lie  string
		want string // prefix of every failure's What; "" = no failures
	}{
		{"", ""},
		{"no Expand", ""},
		{"CheckBulk", "oracle: CheckBulk doc:1#"},
		{"LookupResources", "oracle: LookupResources("},
		{"LookupSubjects", "oracle: LookupSubjects(doc:2#"},
		{"Expand", "oracle: Expand("},
		{"no access", ""},
		{"SubjectPermissions", "oracle: SubjectPermissions(doc:1, user:ana)"},
		{"ResourceAccess", "oracle: ResourceAccess(doc:2, "},
	} {
		t.Run(c.lie, func(t *testing.T) {
			rep, err := oracle.Run(context.Background(), liar{v, c.lie}, f, s, oracle.Options{Oracle: true, Parallel: 3})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Assertions == 0 || rep.Oracle == 0 {
				t.Fatalf("%d assertions, %d oracle comparisons", rep.Assertions, rep.Oracle)
			}
			if c.want == "" && len(rep.Failures) > 0 {
				t.Fatalf("failures: %v", rep.Failures)
			}
			if c.want != "" && len(rep.Failures) == 0 {
				t.Fatalf("the lie in %s went unnoticed (%d comparisons)", c.lie, rep.Oracle)
			}
			for _, fl := range rep.Failures {
				if !strings.HasPrefix(fl.What, c.want) {
					t.Errorf("unexpected failure %v", fl)
				}
			}
		})
	}
	// Without Expand the oracle makes fewer comparisons, not failures.
	all, _ := oracle.Run(context.Background(), v, f, s, oracle.Options{Oracle: true})
	noExpand, _ := oracle.Run(context.Background(), liar{v, "no Expand"}, f, s, oracle.Options{Oracle: true})
	if noExpand.Oracle >= all.Oracle {
		t.Fatalf("%d comparisons without Expand, %d with", noExpand.Oracle, all.Oracle)
	}
	noAccess, _ := oracle.Run(context.Background(), liar{v, "no access"}, f, s, oracle.Options{Oracle: true})
	if noAccess.Oracle >= all.Oracle {
		t.Fatalf("%d comparisons without SubjectPermissions and ResourceAccess, %d with", noAccess.Oracle, all.Oracle)
	}
}

// reference answers Check from another front end: here the engine adapter
// whose Check denies user:ana everything.
type denyAna struct{ runner.View }

func (d denyAna) Check(ctx context.Context, q oracle.Query) oracle.Answer {
	if q.Subject.ID == "ana" {
		return oracle.Answer{Permissionship: engine.NoPermission}
	}
	return d.View.Check(ctx, q)
}

// With a Reference, every call of the API is compared with the reference's
// Check, the API's own Check included; Definite listings leave conditional
// answers out.
func TestOracleAgainstAReference(t *testing.T) {
	f, s, v := load(t)
	rep, err := oracle.Run(context.Background(), v, f, s, oracle.Options{Oracle: true, Reference: v})
	if err != nil || len(rep.Failures) > 0 {
		t.Fatalf("the engine against itself: %v %v", err, rep.Failures)
	}
	alone, _ := oracle.Run(context.Background(), v, f, s, oracle.Options{Oracle: true})
	if rep.Oracle <= alone.Oracle {
		t.Fatalf("%d comparisons with a reference, %d without: the API's Check is not compared", rep.Oracle, alone.Oracle)
	}
	rep, err = oracle.Run(context.Background(), v, f, s, oracle.Options{Oracle: true, Reference: denyAna{v}})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, fl := range rep.Failures {
		what, _, _ := strings.Cut(strings.TrimPrefix(fl.What, "oracle: "), "(")
		seen[strings.Fields(what)[0]] = true
	}
	for _, want := range []string{"Check", "CheckBulk", "LookupResources", "LookupSubjects", "SubjectPermissions", "ResourceAccess"} {
		if !seen[want] {
			t.Errorf("no %s failure against a reference that denies ana (failures in %v)", want, seen)
		}
	}
}

// A front end that gives up (its depth or result limit) is skipped, not
// failed; any other error stops the run.
func TestOracleSkipsWhatTheFrontEndGaveUp(t *testing.T) {
	f, s, v := load(t)
	rep, err := oracle.Run(context.Background(), liar{v, "gives up"}, f, s, oracle.Options{Oracle: true})
	if err != nil {
		t.Fatal(err)
	}
	all, _ := oracle.Run(context.Background(), v, f, s, oracle.Options{Oracle: true})
	if rep.Oracle >= all.Oracle {
		t.Fatalf("%d comparisons when checks of users give up, %d otherwise", rep.Oracle, all.Oracle)
	}
}

// Assertions and the validation map fail where the answers say so.
func TestAssertionsAndValidationMap(t *testing.T) {
	f, s, v := load(t)
	f.Assertions.True = append(f.Assertions.True, validation.Assertion{Rel: tuple.MustParse("doc:2#view@user:mal"), Line: 99, Text: "doc:2#view@user:mal"})
	f.Validation[0].Subjects = f.Validation[0].Subjects[1:] // drop group:eng#member (not a plain subject: no completeness failure)
	f.Validation[0].Subjects = f.Validation[0].Subjects[1:] // drop user:ana: now unlisted
	rep, err := oracle.Run(context.Background(), v, f, s, oracle.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, fl := range rep.Failures {
		got = append(got, fmt.Sprintf("%d %s", fl.Line, fl.Got))
	}
	want := []string{"99 NO_PERMISSION", fmt.Sprintf("%d user:ana also has HAS_PERMISSION", f.Validation[0].Line)}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("failures %q, want %q", got, want)
	}
	if rep.Oracle != 0 {
		t.Fatalf("%d oracle comparisons without Options.Oracle", rep.Oracle)
	}
}
