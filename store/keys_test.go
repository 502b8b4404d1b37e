package store

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/tuple"
)

func key(rt, rid, rel, st, sid, srel string) tuple.Key {
	return tuple.Key{Resource: tuple.ObjectRef{Type: rt, ID: rid}, Relation: rel, Subject: tuple.SubjectRef{Type: st, ID: sid, Relation: srel}}
}

func TestComponentEncoding(t *testing.T) {
	tests := []struct {
		in   string
		want []byte
	}{
		{"", []byte{0, 1}},
		{"a", []byte{'a', 0, 1}},
		{"a/x", []byte{'a', '/', 'x', 0, 1}},
		{"a\x00b", []byte{'a', 0, 0xFF, 'b', 0, 1}},
		{"\x00", []byte{0, 0xFF, 0, 1}},
		{"\x00\x01", []byte{0, 0xFF, 1, 0, 1}},
	}
	for _, tc := range tests {
		got := appendComponent(nil, tc.in)
		if !bytes.Equal(got, tc.want) {
			t.Errorf("appendComponent(%q) = % x, want % x", tc.in, got, tc.want)
		}
		c, rest, err := readComponent(append(got, 'z'))
		if err != nil || string(c) != tc.in || string(rest) != "z" {
			t.Errorf("readComponent(% x) = %q, %q, %v", got, c, rest, err)
		}
	}
}

func TestComponentOrderAndPrefixFreedom(t *testing.T) {
	alphabet := []byte{0x00, 0x01, 0x02, '/', 'a', 'b', 0xFE, 0xFF}
	rng := rand.New(rand.NewPCG(3, 4))
	var strs []string
	for range 300 {
		b := make([]byte, rng.IntN(5))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		strs = append(strs, string(b))
	}
	for _, a := range strs {
		ea := appendComponent(nil, a)
		for _, b := range strs {
			eb := appendComponent(nil, b)
			if got, want := bytes.Compare(ea, eb), strings.Compare(a, b); got != want {
				t.Fatalf("order of %q vs %q: encoded %d, raw %d", a, b, got, want)
			}
			if a != b && bytes.HasPrefix(eb, ea) {
				t.Fatalf("encoding of %q is a prefix of the encoding of %q", a, b)
			}
			// The unterminated escape is a prefix exactly when the raw string is.
			if got, want := bytes.HasPrefix(eb, appendEscaped(nil, a)), strings.HasPrefix(b, a); got != want {
				t.Fatalf("prefix %q of %q: encoded %v, raw %v", a, b, got, want)
			}
		}
	}
}

// TestNeighbourKeys: a seek prefix for one object, relation or subject never
// reaches into a neighbour's keys.
func TestNeighbourKeys(t *testing.T) {
	prefix := componentsPrefix(spaceResource, "doc", "a")
	for _, k := range []tuple.Key{
		key("doc", "a/x", "viewer", "user", "ana", ""),
		key("doc", "ab", "viewer", "user", "ana", ""),
		key("docs", "a", "viewer", "user", "ana", ""),
	} {
		if bytes.HasPrefix(resourceKey(k), prefix) {
			t.Errorf("prefix for doc:a matches %s", k)
		}
	}
	if !bytes.HasPrefix(resourceKey(key("doc", "a", "viewer", "user", "ana", "")), prefix) {
		t.Error("prefix for doc:a misses doc:a")
	}
	sp := componentsPrefix(spaceSubject, "user", "ana")
	if bytes.HasPrefix(subjectKey(key("doc", "a", "viewer", "user", "anabel", "")), sp) {
		t.Error("subject prefix user:ana matches user:anabel")
	}
}

// TestPrefixBuilders: the prefixes the planner seeks are prefixes of exactly
// the keys they stand for, and a body from the expiry index or a snapshot
// becomes the relationship's own key.
func TestPrefixBuilders(t *testing.T) {
	k := key("doc", "a\x00b", "viewer", "group", "eng", "member")
	rk, sk := resourceKey(k), subjectKey(k)
	for i, comps := range [][]string{{}, {"doc"}, {"doc", "a\x00b"}, {"doc", "a\x00b", "viewer"}, {"doc", "a\x00b", "viewer", "group", "eng", "member"}} {
		if p := componentsPrefix(spaceResource, comps...); !bytes.HasPrefix(rk, p) || (i == 4 && !bytes.Equal(rk, p)) {
			t.Errorf("resource prefix %q: %x is not a prefix of %x", comps, p, rk)
		}
	}
	if p := componentsPrefix(spaceSubject, "group", "eng", "member", "doc", "viewer", "a\x00b"); !bytes.Equal(sk, p) {
		t.Errorf("whole subject prefix %x, key %x", p, sk)
	}
	for _, c := range []struct {
		prefix string
		match  bool
	}{{"a", true}, {"a\x00", true}, {"a\x00b", true}, {"b", false}, {"a\x00bc", false}, {"a\x01", false}} {
		if got := bytes.HasPrefix(rk, resourceIDPrefixKey("doc", c.prefix)); got != c.match {
			t.Errorf("id prefix %q matches doc:a\\x00b: %v, want %v", c.prefix, got, c.match)
		}
	}
	if got := resourceKeyFromBody(rk[1:]); !bytes.Equal(got, rk) {
		t.Errorf("key from body %x, want %x", got, rk)
	}
	if p := spacePrefix(spaceExpiry); !bytes.HasPrefix(expiryKey(time.Unix(1, 0), rk[1:]), p) {
		t.Error("expiry keys are not under the expiry keyspace's prefix")
	}
}

func TestKeyRoundTrip(t *testing.T) {
	tests := []tuple.Key{
		key("doc", "a", "viewer", "user", "ana", ""),
		key("org/team/doc", "x|y=z+1", "viewer", "group", "eng", "member"),
		key("doc", "a", "viewer", "user", "*", ""),
		key("", "", "", "", "", ""),
		key("t\x00", "\x00\x00", "r\x01", "\xff", "s", "\x00"),
	}
	for _, k := range tests {
		rk, sk := resourceKey(k), subjectKey(k)
		var d keyDecoder
		if got, err := d.resource(rk); err != nil || got != k {
			t.Errorf("resource round trip of %q: %q, %v", k, got, err)
		}
		if got, err := d.subject(sk); err != nil || got != k {
			t.Errorf("subject round trip of %q: %q, %v", k, got, err)
		}
		if got, err := subjectKeyFromBody(rk[1:]); err != nil || !bytes.Equal(got, sk) {
			t.Errorf("subjectKeyFromBody(%q) = % x, %v; want % x", k, got, err, sk)
		}
		if !strings.Contains(k.String(), "\x00") && len(rk) != 1+keyBodySize(k) { // an exact hint unless escapes grow it
			t.Errorf("keyBodySize(%q) = %d, key is %d bytes", k, keyBodySize(k), len(rk)-1)
		}
	}
}

func TestDecodeKeyErrors(t *testing.T) {
	good := resourceKey(key("doc", "a", "viewer", "user", "ana", ""))
	tests := map[string][]byte{
		"empty":           nil,
		"wrong keyspace":  append([]byte{'q'}, good[1:]...),
		"truncated":       good[:len(good)-1],
		"missing part":    good[:len(good)-2],
		"trailing":        append(slices.Clone(good), 'x'),
		"bad escape":      {spaceResource, 'a', 0x00, 0x02},
		"lone zero":       {spaceResource, 'a', 0x00},
		"bad escape late": {spaceResource, 'a', 0x00, 0xFF, 'b', 0x00, 0x07},
	}
	for name, b := range tests {
		if k, err := DecodeKey(b); err == nil {
			t.Errorf("%s: DecodeKey(% x) = %q, want an error", name, b, k)
		}
	}
}

func TestValueRoundTrip(t *testing.T) {
	exp := time.Date(2031, 2, 3, 4, 5, 6, 7, time.UTC)
	tests := []struct {
		name string
		rel  tuple.Relationship
		size int // encoded size, -1 to skip
	}{
		{"plain", tuple.MustParse("doc:a#viewer@user:ana"), 0},
		{"expiring", tuple.Relationship{Expiration: exp}, 14},
		{"far-future expiration", tuple.Relationship{Expiration: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)}, 14},
		{"caveat without context", tuple.Relationship{Caveat: &tuple.Caveat{Name: "cav"}}, 7},
		{"caveat with context", tuple.MustParse(`doc:a#viewer@user:ana[cav:{"a":1,"b":[true,null,"x"],"c":{"d":2.5}}]`), -1},
		{"both", tuple.Relationship{Expiration: exp, Caveat: &tuple.Caveat{Name: "cav", Context: map[string]any{"x": "y"}}}, -1},
		{"pre-1970 expiration", tuple.Relationship{Expiration: time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)}, 14},
	}
	for _, tc := range tests {
		ctx, err := marshalContext(tc.rel.Caveat)
		if err != nil {
			t.Fatal(err)
		}
		v := encodeValue(&tc.rel, ctx)
		if tc.size >= 0 && len(v) != tc.size {
			t.Errorf("%s: encoded in %d bytes, want %d", tc.name, len(v), tc.size)
		}
		var got tuple.Relationship
		if err := decodeValue(v, &got); err != nil {
			t.Fatalf("%s: decode: %v", tc.name, err)
		}
		if !got.Caveat.Equal(tc.rel.Caveat) || !got.Expiration.Equal(tc.rel.Expiration) {
			t.Errorf("%s: round trip gave %v %v, want %v %v", tc.name, got.Caveat, got.Expiration, tc.rel.Caveat, tc.rel.Expiration)
		}
		if e, err := valueExpiration(v); err != nil || !e.Equal(tc.rel.Expiration) {
			t.Errorf("%s: valueExpiration = %v, %v", tc.name, e, err)
		}
	}
}

func TestDecodeValueErrors(t *testing.T) {
	tests := map[string][]byte{
		"one byte":          {1},
		"unknown version":   {9, 0},
		"unknown flag":      {1, 0x04},
		"short expiration":  {1, flagExpiration, 0, 0, 0},
		"trailing":          {1, 0, 'x'},
		"caveat name long":  {1, flagCaveat, 10, 'a'},
		"caveat bad varint": {1, flagCaveat, 0x80},
		"context not json":  {1, flagCaveat, 1, 'a', 2, '{', 'x'},
		"context not map":   {1, flagCaveat, 1, 'a', 2, '[', ']'},
	}
	for name, v := range tests {
		var r tuple.Relationship
		if err := decodeValue(v, &r); err == nil {
			t.Errorf("%s: decodeValue(% x) succeeded", name, v)
		}
	}
}

func TestChangeChunkRoundTrip(t *testing.T) {
	var c changeChunk
	r1 := tuple.MustParse(`doc:a#viewer@user:ana[cav:{"x":1}]`)
	r2 := tuple.MustParse("doc:b#viewer@group:g#member")
	ctx, _ := marshalContext(r1.Caveat)
	c.add(OpTouch, resourceKey(r1.Key())[1:], encodeValue(&r1, ctx))
	c.add(OpDelete, resourceKey(r2.Key())[1:], nil)
	var ch Change
	if err := decodeChangeChunk(c.encode(), &ch); err != nil {
		t.Fatal(err)
	}
	if len(ch.Updates) != 2 || ch.Updates[0].Op != OpTouch || !ch.Updates[0].Rel.Equal(r1) ||
		ch.Updates[1].Op != OpDelete || !ch.Updates[1].Rel.Equal(r2) {
		t.Fatalf("round trip: %+v", ch.Updates)
	}
	var sc Change
	if err := decodeChangeChunk(encodeSchemaChange("definition x {}"), &sc); err != nil || sc.Schema == nil || *sc.Schema != "definition x {}" {
		t.Fatalf("schema chunk: %v %v", sc.Schema, err)
	}
	for name, v := range map[string][]byte{
		"empty":        nil,
		"bad kind":     {1, 9},
		"huge count":   {1, kindUpdates, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F},
		"bad op":       {1, kindUpdates, 1, 7, 0, 0, 0},
		"truncated":    c.encode()[:10],
		"trailing":     append(c.encode(), 0),
		"bad body key": {1, kindUpdates, 1, byte(OpTouch), 1, 'a', 0},
	} {
		var ch Change
		if err := decodeChangeChunk(v, &ch); err == nil {
			t.Errorf("%s: decodeChangeChunk(% x) succeeded", name, v)
		}
	}
}

func TestExpiryKeyOrder(t *testing.T) {
	times := []time.Time{
		time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(0, -1),
		time.Unix(0, 0),
		time.Unix(0, 1),
		time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	body := resourceKey(key("doc", "a", "viewer", "user", "ana", ""))[1:]
	for i := 1; i < len(times); i++ {
		a, b := expiryKey(times[i-1], body), expiryKey(times[i], body)
		if bytes.Compare(a, b) >= 0 {
			t.Errorf("expiry key for %v does not sort before %v", times[i-1], times[i])
		}
		got, gb, err := decodeExpiryKey(b)
		if err != nil || !got.Equal(times[i]) || !bytes.Equal(gb, body) {
			t.Errorf("decodeExpiryKey: %v %q %v", got, gb, err)
		}
	}
}

// Fuzz targets: decoders never panic, and what decodes re-encodes to the same bytes.

func FuzzDecodeKey(f *testing.F) {
	f.Add(resourceKey(key("doc", "a", "viewer", "user", "ana", "")))
	f.Add(subjectKey(key("doc", "a", "viewer", "group", "g", "member")))
	f.Add(resourceKey(key("t\x00", "\x00", "", "", "*", "\xff")))
	f.Add([]byte{spaceResource, 0, 0xFF, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := DecodeKey(b)
		if err != nil {
			return
		}
		var re []byte
		if b[0] == spaceSubject {
			re = subjectKey(k)
		} else {
			re = resourceKey(k)
		}
		if !bytes.Equal(re, b) {
			t.Fatalf("DecodeKey(% x) = %q re-encodes to % x", b, k, re)
		}
		if _, err := subjectKeyFromBody(resourceKey(k)[1:]); err != nil {
			t.Fatalf("subjectKeyFromBody of a valid body: %v", err)
		}
	})
}

func FuzzKeyRoundTrip(f *testing.F) {
	f.Add("doc", "a", "viewer", "user", "ana", "")
	f.Add("a\x00", "\x00\x01", "", "\xff", "*", "m")
	f.Fuzz(func(t *testing.T, rt, rid, rel, st, sid, srel string) {
		k := key(rt, rid, rel, st, sid, srel)
		var d keyDecoder
		if got, err := d.resource(resourceKey(k)); err != nil || got != k {
			t.Fatalf("resource round trip of %q: %q %v", k, got, err)
		}
		if got, err := d.subject(subjectKey(k)); err != nil || got != k {
			t.Fatalf("subject round trip of %q: %q %v", k, got, err)
		}
	})
}

func FuzzDecodeValue(f *testing.F) {
	exp := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, r := range []tuple.Relationship{
		{},
		{Expiration: exp},
		{Caveat: &tuple.Caveat{Name: "c", Context: map[string]any{"a": 1.0}}, Expiration: exp},
	} {
		ctx, _ := marshalContext(r.Caveat)
		f.Add(encodeValue(&r, ctx))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		var r tuple.Relationship
		if err := decodeValue(v, &r); err != nil {
			return
		}
		ctx, err := marshalContext(r.Caveat)
		if err != nil {
			t.Fatalf("decoded context does not marshal: %v", err)
		}
		var again tuple.Relationship
		if err := decodeValue(encodeValue(&r, ctx), &again); err != nil {
			t.Fatalf("re-encoded value does not decode: %v", err)
		}
		if !again.Caveat.Equal(r.Caveat) || !again.Expiration.Equal(r.Expiration) {
			t.Fatalf("round trip: %v %v → %v %v", r.Caveat, r.Expiration, again.Caveat, again.Expiration)
		}
		if e, err := valueExpiration(v); err != nil || !e.Equal(r.Expiration) {
			t.Fatalf("valueExpiration disagrees with decodeValue: %v %v", e, err)
		}
	})
}

func FuzzDecodeChangeChunk(f *testing.F) {
	var c changeChunk
	r := tuple.MustParse(`doc:a#viewer@user:ana[cav:{"x":1}]`)
	ctx, _ := marshalContext(r.Caveat)
	c.add(OpTouch, resourceKey(r.Key())[1:], encodeValue(&r, ctx))
	c.add(OpDelete, resourceKey(r.Key())[1:], nil)
	f.Add(c.encode())
	f.Add(encodeSchemaChange("definition x {}"))
	f.Fuzz(func(t *testing.T, v []byte) {
		var ch Change
		if err := decodeChangeChunk(v, &ch); err != nil {
			return
		}
		// Re-encode the updates and decode again: same content.
		var re changeChunk
		for _, u := range ch.Updates {
			ctx, err := marshalContext(u.Rel.Caveat)
			if err != nil {
				t.Fatal(err)
			}
			re.add(u.Op, resourceKey(u.Rel.Key())[1:], encodeValue(&u.Rel, ctx))
		}
		if ch.Schema != nil {
			return
		}
		var again Change
		if err := decodeChangeChunk(re.encode(), &again); err != nil || len(again.Updates) != len(ch.Updates) {
			t.Fatalf("re-encoded chunk: %d updates, %v", len(again.Updates), err)
		}
		for i := range ch.Updates {
			if again.Updates[i].Op != ch.Updates[i].Op || !again.Updates[i].Rel.Equal(ch.Updates[i].Rel) {
				t.Fatalf("update %d: %v → %v", i, ch.Updates[i], again.Updates[i])
			}
		}
	})
}
