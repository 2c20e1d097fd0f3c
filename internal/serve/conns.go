package serve

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// Limits bound the connections a listener holds open (docs/operations.md, "Connections").
type Limits struct {
	Total  int                   // connections at once, all addresses together
	PerIP  int                   // connections at once from one client address
	Exempt func(netip.Addr) bool // addresses counted only in Total (trusted proxies); may be nil
}

// DefaultTotal is the Total that stays below the process's descriptor limit: what that
// limit leaves after reserve descriptors for the store and the process, at most want.
func DefaultTotal(want, reserve int) int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 {
		return want
	}
	return max(min(want, int(rl.Cur)-reserve), 1)
}

// Listener is a net.Listener that closes, at once and unread, a connection past its
// Limits. A server using it sets ConnContext to the Listener's, so that its handlers can
// call Crowded and CloseAfter.
type Listener struct {
	net.Listener
	lim     Limits
	mu      sync.Mutex
	total   int
	perIP   map[netip.Addr]int
	refused int64 // connections closed at once, for metrics
}

// Limit wraps ln with lim; a zero Total or PerIP is no bound.
func Limit(ln net.Listener, lim Limits) *Listener {
	return &Listener{Listener: ln, lim: lim, perIP: map[netip.Addr]int{}}
}

// Accept returns the next connection within the limits; those past them are closed.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := addrOf(c.RemoteAddr())
		if l.admit(ip) {
			return &conn{Conn: c, l: l, ip: ip, key: client(ip)}, nil
		}
		c.Close()
	}
}

func addrOf(a net.Addr) netip.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(t.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// client is what connections are counted by: an IPv4 address, or an IPv6 address's /64
// (which one holder commonly has whole), as the vault's other per-address limits.
func client(ip netip.Addr) netip.Addr {
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

func (l *Listener) exempt(ip netip.Addr) bool { return l.lim.Exempt != nil && l.lim.Exempt(ip) }

func (l *Listener) admit(ip netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := client(ip)
	if l.lim.Total > 0 && l.total >= l.lim.Total || l.lim.PerIP > 0 && !l.exempt(ip) && l.perIP[key] >= l.lim.PerIP {
		l.refused++
		return false
	}
	l.total++
	l.perIP[key]++
	return true
}

func (l *Listener) release(key netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.perIP[key]--; l.perIP[key] <= 0 {
		delete(l.perIP, key)
	}
}

// Counts returns the connections open and those refused since the start.
func (l *Listener) Counts() (open, refused int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int64(l.total), l.refused
}

// crowded reports whether ip holds more than half its share, or all together more than
// three quarters of Total: then its connections are not kept alive.
func (l *Listener) crowded(ip netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lim.Total > 0 && 4*l.total > 3*l.lim.Total || l.lim.PerIP > 0 && !l.exempt(ip) && 2*l.perIP[client(ip)] > l.lim.PerIP
}

type connKey struct{}

// ConnContext is the http.Server's ConnContext for connections of this Listener.
func (l *Listener) ConnContext(ctx context.Context, c net.Conn) context.Context {
	if t, ok := c.(interface{ NetConn() net.Conn }); ok { // TLS
		c = t.NetConn()
	}
	if c, ok := c.(*conn); ok {
		return context.WithValue(ctx, connKey{}, c)
	}
	return ctx
}

// conn counts itself out of its Listener when closed, once. A connection closed after a
// refusal (CloseAfter, Linger) first sends its FIN and waits lingerDelay before it is
// closed, so that a client still sending a body (or requests it pipelined) reads the
// answer before the reset that unread bytes cause, as net/http itself does when a body is
// over its limit (with CloseWrite, which conn passes on; it then closes at once).
type conn struct {
	net.Conn
	l         *Listener
	ip, key   netip.Addr // the address, and what it is counted by
	once      sync.Once
	mu        sync.Mutex
	linger    bool
	closing   bool
	halfClose bool // CloseWrite was called: whoever called it waited already
}

// CloseWrite sends the connection's FIN (net/http calls it before it waits and closes).
func (c *conn) CloseWrite() error {
	c.mu.Lock()
	c.halfClose = true
	c.mu.Unlock()
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		return tc.CloseWrite()
	}
	return nil
}

const lingerDelay = 500 * time.Millisecond

func (c *conn) Close() error {
	c.mu.Lock()
	linger, closing := c.linger && !c.halfClose, c.closing
	c.closing = true
	c.mu.Unlock()
	if closing {
		return nil
	}
	if tc, ok := c.Conn.(*net.TCPConn); ok && linger {
		tc.CloseWrite()
		time.AfterFunc(lingerDelay, func() { c.close() })
		return nil
	}
	return c.close()
}

func (c *conn) close() error {
	var err error
	c.once.Do(func() {
		err = c.Conn.Close()
		c.l.release(c.key)
	})
	return err
}

func connOf(r *http.Request) *conn {
	c, _ := r.Context().Value(connKey{}).(*conn)
	return c
}

// Crowded reports whether r came on a connection whose address is over half its share,
// or while the listener is three quarters full: its answer should close the connection
// (Connection: close) rather than keep it idle. False for requests of another listener.
func Crowded(r *http.Request) bool {
	c := connOf(r)
	return c != nil && c.l.crowded(c.ip)
}

// Linger makes r's connection, once net/http closes it (after an answer with Connection:
// close), send its FIN first and close lingerDelay later (see conn).
func Linger(r *http.Request) {
	if c := connOf(r); c != nil {
		c.mu.Lock()
		c.linger = true
		c.mu.Unlock()
	}
}

// CloseAfter makes the answer to r close its connection without reading a further byte
// of r's body: it sets Connection: close, which the caller must do before the answer's
// header is written to take effect, and makes the connection's reads fail from now, so
// that net/http does not wait for the rest of a body it would otherwise read and discard.
// The answer is still written; the connection then lingers (see conn) and closes.
func CloseAfter(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Connection", "close")
	Linger(r)
	http.NewResponseController(w).SetReadDeadline(time.Now())
}
