package exporter

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// testHandler serves a registry with one gauge, so /metrics has a body.
func testHandler() http.Handler {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "sockscope_test_gauge", Help: "a gauge for the tests"})
	g.Set(42)
	reg.MustRegister(g)
	return Handler(reg)
}

func TestHandlerMethods(t *testing.T) {
	h := testHandler()
	for _, path := range []string{"/metrics", "/"} {
		want := map[string]string{"/metrics": "sockscope_test_gauge 42", "/": "sockscope exporter"}[path]
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
			if rec.Code != http.StatusOK {
				t.Errorf("%s %s: %d, want 200", method, path, rec.Code)
			}
			if method == http.MethodGet && !strings.Contains(rec.Body.String(), want) {
				t.Errorf("GET %s: body lacks %q:\n%s", path, want, rec.Body.String())
			}
		}
		for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, "OPTIONS"} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader("x=1")))
			if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %d, Allow %q; want 405 and Allow: GET, HEAD", method, path, rec.Code, rec.Header().Get("Allow"))
			}
			if strings.Contains(rec.Body.String(), "sockscope_test_gauge") {
				t.Errorf("%s %s served the metrics", method, path)
			}
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/nothing-here", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /nothing-here: %d, want 404", rec.Code)
	}
}

// serve runs Serve on a loopback port until the test ends; stop cancels
// it and returns what Serve returned.
func serve(t *testing.T, lim Limits) (addr string, stop func() error) {
	t.Helper()
	return serveHandler(t, testHandler(), lim)
}

func serveHandler(t *testing.T, h http.Handler, lim Limits) (addr string, stop func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- Serve(ctx, ln, h, lim) }()
	var stopped atomic.Bool
	var result error
	stop = func() error {
		if stopped.Swap(true) {
			return result
		}
		cancel()
		select {
		case result = <-errc:
		case <-time.After(30 * time.Second):
			t.Fatal("Serve did not return after its context was cancelled")
		}
		return result
	}
	t.Cleanup(func() { stop() })
	return ln.Addr().String(), stop
}

// client is one raw HTTP/1.1 connection.
type client struct {
	net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{Conn: c, br: bufio.NewReader(c)}
}

// get sends one keep-alive GET and reads its whole response.
func (c *client) get(path string) (*http.Response, string, error) {
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: sockscope\r\n\r\n", path); err != nil {
		return nil, "", err
	}
	return c.response(http.MethodGet)
}

func (c *client) response(method string) (*http.Response, string, error) {
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// closedByServer waits, within a generous deadline, for the server to
// close c: everything it still sends is read, then EOF.
func (c *client) closedByServer(t *testing.T, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err := io.Copy(io.Discard, c.br)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("%s: the server kept the connection open", what)
	}
	// A reset (ECONNRESET) is a close too; a deadline is not.
}

func TestServeClosesIdleConnections(t *testing.T) {
	addr, _ := serve(t, Limits{MaxConns: 4, Idle: 100 * time.Millisecond, Read: 200 * time.Millisecond, Write: 5 * time.Second})
	c := dial(t, addr)
	resp, body, err := c.get("/metrics")
	if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(body, "sockscope_test_gauge 42") {
		t.Fatalf("GET /metrics: %v, %v, %q", err, resp, body)
	}
	if resp.Close {
		t.Fatal("the server did not keep the connection alive: nothing to test")
	}
	c.closedByServer(t, "idle keep-alive connection")
}

func TestServeClosesSlowRequests(t *testing.T) {
	addr, _ := serve(t, Limits{MaxConns: 8, Idle: time.Minute, Read: 200 * time.Millisecond, Write: 5 * time.Second})
	for _, tc := range []struct{ what, send string }{
		{"nothing sent", ""},
		{"headers never finished", "GET /metrics HTTP/1.1\r\nHost: sockscope\r\n"},
		{"GET body never sent", "GET /metrics HTTP/1.1\r\nHost: sockscope\r\nContent-Length: 100\r\n\r\n"},
		{"POST body never sent", "POST /metrics HTTP/1.1\r\nHost: sockscope\r\nContent-Length: 100\r\n\r\n"},
		{"body sent slowly", "GET / HTTP/1.1\r\nHost: sockscope\r\nContent-Length: 100\r\n\r\nab"},
	} {
		c := dial(t, addr)
		if _, err := io.WriteString(c, tc.send); err != nil {
			t.Fatalf("%s: %v", tc.what, err)
		}
		c.closedByServer(t, tc.what)
	}
}

// With MaxConns connections open, the next waits in the kernel's queue:
// its request is answered only once one of them closes.
func TestServeMaxConns(t *testing.T) {
	addr, _ := serve(t, Limits{MaxConns: 2, Idle: time.Minute, Read: time.Minute, Write: time.Minute})
	var held []*client
	for range 2 {
		c := dial(t, addr)
		if resp, _, err := c.get("/metrics"); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET on a held connection: %v %v", err, resp)
		}
		held = append(held, c)
	}
	var released atomic.Bool
	type answer struct {
		early bool
		resp  *http.Response
		err   error
	}
	answered := make(chan answer, 1)
	third := dial(t, addr) // the kernel completes the handshake: it queues
	go func() {
		resp, _, err := third.get("/")
		answered <- answer{!released.Load(), resp, err}
	}()
	// Give a wrong server every chance to answer early; the flag, not
	// this pause, is what the test asserts.
	select {
	case a := <-answered:
		t.Fatalf("third connection answered while two were held: %v %v", a.resp, a.err)
	case <-time.After(300 * time.Millisecond):
	}
	released.Store(true)
	held[0].Close()
	select {
	case a := <-answered:
		if a.early || a.err != nil || a.resp.StatusCode != http.StatusOK {
			t.Errorf("third connection: early %v, %v, %v; want 200 after a held one closed", a.early, a.resp, a.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("third connection not answered after a held one closed")
	}
	// The second held connection still works.
	if resp, _, err := held[1].get("/metrics"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET on the second held connection: %v %v", err, resp)
	}
}

// Cancelling Serve's context ends it with nil, even while every slot is
// taken and more clients wait: idle ones, and ones that never sent a
// request (they have no request in flight to wait for).
func TestServeShutdownWhileFull(t *testing.T) {
	for _, tc := range []struct {
		name string
		hold func(*testing.T, *client)
	}{
		{"idle after a request", func(t *testing.T, c *client) {
			if resp, _, err := c.get("/metrics"); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("GET: %v %v", err, resp)
			}
		}},
		{"no request sent", func(*testing.T, *client) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, stop := serve(t, Limits{MaxConns: 2, Idle: time.Minute, Read: time.Minute, Write: time.Minute})
			var held []*client
			for range 2 {
				c := dial(t, addr)
				tc.hold(t, c)
				held = append(held, c)
			}
			// Both held connections are the server's, not the kernel's
			// queue's: the listener's accept queue is empty.
			waitAcceptQueue(t, addr, 0)
			waiting := dial(t, addr)
			io.WriteString(waiting, "GET / HTTP/1.1\r\nHost: sockscope\r\n\r\n")
			waitAcceptQueue(t, addr, 1)
			if err := stop(); err != nil {
				t.Errorf("Serve after cancel: %v, want nil", err)
			}
			for i, c := range held {
				c.closedByServer(t, fmt.Sprintf("held connection %d after shutdown", i))
			}
		})
	}
}

// waitAcceptQueue waits until the listener on addr (IPv4 loopback) has n
// connections waiting in its accept queue, as /proc/net/tcp shows it.
func waitAcceptQueue(t *testing.T, addr string, n int) {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	local := fmt.Sprintf("0100007F:%04X", ap.Port())
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile("/proc/net/tcp")
		if err != nil {
			t.Fatal(err)
		}
		got := -1
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 4 && f[1] == local && f[3] == "0A" { // LISTEN
				_, rx, _ := strings.Cut(f[4], ":")
				q, err := strconv.ParseUint(rx, 16, 32)
				if err != nil {
					t.Fatalf("/proc/net/tcp: %q", line)
				}
				got = int(q)
			}
		}
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("accept queue of %s: %d, want %d", addr, got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A scrape still running five seconds after the context ends is cut:
// Serve returns nil and the connection is closed, not left behind.
func TestServeCutsAScrapeThatOutlivesShutdown(t *testing.T) {
	started := make(chan struct{})
	never := make(chan struct{})
	defer close(never)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-never:
		case <-r.Context().Done():
		}
	})
	addr, stop := serveHandler(t, h, Limits{MaxConns: 2, Idle: time.Minute, Read: time.Minute, Write: time.Minute})
	c := dial(t, addr)
	io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: sockscope\r\n\r\n")
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("the request never reached the handler")
	}
	if err := stop(); err != nil {
		t.Errorf("Serve after cancel with a scrape in flight: %v, want nil", err)
	}
	c.closedByServer(t, "connection of the cut scrape")
}
