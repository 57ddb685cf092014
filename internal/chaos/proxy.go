package chaos

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// faultProxy is a TCP proxy to the first of its targets that answers. It
// can cut its clients off (every connection closed, new ones refused
// until healed) and delay what the clients send.
type faultProxy struct {
	ln      net.Listener
	targets []string
	next    atomic.Int64
	// delay (nanoseconds) holds back every chunk a client sends.
	delay atomic.Int64

	mu     sync.Mutex
	cutOff bool
	closed bool
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

func startFaultProxy(targets ...string) (*faultProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("chaos: proxy listen: %w", err)
	}
	p := &faultProxy{ln: ln, targets: targets, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

// cut cuts every client off and refuses new ones (on), or lets them
// connect again (off).
func (p *faultProxy) cut(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutOff = on
	if on {
		for conn := range p.conns {
			conn.Close()
		}
	}
}

func (p *faultProxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server := p.dial()
		p.mu.Lock()
		if p.closed || p.cutOff || server == nil {
			p.mu.Unlock()
			client.Close()
			if server != nil {
				server.Close()
			}
			continue
		}
		p.conns[client], p.conns[server] = true, true
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(server, client, true)
		go p.pipe(client, server, false)
	}
}

// dial connects to the targets in turn, starting after the last used.
func (p *faultProxy) dial() net.Conn {
	start := p.next.Add(1)
	for i := range len(p.targets) {
		target := p.targets[(int(start)+i)%len(p.targets)]
		conn, err := net.DialTimeout("tcp", target, time.Second)
		if err == nil {
			return conn
		}
	}
	return nil
}

func (p *faultProxy) pipe(dst, src net.Conn, upstream bool) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.conns, dst)
		delete(p.conns, src)
		p.mu.Unlock()
	}()
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if d := time.Duration(p.delay.Load()); upstream && d > 0 {
				time.Sleep(d) // the fault itself: a slow network or server
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// close stops accepting, cuts every connection and waits for the copies.
func (p *faultProxy) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.ln.Close()
	for conn := range p.conns {
		conn.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
