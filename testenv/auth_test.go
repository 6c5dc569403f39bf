package testenv_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetkit/jetkit/testenv"
)

// restricted may publish only on allowed.> and subscribe only to inboxes.
var restricted = &testenv.Permissions{Publish: []string{"allowed.>"}, Subscribe: []string{"_INBOX.>"}, DenyPublish: []string{"allowed.secret"}}

// checkPermissions connects with opts and proves the permissions are
// enforced: an allowed publish passes, refused ones come back as
// permission violations.
func checkPermissions(t *testing.T, url string, opts ...nats.Option) {
	t.Helper()
	nc, err := nats.Connect(url, append(opts, nats.Timeout(5*time.Second))...)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer nc.Close()
	expect := func(subject string, refused bool) {
		t.Helper()
		before := nc.LastError()
		if err := nc.Publish(subject, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil { // the server answers -ERR before the PONG
			t.Fatal(err)
		}
		got := nc.LastError() != before && errors.Is(nc.LastError(), nats.ErrPermissionViolation)
		if got != refused {
			t.Fatalf("publish %s: refused=%v, want %v (last error %v)", subject, got, refused, nc.LastError())
		}
	}
	expect("allowed.x", false)
	expect("other", true)
	expect("allowed.secret", true)
}

func TestPermissionsForEveryAuthMethod(t *testing.T) {
	t.Run("user", func(t *testing.T) {
		u := testenv.User{Name: "u", Password: "p", Permissions: restricted}
		srv := testenv.Start(t, testenv.Options{Configure: testenv.Users(u)})
		checkPermissions(t, srv.URL(), nats.UserInfo("u", "p"))
	})
	t.Run("nkey", func(t *testing.T) {
		u := testenv.NewNKeyUser(t, restricted)
		srv := testenv.Start(t, testenv.Options{Configure: testenv.NKeys(u)})
		opt, err := nats.NkeyOptionFromSeed(u.SeedFile)
		if err != nil {
			t.Fatal(err)
		}
		checkPermissions(t, srv.URL(), opt)
	})
	t.Run("jwt", func(t *testing.T) {
		op := testenv.NewOperator(t)
		srv := testenv.Start(t, testenv.Options{Configure: op.Server()})
		checkPermissions(t, srv.URL(), nats.UserCredentials(op.User("u", restricted).CredsFile))
	})
}

func TestKeyMaterialIsPrivateAndTemporary(t *testing.T) {
	nk := testenv.NewNKeyUser(t, nil)
	creds := testenv.NewOperator(t).User("u", nil)
	certs := testenv.NewTLS(t)
	for _, f := range []string{nk.SeedFile, creds.CredsFile, certs.ServerKeyFile, certs.ClientKeyFile} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", filepath.Base(f), st.Mode().Perm())
		}
		if filepath.Dir(filepath.Dir(f)) != filepath.Dir(filepath.Dir(nk.SeedFile)) {
			t.Errorf("%s is not under the test's temporary directory", f)
		}
	}
}

func TestAuthFromConfigFileResolvesVariables(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "auth.conf")
	if err := os.WriteFile(conf, []byte(`authorization { users = [ { user: svc, password: $SVC_PW, permissions: { publish: { allow: ["allowed.>"] }, subscribe: { allow: ["_INBOX.>"] } } } ] }`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SVC_PW", "from-the-environment")
	srv := testenv.Start(t, testenv.Options{Configure: testenv.AuthFromConfigFile(t, conf)})
	if nc, err := nats.Connect(srv.URL(), nats.UserInfo("svc", "wrong")); err == nil {
		nc.Close()
		t.Fatal("wrong password accepted")
	}
	checkPermissionsAllowedOnly(t, srv.URL(), nats.UserInfo("svc", "from-the-environment"))
}

func checkPermissionsAllowedOnly(t *testing.T, url string, opt nats.Option) {
	t.Helper()
	nc, err := nats.Connect(url, opt)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer nc.Close()
	if err := nc.Publish("other", nil); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(nc.LastError(), nats.ErrPermissionViolation) {
		t.Fatalf("publish outside the allowed subjects was not refused: %v", nc.LastError())
	}
}
