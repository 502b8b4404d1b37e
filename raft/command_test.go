package raft

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

func rel(res, id, relation, st, sid string) tuple.Relationship {
	return tuple.Relationship{Resource: tuple.ObjectRef{Type: res, ID: id}, Relation: relation, Subject: tuple.SubjectRef{Type: st, ID: sid}}
}

func sampleCommands() []Command {
	empty := ""
	member := "member"
	caveated := rel("document", "d1", "viewer", "user", "ana")
	caveated.Caveat = &tuple.Caveat{Name: "on_day", Context: map[string]any{
		"day": 1.5, "name": "x", "ok": true, "no": false, "nil": nil,
		"list": []any{1.0, "two", []any{}, map[string]any{"k": "v"}}, "obj": map[string]any{},
	}}
	caveated.Expiration = time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	group := rel("document", "d2", "viewer", "group", "eng")
	group.Subject.Relation = "member"
	filter := tuple.Filter{ResourceType: "document", ResourceIDs: []string{"a", "b"}, Relation: "viewer",
		Subject: &tuple.SubjectFilter{Type: "user", IDs: []string{"ana"}, Relation: &empty}}
	now := time.Date(2026, 11, 23, 15, 0, 0, 123456789, time.UTC)
	cmds := []Command{
		WriteCommand([]store.Update{{Op: store.OpCreate, Rel: caveated}, {Op: store.OpTouch, Rel: group}, {Op: store.OpDelete, Rel: rel("a", "b", "c", "d", "e")}},
			[]store.Precondition{{MustMatch: true, Filter: filter}, {MustMatch: false, Filter: tuple.Filter{ResourceIDPrefix: "pre", Subject: &tuple.SubjectFilter{Relation: &member}}}}),
		WriteCommand(nil, nil),
		DeleteCommand(filter, 100, true, nil),
		DeleteCommand(tuple.Filter{}, 0, false, []store.Precondition{{MustMatch: true}}),
		SchemaCommand("definition user {}\n"),
		SchemaCommand(""),
		ImportCommand([]tuple.Relationship{caveated, group}),
		NoopCommand(),
		{Kind: KindSetMember, Member: MemberInfo{ID: "n1", RaftAddr: "127.0.0.1:1", GRPCAddr: "127.0.0.1:2"}},
		{Kind: KindForgetMember, Member: MemberInfo{ID: "n1"}},
	}
	hashed := WriteCommand([]store.Update{{Op: store.OpTouch, Rel: group}}, nil)
	hashed.SchemaHash = schema.DigestOf("definition user {}\n")
	hashedImport := ImportCommand([]tuple.Relationship{group})
	hashedImport.SchemaHash = schema.DigestOf("")
	records := RecordsCommand([]store.Update{{Op: store.OpTouch, Rel: group}}, []store.Precondition{{MustMatch: true, Filter: filter}},
		[]store.RecordOp{{Space: "scim.users", Key: "u1", Value: []byte(`{"userName":"ana"}`)}, {Space: "scim.users", Key: "u\x002"}, {Space: "token", Key: "t", Value: []byte{}}},
		[]store.RecordCond{{Space: "scim.usernames", Key: "ana"}, {Space: "scim.users", Key: "u1", Value: []byte("old")}})
	withActor := WriteCommand([]store.Update{{Op: store.OpTouch, Rel: group}}, nil)
	withActor.Actor = "0123456789abcdef"
	hashedActor := records
	hashedActor.Actor, hashedActor.SchemaHash = "tok-1", schema.DigestOf("x")
	cmds = append(cmds, hashed, hashedImport, records, RecordsCommand(nil, nil, nil, nil), withActor, hashedActor)
	for i := range cmds {
		if i%2 == 0 {
			cmds[i].Now = now
		}
	}
	return cmds
}

func TestCommandRoundTrip(t *testing.T) {
	for _, c := range sampleCommands() {
		t.Run(c.Kind.String(), func(t *testing.T) {
			data, err := Encode(c)
			if err != nil {
				t.Fatal(err)
			}
			version := byte(commandVersion)
			switch {
			case c.Actor != "":
				version = commandVersionFlags
			case c.SchemaHash != (SchemaHash{}):
				version = commandVersionSchemaHash
			}
			if data[0] != byte(c.Kind) || data[1] != version {
				t.Fatalf("header = % x, want kind %d version %d", data[:2], c.Kind, version)
			}
			got, err := Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			if !commandsEqual(c, got) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, c)
			}
			again, _ := Encode(got)
			if !bytes.Equal(again, data) {
				t.Fatalf("re-encoding differs")
			}
		})
	}
}

// commandsEqual compares with time.Equal and caveat-aware relationship
// equality, treating nil and empty slices alike.
func commandsEqual(a, b Command) bool {
	if !reflect.DeepEqual(a.Records, b.Records) || !reflect.DeepEqual(a.RecordConds, b.RecordConds) || a.Actor != b.Actor {
		return false
	}
	if a.Kind != b.Kind || !a.Now.Equal(b.Now) || a.SchemaHash != b.SchemaHash || a.Schema != b.Schema || a.Limit != b.Limit ||
		a.AllowPartial != b.AllowPartial || a.Member != b.Member || len(a.Updates) != len(b.Updates) ||
		len(a.Relationships) != len(b.Relationships) || len(a.Preconditions) != len(b.Preconditions) {
		return false
	}
	for i := range a.Updates {
		if a.Updates[i].Op != b.Updates[i].Op || !relEqual(a.Updates[i].Rel, b.Updates[i].Rel) {
			return false
		}
	}
	for i := range a.Relationships {
		if !relEqual(a.Relationships[i], b.Relationships[i]) {
			return false
		}
	}
	for i := range a.Preconditions {
		if a.Preconditions[i].MustMatch != b.Preconditions[i].MustMatch || !filterEqual(a.Preconditions[i].Filter, b.Preconditions[i].Filter) {
			return false
		}
	}
	return filterEqual(a.Filter, b.Filter)
}

func relEqual(a, b tuple.Relationship) bool {
	if a.Key() != b.Key() || !a.Expiration.Equal(b.Expiration) || (a.Caveat == nil) != (b.Caveat == nil) {
		return false
	}
	return a.Caveat == nil || (a.Caveat.Name == b.Caveat.Name && reflect.DeepEqual(a.Caveat.Context, b.Caveat.Context))
}

func filterEqual(a, b tuple.Filter) bool {
	return a.ResourceType == b.ResourceType && slicesEqual(a.ResourceIDs, b.ResourceIDs) &&
		a.ResourceIDPrefix == b.ResourceIDPrefix && a.Relation == b.Relation && reflect.DeepEqual(a.Subject, b.Subject) ||
		(a.Subject != nil && b.Subject != nil && a.Subject.Type == b.Subject.Type && slicesEqual(a.Subject.IDs, b.Subject.IDs) &&
			reflect.DeepEqual(a.Subject.Relation, b.Subject.Relation) && a.ResourceType == b.ResourceType &&
			slicesEqual(a.ResourceIDs, b.ResourceIDs) && a.ResourceIDPrefix == b.ResourceIDPrefix && a.Relation == b.Relation)
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestEncodeRejects(t *testing.T) {
	bad := rel("a", "b", "c", "d", "e")
	bad.Caveat = &tuple.Caveat{Name: "c", Context: map[string]any{"x": 3}}
	deep := any(1.0)
	for range maxValueDepth + 2 {
		deep = []any{deep}
	}
	tooDeep := rel("a", "b", "c", "d", "e")
	tooDeep.Caveat = &tuple.Caveat{Name: "c", Context: map[string]any{"x": deep}}
	for _, tc := range []struct {
		name string
		cmd  Command
		want string
	}{
		{"kind", Command{Kind: 99}, "unknown command kind 99"},
		{"zero kind", Command{}, "unknown command kind 0"},
		{"op", WriteCommand([]store.Update{{Op: 0, Rel: bad}}, nil), "update 0: unknown op 0"},
		{"limit", DeleteCommand(tuple.Filter{}, -1, false, nil), "delete limit -1 is out of range"},
		{"huge limit", DeleteCommand(tuple.Filter{}, math.MaxInt32+1, false, nil), "delete limit 2147483648 is out of range"},
		{"caveat type", WriteCommand([]store.Update{{Op: store.OpTouch, Rel: bad}}, nil), "type int is not a JSON value"},
		{"depth", WriteCommand([]store.Update{{Op: store.OpTouch, Rel: tooDeep}}, nil), "nested deeper"},
		{"actor", Command{Kind: KindNoop, Actor: strings.Repeat("a", MaxActor+1)}, "actor is 257 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Encode(tc.cmd)
			if !errors.Is(err, ErrBadCommand) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Encode error = %v, want ErrBadCommand containing %q", err, tc.want)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	good, err := Encode(sampleCommands()[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "missing command kind"},
		{"version", []byte{byte(KindNoop), 9, 0}, "unsupported command version 9"},
		{"zero schema hash", append([]byte{byte(KindNoop), 2, 0}, make([]byte, 16)...), "zero schema hash"},
		{"truncated schema hash", []byte{byte(KindNoop), 2, 0, 1, 2, 3}, "truncated schema hash"},
		{"kind", []byte{42, 1, 0}, "unknown command kind 42"},
		{"trailing", []byte{byte(KindNoop), 1, 0, 0}, "1 trailing bytes"},
		{"truncated", good[:len(good)-3], "exceeds the 3 bytes left"},
		{"truncated header", []byte{byte(KindNoop)}, "truncated: missing command version"},
		{"huge count", []byte{byte(KindImport), 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, "exceeds"},
		{"bad bool", []byte{byte(KindDelete), 1, 0, 0, 0, 0, 0, 0, 0, 7}, "bad boolean"},
		{"bad time", []byte{byte(KindNoop), 1, 5}, "bad time tag"},
		{"nanos", []byte{byte(KindNoop), 1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, "nanoseconds"},
		{"unknown flags", []byte{byte(KindNoop), 3, 0, 0x06, 1, 'a'}, "unknown command flags 0x06"},
		{"flags without actor", []byte{byte(KindNoop), 3, 0, 0x00}, "without an actor"},
		{"empty actor", []byte{byte(KindNoop), 3, 0, 0x02, 0}, "actor of 0 bytes"},
		{"record value length", []byte{byte(KindRecords), 1, 0, 0, 0, 1, 1, 's', 1, 'k', 1, 9, 'x'}, "value length 9 exceeds"},
		{"record value flag", []byte{byte(KindRecords), 1, 0, 0, 0, 1, 1, 's', 1, 'k', 2}, "bad boolean"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.data)
			if !errors.Is(err, ErrBadCommand) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Decode error = %v, want ErrBadCommand containing %q", err, tc.want)
			}
		})
	}
}

// TestVersion1CommandsStillDecode: an entry written before commands could
// carry a schema hash (format version 1, bytes from that build) decodes to
// a command without one, and a command without one still encodes to exactly
// those bytes.
func TestVersion1CommandsStillDecode(t *testing.T) {
	old, err := hex.DecodeString("010101cad6b9950d00010103646f63036f6c6406766965776572047573657203616e6100000000")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(old)
	if err != nil {
		t.Fatal(err)
	}
	want := WriteCommand([]store.Update{create("old")}, nil)
	want.Now = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if !commandsEqual(got, want) || got.SchemaHash != (SchemaHash{}) {
		t.Fatalf("decoded %+v, want %+v", got, want)
	}
	if again, _ := Encode(want); !bytes.Equal(again, old) {
		t.Fatalf("a command without a schema hash encodes to % x, not the version 1 bytes % x", again, old)
	}
}

func TestFloatBitsSurvive(t *testing.T) {
	r := rel("a", "b", "c", "d", "e")
	r.Caveat = &tuple.Caveat{Name: "c", Context: map[string]any{"inf": math.Inf(-1), "neg0": math.Copysign(0, -1)}}
	data, err := Encode(ImportCommand([]tuple.Relationship{r}))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	ctx := got.Relationships[0].Caveat.Context
	if !math.IsInf(ctx["inf"].(float64), -1) || !math.Signbit(ctx["neg0"].(float64)) {
		t.Fatalf("floats changed: %v", ctx)
	}
}

// FuzzDecode: Decode never panics, and whatever it accepts re-encodes to a
// canonical form that decodes to the same bytes again.
func FuzzDecode(f *testing.F) {
	for _, c := range sampleCommands() {
		data, err := Encode(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrBadCommand) {
				t.Fatalf("error does not wrap ErrBadCommand: %v", err)
			}
			return
		}
		e1, err := Encode(c)
		if err != nil {
			t.Fatalf("decoded command does not encode: %v", err)
		}
		c2, err := Decode(e1)
		if err != nil {
			t.Fatalf("re-encoded command does not decode: %v", err)
		}
		e2, err := Encode(c2)
		if err != nil || !bytes.Equal(e1, e2) {
			t.Fatalf("encoding not stable: %v\n% x\n% x", err, e1, e2)
		}
		if !commandsEqual(c, c2) {
			t.Fatalf("round trip changed the command")
		}
	})
}

// FuzzDecodeMembers: the member table decoder never panics and round-trips.
func FuzzDecodeMembers(f *testing.F) {
	f.Add(encodeMembers(7, map[string]MemberInfo{"a": {ID: "a", RaftAddr: "r", GRPCAddr: "g"}, "b": {ID: "b"}}))
	f.Add([]byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		idx, m, err := decodeMembers(data)
		if err != nil {
			return
		}
		idx2, m2, err := decodeMembers(encodeMembers(idx, m))
		if err != nil || idx2 != idx || !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip: %v %d %v", err, idx2, m2)
		}
	})
}
