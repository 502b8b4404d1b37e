package chaos

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Net is the campaign's network between nodes. Every node advertises proxy
// addresses that Net listens on, and every connection one node opens to
// another passes through the proxy of the node it dials. For each ordered
// pair of nodes (from, to), Net decides whether the bytes from `from` to
// `to` are dropped and how long they are delayed, in every connection
// between the two whichever side opened it: a partition drops both
// directions, one-way loss one of them.
//
// Dropping is a black hole, not a reset: the sender's writes succeed and
// nothing arrives, as when packets are lost. A connection that lost bytes
// cannot carry a byte stream any more, so Heal closes it (peers reconnect).
//
// Loopback gives every connection the same source address, so a proxy tells
// which node dialed it by the owner of the other end of the socket
// (/proc/net/tcp and /proc/PID/fd; Linux only, same user).
type Net struct {
	n     int
	pids  func() map[int]int // pid -> node index, for the current processes
	mu    sync.Mutex
	drop  [][]bool
	delay [][]time.Duration
	conns map[*pipe]struct{}

	unidentified atomic.Int64 // connections closed because no other node owned them
}

// NewNet returns a network of n nodes with every link up. pids reports the
// current process of each node.
func NewNet(n int, pids func() map[int]int) *Net {
	t := &Net{n: n, pids: pids, conns: map[*pipe]struct{}{}}
	t.drop = make([][]bool, n)
	t.delay = make([][]time.Duration, n)
	for i := range n {
		t.drop[i] = make([]bool, n)
		t.delay[i] = make([]time.Duration, n)
	}
	return t
}

// Drop makes the bytes from node `from` to node `to` disappear.
func (t *Net) Drop(from, to int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.drop[from][to] = true
}

// Isolate drops every byte between node i and every other node.
func (t *Net) Isolate(i int) {
	for j := range t.n {
		if j != i {
			t.Drop(i, j)
			t.Drop(j, i)
		}
	}
}

// Delay delays the bytes from `from` to `to` by d (order is kept).
func (t *Net) Delay(from, to int, d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.delay[from][to] = d
}

// Heal restores every link and closes the connections that lost bytes.
func (t *Net) Heal() {
	t.mu.Lock()
	var broken []*pipe
	for i := range t.n {
		clear(t.drop[i])
		clear(t.delay[i])
	}
	for p := range t.conns {
		if p.lost.Load() {
			broken = append(broken, p)
		}
	}
	t.mu.Unlock()
	for _, p := range broken {
		p.close()
	}
}

// Cut reports whether node i is cut off from node j: whether the link
// between them drops bytes in either direction.
func (t *Net) Cut(i, j int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.drop[i][j] || t.drop[j][i]
}

// Unidentified is the number of connections closed because their dialer was
// not identified as another node (no node's process owned it, or the node
// dialed its own proxy).
func (t *Net) Unidentified() int64 { return t.unidentified.Load() }

func (t *Net) rule(from, to int) (bool, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.drop[from][to], t.delay[from][to]
}

// Proxy forwards the connections made to one node's advertised address to
// the address it listens on.
type Proxy struct {
	net    *Net
	node   int
	target string
	ln     net.Listener
	wg     sync.WaitGroup
}

// Listen starts a proxy for node on a free loopback port, forwarding to
// target.
func (t *Net) Listen(node int, target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{net: t, node: node, target: target, ln: ln}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address the node advertises.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops accepting; connections end when the node or Heal closes them.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.serve(c)
	}
}

func (p *Proxy) serve(c net.Conn) {
	from := -1
	for try := 0; try < 5 && from < 0; try++ {
		if try > 0 {
			time.Sleep(10 * time.Millisecond)
		}
		from = dialerOf(c, p.net.pids())
	}
	if from < 0 || from == p.node {
		p.net.unidentified.Add(1)
		_ = c.Close()
		return
	}
	s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		_ = c.Close()
		return
	}
	pp := &pipe{a: c, b: s}
	t := p.net
	t.mu.Lock()
	t.conns[pp] = struct{}{}
	t.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); pp.pump(t, from, p.node, c, s) }()
	go func() { defer wg.Done(); pp.pump(t, p.node, from, s, c) }()
	wg.Wait()
	t.mu.Lock()
	delete(t.conns, pp)
	t.mu.Unlock()
}

// pipe is one proxied connection: a is the dialer's side, b the node's.
type pipe struct {
	a, b net.Conn
	lost atomic.Bool
	once sync.Once
}

func (p *pipe) close() {
	p.once.Do(func() { _ = p.a.Close(); _ = p.b.Close() })
}

type chunk struct {
	b   []byte
	due time.Time
}

// pump copies r to w, the bytes from node `from` to node `to`, applying the
// link's current rule to each read.
func (p *pipe) pump(t *Net, from, to int, r, w net.Conn) {
	defer p.close()
	out := make(chan chunk, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range out {
			if d := time.Until(c.due); d > 0 {
				time.Sleep(d)
			}
			if _, err := w.Write(c.b); err != nil {
				p.close()
				for range out {
				}
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			drop, delay := t.rule(from, to)
			if drop {
				p.lost.Store(true)
			} else {
				out <- chunk{b: append([]byte(nil), buf[:n]...), due: time.Now().Add(delay)}
			}
		}
		if err != nil {
			break
		}
	}
	close(out)
	<-done
}

// dialerOf returns the node whose process owns the other end of c (an
// accepted loopback connection), or -1.
func dialerOf(c net.Conn, pids map[int]int) int {
	remote, ok1 := c.RemoteAddr().(*net.TCPAddr)
	local, ok2 := c.LocalAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		return -1
	}
	inode, err := socketInode(remote.Port, local.Port)
	if err != nil {
		return -1
	}
	want := "socket:[" + inode + "]"
	for pid, node := range pids {
		dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && l == want {
				return node
			}
		}
	}
	return -1
}

var errNoSocket = errors.New("no such socket")

// socketInode finds, in /proc/net/tcp and tcp6, the inode of the socket whose
// local port is lport and remote port rport (the dialer's end).
func socketInode(lport, rport int) (string, error) {
	l := fmt.Sprintf(":%04X", lport)
	r := fmt.Sprintf(":%04X", rport)
	for _, name := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		inode, err := scanInode(f, l, r)
		f.Close()
		if err == nil {
			return inode, nil
		}
	}
	return "", errNoSocket
}

func scanInode(f io.Reader, lsuffix, rsuffix string) (string, error) {
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 10 {
			continue
		}
		if strings.HasSuffix(fs[1], lsuffix) && strings.HasSuffix(fs[2], rsuffix) && fs[9] != "0" {
			return fs[9], nil
		}
	}
	return "", errNoSocket
}
