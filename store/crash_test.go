package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/tuple"
)

// The crash test's child writes a deterministic history: revision r creates
// crashPerRev relationships doc:r<r>_<i>, deletes the even ones of revision
// r-1, and every tenth revision is instead a bulk Import of crashImport
// relationships. crashState computes the state after revision n.
const (
	crashPerRev = 50
	crashImport = 3000
	crashDirEnv = "AMBIT_CRASH_DIR"
)

func crashBatch(r tuple.Revision) (updates []Update, imported []tuple.Relationship) {
	mk := func(prefix string, rev tuple.Revision, i int) tuple.Relationship {
		return tuple.Relationship{Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprintf("%s%d_%d", prefix, rev, i)}, Relation: "viewer",
			Subject: tuple.SubjectRef{Type: "user", ID: fmt.Sprintf("u%d", i%17)}}
	}
	if r%10 == 0 {
		for i := range crashImport {
			imported = append(imported, mk("i", r, i))
		}
		return nil, imported
	}
	for i := range crashPerRev {
		updates = append(updates, Update{Op: OpCreate, Rel: mk("r", r, i)})
		if i%2 == 0 && r > 1 && (r-1)%10 != 0 {
			updates = append(updates, Update{Op: OpDelete, Rel: mk("r", r-1, i)})
		}
	}
	return updates, nil
}

func crashState(n tuple.Revision) []string {
	set := map[string]bool{}
	for r := tuple.Revision(1); r <= n; r++ {
		u, imp := crashBatch(r)
		for _, rel := range imp {
			set[rel.Key().String()] = true
		}
		for _, x := range u {
			if x.Op == OpDelete {
				delete(set, x.Rel.Key().String())
			} else {
				set[x.Rel.Key().String()] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestCrashChild is the child process of TestCrashRecovery; it does nothing
// unless AMBIT_CRASH_DIR is set.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("child of TestCrashRecovery")
	}
	// Imports of at least 1000 go through the StreamWriter path while the
	// store is small enough, so kills land in both import paths.
	s, err := Open(Options{Dir: dir, GCInterval: -1, Logger: quiet, MemTableSize: 4 << 20, BlockCacheSize: 4 << 20, streamImportMin: 1000})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	fail := func(err error) {
		fmt.Fprintln(out, "error", err)
		out.Flush()
		os.Exit(2)
	}
	for r := s.AppliedRevision() + 1; ; {
		u, imp := crashBatch(r)
		now := time.Unix(int64(r), 0)
		if imp != nil {
			if err := s.Import(r, now, imp); err != nil {
				fail(err)
			}
			fmt.Fprintln(out, "ack", r) // acknowledged: Import returned
			out.Flush()
			r++
			continue
		}
		// Plain revisions go in pairs through Write and in threes through
		// WriteMany, never across an import.
		if r%2 == 0 {
			if err := s.Write(r, now, u, nil); err != nil {
				fail(err)
			}
			fmt.Fprintln(out, "ack", r)
			out.Flush()
			r++
			continue
		}
		var reqs []WriteRequest
		for ; len(reqs) < 3 && r%10 != 0; r++ {
			u, _ := crashBatch(r)
			reqs = append(reqs, WriteRequest{Rev: r, Now: time.Unix(int64(r), 0), Updates: u})
		}
		res, err := s.WriteMany(reqs)
		if err != nil {
			fail(err)
		}
		for i, e := range res {
			if e != nil {
				fail(e)
			}
			fmt.Fprintln(out, "ack", reqs[i].Rev)
		}
		out.Flush()
	}
}

// TestCrashRecovery SIGKILLs a child mid-stream several times and checks,
// after each reopen, that every acknowledged batch is there and that the
// state is exactly the state after some whole revision (no half batch).
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	lastAck := tuple.Revision(0)
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v=false")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Round 0 kills just after revision 9 is acknowledged, so inside
		// revision 10's import while the store is small (StreamWriter path);
		// round 1 among plain writes; round 2 inside a later import (write
		// batch path, the store is larger than one import by then).
		stop := func(acks int, rev tuple.Revision) bool {
			switch round {
			case 0:
				return rev%10 == 9
			case 1:
				return acks >= 22
			default:
				return acks >= 15 && rev%10 == 9
			}
		}
		delay := map[int]time.Duration{0: 2 * time.Millisecond, 1: 7 * time.Millisecond, 2: 2 * time.Millisecond}[round]
		sc := bufio.NewScanner(stdout)
		acks := 0
		for sc.Scan() {
			line := sc.Text()
			if rest, ok := strings.CutPrefix(line, "ack "); ok {
				n, err := strconv.ParseUint(rest, 10, 64)
				if err != nil {
					t.Fatalf("child said %q", line)
				}
				lastAck = tuple.Revision(n)
				if acks++; stop(acks, lastAck) {
					break
				}
				continue
			}
			if strings.HasPrefix(line, "error") {
				t.Fatalf("child: %s", line)
			}
		}
		time.Sleep(delay) // land inside the next batch
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for sc.Scan() { // acks printed before the kill landed still count
			if rest, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
				n, _ := strconv.ParseUint(rest, 10, 64)
				lastAck = tuple.Revision(n)
			}
		}
		cmd.Wait()

		s, err := Open(Options{Dir: dir, GCInterval: -1, Logger: quiet, MemTableSize: 4 << 20, BlockCacheSize: 4 << 20})
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		applied := s.AppliedRevision()
		if applied < lastAck {
			t.Fatalf("round %d: applied revision %d after reopen, but %d was acknowledged", round, applied, lastAck)
		}
		sn, err := s.Snapshot(applied)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for r, err := range sn.Query(context.Background(), tuple.Filter{ResourceType: "doc"}) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, r.Key().String())
		}
		slices.Sort(got)
		if want := crashState(applied); !slices.Equal(got, want) {
			t.Fatalf("round %d: state at applied revision %d is not the state after that revision (%d relationships, want %d):\n%s",
				round, applied, len(got), len(want), diff(got, want))
		}
		t.Logf("round %d: killed after ack %d; reopened at %d with %d relationships", round, lastAck, applied, len(got))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
