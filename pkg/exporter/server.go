package exporter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Limits bound what HTTP clients can hold of the exporter: it serves
// read-only metrics to a few scrapers, so anything beyond that is closed
// rather than kept.
type Limits struct {
	// MaxConns is the most connections open at once; more wait in the
	// kernel's accept queue until one closes.
	MaxConns int
	// Idle closes a keep-alive connection with no request this long.
	Idle time.Duration
	// Read bounds reading a request, headers and body; Write, writing the
	// response.
	Read, Write time.Duration
}

// DefaultLimits suit Prometheus: one connection per scraper, kept alive
// between scrapes of 15 to 60 seconds.
var DefaultLimits = Limits{MaxConns: 64, Idle: 90 * time.Second, Read: 10 * time.Second, Write: 60 * time.Second}

// Handler serves reg on /metrics (text and OpenMetrics) and a small index
// on /. Only GET and HEAD are answered: anything else is 405.
func Handler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<html><head><title>sockscope exporter</title></head><body><h1>sockscope exporter</h1><p><a href="/metrics">Metrics</a></p></body></html>`)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "only GET and HEAD", http.StatusMethodNotAllowed)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// Serve serves h on ln within lim until ctx ends, then shuts down,
// giving scrapes in flight five seconds; connections that have not sent a
// request are closed at once, and what is left after the five seconds is
// cut.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, lim Limits) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.Read,
		ReadTimeout:       lim.Read,
		WriteTimeout:      lim.Write,
		IdleTimeout:       lim.Idle,
		MaxHeaderBytes:    16 << 10,
	}
	// net/http's Shutdown closes idle connections but waits for new ones
	// (accepted, no request yet) as if a request were coming: a client
	// that connects and says nothing would hold the shutdown for its
	// whole five seconds. They have nothing in flight: close them.
	var mu sync.Mutex
	fresh := map[net.Conn]struct{}{}
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		if st == http.StateNew {
			fresh[c] = struct{}{}
		} else {
			delete(fresh, c)
		}
	}
	srv.RegisterOnShutdown(func() {
		mu.Lock()
		defer mu.Unlock()
		for c := range fresh {
			c.Close()
		}
	})
	if lim.MaxConns > 0 {
		ln = &limitListener{Listener: ln, sem: make(chan struct{}, lim.MaxConns), closed: make(chan struct{})}
	}
	done := make(chan struct{})
	defer close(done)
	shut := make(chan error, 1)
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
			shut <- nil
			return
		}
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := srv.Shutdown(sctx)
		if errors.Is(err, context.DeadlineExceeded) {
			// Scrapes still running after their five seconds are cut,
			// as promised: that is the shutdown working, not failing.
			err = srv.Close()
		}
		shut <- err
	}()
	err := srv.Serve(ln)
	if !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving metrics: %w", err)
	}
	if err := <-shut; err != nil {
		return fmt.Errorf("shutting the metrics server down: %w", err)
	}
	return nil
}

// limitListener holds at most cap(sem) connections open: Accept waits for
// a slot, so clients beyond the limit wait in the kernel's queue instead
// of each costing a descriptor and buffers here.
type limitListener struct {
	net.Listener
	sem       chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.closed: // a shutdown while every slot is taken
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
