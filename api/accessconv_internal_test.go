package api

import (
	"strings"
	"testing"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/tuple"
)

// TestAccessConversionsRefuseBadContext: a proof or explanation holding a
// caveat context that a protobuf Struct cannot carry (a string that is not
// UTF-8) is an error naming the relationship, never a relationship sent
// without its context; a good context arrives whole.
func TestAccessConversionsRefuseBadContext(t *testing.T) {
	good := tuple.MustParse("doc:a#viewer@user:ana")
	good.Caveat = &tuple.Caveat{Name: "ip", Context: map[string]any{"cidr": "10.0.0.0/8", "n": 2.0}}
	bad := tuple.MustParse("doc:b#viewer@user:bob")
	bad.Caveat = &tuple.Caveat{Name: "ip", Context: map[string]any{"cidr": "\xff\xfe"}}

	pb, err := relationshipPB(good)
	if err != nil || pb.GetOptionalCaveatContext().GetFields()["cidr"].GetStringValue() != "10.0.0.0/8" || pb.GetOptionalCaveatName() != "ip" {
		t.Fatalf("good relationship: %v, %v", pb, err)
	}
	if _, err := relationshipPB(bad); err == nil || !strings.Contains(err.Error(), "doc:b#viewer@user:bob") {
		t.Fatalf("bad context: %v, want an error naming the relationship", err)
	}
	if _, err := proofPB([]tuple.Relationship{good, bad}); err == nil {
		t.Fatal("a proof with a bad context converted")
	}
	tree := &engine.Why{Kind: engine.WhyUnion, Children: []*engine.Why{
		{Kind: engine.WhyRelationship, Relationship: &good},
		{Kind: engine.WhyRelationship, Relationship: &bad},
	}}
	if _, err := whyToPB(tree); err == nil {
		t.Fatal("an explanation with a bad context converted")
	}
	tree.Children = tree.Children[:1]
	n, err := whyToPB(tree)
	if err != nil || len(n.GetChildren()) != 1 || n.GetChildren()[0].GetRelationship().GetOptionalCaveatContext() == nil {
		t.Fatalf("good explanation: %v, %v", n, err)
	}
}
