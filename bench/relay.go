package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

const relayCommand = "__bare-relay"

// runRelayCommand is the bare relay: accept, dial upstream, copy bytes both
// ways through a 32 KiB user-space buffer per direction, with no parsing at
// all. It is the floor any user-space proxy pays for an extra hop: the same
// read/write syscalls per round trip, the same Go netpoller and scheduler
// (pgveil is Go too), nothing else. The copy is an explicit read/write loop
// on purpose: io.Copy between two *net.TCPConn would use splice(2), which a
// protocol-aware proxy cannot.
func runRelayCommand(args []string) int {
	fs := flag.NewFlagSet(relayCommand, flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "listen address")
	upstream := fs.String("upstream", "", "upstream host:port")
	fs.Parse(args)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("listening %s\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		go relayConn(c, *upstream)
	}
}

func relayConn(client net.Conn, upstream string) {
	defer client.Close()
	server, err := net.DialTimeout("tcp", upstream, 5*time.Second)
	if err != nil {
		return
	}
	defer server.Close()
	// Go sets TCP_NODELAY on both sockets by default, as pgveil does.
	done := make(chan struct{})
	go func() {
		copyLoop(client, server)
		client.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	copyLoop(server, client)
	server.(*net.TCPConn).CloseWrite()
	<-done
}

func copyLoop(dst, src net.Conn) {
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// startRelay runs a bare relay (command) as a child process of its own.
func (e *env) startRelay(ctx context.Context, name, command string, extraEnv []string) (*target, error) {
	cmd := exec.Command(e.self, command, "-upstream", e.cluster.Addr())
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				addrc <- a
			}
		}
		cmd.Wait()
		close(exited)
	}()
	stop := func() { stopProcess(cmd, exited, syscall.SIGTERM, 10*time.Second) }
	e.defer_(stop)
	select {
	case a := <-addrc:
		return &target{name: name, addr: a, pid: cmd.Process.Pid, stop: stop}, nil
	case <-exited:
		return nil, fmt.Errorf("bare relay exited during startup")
	case <-time.After(30 * time.Second):
		stop()
		return nil, fmt.Errorf("bare relay did not report listening within 30s")
	case <-ctx.Done():
		stop()
		return nil, ctx.Err()
	}
}
