package serve

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
)

type fakeConn struct {
	net.Conn
	remote net.Addr
	closed bool
}

func (c *fakeConn) RemoteAddr() net.Addr { return c.remote }
func (c *fakeConn) Close() error         { c.closed = true; return nil }

// fakeListener hands out the connections queued on it, then fails.
type fakeListener struct {
	net.Listener
	conns chan net.Conn
}

func (l *fakeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	default:
		return nil, net.ErrClosed
	}
}

// TestPerAddressBound: an address holds at most PerIP connections, an IPv6 client counted
// by its /64 (as the vault's other per-address limits) and an IPv4-mapped address as its
// IPv4 one; an exempt address (a trusted proxy) is bounded only by Total; closing a
// connection, twice or not, gives its place back once.
func TestPerAddressBound(t *testing.T) {
	tests := []struct {
		name  string
		addr  func(i int) string
		limit Limits
		want  int
	}{
		{"one IPv6 /64, any host part", func(i int) string { return fmt.Sprintf("2001:db8:1:2::%x", i+1) }, Limits{Total: 4096, PerIP: 64}, 64},
		{"IPv6 addresses of other /64s", func(i int) string { return fmt.Sprintf("2001:db8:1:%x::1", i+1) }, Limits{Total: 4096, PerIP: 64}, 200},
		{"one IPv4 address, plain and mapped", func(i int) string { return []string{"192.0.2.1", "::ffff:192.0.2.1"}[i%2] }, Limits{Total: 4096, PerIP: 64}, 64},
		{"a trusted proxy", func(int) string { return "192.0.2.9" }, Limits{Total: 100, PerIP: 64, Exempt: func(a netip.Addr) bool { return a.String() == "192.0.2.9" }}, 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fl := &fakeListener{conns: make(chan net.Conn, 200)}
			var fakes []*fakeConn
			for i := range 200 {
				fc := &fakeConn{remote: &net.TCPAddr{IP: net.ParseIP(tc.addr(i)), Port: 1000 + i}}
				fakes = append(fakes, fc)
				fl.conns <- fc
			}
			l := Limit(fl, tc.limit)
			var got []net.Conn
			for {
				c, err := l.Accept()
				if err != nil {
					break
				}
				got = append(got, c)
			}
			if len(got) != tc.want {
				t.Fatalf("%d connections admitted, want %d", len(got), tc.want)
			}
			closed := 0
			for _, f := range fakes {
				if f.closed {
					closed++
				}
			}
			if closed != 200-tc.want {
				t.Errorf("%d refused connections closed, want %d", closed, 200-tc.want)
			}
			for _, c := range got {
				c.Close()
				c.Close()
			}
			if open, _ := l.Counts(); open != 0 {
				t.Errorf("%d connections counted open after all closed", open)
			}
		})
	}
}
