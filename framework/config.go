package framework

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/jetkit/jetkit/internal/wire"
)

// defaultEnvPrefix is the environment variable prefix LoadConfig uses when
// given an empty prefix: JETKIT_NATS_URL, JETKIT_ACK_WAIT, ...
const defaultEnvPrefix = "JETKIT"

// AckMode selects how a subscription acknowledges a handled message.
type AckMode string

const (
	// AckModeAsync acks without waiting for the server's confirmation. Fastest;
	// a lost ack means one redelivery (handlers should be idempotent).
	AckModeAsync AckMode = "async"
	// AckModeSync waits for the server to confirm the ack (DoubleAck) before the
	// message counts as done.
	AckModeSync AckMode = "sync"
)

// Config is everything a jetkit service reads from its environment. Load it
// with LoadConfig; build it in code with DefaultConfig and edit the fields
// (ServiceName at least). Every field names its variable (with the prefix,
// e.g. JETKIT_NATS_URL); a Config from LoadConfig remembers its prefix, so
// its errors name the variables it was read from.
type Config struct {
	// ServiceName identifies the service: the CloudEvents source, the NATS
	// client name (unless ClientName is set), the inbox prefix (unless
	// InboxPrefix is set) and the OTel service name. It is required.
	ServiceName string `envconfig:"SERVICE_NAME"`
	// URLs are the NATS servers, comma separated: nats://host:4222,...
	URLs []string `envconfig:"NATS_URL" default:"nats://127.0.0.1:4222"`
	// ClientName is the connection name the server shows; defaults to ServiceName.
	ClientName string `envconfig:"NATS_CLIENT_NAME"`
	// InboxPrefix roots the subjects replies and pulled messages arrive on;
	// empty means _INBOX_<ServiceName>. A prefix of its own lets the server
	// grant each service subscribe permission on its own replies only
	// (deploy/nats-permissions.conf). One subject without wildcards.
	InboxPrefix string `envconfig:"NATS_INBOX_PREFIX"`

	// CredsFile is a JWT user credentials file (.creds).
	CredsFile string `envconfig:"NATS_CREDS_FILE"`
	// NKeyFile is a file holding an NKey user seed.
	NKeyFile string `envconfig:"NATS_NKEY_FILE"`
	// User and Password authenticate with a username and password.
	User     string `envconfig:"NATS_USER"`
	Password Secret `envconfig:"NATS_PASSWORD"`
	// Token authenticates with a bearer token.
	Token Secret `envconfig:"NATS_TOKEN"`

	// TLSCAFile is a PEM CA bundle that verifies the server.
	TLSCAFile string `envconfig:"NATS_TLS_CA_FILE"`
	// TLSCertFile and TLSKeyFile are the client certificate for mutual TLS.
	TLSCertFile string `envconfig:"NATS_TLS_CERT_FILE"`
	TLSKeyFile  string `envconfig:"NATS_TLS_KEY_FILE"`
	// TLSServerName overrides the name verified in the server certificate.
	TLSServerName string `envconfig:"NATS_TLS_SERVER_NAME"`

	// ConnectTimeout bounds each dial to a server.
	ConnectTimeout time.Duration `envconfig:"NATS_CONNECT_TIMEOUT" default:"5s"`
	// ReconnectWait is the pause between reconnect attempts to one server.
	ReconnectWait time.Duration `envconfig:"NATS_RECONNECT_WAIT" default:"1s"`
	// MaxReconnects is how many reconnect attempts to make; -1 is forever.
	MaxReconnects int `envconfig:"NATS_MAX_RECONNECTS" default:"-1"`
	// RetryOnFailedConnect keeps trying when no server answers at start-up
	// instead of failing Connect.
	RetryOnFailedConnect bool `envconfig:"NATS_RETRY_ON_FAILED_CONNECT" default:"false"`
	// RequestTimeout bounds JetStream API calls and sync publishes.
	RequestTimeout time.Duration `envconfig:"NATS_REQUEST_TIMEOUT" default:"5s"`

	// Replicas is the replica count of streams the service declares (1 or 3 typically).
	Replicas int `envconfig:"STREAM_REPLICAS" default:"1"`
	// DeadLetterStream is the stream dead-lettered messages are copied to.
	DeadLetterStream string `envconfig:"DEAD_LETTER_STREAM" default:"DEADLETTER"`

	// AckWait is how long the server waits for an ack before redelivering.
	AckWait time.Duration `envconfig:"ACK_WAIT" default:"30s"`
	// MaxHandlerTime bounds how long one delivery's handler may run before
	// its context is cancelled and the message retried (see
	// framework.MaxHandlerTime); a negative value such as -1s turns the
	// limit off.
	MaxHandlerTime time.Duration `envconfig:"MAX_HANDLER_TIME" default:"5m"`
	// MaxDeliver is how many times a message is delivered before it is
	// dead-lettered.
	MaxDeliver int `envconfig:"MAX_DELIVER" default:"5"`
	// Concurrency is the default number of handlers running at once per subscription.
	Concurrency int `envconfig:"CONCURRENCY" default:"1"`
	// AckMode is the default ack mode: "async" or "sync".
	AckMode AckMode `envconfig:"ACK_MODE" default:"async"`
	// RetryInitial is the first redelivery delay after a transient failure.
	RetryInitial time.Duration `envconfig:"RETRY_INITIAL" default:"1s"`
	// RetryMax caps the redelivery delay.
	RetryMax time.Duration `envconfig:"RETRY_MAX" default:"1m"`
	// ShutdownTimeout is the budget in-flight handlers get at shutdown before
	// their messages are handed back. With the 2 s unwind grace for cancelled
	// handlers and the final flush, the default stays inside Kubernetes'
	// 30 s termination grace period.
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"20s"`
	// PublishAsyncMaxPending bounds un-acknowledged async publishes.
	PublishAsyncMaxPending int `envconfig:"PUBLISH_ASYNC_MAX_PENDING" default:"4000"`

	prefix string // the environment prefix LoadConfig read; "" is JETKIT
}

// Limits LoadConfig and Validate enforce beyond the obvious ones.
const (
	// minAckWait is the shortest ack wait a subscription accepts (AckWait).
	minAckWait = 100 * time.Millisecond
	// maxStreamNameLen is the server's limit on a stream name.
	maxStreamNameLen = 255
)

// envPrefix is the prefix c's variables are named with.
func (c Config) envPrefix() string {
	if c.prefix == "" {
		return defaultEnvPrefix
	}
	return c.prefix
}

// envName is the variable that sets field, e.g. ORDER_NATS_URL.
func (c Config) envName(field string) string { return c.envPrefix() + "_" + field }

// inboxPrefix is the custom inbox prefix the connection uses.
func (c Config) inboxPrefix() string {
	if c.InboxPrefix != "" {
		return c.InboxPrefix
	}
	return "_INBOX_" + c.ServiceName
}

// DefaultConfig returns the configuration LoadConfig produces from an empty
// environment: the `default` tags above. It reads no environment variable.
func DefaultConfig() Config {
	var cfg Config
	v := reflect.ValueOf(&cfg).Elem()
	for i := range v.NumField() {
		if def, ok := v.Type().Field(i).Tag.Lookup("default"); ok {
			_, _ = setField(v.Field(i), def) // the tags are constants that parse
		}
	}
	return cfg
}

// LoadConfig reads the configuration from environment variables named
// PREFIX_FIELD (prefix "" means JETKIT; it is upper-cased) and
// validates it. Only prefixed variables are read: ORDER_SERVICE_NAME, never
// SERVICE_NAME. PREFIX_SERVICE_NAME is required. The error lists every
// problem at once, naming each variable and the form it expects, and never
// contains a secret value.
//
// LoadConfig(prefix) is DefaultConfig().FromEnv(prefix).
func LoadConfig(prefix string) (Config, error) { return DefaultConfig().FromEnv(prefix) }

// FromEnv is LoadConfig starting from c instead of DefaultConfig: the
// PREFIX_ variables that are set override c's fields, and the result is
// validated. A program that knows its own name sets it and lets the
// environment override it:
//
//	cfg := framework.DefaultConfig()
//	cfg.ServiceName = "order"
//	cfg, err := cfg.FromEnv("ORDER") // ORDER_SERVICE_NAME, if set, wins
func (c Config) FromEnv(prefix string) (Config, error) {
	if prefix == "" {
		prefix = defaultEnvPrefix
	}
	prefix = strings.ToUpper(prefix)
	if strings.Trim(prefix, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "" || prefix[0] < 'A' || prefix[0] > 'Z' {
		return Config{}, &ConfigError{Problems: []string{fmt.Sprintf(
			"environment prefix %q: use letters, digits and underscores, starting with a letter, e.g. ORDER", prefix)}}
	}
	cfg, problems := configFromEnv(c, prefix)
	if err := cfg.Validate(); err != nil {
		problems = append(problems, err.(*ConfigError).Problems...)
	}
	if len(problems) > 0 {
		return cfg, &ConfigError{Problems: problems}
	}
	return cfg, nil
}

// configFromEnv overlays cfg with every PREFIX_ variable that parses, and
// reports each one that does not.
func configFromEnv(cfg Config, prefix string) (Config, []string) {
	cfg.prefix = prefix
	var problems []string
	v := reflect.ValueOf(&cfg).Elem()
	for i := range v.NumField() {
		name := v.Type().Field(i).Tag.Get("envconfig")
		if name == "" {
			continue // not read from the environment (the remembered prefix)
		}
		key := prefix + "_" + name
		val, ok := os.LookupEnv(key)
		if !ok {
			continue
		}
		if expect, err := setField(v.Field(i), val); err != nil {
			shown := val
			if v.Field(i).Type() == reflect.TypeOf(Secret("")) {
				shown = redacted
			}
			problems = append(problems, fmt.Sprintf("%s=%q: not %s", key, shown, expect))
		}
	}
	return cfg, problems
}

// setField parses raw into f by f's type; on failure it says what form was expected.
func setField(f reflect.Value, raw string) (expect string, err error) {
	switch {
	case f.Type() == reflect.TypeOf(time.Duration(0)):
		d, err := time.ParseDuration(raw)
		if err == nil {
			f.SetInt(int64(d))
		}
		return "a Go duration such as 500ms, 30s or 2m", err
	case f.Kind() == reflect.Int:
		n, err := strconv.Atoi(strings.TrimSpace(raw))
		if err == nil {
			f.SetInt(int64(n))
		}
		return "a whole number", err
	case f.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err == nil {
			f.SetBool(b)
		}
		return "true or false", err
	case f.Kind() == reflect.Slice:
		parts := strings.Split(raw, ",")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		f.Set(reflect.ValueOf(parts))
	default:
		f.SetString(raw)
	}
	return "", nil
}

// ConfigError lists every problem found in a configuration.
type ConfigError struct {
	// Problems are human-readable, one per variable, naming the variable.
	Problems []string
}

// Error implements error.
func (e *ConfigError) Error() string {
	return fmt.Sprintf("%s (%d problem(s)):\n  - %s", ErrInvalidConfig, len(e.Problems), strings.Join(e.Problems, "\n  - "))
}

// Unwrap lets errors.Is(err, ErrInvalidConfig) match.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

// Validate checks the configuration and reports every problem at once,
// naming the variable of each field: with the prefix LoadConfig read, or
// JETKIT_ for a Config built in code.
func (c Config) Validate() error {
	prefix := c.envPrefix()
	var p []string
	add := func(field, format string, args ...any) {
		p = append(p, prefix+"_"+field+": "+fmt.Sprintf(format, args...))
	}
	if c.ServiceName == "" {
		add("SERVICE_NAME", "must be set: a short name for the service such as \"order\" (it names its connection, inboxes and events)")
	} else if err := wire.ValidateToken(c.ServiceName); err != nil {
		add("SERVICE_NAME", "%q must be one subject token (no spaces, dots or wildcards)", c.ServiceName)
	} else if len(c.ServiceName) > maxServiceNameLen {
		add("SERVICE_NAME", "is %d bytes; at most %d (it travels in every event's ce-source)", len(c.ServiceName), maxServiceNameLen)
	}
	if c.InboxPrefix != "" {
		if err := wire.ValidateSubject(c.InboxPrefix); err != nil || strings.HasPrefix(c.InboxPrefix, "$") {
			add("NATS_INBOX_PREFIX", "%q must be a subject without wildcards, not starting with $, e.g. _INBOX_order", c.InboxPrefix)
		}
	}
	if len(c.URLs) == 0 {
		add("NATS_URL", "must list at least one server, e.g. nats://127.0.0.1:4222")
	}
	for i, raw := range c.URLs {
		u, err := url.Parse(strings.TrimSpace(raw))
		switch {
		case err != nil || u.Host == "":
			add("NATS_URL", "server %d (%q) is not a URL; expected nats://host:port (comma separated for several; percent-encode a comma in a password)", i+1, showBadURL(raw))
		case u.Scheme != "nats" && u.Scheme != "tls" && u.Scheme != "ws" && u.Scheme != "wss":
			add("NATS_URL", "server %d (%q) has scheme %q; expected nats, tls, ws or wss", i+1, redactURL(raw), u.Scheme)
		}
	}
	fileMustExist := func(field, path string) {
		if path == "" {
			return
		}
		if _, err := os.Stat(path); err != nil {
			add(field, "file %q cannot be read: %v", path, errors.Unwrap(err))
		}
	}
	fileMustExist("NATS_CREDS_FILE", c.CredsFile)
	fileMustExist("NATS_NKEY_FILE", c.NKeyFile)
	fileMustExist("NATS_TLS_CA_FILE", c.TLSCAFile)
	fileMustExist("NATS_TLS_CERT_FILE", c.TLSCertFile)
	fileMustExist("NATS_TLS_KEY_FILE", c.TLSKeyFile)
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		add("NATS_TLS_CERT_FILE", "and %s_NATS_TLS_KEY_FILE must be set together for mutual TLS", prefix)
	}
	methods := 0
	for _, set := range []bool{c.CredsFile != "", c.NKeyFile != "", c.User != "" || c.Password != "", c.Token != ""} {
		if set {
			methods++
		}
	}
	if methods > 1 {
		add("NATS_USER", "set only one of credentials file, NKey seed file, user/password or token")
	}
	if (c.User == "") != (c.Password == "") {
		add("NATS_USER", "and %s_NATS_PASSWORD must be set together", prefix)
	}
	positive := func(field string, d time.Duration) {
		if d <= 0 {
			add(field, "must be a positive duration such as 5s, got %s", d)
		}
	}
	positive("NATS_CONNECT_TIMEOUT", c.ConnectTimeout)
	positive("NATS_REQUEST_TIMEOUT", c.RequestTimeout)
	if c.AckWait < minAckWait {
		add("ACK_WAIT", "must be at least %s, got %s", minAckWait, c.AckWait)
	}
	positive("RETRY_INITIAL", c.RetryInitial)
	positive("SHUTDOWN_TIMEOUT", c.ShutdownTimeout)
	if c.ReconnectWait < 0 {
		add("NATS_RECONNECT_WAIT", "must not be negative, got %s", c.ReconnectWait)
	}
	if c.RetryMax < c.RetryInitial {
		add("RETRY_MAX", "(%s) must be at least %s_RETRY_INITIAL (%s)", c.RetryMax, prefix, c.RetryInitial)
	}
	if c.MaxReconnects < -1 {
		add("NATS_MAX_RECONNECTS", "must be -1 (forever) or more, got %d", c.MaxReconnects)
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		add("STREAM_REPLICAS", "must be between 1 and 5, got %d", c.Replicas)
	}
	if err := validateStreamName(c.DeadLetterStream); err != nil {
		add("DEAD_LETTER_STREAM", "%v", err)
	}
	if c.MaxHandlerTime >= 0 && c.MaxHandlerTime < 100*time.Millisecond {
		add("MAX_HANDLER_TIME", "must be a duration of at least 100ms such as 5m, or negative (e.g. -1s) to turn the limit off, got %s", c.MaxHandlerTime)
	}
	if c.MaxDeliver < 1 {
		add("MAX_DELIVER", "must be at least 1, got %d", c.MaxDeliver)
	}
	if c.Concurrency < 1 || c.Concurrency > 4096 {
		add("CONCURRENCY", "must be between 1 and 4096, got %d", c.Concurrency)
	}
	if c.AckMode != AckModeAsync && c.AckMode != AckModeSync {
		add("ACK_MODE", "%q is not an ack mode; expected \"async\" or \"sync\"", c.AckMode)
	}
	if c.PublishAsyncMaxPending < 1 {
		add("PUBLISH_ASYNC_MAX_PENDING", "must be at least 1, got %d", c.PublishAsyncMaxPending)
	}
	if len(p) > 0 {
		return &ConfigError{Problems: p}
	}
	return nil
}

// showBadURL is a URL that does not parse, safe to show. Besides the user
// information, a scheme followed by something unparsable is hidden: it may
// be the head of a password that held a comma (the list is split on
// commas), e.g. nats://user:pa of nats://user:pa,ss@host.
func showBadURL(raw string) string {
	s := redactURL(raw)
	if s == raw {
		if i := strings.Index(raw, "://"); i >= 0 && i+3 < len(raw) {
			return raw[:i+3] + "[hidden]"
		}
	}
	return s
}

// maxServiceNameLen bounds the service name, which every event carries as
// ce-source: a jetkit subscriber refuses longer envelope values.
const maxServiceNameLen = wire.MaxEnvelopeValueLen

// validateStreamName checks a stream name the way the server will:
// one subject token, no path separators, at most 255 bytes.
func validateStreamName(name string) error {
	switch {
	case name == "":
		return errors.New("must not be empty, e.g. DEADLETTER")
	case len(name) > maxStreamNameLen:
		return fmt.Errorf("is %d bytes; a stream name has at most %d", len(name), maxStreamNameLen)
	case wire.ValidateToken(name) != nil || strings.ContainsAny(name, `/\`):
		return fmt.Errorf("%q must be a stream name: no spaces, dots, wildcards, slashes or control characters, e.g. DEADLETTER", name)
	}
	return nil
}
