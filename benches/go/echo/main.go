// Command echo is the echo server of benches/echo.rs written the way a Go
// programmer writes it: net.Listen, a goroutine per connection, and a
// 4 KiB read/write loop (the same loop as the gort and tokio servers, so
// the three do the same syscalls per message; io.Copy would splice through
// a pipe on Linux). Go sets TCP_NODELAY on accepted connections by default,
// as the Rust servers do explicitly.
//
// Protocol with the benchmark: prints the bound address on stdout, serves
// until stdin closes. GOMAXPROCS is set by the caller (benches/echo.rs sets
// it to the Rust runtimes' worker count).
//
// Run by hand: go run ./echo [addr] (default 127.0.0.1:0) from benches/go.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
)

func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

func main() {
	addr := "127.0.0.1:0"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "accept:", err)
			continue
		}
		go serve(c)
	}
}
