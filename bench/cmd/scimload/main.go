// Command scimload provisions users, groups and memberships into a running
// ambit through its SCIM endpoints, as an identity provider's connector
// does (several requests in flight, a userName lookup before each create,
// members added by PATCH in batches), and reports how long each phase took
// and, given the server's process id, the server's CPU time.
//
//	go run ./bench/cmd/scimload --url http://127.0.0.1:8080/scim/v2 --users 10000 --groups 1000 --memberships 50000 --big-group 10000 --pid PID
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type config struct {
	base        string
	key         string
	users       int
	groups      int
	memberships int
	concurrency int
	batch       int
	lookup      bool
	bigGroup    int
	bigBatch    int
	pid         int
}

func main() {
	var c config
	flag.StringVar(&c.base, "url", "http://127.0.0.1:8080/scim/v2", "the SCIM base URL")
	flag.StringVar(&c.key, "key", "", "bearer key (--scim-key or a preshared key); empty sends none")
	flag.IntVar(&c.users, "users", 10000, "users to create")
	flag.IntVar(&c.groups, "groups", 1000, "groups to create")
	flag.IntVar(&c.memberships, "memberships", 50000, "memberships to add, spread evenly over the groups")
	flag.IntVar(&c.concurrency, "concurrency", 16, "requests in flight")
	flag.IntVar(&c.batch, "batch", 10, "members added per PATCH")
	flag.BoolVar(&c.lookup, "lookup", true, "look each user up by userName before creating it (as Okta does)")
	flag.IntVar(&c.bigGroup, "big-group", 0, "then build one group of this many members (at most --users)")
	flag.IntVar(&c.bigBatch, "big-batch", 500, "members added per PATCH to the big group")
	flag.IntVar(&c.pid, "pid", 0, "the server's process id: report its CPU time per phase (Linux /proc)")
	flag.Parse()
	if err := run(context.Background(), c, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "scimload:", err)
		os.Exit(1)
	}
}

type client struct {
	c        config
	http     *http.Client
	requests atomic.Int64
}

func (cl *client) do(ctx context.Context, method, path string, body any, want int) (map[string]any, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, cl.c.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/scim+json")
	if cl.c.key != "" {
		req.Header.Set("Authorization", "Bearer "+cl.c.key)
	}
	cl.requests.Add(1)
	resp, err := cl.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s = %d %s, want %d", method, path, resp.StatusCode, bytes.TrimSpace(data), want)
	}
	var out map[string]any
	if len(data) > 0 {
		if err := json.Unmarshal(data, &out); err != nil {
			return nil, fmt.Errorf("%s %s: %v", method, path, err)
		}
	}
	return out, nil
}

// parallel runs f(0..n-1) on workers goroutines and returns the first
// error.
func parallel(ctx context.Context, workers, n int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func run(ctx context.Context, c config, w io.Writer) error {
	if c.groups <= 0 || c.users <= 0 || c.memberships/c.groups > c.users {
		return fmt.Errorf("need users > 0, groups > 0 and memberships/groups <= users")
	}
	cl := &client{c: c, http: &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: c.concurrency}}}
	userIDs := make([]string, c.users)
	groupIDs := make([]string, c.groups)
	start := time.Now()
	phase := func(name string, n int, f func(ctx context.Context, i int) error) error {
		t0, r0, cpu0 := time.Now(), cl.requests.Load(), serverCPU(c.pid)
		if err := parallel(ctx, c.concurrency, n, f); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		d, reqs := time.Since(t0), cl.requests.Load()-r0
		fmt.Fprintf(w, "%-12s %6d requests in %8.2fs  %7.0f req/s", name, reqs, d.Seconds(), float64(reqs)/d.Seconds())
		if c.pid > 0 {
			cpu := serverCPU(c.pid) - cpu0
			fmt.Fprintf(w, "  server CPU %7.2fs, %6.2f ms/request", cpu.Seconds(), cpu.Seconds()*1000/float64(reqs))
		}
		fmt.Fprintln(w)
		return nil
	}
	err := phase("users", c.users, func(ctx context.Context, i int) error {
		name := fmt.Sprintf("user%05d@example.com", i)
		if c.lookup {
			out, err := cl.do(ctx, "GET", "/Users?filter="+url.QueryEscape(`userName eq "`+name+`"`), nil, 200)
			if err != nil {
				return err
			}
			if out["totalResults"] != 0.0 {
				return fmt.Errorf("%s exists already (run against an empty server)", name)
			}
		}
		out, err := cl.do(ctx, "POST", "/Users", map[string]any{
			"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": name, "externalId": fmt.Sprintf("ext-%d", i),
			"name":   map[string]any{"givenName": "User", "familyName": fmt.Sprint(i)},
			"emails": []any{map[string]any{"value": name, "type": "work", "primary": true}}, "active": true,
		}, 201)
		if err != nil {
			return err
		}
		userIDs[i], _ = out["id"].(string)
		return nil
	})
	if err != nil {
		return err
	}
	err = phase("groups", c.groups, func(ctx context.Context, i int) error {
		out, err := cl.do(ctx, "POST", "/Groups", map[string]any{
			"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": fmt.Sprintf("group %d", i), "members": []any{},
		}, 201)
		if err != nil {
			return err
		}
		groupIDs[i], _ = out["id"].(string)
		return nil
	})
	if err != nil {
		return err
	}
	per := c.memberships / c.groups
	err = phase("memberships", c.groups, func(ctx context.Context, g int) error {
		for j := 0; j < per; j += c.batch {
			var members []any
			for k := j; k < min(j+c.batch, per); k++ {
				members = append(members, map[string]any{"value": userIDs[(g*per+k)%c.users]})
			}
			_, err := cl.do(ctx, "PATCH", "/Groups/"+groupIDs[g], map[string]any{
				"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
				"Operations": []any{map[string]any{"op": "add", "path": "members", "value": members}},
			}, 204)
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	total, totalReqs := time.Since(start), cl.requests.Load()
	if c.bigGroup > 0 {
		n := min(c.bigGroup, c.users)
		var big string
		err = phase("big group", 1, func(ctx context.Context, _ int) error {
			out, err := cl.do(ctx, "POST", "/Groups", map[string]any{
				"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": "big group",
			}, 201)
			if err != nil {
				return err
			}
			big, _ = out["id"].(string)
			for j := 0; j < n; j += c.bigBatch {
				var members []any
				for k := j; k < min(j+c.bigBatch, n); k++ {
					members = append(members, map[string]any{"value": userIDs[k]})
				}
				if _, err := cl.do(ctx, "PATCH", "/Groups/"+big, map[string]any{
					"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
					"Operations": []any{map[string]any{"op": "add", "path": "members", "value": members}},
				}, 204); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		err = phase("big GET", 1, func(ctx context.Context, _ int) error {
			out, err := cl.do(ctx, "GET", "/Groups/"+big, nil, 200)
			if err != nil {
				return err
			}
			if got := len(out["members"].([]any)); got != n {
				return fmt.Errorf("the big group has %d members, want %d", got, n)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	// Check what was written: every group holds its members.
	for _, g := range []int{0, c.groups / 2, c.groups - 1} {
		out, err := cl.do(ctx, "GET", "/Groups/"+groupIDs[g], nil, 200)
		if err != nil {
			return err
		}
		if n := len(out["members"].([]any)); n != per {
			return fmt.Errorf("group %d has %d members, want %d", g, n, per)
		}
	}
	fmt.Fprintf(w, "total        %6d requests in %8.2fs: %d users, %d groups, %d memberships, concurrency %d, %d members per PATCH, lookups %v (before the big group)\n",
		totalReqs, total.Seconds(), c.users, c.groups, per*c.groups, c.concurrency, c.batch, c.lookup)
	return nil
}

// serverCPU is the user and system CPU time process pid has used (0 when
// pid is 0 or /proc cannot tell).
func serverCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name (which may hold spaces), from its
	// closing parenthesis: state is field 3, utime 14 and stime 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ is 100 on Linux
}
