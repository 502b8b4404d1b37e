package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/validation"
)

// `ambit access` and `ambit why` on the collaboration model.
func TestAccessAndWhyCommands(t *testing.T) {
	a, _ := startServe(t, serveConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cli := func(args ...string) (string, error) {
		t.Helper()
		var out, errOut bytes.Buffer
		err := run(ctx, append(args, "--endpoint", a.grpc), &out, &errOut)
		return strings.TrimSpace(out.String()), err
	}
	data, err := os.ReadFile("../../schema/examples/collab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := validation.Parse("collab.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	schemaFile, relFile := filepath.Join(dir, "collab.zed"), filepath.Join(dir, "rels.txt")
	var rels []string
	for _, r := range docs[0].Relationships {
		rels = append(rels, r.String())
	}
	if err := os.WriteFile(schemaFile, []byte(docs[0].Schema), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(relFile, []byte(strings.Join(rels, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := cli("schema", "write", schemaFile); err != nil {
		t.Fatalf("schema write: %v", err)
	}
	if _, err := cli("import", relFile); err != nil {
		t.Fatalf("import: %v", err)
	}

	got, err := cli("access", "dataset:cytometry", "--ranks", "edit,read", "--consistency", "full")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"SUBJECT     ROLE  VIA",
		"user:ana    edit  owner & org → organization:lab → account",
		"user:bob    read  reader → group:imaging#member → direct_member & group:imaging: org → organization:lab → account & org → organization:lab",
		"user:ed     edit  editor → group:proteomics#member → direct_member & group:proteomics: org → organization:lab → account & org → organization:lab",
		"user:fay    edit  editor & org → organization:lab → account",
		"user:pia    edit  editor → group:proteomics#member → admin & group:proteomics: org → organization:lab → account & org → organization:lab",
		"user:raj    read  workflow → workflow:gating → reader & org → organization:lab → account",
		"user:wendy  read  workflow → workflow:gating → editor & org → organization:lab → account",
	}, "\n")
	if got != want {
		t.Errorf("access:\n%s\nwant\n%s", got, want)
	}
	if got, err := cli("access", "dataset:cytometry", "--ranks", "edit,read", "--json"); err != nil || strings.Count(got, "\n") != 6 || !strings.Contains(got, `"permission":"edit"`) {
		t.Errorf("access --json: %q %v", got, err)
	}
	if _, err := cli("access", "dataset:cytometry", "--ranks", "edit,publish"); err == nil || !strings.Contains(err.Error(), "ranked_permissions[1]") {
		t.Errorf("access with an unknown rank: %v", err)
	}

	got, err = cli("why", "dataset:cytometry", "edit", "user:raj")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"dataset:cytometry#edit@user:raj: NO",
		"missing dataset:cytometry#owner@user:raj",
		"missing dataset:cytometry#editor@user:raj",
		"dataset:cytometry#editor  NO  — needs membership of a group that holds dataset:cytometry#editor: group:proteomics",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("why lacks %q:\n%s", want, got)
		}
	}
	got, err = cli("why", "dataset:cytometry", "read", "user:raj")
	if err != nil || !strings.HasPrefix(got, "dataset:cytometry#read@user:raj: HAS\nproof: dataset:cytometry#workflow@workflow:gating\nproof: workflow:gating#reader@user:raj\n"+
		"proof: dataset:cytometry#org@organization:lab\nproof: organization:lab#account@user:*\n") {
		t.Errorf("why (grant): %q %v", got, err)
	}
}
