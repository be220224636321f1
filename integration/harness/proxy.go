package harness

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

var (
	buildOnce sync.Once
	buildPath string
	buildDir  string // the temp dir BuildPgveil made, for RemoveBuild
	buildErr  error
)

// BuildPgveil compiles ./cmd/pgveil once per test process and returns the
// binary's path. PGVEIL_BIN, when set, names a binary to use instead.
func BuildPgveil() (string, error) {
	buildOnce.Do(func() {
		if p := os.Getenv("PGVEIL_BIN"); p != "" {
			buildPath = p
			return
		}
		root, err := ModuleRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "pgveil-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildDir = dir
		buildPath = filepath.Join(dir, "pgveil")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/pgveil")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/pgveil: %v\n%s", err, out)
		}
	})
	return buildPath, buildErr
}

// RemoveBuild deletes the binary BuildPgveil built (about 30 MB of /tmp
// per test process otherwise). Call it once the process is done with
// pgveil: at the end of TestMain, after every proxy has stopped.
func RemoveBuild() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// ModuleRoot is the directory holding go.mod.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the pgveil module")
	}
	return filepath.Dir(gomod), nil
}

// Proxy is a running pgveil process.
type Proxy struct {
	Addr      string // where clients connect
	AdminAddr string // /metrics, /healthz; "" when off
	Dir       string // holds the config and the log
	LogPath   string // everything the process wrote to stderr and stdout

	cmd    *exec.Cmd
	exited chan struct{}
	mu     sync.Mutex
	done   bool
	err    error

	gateMu  sync.Mutex
	logGate chan struct{} // non-nil while PauseLog holds the reader
	resume  func()        // the last PauseLog's

	raceMu sync.Mutex
	races  []string // the race detector's reports the process printed
}

// raceWarning opens a report of Go's race detector (a binary built with
// -race, as PGVEIL_BIN may name); raceFence is the line around a report.
const (
	raceWarning = "WARNING: DATA RACE"
	raceFence   = "=================="
)

// RaceReports cuts the race detector's reports out of a process's output.
// A report runs from the fence line before its warning to the next fence.
func RaceReports(output string) []string {
	var out []string
	lines := strings.Split(output, "\n")
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], raceWarning) {
			continue
		}
		j := i + 1
		for j < len(lines) && !strings.HasPrefix(lines[j], raceFence) {
			j++
		}
		out = append(out, strings.Join(lines[i:j], "\n"))
		i = j
	}
	return out
}

// Races are the race detector's reports the process has printed so far
// (none unless the binary was built with -race).
func (p *Proxy) Races() []string {
	p.raceMu.Lock()
	defer p.raceMu.Unlock()
	return append([]string(nil), p.races...)
}

// raceErr is an error naming the race reports the process printed, nil
// when it printed none. A report is kept in a file outside the proxy's
// directory (which Stop removes) so it can be read after the test.
func (p *Proxy) raceErr() error {
	races := p.Races()
	if len(races) == 0 {
		return nil
	}
	text := strings.Join(races, "\n"+raceFence+"\n")
	kept := ""
	if f, err := os.CreateTemp("", "pgveil-race-*.log"); err == nil {
		f.WriteString(text + "\n")
		f.Close()
		kept = " (kept in " + f.Name() + ")"
	}
	return fmt.Errorf("pgveil printed %d data race report(s)%s:\n%s", len(races), kept, text)
}

// PauseLog stops reading the process's stderr until resume is called (at
// most once; Stop resumes too): the pipe fills and the process's writes
// to stderr block, as when a log collector falls behind.
func (p *Proxy) PauseLog() (resume func()) {
	g := make(chan struct{})
	p.gateMu.Lock()
	p.logGate = g
	p.gateMu.Unlock()
	var once sync.Once
	resume = func() {
		once.Do(func() {
			p.gateMu.Lock()
			if p.logGate == g {
				p.logGate = nil
			}
			p.gateMu.Unlock()
			close(g)
		})
	}
	p.gateMu.Lock()
	p.resume = resume
	p.gateMu.Unlock()
	return resume
}

// resumeLog undoes a PauseLog still in force.
func (p *Proxy) resumeLog() {
	p.gateMu.Lock()
	r := p.resume
	p.gateMu.Unlock()
	if r != nil {
		r()
	}
}

// waitLogGate blocks while the log is paused.
func (p *Proxy) waitLogGate() {
	p.gateMu.Lock()
	g := p.logGate
	p.gateMu.Unlock()
	if g != nil {
		<-g
	}
}

// ProxyOptions start a pgveil process.
type ProxyOptions struct {
	// Config is the YAML config; "listen" and "admin.listen" should be
	// 127.0.0.1:0 so the process picks free ports and reports them.
	Config string
	// Args are extra command-line arguments after "serve -c <config>".
	Args []string
	// Env adds environment variables ("K=V").
	Env []string
}

// StartProxy writes the config to a temp dir, starts `pgveil serve` and
// waits for its "listening" log line, which carries the bound addresses.
func StartProxy(opts ProxyOptions) (*Proxy, error) {
	bin, err := BuildPgveil()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgveil-proxy-")
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "pgveil.yaml")
	if err := os.WriteFile(cfgPath, []byte(opts.Config), 0o600); err != nil {
		return nil, err
	}
	p := &Proxy{Dir: dir, LogPath: filepath.Join(dir, "pgveil.log"), exited: make(chan struct{})}
	args := append([]string{"serve", "-c", cfgPath}, opts.Args...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), opts.Env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(p.LogPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout = logFile
	if err := startForLife(cmd, syscall.SIGKILL); err != nil {
		logFile.Close()
		return nil, err
	}
	p.cmd = cmd
	ready := make(chan map[string]any, 1)
	go func() {
		defer logFile.Close()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
		sent := false
		var race []string // the race report being read, nil outside one
		for p.waitLogGate(); sc.Scan(); p.waitLogGate() {
			line := sc.Bytes()
			logFile.Write(line)
			logFile.Write([]byte{'\n'})
			switch {
			case bytes.HasPrefix(line, []byte(raceWarning)):
				race = []string{string(line)}
			case race != nil && bytes.HasPrefix(line, []byte(raceFence)):
				p.raceMu.Lock()
				p.races = append(p.races, strings.Join(race, "\n"))
				p.raceMu.Unlock()
				race = nil
			case race != nil:
				race = append(race, string(line))
			}
			if sent {
				continue
			}
			var rec map[string]any
			if json.Unmarshal(line, &rec) == nil && rec["msg"] == "listening" {
				sent = true
				ready <- rec
			}
		}
		io.Copy(io.Discard, stderr)
		if race != nil { // cut short by the process's end
			p.raceMu.Lock()
			p.races = append(p.races, strings.Join(race, "\n"))
			p.raceMu.Unlock()
		}
		p.err = cmd.Wait()
		close(p.exited)
	}()
	select {
	case rec := <-ready:
		p.Addr, _ = rec["addr"].(string)
		p.AdminAddr, _ = rec["admin"].(string)
	case <-p.exited:
		return nil, fmt.Errorf("pgveil exited during startup (%v):\n%s", p.err, p.Log())
	case <-time.After(60 * time.Second):
		p.Kill()
		return nil, fmt.Errorf("pgveil did not report listening within 60s:\n%s", p.Log())
	}
	return p, nil
}

// PID is the process id.
func (p *Proxy) PID() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Proxy) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Exited is closed when the process has exited.
func (p *Proxy) Exited() <-chan struct{} { return p.exited }

// ExitErr is the process's exit status once Exited is closed.
func (p *Proxy) ExitErr() error { <-p.exited; return p.err }

// Log is what the process has logged so far.
func (p *Proxy) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// Stop sends SIGTERM, waits for a clean exit, and removes the temp dir.
// It returns the exit error, if any, or else an error carrying the data
// race reports the process printed (a -race binary: PGVEIL_BIN).
func (p *Proxy) Stop() error {
	p.resumeLog()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return nil
	}
	p.done = true
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
		return errors.Join(errors.New("pgveil did not exit within 60s of SIGTERM"), p.raceErr())
	}
	os.RemoveAll(p.Dir)
	if p.err != nil {
		return errors.Join(p.err, p.raceErr())
	}
	return p.raceErr()
}

// Kill ends the process at once (SIGKILL) and removes its temp dir.
func (p *Proxy) Kill() {
	p.resumeLog()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return
	}
	p.done = true
	p.cmd.Process.Kill()
	<-p.exited
	os.RemoveAll(p.Dir)
}
