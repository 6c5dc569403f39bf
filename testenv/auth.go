package testenv

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/jetkit/jetkit/framework"
)

// Configure combines several server adjustments into one Options.Configure
// hook, applied in order:
//
//	srv := testenv.Start(t, testenv.Options{Configure: testenv.Configure(
//		testenv.Users(testenv.User{Name: "order", Password: "s3cret"}),
//		tlsFiles.Server(),
//	)})
func Configure(fns ...func(*server.Options)) func(*server.Options) {
	return func(o *server.Options) {
		for _, fn := range fns {
			if fn != nil {
				fn(o)
			}
		}
	}
}

// Permissions are the subjects a test user may publish and subscribe to,
// as in the authorization block of a nats-server config. A nil
// *Permissions means "everything allowed". Wildcards work as in NATS.
type Permissions struct {
	// Publish lists the subjects the user may publish to.
	Publish []string
	// Subscribe lists the subjects the user may subscribe to.
	Subscribe []string
	// DenyPublish lists subjects refused even if Publish allows them.
	DenyPublish []string
	// DenySubscribe lists subjects refused even if Subscribe allows them.
	DenySubscribe []string
}

func (p *Permissions) server() *server.Permissions {
	if p == nil {
		return nil
	}
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: p.Publish, Deny: p.DenyPublish},
		Subscribe: &server.SubjectPermission{Allow: p.Subscribe, Deny: p.DenySubscribe},
	}
}

// Credentials is how a test client authenticates. Apply copies it into a
// framework.Config, which is the only way jetkit services receive them.
type Credentials struct {
	// User and Password for user/password authentication.
	User, Password string
	// Token for token authentication.
	Token string
	// NKeyFile is a file holding an NKey user seed.
	NKeyFile string
	// CredsFile is a JWT user credentials file.
	CredsFile string
}

// Apply sets the credentials on cfg (clearing any other method) and
// returns it, for one-line use: creds.Apply(srv.Config("order")).
func (c Credentials) Apply(cfg framework.Config) framework.Config {
	cfg.User, cfg.Password, cfg.Token = c.User, framework.Secret(c.Password), framework.Secret(c.Token)
	cfg.NKeyFile, cfg.CredsFile = c.NKeyFile, c.CredsFile
	return cfg
}

// User is a user/password account on the test server.
type User struct {
	// Name and Password authenticate the user.
	Name, Password string
	// Permissions restrict the user; nil allows everything.
	Permissions *Permissions
}

// Credentials are the user's client credentials.
func (u User) Credentials() Credentials { return Credentials{User: u.Name, Password: u.Password} }

// Users requires user/password authentication with the given users, all in
// the server's global account (which has JetStream).
func Users(users ...User) func(*server.Options) {
	return func(o *server.Options) {
		for _, u := range users {
			o.Users = append(o.Users, &server.User{Username: u.Name, Password: u.Password, Permissions: u.Permissions.server()})
		}
	}
}

// Token requires token authentication with token.
func Token(token string) func(*server.Options) {
	return func(o *server.Options) { o.Authorization = token }
}

// NKeyUser is an NKey user whose seed lives in a file of the test's
// temporary directory.
type NKeyUser struct {
	// Public is the user's public key (starts with U), what the server knows.
	Public string
	// SeedFile holds the private seed (mode 0600), what the client reads.
	SeedFile string
	// Permissions restrict the user; nil allows everything.
	Permissions *Permissions
}

// Credentials are the user's client credentials.
func (u NKeyUser) Credentials() Credentials { return Credentials{NKeyFile: u.SeedFile} }

// NewNKeyUser creates an NKey user for the test, writing its seed into
// t.TempDir(). Pass it to NKeys to let the server accept it.
func NewNKeyUser(t testing.TB, perms *Permissions) NKeyUser {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatalf("testenv: create nkey user: %v", err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	file := writeSecretFile(t, "user.nk", seed)
	return NKeyUser{Public: pub, SeedFile: file, Permissions: perms}
}

// NKeys requires NKey authentication for the given users.
func NKeys(users ...NKeyUser) func(*server.Options) {
	return func(o *server.Options) {
		for _, u := range users {
			o.Nkeys = append(o.Nkeys, &server.NkeyUser{Nkey: u.Public, Permissions: u.Permissions.server()})
		}
	}
}

// Operator is a decentralised-auth (JWT) setup made for one test: an
// operator, a system account and one application account with JetStream
// enabled, resolved from memory. Users are minted with User.
type Operator struct {
	t        testing.TB
	claims   *jwt.OperatorClaims
	opKey    nkeys.KeyPair
	account  nkeys.KeyPair
	accJWT   string
	sysPub   string
	sysJWT   string
	accPub   string
	resolver *server.MemAccResolver
}

// NewOperator creates the operator and accounts. Pass Operator.Server to
// Options.Configure.
func NewOperator(t testing.TB) *Operator {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("testenv: JWT setup: %v", err)
		}
	}
	op := &Operator{t: t, resolver: &server.MemAccResolver{}}
	var err error
	op.opKey, err = nkeys.CreateOperator()
	must(err)
	opPub, _ := op.opKey.PublicKey()
	op.claims = jwt.NewOperatorClaims(opPub)
	op.claims.Name = "jetkit-test"

	sys, err := nkeys.CreateAccount()
	must(err)
	op.sysPub, _ = sys.PublicKey()
	sc := jwt.NewAccountClaims(op.sysPub)
	sc.Name = "SYS"
	op.sysJWT, err = sc.Encode(op.opKey)
	must(err)
	op.claims.SystemAccount = op.sysPub

	op.account, err = nkeys.CreateAccount()
	must(err)
	op.accPub, _ = op.account.PublicKey()
	ac := jwt.NewAccountClaims(op.accPub)
	ac.Name = "APP"
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	op.accJWT, err = ac.Encode(op.opKey)
	must(err)
	// Self-sign the operator so the server trusts it.
	opJWT, err := op.claims.Encode(op.opKey)
	must(err)
	op.claims, err = jwt.DecodeOperatorClaims(opJWT)
	must(err)
	must(op.resolver.Store(op.sysPub, op.sysJWT))
	must(op.resolver.Store(op.accPub, op.accJWT))
	return op
}

// Server configures the server to trust the operator and resolve its
// accounts from memory.
func (op *Operator) Server() func(*server.Options) {
	return func(o *server.Options) {
		o.TrustedOperators = []*jwt.OperatorClaims{op.claims}
		o.AccountResolver = op.resolver
		o.SystemAccount = op.sysPub
	}
}

// User mints a user in the application account, with perms (nil: allow
// all), and writes its .creds file into t.TempDir().
func (op *Operator) User(name string, perms *Permissions) Credentials {
	t := op.t
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatalf("testenv: create JWT user: %v", err)
	}
	pub, _ := kp.PublicKey()
	uc := jwt.NewUserClaims(pub)
	uc.Name = name
	if perms != nil {
		uc.Pub.Allow.Add(perms.Publish...)
		uc.Pub.Deny.Add(perms.DenyPublish...)
		uc.Sub.Allow.Add(perms.Subscribe...)
		uc.Sub.Deny.Add(perms.DenySubscribe...)
	}
	userJWT, err := uc.Encode(op.account)
	if err != nil {
		t.Fatalf("testenv: sign JWT user %s: %v", name, err)
	}
	seed, _ := kp.Seed()
	creds, err := jwt.FormatUserConfig(userJWT, seed)
	if err != nil {
		t.Fatalf("testenv: format creds for %s: %v", name, err)
	}
	return Credentials{CredsFile: writeSecretFile(t, name+".creds", creds)}
}

// writeSecretFile writes data to a fresh file in t.TempDir() readable only
// by the owner, as key material should be.
func writeSecretFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("testenv: write %s: %v", name, err)
	}
	return path
}

// AuthFromConfigFile applies the authorization section (users, NKey users,
// token) of a nats-server config file, such as deploy/nats-permissions.conf,
// to the test server, so that tests prove a deployment's permissions work.
// Variables in the file ($NAME) resolve from the environment (t.Setenv).
func AuthFromConfigFile(t testing.TB, path string) func(*server.Options) {
	t.Helper()
	parsed, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("testenv: read nats config %s: %v", path, err)
	}
	return func(o *server.Options) {
		o.Users, o.Nkeys = parsed.Users, parsed.Nkeys
		o.Authorization, o.Username, o.Password = parsed.Authorization, parsed.Username, parsed.Password
	}
}
