package framework_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
)

func TestLoadConfigDefaults(t *testing.T) {
	t.Setenv("JETKIT_NATS_URL", "nats://a:4222,nats://b:4222")
	cfg, err := framework.LoadConfig("JETKIT")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.URLs) != 2 || cfg.AckWait != 30*time.Second || cfg.MaxDeliver != 5 || cfg.AckMode != framework.AckModeAsync {
		t.Fatalf("unexpected config %+v", cfg)
	}
	if d := framework.DefaultConfig(); d.AckWait != 30*time.Second || d.MaxReconnects != -1 || d.URLs[0] != "nats://127.0.0.1:4222" {
		t.Fatalf("DefaultConfig %+v", d)
	}
}

func TestLoadConfigReportsEveryUnparsableVariable(t *testing.T) {
	t.Setenv("SVC_ACK_WAIT", "thirty seconds")
	t.Setenv("SVC_MAX_DELIVER", "five")
	t.Setenv("SVC_NATS_RETRY_ON_FAILED_CONNECT", "maybe")
	t.Setenv("SVC_NATS_URL", "http://wrong-scheme:4222") // parses, but is invalid: reported too
	t.Setenv("SVC_CONCURRENCY", "0")
	_, err := framework.LoadConfig("SVC")
	if !errors.Is(err, framework.ErrInvalidConfig) {
		t.Fatalf("want ErrInvalidConfig, got %v", err)
	}
	var ce *framework.ConfigError
	if !errors.As(err, &ce) || len(ce.Problems) != 5 {
		t.Fatalf("want 5 problems, got %v", err)
	}
	for _, want := range []string{"SVC_ACK_WAIT", "a Go duration", "SVC_MAX_DELIVER", "whole number", "SVC_NATS_RETRY_ON_FAILED_CONNECT", "true or false",
		"SVC_NATS_URL", "scheme", "SVC_CONCURRENCY"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}

func TestValidateListsEveryProblemWithoutSecrets(t *testing.T) {
	cfg := framework.DefaultConfig()
	cfg.ServiceName = "my service"
	cfg.URLs = []string{"http://user:hunter2@host:4222", "::nonsense"}
	cfg.Password = "s3cret-password"
	cfg.Token = "s3cret-token"
	cfg.TLSCertFile = "/does/not/exist.pem"
	cfg.AckWait = 0
	cfg.MaxDeliver = 0
	cfg.Concurrency = -1
	cfg.AckMode = "eventually"
	cfg.RetryMax = time.Millisecond
	cfg.Replicas = 7
	err := cfg.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	var ce *framework.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("not a ConfigError: %v", err)
	}
	for _, v := range []string{"SERVICE_NAME", "NATS_URL", "NATS_TLS_CERT_FILE", "NATS_USER", "ACK_WAIT", "MAX_DELIVER",
		"CONCURRENCY", "ACK_MODE", "RETRY_MAX", "STREAM_REPLICAS"} {
		if !strings.Contains(err.Error(), "JETKIT_"+v) {
			t.Errorf("error does not name JETKIT_%s:\n%v", v, err)
		}
	}
	if len(ce.Problems) < 11 {
		t.Errorf("want every problem listed, got %d:\n%v", len(ce.Problems), err)
	}
	for _, secret := range []string{"hunter2", "s3cret-password", "s3cret-token"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error leaks secret %q:\n%v", secret, err)
		}
	}
	if s := fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg); strings.Contains(s, "s3cret") {
		t.Errorf("formatting the config leaks a secret: %s", s)
	}
}

func TestValidateToken(t *testing.T) {
	for _, bad := range []string{"", "a.b", "a*", ">", "a b", "tab\t", "nl\n", "nul\x00", "\x7f", "bad\xff"} {
		if err := framework.ValidateToken(bad); !errors.Is(err, framework.ErrInvalidSubject) {
			t.Errorf("ValidateToken(%q) = %v, want ErrInvalidSubject", bad, err)
		}
	}
	for _, good := range []string{"o-1", "ORDER_42", "ünïcode", "a:b"} {
		if err := framework.ValidateToken(good); err != nil {
			t.Errorf("ValidateToken(%q) = %v", good, err)
		}
	}
	if err := framework.ValidateSubject("orders..created"); err == nil {
		t.Error("empty token in subject accepted")
	}
	if err := framework.ValidateFilter("orders.*.v1.>"); err != nil {
		t.Errorf("valid filter rejected: %v", err)
	}
	if err := framework.ValidateFilter("orders.>.v1"); err == nil {
		t.Error("'>' in the middle of a filter accepted")
	}
}

func TestNewTopicPanicsOnInvalidSubject(t *testing.T) {
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(fmt.Sprint(r), "invalid subject") {
			t.Fatalf("want a panic naming the invalid subject, got %v", r)
		}
	}()
	framework.NewTopic[orderCreated]("orders.*.v1")
}
