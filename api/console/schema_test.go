package console

import (
	"slices"
	"strings"
	"testing"
)

func TestHighlight(t *testing.T) {
	src := "// docs\ndefinition doc {\n\trelation viewer: user\n\tpermission view = viewer + parent->view\n}"
	var got []string
	for _, tok := range Highlight(src) {
		got = append(got, tok.Class+":"+src[tok.Start:tok.End])
	}
	for _, want := range []string{"comment:// docs", "kw:definition", "name:doc", "kw:relation", "name:viewer", "op::", "kw:permission", "op:+", "op:->", "name:parent"} {
		if !slices.Contains(got, want) {
			t.Errorf("no token %s in %q", want, got)
		}
	}
	// Unscannable input still yields in-range tokens and ends.
	for _, bad := range []string{"definition \x00 {", "caveat c(x int) { x == \"a\" }", "/* open"} {
		for _, tok := range Highlight(bad) {
			if tok.Start < 0 || tok.End > len(bad) || tok.Start >= tok.End {
				t.Errorf("%q: token %+v out of range", bad, tok)
			}
		}
	}
}

func TestSchemaDiagram(t *testing.T) {
	d, err := SchemaDiagram(`definition user {}
definition group {
	relation member: user | group#member
}
definition folder {
	relation viewer: user:* | group#member
	permission view = viewer
}
definition doc {
	relation parent: folder
	relation banned: user
	permission view = parent->view - banned
}`)
	if err != nil {
		t.Fatal(err)
	}
	var edges []string
	for _, e := range d.Edges {
		edges = append(edges, e.From+" "+e.Kind+" "+e.To)
	}
	for _, want := range []string{"group#member type user", "group#member type group#member", "folder#viewer type user",
		"folder#view computed folder#viewer", "doc#view arrow folder#view", "doc#view computed doc#banned", "doc#parent type folder"} {
		if !slices.Contains(edges, want) {
			t.Errorf("no edge %q in %q", want, edges)
		}
	}
	rank := map[string]int{}
	text := map[string]string{}
	for _, def := range d.Definitions {
		rank[def.Name] = def.Rank
		for _, r := range def.Relations {
			text[def.Name+"#"+r.Name] = r.Text
		}
	}
	if !(rank["user"] < rank["group"] && rank["group"] < rank["folder"] && rank["folder"] < rank["doc"]) {
		t.Errorf("ranks %v: want user < group < folder < doc (each refers to the one before)", rank)
	}
	if text["doc#view"] != "parent->view - banned" || text["folder#viewer"] != "user:* | group#member" {
		t.Errorf("relation texts %v", text)
	}
	if _, err := SchemaDiagram("definition doc {\n relation viewer: nobody\n}"); err == nil || !strings.Contains(err.Error(), "nobody") {
		t.Errorf("a schema that does not compile: %v", err)
	}
}
