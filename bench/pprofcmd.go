package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

const pprofCommand = "__pgveil-pprof"

// runPprofCommand is the profiling build of pgveil: the same proxy.Server
// that `pgveil serve` runs, with the same config and an info-level JSON
// logger, in a process that writes a CPU profile (and an allocation
// profile) when it receives SIGTERM. pgveil itself exposes no pprof.
func runPprofCommand(args []string) int {
	fs := flag.NewFlagSet(pprofCommand, flag.ExitOnError)
	upstream := fs.String("upstream", "", "upstream host:port")
	cpuFile := fs.String("cpuprofile", "", "CPU profile output")
	memFile := fs.String("memprofile", "", "allocation profile output")
	fs.Parse(args)
	cfg, err := policy.LoadBytes("bench.yaml", []byte(pgveilConfig(*upstream)), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	encCfg := zap.NewProductionEncoderConfig()
	core := zapcore.NewCore(zapcore.NewJSONEncoder(encCfg), zapcore.Lock(os.Stderr), zapcore.InfoLevel)
	srv, err := proxy.New(cfg, proxy.Options{Log: zap.New(core)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	addr, err := srv.Listen()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	f, err := os.Create(*cpuFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	fmt.Printf("listening %s\n", addr)
	<-sigs
	pprof.StopCPUProfile()
	f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	srv.Shutdown(ctx)
	cancel()
	<-served
	if *memFile != "" {
		runtime.GC()
		mf, err := os.Create(*memFile)
		if err == nil {
			pprof.Lookup("allocs").WriteTo(mf, 0)
			mf.Close()
		}
	}
	return 0
}

// startPprofPgveil runs the profiling build as a child process.
func (e *env) startPprofPgveil(ctx context.Context, cpuFile, memFile string) (*target, func(), error) {
	cmd := exec.Command(e.self, pprofCommand, "-upstream", e.cluster.Addr(), "-cpuprofile", cpuFile, "-memprofile", memFile)
	cmd.Stderr = nil
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
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
	stop := func() { stopProcess(cmd, exited, syscall.SIGTERM, 30*time.Second) }
	e.defer_(stop)
	select {
	case a := <-addrc:
		return &target{name: "pgveil-pprof", addr: a, pid: cmd.Process.Pid, stop: stop}, stop, nil
	case <-exited:
		return nil, nil, fmt.Errorf("profiling pgveil exited during startup")
	case <-time.After(30 * time.Second):
		stop()
		return nil, nil, fmt.Errorf("profiling pgveil did not report listening within 30s")
	case <-ctx.Done():
		stop()
		return nil, nil, ctx.Err()
	}
}
