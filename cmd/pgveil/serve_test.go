package main

import (
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// A SIGHUP that changes a setting only a restart applies (admin.listen,
// proxy.event_loops, log.format, log.buffer) says so; it used to log
// "config reloaded" and keep serving /metrics on the old address.
func TestReloadNamesRestartOnlySettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pgveil.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:9301\n")
	cfg, err := policy.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := proxy.New(cfg, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	level := zap.NewAtomicLevelAt(zapcore.InfoLevel)

	write("listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:9302\nlog:\n  level: debug\nproxy:\n  event_loops: 0\n")
	reload(srv, serveFlags{config: path}, zap.New(core), level, cfg)
	warned := logs.FilterMessageSnippet("next restart").All()
	if len(warned) != 1 {
		t.Fatalf("no restart warning; logs: %v", logs.All())
	}
	keys, _ := warned[0].ContextMap()["keys"].([]interface{})
	if len(keys) != 2 || keys[0] != "admin.listen" || keys[1] != "proxy.event_loops" {
		t.Errorf("restart warning names %v, want [admin.listen proxy.event_loops]", warned[0].ContextMap()["keys"])
	}
	if level.Level() != zapcore.DebugLevel {
		t.Errorf("log.level not applied on reload: %v", level.Level())
	}

	logs.TakeAll()
	write("listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:9301\n")
	reload(srv, serveFlags{config: path}, zap.New(core), level, cfg)
	if n := logs.FilterMessageSnippet("next restart").Len(); n != 0 {
		t.Errorf("restart warning for an unchanged config: %v", logs.All())
	}
}
