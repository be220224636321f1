package integration

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/integration/harness"
)

// TestDemo runs `pgveil demo` as the README tells a newcomer to, follows
// its printed instructions, and checks both sides: plaintext through pgveil,
// ciphertext direct, a lookup by email through the blind index; then Ctrl-C
// stops it cleanly and removes its temp dir.
func TestDemo(t *testing.T) {
	bin, err := harness.BuildPgveil()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "demo", "--listen", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	var out strings.Builder
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if !signalled && strings.Contains(sc.Text(), "Press Ctrl-C") {
				signalled = true
				close(ready)
			}
		}
		io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	select {
	case <-ready:
	case err := <-exited:
		t.Fatalf("demo exited early: %v\n%s\n%s", err, out.String(), stderr.String())
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("demo not ready:\n%s\n%s", out.String(), stderr.String())
	}
	text := out.String()
	via := regexp.MustCompile(`through pgveil:\s+(\S+)`).FindStringSubmatch(text)
	direct := regexp.MustCompile(`direct:\s+(\S+)`).FindStringSubmatch(text)
	dataDir := regexp.MustCompile(`/[^ ']*pgveil-pg-[^/ ']*`).FindString(text)
	if via == nil || direct == nil {
		t.Fatalf("URLs not printed:\n%s", text)
	}
	ctx := context.Background()
	query := "SELECT name, email, phone, birth_date FROM customers ORDER BY id"
	if !strings.Contains(text, query) {
		t.Fatalf("the printed query changed; keep the test in step:\n%s", text)
	}
	p, err := pgx.Connect(ctx, via[1])
	if err != nil {
		t.Fatal(err)
	}
	var name, email, phone string
	var born time.Time
	if err := p.QueryRow(ctx, query).Scan(&name, &email, &phone, &born); err != nil {
		t.Fatal(err)
	}
	if name != "Ada Lovelace" || email != "ada@example.com" || phone != "+44 20 7946 0018" || born.Format("2006-01-02") != "1815-12-10" {
		t.Fatalf("through pgveil: %q %q %q %q", name, email, phone, born)
	}
	var found string
	if err := p.QueryRow(ctx, "SELECT name FROM customers WHERE email = 'GRACE@example.com'").Scan(&found); err != nil || found != "Grace Hopper" {
		t.Fatalf("lookup by email: %q %v", found, err)
	}
	p.Close(ctx)

	d, err := pgx.Connect(ctx, direct[1])
	if err != nil {
		t.Fatal(err)
	}
	var rawEmail, rawPhone []byte
	if err := d.QueryRow(ctx, "SELECT email, phone FROM customers ORDER BY id LIMIT 1").Scan(&rawEmail, &rawPhone); err != nil {
		t.Fatal(err)
	}
	if len(rawEmail) < 33 || rawEmail[0] != 1 || bytes.Contains(rawEmail, []byte("ada")) || bytes.Contains(rawPhone, []byte("7946")) {
		t.Fatalf("direct read is not ciphertext: %x %x", rawEmail, rawPhone)
	}
	d.Close(ctx)

	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("demo exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		t.Fatal("demo did not stop on SIGINT")
	}
	if dataDir != "" {
		if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
			t.Fatalf("demo left %s behind", dataDir)
		}
	}
}
